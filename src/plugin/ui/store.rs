//! The watches the pages read from: the schedules in scope, and the runs of every run kind
//! they use (started as a kind first appears). Every change bumps a counter the live-update
//! stream follows. Reads are from memory: a page never waits on the API server.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use futures::StreamExt;
use kube::{
    Api, Client,
    api::ApiResource,
    runtime::{WatchStreamExt, reflector, watcher},
};
use tokio::sync::watch;

use crate::{
    model::{
        keys::LABEL_OWNED,
        runkind::RunKind,
        stored::{RunObject, SwfObject},
    },
    plugin::view::Viewed,
    scheduling::{
        runstate::{self, ObservedRun},
        validate::Validated,
    },
};

struct RunStore {
    kind: RunKind,
    reader: reflector::Store<RunObject>,
}

pub struct Store {
    client: Client,
    /// None: every namespace.
    namespace: Option<String>,
    default_tz: String,
    schedules: reflector::Store<SwfObject>,
    runs: Mutex<BTreeMap<String, RunStore>>,
    /// Each schedule's spec validated, by uid, for the resourceVersion it was validated at:
    /// a page validates only what changed since the last one.
    validations: Mutex<HashMap<String, (Option<String>, Validation)>>,
    changed: watch::Sender<u64>,
}

type Validation = Result<Arc<Validated>, String>;

/// The schedules and their runs (by the schedule's uid) at one moment.
pub struct Snapshot {
    pub schedules: Vec<Arc<SwfObject>>,
    pub runs: HashMap<String, Vec<ObservedRun>>,
    validations: HashMap<String, Validation>,
    default_tz: String,
}

impl Snapshot {
    /// The schedule's spec validated (from the cache when its version was seen before).
    pub fn validated(&self, obj: &SwfObject) -> Validation {
        obj.metadata
            .uid
            .as_ref()
            .and_then(|uid| self.validations.get(uid))
            .cloned()
            .unwrap_or_else(|| crate::plugin::view::validated(obj, &self.default_tz))
    }

    pub fn runs_of(&self, obj: &SwfObject) -> &[ObservedRun] {
        obj.metadata
            .uid
            .as_ref()
            .and_then(|uid| self.runs.get(uid))
            .map_or(&[], Vec::as_slice)
    }
}

impl Store {
    /// Starts watching; the schedules' first list is awaited by `ready`.
    pub fn start(client: Client, namespace: Option<String>, default_tz: String) -> Arc<Store> {
        let (reader, writer) = reflector::store();
        let (changed, _) = watch::channel(0);
        let store = Arc::new(Store {
            client: client.clone(),
            namespace,
            default_tz,
            schedules: reader,
            runs: Mutex::new(BTreeMap::new()),
            validations: Mutex::new(HashMap::new()),
            changed,
        });
        let api: Api<SwfObject> = match &store.namespace {
            Some(ns) => Api::namespaced(client, ns),
            None => Api::all(client),
        };
        let me = store.clone();
        tokio::spawn(async move {
            let events = watcher(api, watcher::Config::default().any_semantic())
                .default_backoff()
                .reflect(writer);
            futures::pin_mut!(events);
            while let Some(event) = events.next().await {
                match event {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => me.use_kind_of(&o),
                    Ok(_) => {}
                    Err(e) => eprintln!("warning: schedule watch: {e}; retrying"),
                }
                me.bump();
            }
        });
        store
    }

    /// Until the schedules have been listed once.
    pub async fn ready(&self) -> anyhow::Result<()> {
        self.schedules.wait_until_ready().await?;
        Ok(())
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The change counter now: read it before a snapshot, and a change after is never missed.
    pub fn version(&self) -> u64 {
        *self.changed.borrow()
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Starts the watch of the object's run kind, if not yet watched.
    fn use_kind_of(self: &Arc<Self>, obj: &SwfObject) {
        let Ok(v) = Viewed::new(obj, &self.default_tz).validated else {
            return;
        };
        let kind = v.source.kind();
        let key = kind.to_string();
        let Ok(mut runs) = self.runs.lock() else {
            return;
        };
        if runs.contains_key(&key) {
            return;
        }
        let gvk = kube::api::GroupVersionKind::gvk(&kind.group, &kind.version, &kind.kind);
        let resource = ApiResource::from_gvk(&gvk);
        let writer = reflector::store::Writer::<RunObject>::new(resource.clone());
        runs.insert(
            key,
            RunStore {
                kind: kind.clone(),
                reader: writer.as_reader(),
            },
        );
        let me = self.clone();
        tokio::spawn(async move {
            // The plural and scope from discovery; a kind the cluster does not serve is
            // retried (its CRD may come later).
            let resource = loop {
                match kube::discovery::pinned_kind(&me.client, &gvk).await {
                    Ok((resource, _)) => break resource,
                    Err(_) => tokio::time::sleep(std::time::Duration::from_secs(10)).await,
                }
            };
            let api: Api<RunObject> = match &me.namespace {
                Some(ns) => Api::namespaced_with(me.client.clone(), ns, &resource),
                None => Api::all_with(me.client.clone(), &resource),
            };
            let config = watcher::Config::default()
                .labels(&format!("{LABEL_OWNED}=true"))
                .any_semantic();
            let events = watcher(api, config).default_backoff().reflect(writer);
            futures::pin_mut!(events);
            while let Some(event) = events.next().await {
                if let Err(e) = event {
                    eprintln!("warning: {kind} watch: {e}; retrying");
                }
                me.bump();
            }
        });
    }

    /// What the cache holds now.
    pub fn snapshot(&self) -> Snapshot {
        let mut schedules = self.schedules.state();
        schedules
            .sort_by(|a, b| (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name)));
        let mut runs: HashMap<String, Vec<ObservedRun>> = HashMap::new();
        if let Ok(stores) = self.runs.lock() {
            for store in stores.values() {
                for run in store.reader.state() {
                    let owners = run.metadata.owner_references.iter().flatten();
                    for owner in owners.filter(|o| o.kind == "ScheduledWorkflow") {
                        runs.entry(owner.uid.clone())
                            .or_default()
                            .push(runstate::observe(&store.kind, &run));
                    }
                }
            }
        }
        let validations = self.validations(&schedules);
        Snapshot {
            schedules,
            runs,
            validations,
            default_tz: self.default_tz.clone(),
        }
    }

    fn validations(&self, schedules: &[Arc<SwfObject>]) -> HashMap<String, Validation> {
        match self.validations.lock() {
            Ok(mut cache) => revalidate(&mut cache, schedules, &self.default_tz),
            Err(_) => HashMap::new(),
        }
    }
}

/// Every schedule's validation, from `cache` where its resourceVersion is unchanged; `cache`
/// is left holding only the schedules given.
fn revalidate(
    cache: &mut HashMap<String, (Option<String>, Validation)>,
    schedules: &[Arc<SwfObject>],
    default_tz: &str,
) -> HashMap<String, Validation> {
    let mut kept = HashMap::with_capacity(schedules.len());
    let mut out = HashMap::with_capacity(schedules.len());
    for obj in schedules {
        let Some(uid) = obj.metadata.uid.clone() else {
            continue;
        };
        let version = obj.metadata.resource_version.clone();
        let validation = match cache.remove(&uid) {
            Some((seen, v)) if seen == version => v,
            _ => crate::plugin::view::validated(obj, default_tz),
        };
        out.insert(uid.clone(), validation.clone());
        kept.insert(uid, (version, validation));
    }
    *cache = kept;
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn swf(uid: &str, version: &str, cron: &str) -> Arc<SwfObject> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": uid, "namespace": "t", "uid": uid,
                "resourceVersion": version},
                "spec": {"enabled": true, "trigger": {"cronSchedule": {"cron": cron}},
                    "runTemplate": {"apiVersion": "batch/v1", "kind": "Job", "spec": {}}}}))
            .unwrap(),
        )
    }

    #[test]
    fn a_spec_is_validated_again_only_when_its_version_changes() {
        let mut cache = HashMap::new();
        let first = [swf("a", "1", "@hourly"), swf("b", "1", "@daily")];
        let out = revalidate(&mut cache, &first, "UTC");
        assert!(out["a"].is_ok() && out["b"].is_ok());
        // Same version: the cached result, even if the object read differently now.
        let same = [swf("a", "1", "* *")];
        assert!(revalidate(&mut cache, &same, "UTC")["a"].is_ok());
        assert_eq!(cache.len(), 1, "b is gone, so is its entry");
        let changed = [swf("a", "2", "* *")];
        assert!(revalidate(&mut cache, &changed, "UTC")["a"].is_err());
    }
}
