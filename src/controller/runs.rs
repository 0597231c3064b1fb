//! Watch caches of runs, one per run kind, indexed by owner uid: a pass reads the runs of its
//! schedule from memory (no LIST per pass), and a change to a run wakes its owner.
//!
//! A cache starts the first time a kind is needed (or at start-up for `--watch-kinds`), so a
//! kind installed later is watched as soon as a schedule uses it. Only objects labelled
//! `isOwnedByScheduledWorkflow=true` are watched (KFP's label), and each is trimmed to what
//! planning reads (`stored::RunObject`).

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use futures::StreamExt;
use kube::{
    Api, Client,
    api::{ApiResource, GroupVersionKind},
    runtime::{
        WatchStreamExt,
        reflector::ObjectRef,
        watcher::{self, Event},
    },
};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::error::Error;
use crate::{
    model::{
        crd::WorkflowStatus,
        keys::LABEL_OWNED,
        runkind::RunKind,
        stored::{RunObject, SwfObject},
    },
    scheduling::runstate::ObservedRun,
    serve::metrics::Metrics,
};

type Key = (String, String);

#[derive(Default)]
struct Index {
    objects: HashMap<Key, Arc<RunObject>>,
    /// Each owner's runs, sorted (a sorted `Vec`: most schedules own one to a few runs, and a
    /// one-element `BTreeSet` allocates room for eleven).
    by_owner: HashMap<String, Vec<Key>>,
    /// uids of runs the watch reported deleted, newest last (at most `MAX_GONE`): a run this
    /// process created and someone deleted before the cache ever showed it is known gone here,
    /// so RecentCreates stops counting it at once.
    gone: VecDeque<String>,
}

/// How many deleted runs' uids a cache keeps (a few hundred KiB at most).
const MAX_GONE: usize = 4096;

fn key(o: &RunObject) -> Key {
    (
        o.metadata.namespace.clone().unwrap_or_default(),
        o.metadata.name.clone().unwrap_or_default(),
    )
}

/// The ScheduledWorkflows that own `o` (uid and a reference to wake).
fn owners(o: &RunObject) -> impl Iterator<Item = (&str, ObjectRef<SwfObject>)> {
    let ns = o.metadata.namespace.as_deref().unwrap_or_default();
    o.metadata
        .owner_references
        .iter()
        .flatten()
        .filter(|r| r.kind == "ScheduledWorkflow" && r.api_version.starts_with("kubeflow.org/"))
        .map(move |r| (r.uid.as_str(), ObjectRef::new(&r.name).within(ns)))
}

impl Index {
    fn insert(&mut self, o: Arc<RunObject>) -> Option<Arc<RunObject>> {
        let k = key(&o);
        let old = self.remove(&k);
        for (uid, _) in owners(&o) {
            let keys = self.by_owner.entry(uid.to_string()).or_default();
            if let Err(at) = keys.binary_search(&k) {
                keys.insert(at, k.clone());
            }
        }
        self.objects.insert(k, o);
        old
    }

    fn remove(&mut self, k: &Key) -> Option<Arc<RunObject>> {
        let old = self.objects.remove(k)?;
        for (uid, _) in owners(&old) {
            if let Some(keys) = self.by_owner.get_mut(uid) {
                if let Ok(at) = keys.binary_search(k) {
                    keys.remove(at);
                }
                if keys.is_empty() {
                    self.by_owner.remove(uid);
                }
            }
        }
        Some(old)
    }
}

/// Whether a cache can answer yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Syncing,
    Ready,
    /// The watch fails (e.g. 403: no list/watch on this kind); it keeps retrying.
    Failing(String),
}

/// The runs of one kind.
pub struct RunCache {
    pub kind: RunKind,
    pub resource: ApiResource,
    index: RwLock<Index>,
    ready: watch::Sender<Readiness>,
}

impl RunCache {
    fn new(kind: RunKind, resource: ApiResource) -> Self {
        RunCache {
            kind,
            resource,
            index: RwLock::new(Index::default()),
            ready: watch::Sender::new(Readiness::Syncing),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The runs owned by the schedule with this uid.
    pub fn owned_by(&self, uid: &str) -> Vec<Arc<RunObject>> {
        let index = self.read();
        index
            .by_owner
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|k| index.objects.get(k).cloned())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.read().objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn readiness(&self) -> Readiness {
        self.ready.borrow().clone()
    }

    /// Waits up to `timeout` for the first full list.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        let mut rx = self.ready.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|r| *r == Readiness::Ready)).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::RunsNotCached {
                kind: self.kind.clone(),
                detail: match self.readiness() {
                    Readiness::Failing(e) => format!("its watch fails: {e}"),
                    _ => "the first list has not finished".into(),
                },
            }),
        }
    }

    /// Adds or replaces a run; returns the owners to wake when it changed.
    pub(crate) fn apply(&self, mut o: RunObject) -> Vec<ObjectRef<SwfObject>> {
        // The resourceVersion changes on every write; only what planning reads matters.
        o.metadata.resource_version = None;
        let o = Arc::new(o);
        let old = self.write().insert(o.clone());
        if old.as_deref() == Some(&*o) {
            return Vec::new();
        }
        let mut wake: Vec<_> = owners(&o).map(|(_, r)| r).collect();
        for (_, r) in old.iter().flat_map(|old| owners(old)) {
            if !wake.contains(&r) {
                wake.push(r);
            }
        }
        wake
    }

    /// Marks a run this process just deleted (its DELETE answered) as being deleted, as the
    /// watch will report it: until then a pass would count it in its slot and wait for that
    /// event (issue 18, R17). Wakes nobody: the pass that deleted it goes on with its plan.
    pub(crate) fn mark_deleting(&self, namespace: &str, name: &str, now: jiff::Timestamp) {
        let mut index = self.write();
        let k = (namespace.to_string(), name.to_string());
        let Some(run) = index
            .objects
            .get(&k)
            .filter(|o| o.metadata.deletion_timestamp.is_none())
        else {
            return;
        };
        let mut deleting = (**run).clone();
        deleting.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
        index.insert(Arc::new(deleting));
    }

    /// Removes a run the watch reported deleted; returns the owners to wake (also when the
    /// cache never showed it: a run created and deleted at once may hold a slot in
    /// RecentCreates until its owner's pass learns it is gone).
    pub(crate) fn delete(&self, o: &RunObject) -> Vec<ObjectRef<SwfObject>> {
        let mut index = self.write();
        if let Some(uid) = o.metadata.uid.clone() {
            if index.gone.len() >= MAX_GONE {
                index.gone.pop_front();
            }
            index.gone.push_back(uid);
        }
        match index.remove(&key(o)) {
            Some(old) => owners(&old).map(|(_, r)| r).collect(),
            None => owners(o).map(|(_, r)| r).collect(),
        }
    }

    /// True when the watch reported the run with this uid deleted (recently).
    pub fn saw_deleted(&self, uid: &str) -> bool {
        self.read().gone.iter().rev().any(|g| g == uid)
    }

    /// Replaces everything after a (re)list; returns the owners of what changed.
    fn replace_all(&self, objects: Vec<RunObject>) -> Vec<ObjectRef<SwfObject>> {
        let mut fresh = Index::default();
        for mut o in objects {
            o.metadata.resource_version = None;
            fresh.insert(Arc::new(o));
        }
        let mut index = self.write();
        fresh.gone = std::mem::take(&mut index.gone);
        let mut wake = Vec::new();
        for (k, o) in &fresh.objects {
            if index.objects.get(k) != Some(o) {
                wake.extend(owners(o).map(|(_, r)| r));
            }
        }
        for (k, o) in &index.objects {
            if !fresh.objects.contains_key(k) {
                wake.extend(owners(o).map(|(_, r)| r));
            }
        }
        *index = fresh;
        wake
    }

    /// A cache holding `runs`, ready, with no watch (unit tests of the reconciler).
    pub fn preloaded(kind: RunKind, resource: ApiResource, runs: Vec<RunObject>) -> Arc<Self> {
        let cache = Arc::new(RunCache::new(kind, resource));
        cache.replace_all(runs);
        cache.ready.send_replace(Readiness::Ready);
        cache
    }

    /// A cache whose watch fails with `why` (a test's stand-in for a 403 on list/watch).
    #[cfg(test)]
    pub fn failing(kind: RunKind, resource: ApiResource, why: &str) -> Arc<Self> {
        let cache = Arc::new(RunCache::new(kind, resource));
        cache.ready.send_replace(Readiness::Failing(why.into()));
        cache
    }
}

/// Where to send the references of schedules whose runs changed.
pub type Wake = mpsc::UnboundedSender<ObjectRef<SwfObject>>;

/// All run caches, started on demand.
pub struct RunCaches {
    client: Client,
    namespace: Option<String>,
    caches: Mutex<HashMap<RunKind, Arc<RunCache>>>,
    wake: Wake,
    metrics: Arc<Metrics>,
    tasks: super::Tasks,
    /// Runs this process created that the caches may not show yet.
    pub created: Arc<RecentCreates>,
}

impl RunCaches {
    pub fn new(
        client: Client,
        namespace: Option<String>,
        wake: Wake,
        metrics: Arc<Metrics>,
        tasks: super::Tasks,
    ) -> Self {
        RunCaches {
            client,
            namespace,
            caches: Mutex::new(HashMap::new()),
            wake,
            metrics,
            tasks,
            created: Arc::default(),
        }
    }

    fn caches(&self) -> std::sync::MutexGuard<'_, HashMap<RunKind, Arc<RunCache>>> {
        self.caches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a cache built elsewhere (unit tests).
    pub fn insert(&self, cache: Arc<RunCache>) {
        self.caches().insert(cache.kind.clone(), cache);
    }

    /// The cache of `kind`, starting its watch the first time (API discovery resolves the kind;
    /// a kind the cluster does not serve is an error, retried by the caller).
    pub async fn get(&self, kind: &RunKind) -> Result<Arc<RunCache>, Error> {
        if let Some(c) = self.caches().get(kind) {
            return Ok(c.clone());
        }
        let gvk = GroupVersionKind::gvk(&kind.group, &kind.version, &kind.kind);
        let (resource, _) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|source| Error::ResolveKind {
                kind: kind.clone(),
                source,
            })?;
        let mut caches = self.caches();
        if let Some(c) = caches.get(kind) {
            return Ok(c.clone()); // another pass started it meanwhile
        }
        let cache = Arc::new(RunCache::new(kind.clone(), resource));
        caches.insert(kind.clone(), cache.clone());
        let api: Api<RunObject> = match &self.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &cache.resource),
            None => Api::all_with(self.client.clone(), &cache.resource),
        };
        self.tasks.spawn(watch_runs(
            cache.clone(),
            api,
            self.wake.clone(),
            self.metrics.clone(),
            self.created.clone(),
        ));
        info!(%kind, "watching runs");
        Ok(cache)
    }

    /// True when every cache started so far has listed once.
    pub fn all_ready(&self) -> bool {
        self.caches().values().all(|c| c.readiness() == Readiness::Ready)
    }
}

/// Keeps `cache` in step with the API server until the process ends.
async fn watch_runs(
    cache: Arc<RunCache>,
    api: Api<RunObject>,
    wake: Wake,
    metrics: Arc<Metrics>,
    created: Arc<RecentCreates>,
) {
    let config = watcher::Config::default()
        .labels(&format!("{LABEL_OWNED}=true"))
        .any_semantic();
    let stream = watcher::watcher(api, config).backoff(crate::serve::watch_backoff::WatchBackoff::default());
    futures::pin_mut!(stream);
    let mut relist: Option<Vec<RunObject>> = None;
    let label = format!("runs:{}", cache.kind);
    while let Some(event) = stream.next().await {
        let woken = match event {
            Ok(Event::Init) => {
                metrics.cache_listed(&label);
                relist = Some(Vec::new());
                Vec::new()
            }
            Ok(Event::InitApply(o)) => {
                relist.get_or_insert_with(Vec::new).push(o);
                Vec::new()
            }
            Ok(Event::InitDone) => {
                let woken = cache.replace_all(relist.take().unwrap_or_default());
                cache.ready.send_replace(Readiness::Ready);
                woken
            }
            Ok(Event::Apply(o)) => applied(&cache, &created, o),
            Ok(Event::Delete(o)) => cache.delete(&o),
            Err(e) => {
                warn!(kind = %cache.kind, error = %e, "run watch failed; retrying");
                if cache.readiness() != Readiness::Ready {
                    cache.ready.send_replace(Readiness::Failing(e.to_string()));
                }
                Vec::new()
            }
        };
        metrics.set_cache_size(&label, cache.len());
        for r in woken {
            let _ = wake.send(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(name: &str, owner: &str, phase: &str) -> RunObject {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns", "resourceVersion": "1",
            "ownerReferences": [{"apiVersion": "kubeflow.org/v1beta1", "kind": "ScheduledWorkflow", "name": owner, "uid": format!("uid-{owner}")}]},
            "status": {"phase": phase}}))
        .unwrap()
    }

    fn cache() -> RunCache {
        RunCache::new(
            RunKind::argo_workflow(),
            ApiResource::from_gvk(&GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Workflow")),
        )
    }

    #[test]
    fn indexes_by_owner_and_wakes_only_on_change() {
        let c = cache();
        assert!(c.is_empty());
        assert_eq!(c.apply(run("a-1", "a", "Running")).len(), 1);
        c.apply(run("b-1", "b", "Running"));
        assert_eq!((c.len(), c.is_empty()), (2, false));
        assert_eq!(c.owned_by("uid-a").len(), 1);
        let mut same = run("a-1", "a", "Running");
        same.metadata.resource_version = Some("2".into());
        assert!(c.apply(same).is_empty(), "a new resourceVersion alone wakes nobody");
        let woken = c.apply(run("a-1", "a", "Succeeded"));
        assert_eq!(woken, vec![ObjectRef::new("a").within("ns")]);
        assert_eq!(c.delete(&run("a-1", "a", "")).len(), 1);
        assert!(c.owned_by("uid-a").is_empty());
        assert_eq!(c.owned_by("uid-b").len(), 1);
    }

    /// Only an owner reference to a kubeflow.org ScheduledWorkflow makes a run a schedule's:
    /// not another kind of the group, nor a kind of that name from another group.
    #[test]
    fn only_a_kubeflow_scheduled_workflow_owns_a_run() {
        let c = cache();
        let mut o = run("x-1", "x", "Running");
        o.metadata.owner_references = serde_json::from_value(json!([
            {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "name": "e", "uid": "uid-e"},
            {"apiVersion": "example.com/v1", "kind": "ScheduledWorkflow", "name": "s", "uid": "uid-s"},
            {"apiVersion": "kubeflow.org/v1beta1", "kind": "ScheduledWorkflow", "name": "x", "uid": "uid-x"}
        ]))
        .unwrap();
        assert_eq!(c.apply(o), vec![ObjectRef::new("x").within("ns")], "only x is woken");
        assert_eq!(c.owned_by("uid-x").len(), 1);
        assert!(c.owned_by("uid-e").is_empty() && c.owned_by("uid-s").is_empty());
    }

    /// The uids of the runs the watch reported deleted are remembered, the newest `MAX_GONE`.
    #[test]
    fn the_newest_deleted_uids_are_remembered() {
        let c = cache();
        for i in 0..=MAX_GONE {
            let mut o = run(&format!("a-{i}"), "a", "");
            o.metadata.uid = Some(format!("u-{i}"));
            c.delete(&o);
        }
        assert!(!c.saw_deleted("u-0"), "the oldest is forgotten");
        assert!(c.saw_deleted("u-1") && c.saw_deleted(&format!("u-{MAX_GONE}")));
    }

    /// A cache whose watch fails says why when a pass waits for it.
    #[tokio::test]
    async fn waiting_for_a_failing_cache_says_why() {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Workflow"));
        let c = RunCache::failing(RunKind::argo_workflow(), resource, "403 Forbidden");
        let err = c.wait_ready(Duration::from_millis(10)).await.unwrap_err();
        assert!(err.to_string().contains("its watch fails: 403 Forbidden"), "{err}");
    }

    /// After a handover, the recent runs the status lists as active count until the cache
    /// shows them: only those the cache does not know, and not one its watch saw deleted.
    #[test]
    fn only_listed_runs_the_cache_does_not_show_count_from_the_status() {
        let now: jiff::Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let listed = |name: &str| WorkflowStatus {
            name: name.into(),
            uid: format!("uid-{name}"),
            created_at: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now)),
            ..Default::default()
        };
        let active = [listed("a-1"), listed("a-2"), listed("a-3")];
        let c = cache();
        let shown = crate::scheduling::runstate::observe(&c.kind, &run("a-1", "a", "Running"));
        let mut deleted = run("a-3", "a", "");
        deleted.metadata.uid = Some("uid-a-3".into());
        c.delete(&deleted);
        let known = [shown];
        let unseen = recorded_unseen(&active, &known, &c, now);
        let names: Vec<&str> = unseen.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a-2"]);
        // Until `recorded_expiry`, when the pass comes back: then it no longer counts.
        let expiry = now.checked_add(RECENT_TTL).unwrap();
        let just_before = expiry.checked_sub(jiff::SignedDuration::from_millis(1)).unwrap();
        assert_eq!(recorded_unseen(&active, &known, &c, just_before).len(), 1);
        assert!(recorded_unseen(&active, &known, &c, expiry).is_empty());
    }

    /// A pass comes back when the first run known only from the status stops counting
    /// (the runs the cache shows do not set that time).
    #[test]
    fn the_first_listed_run_to_expire_sets_when_the_pass_comes_back() {
        let at = |s: &str| k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(s.parse().unwrap());
        let listed = |name: &str, created: &str| {
            crate::scheduling::runstate::recorded_active(&WorkflowStatus {
                name: name.into(),
                created_at: Some(at(created)),
                ..Default::default()
            })
        };
        let mut cached = run("a-0", "a", "Running");
        cached.metadata.creation_timestamp = Some(at("2026-01-01T00:00:00Z"));
        let runs = [
            listed("a-2", "2026-01-01T00:01:00Z"),
            crate::scheduling::runstate::observe(&cache().kind, &cached),
            listed("a-1", "2026-01-01T00:00:30Z"),
        ];
        let first: jiff::Timestamp = "2026-01-01T00:00:30Z".parse().unwrap();
        assert_eq!(recorded_expiry(&runs), first.checked_add(RECENT_TTL).ok());
        assert_eq!(recorded_expiry(&runs[1..2]), None, "a cached run only");
    }

    /// The readiness probe's answer: every cache started so far has listed once.
    #[tokio::test]
    async fn all_caches_are_ready_only_when_each_has_listed() {
        let (service, _api) =
            tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
        let (wake, _) = mpsc::unbounded_channel();
        let metrics = Arc::new(Metrics::default());
        let caches = RunCaches::new(Client::new(service, "ns"), None, wake, metrics, Default::default());
        assert!(caches.all_ready(), "none started");
        let jobs = ApiResource::from_gvk(&GroupVersionKind::gvk("batch", "v1", "Job"));
        caches.insert(RunCache::preloaded(RunKind::parse("batch/v1", "Job"), jobs, vec![]));
        assert!(caches.all_ready());
        caches.insert(Arc::new(cache()));
        assert!(!caches.all_ready(), "the Workflow cache has not listed");
    }

    /// The run watch against a mock API server: refused before its first list, the cache
    /// says its watch fails; refused after it, the cache stays ready with what it listed.
    #[tokio::test]
    async fn a_watch_refused_before_its_first_list_fails_the_cache_and_after_it_does_not() {
        use http::{Request, Response};
        use kube::client::Body;
        let reply = |code: u16, body: serde_json::Value| {
            Response::builder()
                .status(code)
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap()
        };
        let refused = |code: u16| json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": "Forbidden"});
        for listed_first in [false, true] {
            let (service, mut api) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
            let cache = Arc::new(cache());
            let runs: Api<RunObject> = Api::namespaced_with(Client::new(service, "ns"), "ns", &cache.resource);
            let (wake, _woken) = mpsc::unbounded_channel();
            let watching = watch_runs(cache.clone(), runs, wake, Arc::new(Metrics::default()), Arc::default());
            let task = tokio::spawn(watching);
            let next = tokio::time::timeout(Duration::from_secs(10), api.next_request());
            let (_, send) = next.await.expect("the list comes").expect("alive");
            if listed_first {
                let list =
                    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "5"}, "items": []});
                send.send_response(reply(200, list));
                cache.wait_ready(Duration::from_secs(10)).await.unwrap();
                let next = tokio::time::timeout(Duration::from_secs(10), api.next_request());
                let (_, send) = next.await.expect("the watch comes").expect("alive");
                send.send_response(reply(403, refused(403)));
                // The watcher tries again after its backoff: the refusal has been handled.
                let again = tokio::time::timeout(Duration::from_secs(10), api.next_request());
                assert!(again.await.is_ok(), "the watch is retried");
                assert_eq!(cache.readiness(), Readiness::Ready, "still ready");
            } else {
                send.send_response(reply(403, refused(403)));
                let mut ready = cache.ready.subscribe();
                let failing = ready.wait_for(|r| matches!(r, Readiness::Failing(_)));
                let failing = tokio::time::timeout(Duration::from_secs(10), failing).await;
                assert!(failing.is_ok(), "the cache says its watch fails");
            }
            task.abort();
        }
    }

    /// Issue 21 §2: the watch event of a run this process just created woke its owner for a
    /// second pass that had nothing to do (1,000 such passes at a tick of 1,000 schedules).
    #[test]
    fn the_watch_event_of_our_own_create_wakes_nobody_and_what_follows_does() {
        let (c, recent) = (cache(), RecentCreates::default());
        let t0: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let with_uid = |mut r: RunObject, uid: &str, version: &str| {
            r.metadata.uid = Some(uid.into());
            r.metadata.resource_version = Some(version.into());
            r
        };
        let ours = with_uid(run("a-1", "a", "Running"), "uid-run-a", "7");
        recent.remember("uid-a", ours.clone(), t0);
        assert!(
            applied(&c, &recent, ours).is_empty(),
            "the create's own reply tells nothing new"
        );
        assert_eq!(c.owned_by("uid-a").len(), 1, "and the cache holds it");
        let finished = with_uid(run("a-1", "a", "Succeeded"), "uid-run-a", "8");
        assert_eq!(
            applied(&c, &recent, finished).len(),
            1,
            "a later version wakes its owner"
        );
        let theirs = with_uid(run("b-1", "b", "Running"), "uid-run-b", "9");
        assert_eq!(
            applied(&c, &recent, theirs).len(),
            1,
            "another process's run wakes its owner"
        );
        let same_name_again = with_uid(run("a-2", "a", "Running"), "uid-run-a2", "7");
        assert_eq!(
            applied(&c, &recent, same_name_again).len(),
            1,
            "same version, another run"
        );
    }

    #[test]
    fn a_relist_wakes_owners_of_what_changed() {
        let c = cache();
        c.replace_all(vec![run("a-1", "a", "Running"), run("b-1", "b", "Running")]);
        let woken = c.replace_all(vec![run("a-1", "a", "Running"), run("c-1", "c", "Running")]);
        let mut names: Vec<_> = woken.iter().map(|r| r.name.clone()).collect();
        names.sort();
        assert_eq!(names, vec!["b", "c"]);
        assert!(c.owned_by("uid-b").is_empty());
    }

    #[test]
    /// Issue 18, R17: a run this process deleted holds no slot from the moment its DELETE is
    /// answered: the cache shows it being deleted, and RecentCreates no longer counts it.
    fn a_run_deleted_by_this_process_is_being_deleted_at_once() {
        let recent = RecentCreates::default();
        let c = cache();
        let t0: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        recent.remember("owner", run("a", "owner", "Running"), t0);
        recent.remember("owner", run("b", "owner", "Running"), t0);
        recent.forget("owner", "a");
        let names = |v: Vec<RunObject>| v.into_iter().filter_map(|r| r.metadata.name).collect::<Vec<_>>();
        assert_eq!(names(recent.unseen("owner", &[], &c, t0)), ["b"]);
        recent.forget("owner", "b");
        assert_eq!(recent.owners(), 0);

        c.apply(run("c", "owner", "Running"));
        c.mark_deleting("ns", "c", t0);
        let marked = c.owned_by("uid-owner");
        assert_eq!(marked.len(), 1);
        assert_eq!(marked[0].metadata.deletion_timestamp.as_ref().map(|t| t.0), Some(t0));
        c.mark_deleting("ns", "unknown", t0); // not cached: nothing to mark
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn recent_creates_count_until_the_cache_shows_them_or_they_expire() {
        let recent = RecentCreates::default();
        let c = cache();
        let t0: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        recent.remember("owner", run("a", "owner", "Running"), t0);
        recent.remember("owner", run("b", "owner", "Running"), t0);
        let names = |v: Vec<RunObject>| v.into_iter().filter_map(|r| r.metadata.name).collect::<Vec<_>>();
        assert_eq!(names(recent.unseen("owner", &[], &c, t0)), ["a", "b"]);
        let cached = [Arc::new(run("a", "owner", "Running"))];
        assert_eq!(
            names(recent.unseen("owner", &cached, &c, t0)),
            ["b"],
            "the cache shows a"
        );
        assert_eq!(
            names(recent.unseen("owner", &[], &c, t0)),
            ["b"],
            "a is forgotten once seen"
        );
        let almost = t0 + jiff::SignedDuration::from_secs(59);
        assert_eq!(
            names(recent.unseen("owner", &[], &c, almost)),
            ["b"],
            "b counts for 60 s"
        );
        let later = t0 + jiff::SignedDuration::from_secs(61);
        assert!(
            recent.unseen("owner", &[], &c, later).is_empty(),
            "b expired after 60 s"
        );
        assert!(recent.unseen("other", &[], &c, t0).is_empty());
    }

    /// Issue 18, R6 (found by the simulation): a run created and deleted before the cache ever
    /// showed it held its slot until RecentCreates forgot it (60 s), and its owner was not
    /// woken, so a due tick waited. The watch's delete now ends both.
    #[test]
    fn a_run_deleted_before_the_cache_showed_it_is_forgotten_and_its_owner_woken() {
        let recent = RecentCreates::default();
        let c = cache();
        let t0: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut created = run("a", "owner", "Running");
        created.metadata.uid = Some("uid-run-a".into());
        recent.remember("owner", created.clone(), t0);
        assert_eq!(recent.unseen("owner", &[], &c, t0).len(), 1);
        let woken = c.delete(&created);
        assert_eq!(woken.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["owner"]);
        assert!(recent.unseen("owner", &[], &c, t0).is_empty(), "gone at once");
        // A run of the same name created again (another uid) counts.
        let mut again = run("a", "owner", "Running");
        again.metadata.uid = Some("uid-run-a2".into());
        recent.remember("owner", again, t0);
        assert_eq!(recent.unseen("owner", &[], &c, t0).len(), 1);
    }

    /// Creates sweep other owners' expired runs once per TTL, not each time; a deleted
    /// schedule's runs go within two TTLs.
    #[test]
    fn other_owners_expired_runs_are_swept_once_per_ttl() {
        let recent = RecentCreates::default();
        let t0: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let at = |ms: i64| t0 + jiff::SignedDuration::from_millis(ms);
        recent.remember("x", run("x", "x", "Running"), at(0)); // sweeps
        recent.remember("gone", run("g", "gone", "Running"), at(1_000));
        recent.remember("a", run("a", "a", "Running"), at(60_500)); // sweeps: x expired
        assert_eq!(recent.owners(), 2, "gone (59.5 s old) is kept");
        recent.remember("a", run("a2", "a", "Running"), at(100_000));
        assert_eq!(recent.owners(), 2, "no sweep within a TTL of the last: gone stays");
        recent.remember("a", run("a3", "a", "Running"), at(121_000)); // sweeps
        assert_eq!(recent.owners(), 1, "gone is dropped");
    }
}

/// How long a run this process created is counted before its watch event arrives: as long as
/// the status writer remembers its last write (`status_write::MEMORY_TTL`), the one bound the
/// operator assumes on watch lag.
const RECENT_TTL: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);

/// Runs this process created that the watch cache may not show yet: the watch lags the
/// create's reply, and a pass woken by the first of several creates must still count the
/// others against `maxConcurrency`. Forgotten once the cache shows them, or after
/// `RECENT_TTL` (a run deleted before its watch event arrived counts no longer than that).
#[derive(Default)]
pub struct RecentCreates {
    by_owner: Mutex<HashMap<String, Vec<(jiff::Timestamp, RunObject)>>>,
    /// When every owner's expired entries were last dropped.
    swept: Mutex<Option<jiff::Timestamp>>,
}

impl RecentCreates {
    /// `now` is the pass's clock (the TTL is measured on it, so tests control it).
    pub fn remember(&self, owner_uid: &str, run: RunObject, now: jiff::Timestamp) {
        let mut map = self.by_owner.lock().unwrap_or_else(|p| p.into_inner());
        // Expired entries of other owners (a deleted schedule's) go once per TTL, not on
        // every create: at a tick of N schedules that would be N sweeps of N owners.
        let mut swept = self.swept.lock().unwrap_or_else(|p| p.into_inner());
        if swept.is_none_or(|at| !fresh(at, now)) {
            map.retain(|_, runs| {
                runs.retain(|(at, _)| fresh(*at, now));
                !runs.is_empty()
            });
            *swept = Some(now);
        }
        let runs = map.entry(owner_uid.to_string()).or_default();
        runs.retain(|(at, _)| fresh(*at, now));
        runs.push((now, run));
    }

    /// Forgets a run this process deleted: being deleted, it holds no slot (issue 18, R17).
    pub fn forget(&self, owner_uid: &str, name: &str) {
        let mut map = self.by_owner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(runs) = map.get_mut(owner_uid) {
            runs.retain(|(_, r)| r.metadata.name.as_deref() != Some(name));
            if runs.is_empty() {
                map.remove(owner_uid);
            }
        }
    }

    /// How many owners have runs remembered (tests).
    #[cfg(test)]
    fn owners(&self) -> usize {
        self.by_owner.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The runs created for `owner_uid` that `cached` does not hold yet and `cache` has not
    /// seen deleted.
    pub fn unseen(
        &self,
        owner_uid: &str,
        cached: &[Arc<RunObject>],
        cache: &RunCache,
        now: jiff::Timestamp,
    ) -> Vec<RunObject> {
        let mut map = self.by_owner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(runs) = map.get_mut(owner_uid) else {
            return Vec::new();
        };
        let gone = |r: &RunObject| r.metadata.uid.as_deref().is_some_and(|uid| cache.saw_deleted(uid));
        let seen = |r: &RunObject| cached.iter().any(|c| c.metadata.name == r.metadata.name) || gone(r);
        runs.retain(|(at, r)| fresh(*at, now) && !seen(r));
        let unseen = runs.iter().map(|(_, r)| r.clone()).collect();
        if runs.is_empty() {
            map.remove(owner_uid);
        }
        unseen
    }

    /// When the first run `unseen` last returned for `owner_uid` stops counting. No watch
    /// event may ever come for it (deleted while the watch was down and relisted), so the pass
    /// looks again then at the latest instead of waiting for an event.
    pub fn unseen_expiry(&self, owner_uid: &str) -> Option<jiff::Timestamp> {
        let map = self.by_owner.lock().unwrap_or_else(|p| p.into_inner());
        map.get(owner_uid)?
            .iter()
            .filter_map(|(at, _)| at.checked_add(RECENT_TTL).ok())
            .min()
    }
}

impl RecentCreates {
    /// True when `run` is exactly what one of this process's creates (or adoptions) was
    /// answered with: same uid and resourceVersion. The pass that made it counted it already.
    pub fn is_our_reply(&self, run: &RunObject) -> bool {
        let meta = &run.metadata;
        let (Some(uid), Some(version)) = (meta.uid.as_deref(), meta.resource_version.as_deref()) else {
            return false;
        };
        let same = |r: &RunObject| {
            r.metadata.uid.as_deref() == Some(uid) && r.metadata.resource_version.as_deref() == Some(version)
        };
        let map = self.by_owner.lock().unwrap_or_else(|p| p.into_inner());
        owners(run).any(|(owner, _)| map.get(owner).is_some_and(|runs| runs.iter().any(|(_, r)| same(r))))
    }
}

/// A run the watch reports added or changed goes into `cache`; returns the owners to wake.
/// None when the event only shows what this process's own create was answered with: a second
/// pass per run would plan exactly what the creating pass did (at a tick of 1,000 schedules,
/// 1,000 passes with nothing to do, each held in the controller's queue behind the first).
pub(crate) fn applied(cache: &RunCache, created: &RecentCreates, run: RunObject) -> Vec<ObjectRef<SwfObject>> {
    let ours = created.is_our_reply(&run);
    let woken = cache.apply(run);
    if ours { Vec::new() } else { woken }
}

/// The runs the schedule's status lists as active that `known` (the cache and this process's
/// own creates) does not hold and the cache has not seen deleted, created within `RECENT_TTL`:
/// after a handover, the runs the previous owner created that this replica's watch has not
/// delivered yet (issue 18, R12). They hold their slot for as long as this process's own
/// creates would (`RecentCreates`): the operator assumes its watch shows a write within that.
pub fn recorded_unseen<'a>(
    active: &'a [WorkflowStatus],
    known: &[ObservedRun],
    cache: &RunCache,
    now: jiff::Timestamp,
) -> Vec<&'a WorkflowStatus> {
    let known = |e: &WorkflowStatus| known.iter().any(|r| r.status.name == e.name);
    let recent = |e: &WorkflowStatus| e.created_at.as_ref().is_some_and(|t| fresh(t.0, now));
    active
        .iter()
        .filter(|e| recent(e) && !known(e) && !cache.saw_deleted(&e.uid))
        .collect()
}

/// When the first run known only from the status (`recorded_unseen`) stops counting.
pub fn recorded_expiry(runs: &[ObservedRun]) -> Option<jiff::Timestamp> {
    runs.iter()
        .filter(|r| r.recorded_only && r.is_active())
        .filter_map(|r| r.status.created_at.as_ref()?.0.checked_add(RECENT_TTL).ok())
        .min()
}

/// Remembered at `at`, still within `RECENT_TTL` at `now` (a clock that went back counts as fresh).
fn fresh(at: jiff::Timestamp, now: jiff::Timestamp) -> bool {
    now.duration_since(at) < RECENT_TTL
}
