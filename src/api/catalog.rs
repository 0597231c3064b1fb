//! What the JobService knows of ScheduledWorkflows, as the watch tells it: each object by uid
//! (GetJob and the writes' checks), and each scope ListJobs pages (a namespace, and an
//! experiment in a namespace) kept in every sort order (`ordered`). Pure: `index` feeds it
//! the watch's events.
//!
//! A job is in its namespace's scope and, when it names an experiment, that experiment's: it
//! costs one `Row` (shared by both) and, per scope, a hash entry and an entry in each of the
//! six orders.

use std::{collections::HashMap, sync::Arc};

use super::{convert, ordered::Ordered};
use crate::model::stored::SwfObject;

/// The jobs one ListJobs request may page: a namespace's, or an experiment's in it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Scope {
    pub namespace: String,
    pub experiment: Option<String>,
}

/// The scopes `obj` lists in (none without a namespace).
fn scopes_of(obj: &SwfObject) -> Vec<Scope> {
    let Some(namespace) = obj.metadata.namespace.clone() else {
        return Vec::new();
    };
    // An object whose spec cannot be read lists in its namespace only, as before the index.
    let experiment = obj
        .spec
        .as_ref()
        .ok()
        .and_then(|s| s.experiment_id.clone())
        .filter(|e| !e.is_empty());
    let mut scopes = vec![Scope {
        namespace: namespace.clone(),
        experiment: None,
    }];
    if let Some(experiment) = experiment {
        scopes.push(Scope {
            namespace,
            experiment: Some(experiment),
        });
    }
    scopes
}

#[derive(Default)]
pub struct Catalog {
    by_uid: HashMap<String, Arc<SwfObject>>,
    scopes: HashMap<Scope, Ordered<Arc<SwfObject>>>,
}

impl Catalog {
    /// Adds an object, or replaces the one with its uid (which may have moved experiment).
    /// An object without a uid is not a stored one: ignored.
    pub fn upsert(&mut self, obj: SwfObject) {
        let Some(uid) = obj.metadata.uid.clone() else {
            return;
        };
        self.remove(&uid);
        let obj = Arc::new(obj);
        let row = convert::row(&obj);
        for scope in scopes_of(&obj) {
            self.scopes.entry(scope).or_default().upsert(row.clone(), obj.clone());
        }
        self.by_uid.insert(uid, obj);
    }

    /// Removes the object with this uid, from every scope it was in.
    pub fn remove(&mut self, uid: &str) {
        let Some(old) = self.by_uid.remove(uid) else {
            return;
        };
        for scope in scopes_of(&old) {
            if let Some(jobs) = self.scopes.get_mut(&scope) {
                jobs.remove(uid);
                // An emptied scope goes: deleted namespaces and experiments cost nothing.
                if jobs.is_empty() {
                    self.scopes.remove(&scope);
                }
            }
        }
    }

    pub fn get(&self, uid: &str) -> Option<Arc<SwfObject>> {
        self.by_uid.get(uid).cloned()
    }

    /// The jobs of `scope`, in every order; `None` when it has none.
    pub fn scope(&self, scope: &Scope) -> Option<&Ordered<Arc<SwfObject>>> {
        self.scopes.get(scope)
    }

    pub fn len(&self) -> usize {
        self.by_uid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_uid.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::list::{Query, page};

    fn obj(uid: &str, ns: &str, name: &str, created: &str, experiment: Option<&str>) -> SwfObject {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns, "uid": uid, "creationTimestamp": created},
            "spec": {"enabled": false, "experimentId": experiment},
        }))
        .unwrap()
    }

    fn ns(namespace: &str) -> Scope {
        Scope {
            namespace: namespace.into(),
            experiment: None,
        }
    }

    fn experiment(namespace: &str, experiment: &str) -> Scope {
        Scope {
            namespace: namespace.into(),
            experiment: Some(experiment.into()),
        }
    }

    fn q<'a>(token: &'a str, size: i32, sort: &'a str) -> Query<'a> {
        Query {
            page_token: token,
            page_size: size,
            sort_by: sort,
            filter: "",
            scope: "s",
        }
    }

    /// Ids of one page of `scope`, and its next page token.
    fn page_ids(c: &Catalog, scope: &Scope, query: &Query) -> (Vec<String>, String) {
        let Some(jobs) = c.scope(scope) else {
            return (Vec::new(), String::new());
        };
        let p = page(jobs, query).unwrap();
        let ids = p
            .items
            .iter()
            .map(|o| o.metadata.uid.clone().unwrap_or_default())
            .collect();
        (ids, p.next_page_token)
    }

    const T1: &str = "2026-01-01T00:00:01Z";
    const T2: &str = "2026-01-01T00:00:02Z";

    #[test]
    fn watch_events_insert_update_and_delete_in_every_scope() {
        let mut c = Catalog::default();
        c.upsert(obj("u1", "a", "one", T1, Some("e1")));
        c.upsert(obj("u2", "a", "two", T2, None));
        c.upsert(obj("u3", "b", "three", T1, None));
        assert_eq!(page_ids(&c, &ns("a"), &q("", 0, "")).0, ["u1", "u2"]);
        assert_eq!(page_ids(&c, &ns("b"), &q("", 0, "")).0, ["u3"]);
        assert_eq!(page_ids(&c, &experiment("a", "e1"), &q("", 0, "")).0, ["u1"]);

        // An update renames u1 and moves it to another experiment.
        c.upsert(obj("u1", "a", "zzz", T1, Some("e2")));
        assert_eq!(page_ids(&c, &ns("a"), &q("", 0, "name")).0, ["u2", "u1"]);
        assert!(c.scope(&experiment("a", "e1")).is_none(), "e1 is empty, and gone");
        assert_eq!(page_ids(&c, &experiment("a", "e2"), &q("", 0, "")).0, ["u1"]);
        assert_eq!(c.scope(&ns("a")).map(|s| s.len()), Some(2));

        c.remove("u1");
        c.remove("u1");
        assert_eq!(page_ids(&c, &ns("a"), &q("", 0, "")).0, ["u2"]);
        assert!(c.scope(&experiment("a", "e2")).is_none());
        assert!(c.get("u1").is_none());
        assert!(c.get("u2").is_some());
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn pages_across_ties_return_every_job_once() {
        let mut c = Catalog::default();
        // 7 jobs with one creation time and one name: only the id orders them.
        for i in [5, 1, 6, 0, 3, 2, 4] {
            c.upsert(obj(&format!("u{i}"), "a", "same", T1, None));
        }
        for sort in ["", "name desc", "created_at desc", "name"] {
            let mut seen = Vec::new();
            let (mut ids, mut token) = page_ids(&c, &ns("a"), &q("", 3, sort));
            seen.append(&mut ids);
            while !token.is_empty() {
                (ids, token) = page_ids(&c, &ns("a"), &q(&token, 3, ""));
                seen.append(&mut ids);
            }
            let mut want: Vec<String> = (0..7).map(|i| format!("u{i}")).collect();
            if sort.ends_with("desc") {
                want.reverse();
            }
            assert_eq!(seen, want, "{sort:?}");
        }
    }

    #[test]
    fn a_token_after_a_deleted_job_continues_after_where_it_was() {
        let mut c = Catalog::default();
        for i in 0..6 {
            c.upsert(obj(&format!("u{i}"), "a", &format!("n{i}"), T1, None));
        }
        let (first, token) = page_ids(&c, &ns("a"), &q("", 2, "name"));
        assert_eq!(first, ["u0", "u1"]);
        c.remove("u1"); // the job the token names
        c.remove("u2"); // the next one too
        assert_eq!(page_ids(&c, &ns("a"), &q(&token, 2, "")).0, ["u3", "u4"]);
    }

    #[test]
    fn an_object_without_uid_or_namespace_lists_nowhere() {
        let mut c = Catalog::default();
        let mut no_uid = obj("x", "a", "n", T1, None);
        no_uid.metadata.uid = None;
        c.upsert(no_uid);
        let mut no_ns = obj("y", "a", "n", T1, None);
        no_ns.metadata.namespace = None;
        c.upsert(no_ns);
        assert!(c.scope(&ns("a")).is_none());
        assert!(c.scope(&ns("")).is_none());
        assert_eq!(c.len(), 1, "found by uid, listed nowhere");
        assert!(!c.is_empty());
        c.remove("y");
        assert!(c.is_empty());
    }
}
