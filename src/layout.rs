//! The tree is the architecture, and two rules keep it so: docs/architecture.md names every
//! module file under `src/` (and nothing that is gone), and the top-level modules (`model`,
//! `scheduling`, `controller`, ...) import one another without a cycle.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/`, as a path relative to it (`controller/runs.rs`).
fn module_files() -> BTreeSet<String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.insert(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&src_dir(), &src_dir(), &mut out);
    out
}

/// The module paths a text names in backticks: `a/b.rs`, or several at once as
/// `a/{b,c}.rs`.
fn named_paths(doc: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, quoted) in doc.split('`').enumerate() {
        let quoted = quoted.replace(", ", ",");
        if i % 2 == 0 || !quoted.ends_with(".rs") || quoted.contains(' ') {
            continue;
        }
        match (quoted.find('{'), quoted.find('}')) {
            (Some(open), Some(close)) if open < close => {
                let (head, tail) = (&quoted[..open], &quoted[close + 1..]);
                for name in quoted[open + 1..close].split(',') {
                    out.insert(format!("{head}{}{tail}", name.trim()));
                }
            }
            _ => {
                out.insert(quoted);
            }
        }
    }
    out
}

#[test]
fn the_architecture_doc_names_every_module_and_no_module_that_is_gone() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md")).unwrap();
    let named = named_paths(&doc);
    let files = module_files();
    let missing: Vec<_> = files.difference(&named).collect();
    assert!(
        missing.is_empty(),
        "docs/architecture.md does not name these modules (as `path/under/src.rs`): {missing:?}"
    );
    let tops: BTreeSet<&str> = files.iter().map(|f| f.split('/').next().unwrap_or_default()).collect();
    let ours = |p: &&String| tops.contains(p.split('/').next().unwrap_or_default());
    let gone: Vec<_> = named.iter().filter(ours).filter(|p| !files.contains(*p)).collect();
    assert!(
        gone.is_empty(),
        "docs/architecture.md names modules that do not exist: {gone:?}"
    );
}

/// The top-level modules a source text reaches through `crate::` (in `use` trees and paths).
fn crate_imports(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (_, rest) in code.match_indices("crate::").map(|(i, m)| (i, &code[i + m.len()..])) {
        let Some(group) = rest.strip_prefix('{') else {
            out.insert(ident(rest));
            continue;
        };
        let (mut depth, mut item_start) = (1, true);
        for (i, c) in group.char_indices() {
            if item_start && depth == 1 && (c.is_ascii_alphabetic() || c == '_') {
                out.insert(ident(&group[i..]));
                item_start = false;
            }
            match c {
                '{' => depth += 1,
                '}' if depth == 1 => break,
                '}' => depth -= 1,
                ',' if depth == 1 => item_start = true,
                _ => {}
            }
        }
    }
    out.retain(|m| !m.is_empty() && m != "self");
    out
}

/// Edges between the top-level modules of `src/` (files directly under it are modules too).
fn top_level_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in module_files() {
        let top = file
            .split('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".rs")
            .to_string();
        let text = std::fs::read_to_string(src_dir().join(&file)).unwrap();
        let edges = graph.entry(top.clone()).or_default();
        edges.extend(crate_imports(&text).into_iter().filter(|m| *m != top));
    }
    graph
}

/// A cycle of the graph, if it has one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            return Some(path[at..].iter().cloned().chain([node.to_string()]).collect());
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_top_level_modules_import_one_another_without_a_cycle() {
    let graph = top_level_graph();
    assert!(
        graph["scheduling"].iter().all(|m| m == "model"),
        "scheduling is pure: {:?}",
        graph["scheduling"]
    );
    assert!(
        graph["model"].is_empty(),
        "model imports nothing of ours: {:?}",
        graph["model"]
    );
    assert_eq!(find_cycle(&graph), None, "{graph:#?}");
}

#[test]
fn the_checks_read_what_they_should() {
    let imports =
        crate_imports("use crate::{model::{crd, keys}, serve::Health};\nlet x = crate::api::f(); // crate::cli");
    assert_eq!(imports, ["api", "model", "serve"].map(String::from).into());
    let named = named_paths("`a/{b, c}.rs` and `d.rs`, not `e.rs is` or `f`");
    assert_eq!(named, ["a/b.rs", "a/c.rs", "d.rs"].map(String::from).into());
    let cyclic: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a")]
        .map(|(k, v)| (k.into(), [v.to_string()].into()))
        .into();
    assert_eq!(
        find_cycle(&cyclic),
        Some(["a", "b", "c", "a"].map(String::from).to_vec())
    );
}
