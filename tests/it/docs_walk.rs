//! The README's and the guides' shell blocks, run as written on a local control plane, so the
//! docs cannot drift from what works.
//!
//! A block is walked when the line before its ```` ```sh ```` fence is `<!-- doc-walk -->`
//! (it stands alone) or `<!-- doc-walk: after make run -->` (it is the second shell of
//! `make run`). A `make run` line in a block is started in the background and the block goes on
//! once the operator is ready, as a user's second shell would. Each block runs in one bash,
//! from the repository's root, with `set -euo pipefail`: a failing command fails the test.
//!
//! What differs from a user's shell, so that a walk never touches a plane or a port of the
//! developer's: the local plane lives in a temporary `$SWF_CLUSTER_DIR` on free ports
//! (`$PWD/.cluster` in the text is read as that directory), and `make run`'s ports are free ones
//! (`localhost:8080`, `localhost:8888` in the text are read as them).

use std::time::Duration;

use crate::common::{self, plane::free_port};

/// One walked block: where it is, whether `make run` runs beside it, and its text.
#[derive(Debug)]
struct Block {
    at: String,
    after_make_run: bool,
    text: String,
}

/// The walked blocks of a Markdown file.
fn walked_blocks(file: &str, markdown: &str) -> Vec<Block> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut blocks = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let after_make_run = match line.trim() {
            "<!-- doc-walk -->" => false,
            "<!-- doc-walk: after make run -->" => true,
            _ => continue,
        };
        let fence = lines.get(i + 1).copied().unwrap_or_default();
        assert_eq!(
            fence,
            "```sh",
            "{file}:{}: a doc-walk marker must precede a ```sh fence",
            i + 1
        );
        let body: Vec<&str> = lines[i + 2..]
            .iter()
            .take_while(|l| !l.starts_with("```"))
            .copied()
            .collect();
        blocks.push(Block {
            at: format!("{file}:{}", i + 3),
            after_make_run,
            text: body.join("\n"),
        });
    }
    blocks
}

/// The block's commands (a line ending in `\\` goes on on the next), each with the output the
/// text promises: the `#> ...` lines right after it.
fn commands(text: &str) -> Vec<(String, Vec<String>)> {
    let mut commands: Vec<(String, Vec<String>)> = Vec::new();
    let mut continued = false;
    for line in text.lines() {
        match (line.strip_prefix("#> "), commands.last_mut()) {
            (Some(promised), Some((_, expected))) => expected.push(promised.to_string()),
            _ if continued => {
                if let Some((command, _)) = commands.last_mut() {
                    command.push('\n');
                    command.push_str(line);
                }
            }
            _ => commands.push((line.to_string(), Vec::new())),
        }
        continued = line.trim_end().ends_with('\\');
    }
    commands
}

/// `command`, printing its output and failing unless the output holds each promised line
/// (runs of white space compared as one space).
fn expecting(command: &str, expected: &[String]) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut script = format!("out=$({command})\nprintf '%s\\n' \"$out\"");
    for line in expected {
        script.push_str(&format!(
            "\nsquash() {{ tr -s '[:space:]' ' '; }}; [[ \"$(squash <<<\"$out\")\" == *\"$(squash <<<{0} | sed 's/ $//')\"* ]] || {{ echo \"doc-walk: the output lacks {0}\" >&2; exit 1; }}",
            quote(line)
        ));
    }
    script
}

/// The ports and directory a walk uses in place of the documented ones.
struct Walk {
    cluster_dir: tempfile::TempDir,
    metrics_port: u16,
    api_port: u16,
}

impl Walk {
    fn new() -> Walk {
        Walk {
            cluster_dir: tempfile::Builder::new().prefix("swf-doc-walk-").tempdir().unwrap(),
            metrics_port: free_port(),
            api_port: free_port(),
        }
    }

    /// The block as bash runs it: the documented paths and ports read as the walk's, and
    /// `make run` started in the background until the operator is ready.
    fn script(&self, block: &Block) -> String {
        let mut lines = vec![
            "set -euo pipefail".to_string(),
            "until_ready() { for _ in $(seq 600); do curl -sf localhost:$METRICS_PORT/readyz >/dev/null && return 0; \
             kill -0 $MAKE_RUN 2>/dev/null || { tail -30 \"$SWF_CLUSTER_DIR/make-run.log\"; return 1; }; sleep 0.5; done; \
             echo \"doc-walk: make run not ready after 600 tries\" >&2; tail -30 \"$SWF_CLUSTER_DIR/make-run.log\"; return 1; }"
                .to_string(),
        ];
        let start_make_run =
            "setsid make run > \"$SWF_CLUSTER_DIR/make-run.log\" 2>&1 & MAKE_RUN=$!; until_ready".to_string();
        if block.after_make_run {
            lines.push(start_make_run.clone());
        }
        for (command, expected) in commands(&block.text) {
            let command = command
                .replace("$PWD/.cluster", "$SWF_CLUSTER_DIR")
                .replace("localhost:8080", &format!("localhost:{}", self.metrics_port))
                .replace("localhost:8888", &format!("localhost:{}", self.api_port));
            if command.trim_start().starts_with("make run") {
                lines.push(start_make_run.clone());
            } else if expected.is_empty() {
                lines.push(command);
            } else {
                lines.push(expecting(&command, &expected));
            }
        }
        lines.join("\n")
    }

    /// Runs one block; stops what it started (its `make run`, its plane) whatever happened.
    async fn run(&self, block: &Block) -> (bool, String) {
        let dir = self.cluster_dir.path();
        let script = format!(
            "trap '[ -n \"$MAKE_RUN\" ] && kill -- -$MAKE_RUN 2>/dev/null; wait; cargo run --quiet --example local-plane -- down >/dev/null 2>&1' EXIT\nMAKE_RUN=\n{}",
            self.script(block)
        );
        let mut bash = std::process::Command::new("bash");
        bash.arg("-c")
            .arg(script)
            .current_dir(common::repo_root())
            .env("SWF_CLUSTER_DIR", dir)
            .env("SWF_CLUSTER_API_PORT", free_port().to_string())
            .env("SWF_CLUSTER_ETCD_PORT", free_port().to_string())
            .env("SWF_CLUSTER_ETCD_PEER_PORT", free_port().to_string())
            .env("METRICS_PORT", self.metrics_port.to_string())
            .env("API_PORT", self.api_port.to_string())
            .env("GRPC_PORT", free_port().to_string())
            .env("WEBHOOK_PORT", free_port().to_string())
            .env_remove("KUBECONFIG");
        let out = common::output_within(bash, Duration::from_secs(600)).await;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}

#[test]
fn markers_are_read_as_written() {
    let md = "text\n<!-- doc-walk -->\n```sh\necho a\necho b\n```\n<!-- doc-walk: after make run -->\n```sh\nkubectl swf get\n```\n```sh\nnot walked\n```\n";
    let blocks = walked_blocks("x.md", md);
    assert_eq!(blocks.len(), 2);
    assert_eq!(
        (blocks[0].text.as_str(), blocks[0].after_make_run),
        ("echo a\necho b", false)
    );
    assert_eq!(blocks[0].at, "x.md:4");
    assert!(blocks[1].after_make_run);
    let parts = commands("a \\\n  b\n#> out\nc");
    assert_eq!(
        parts,
        [
            ("a \\\n  b".to_string(), vec!["out".to_string()]),
            ("c".to_string(), vec![])
        ]
    );
}

/// Every walked block of the README and the guides runs as written. The list of walked blocks
/// is checked too: a marker removed is a failure, not a block quietly skipped.
#[tokio::test]
async fn the_readme_and_the_guides_run_as_written() {
    if common::use_existing_cluster() {
        eprintln!("docs walk: skipped on an existing cluster (it starts local planes)");
        return;
    }
    let root = common::repo_root();
    let mut blocks = Vec::new();
    for file in [
        "README.md",
        "docs/guides/gitops.md",
        "docs/guides/migrating-from-kfp.md",
        "docs/guides/operations.md",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        blocks.extend(walked_blocks(file, &text));
    }
    let walked: Vec<&str> = blocks
        .iter()
        .map(|b| b.at.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(
        walked,
        [
            "README.md",
            "docs/guides/gitops.md",
            "docs/guides/migrating-from-kfp.md",
            "docs/guides/operations.md"
        ],
        "the blocks walked"
    );
    for block in &blocks {
        let walk = Walk::new();
        let (ok, output) = walk.run(block).await;
        println!("doc walk: {} {}", block.at, if ok { "ok" } else { "FAILED" });
        assert!(
            ok,
            "{}: the block failed as written:\n{}\n--- output ---\n{output}",
            block.at, block.text
        );
    }
}

/// Every relative link in the README and docs/ names a file that exists (sections move
/// between them).
#[test]
fn every_relative_link_in_the_docs_resolves() {
    let root = common::repo_root();
    let mut files = vec![root.join("README.md")];
    for dir in ["docs", "docs/guides"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (_, rest) in text.match_indices("](").map(|(i, _)| text.split_at(i + 2)) {
            let target = rest.split([')', '#', ' ']).next().unwrap_or_default();
            if target.is_empty() || target.starts_with("http") || target.starts_with("mailto:") {
                continue;
            }
            let dir = file.parent().unwrap();
            if !dir.join(target).exists() {
                broken.push(format!("{}: {target}", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
