//! Writing status: a JSON merge patch of the status subresource, sent only when the status
//! differs, with the resourceVersion of the object the pass planned from as a precondition.
//! A pass that planned from a stale view (after a leader or shard handover, or behind a
//! user's edit) gets 409 instead of moving `lastTriggeredTime`, `skipThrough` or a backfill's
//! `through` back; the pass then runs again on the object read afresh (`reconcile_once`).
//!
//! The watch delivers our own write a little later; a pass that runs in between (woken by a
//! run event) would read the status from before the write. Planning does not depend on it
//! (runs decide what has run), but skip decisions (`skipThrough`) and the re-enable rule do,
//! so the last status written per object is remembered until the watch shows it.

use std::{
    borrow::Cow,
    collections::HashMap,
    sync::{LazyLock, Mutex},
};

use jiff::{SignedDuration, Timestamp};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};

use crate::model::{
    crd::{ScheduledWorkflow, ScheduledWorkflowStatus},
    stored::SwfObject,
};

/// A remembered write older than this is dropped (the watch has certainly delivered it, or
/// the object is gone).
const MEMORY_TTL: SignedDuration = SignedDuration::from_secs(60);
/// Past this many remembered writes, expired ones are swept.
const SWEEP_AT: usize = 10_000;

struct Remembered {
    /// The object as the status write returned it: what the watch will deliver.
    object: SwfObject,
    /// The pass's clock when written.
    at: Timestamp,
}

impl Remembered {
    fn fresh(&self, now: Timestamp) -> bool {
        now.duration_since(self.at) < MEMORY_TTL
    }

    /// The watch has delivered this write, or a later version of the object (another
    /// replica's write after a handover, say): the cache is the newest then. resourceVersions
    /// are etcd revisions, compared as numbers when both are; otherwise the echo is known by
    /// its resourceVersion or its status.
    fn seen_in(&self, obj: &SwfObject) -> bool {
        let (mine, theirs) = (&self.object.metadata.resource_version, &obj.metadata.resource_version);
        match (
            mine.as_deref().map(str::parse::<u64>),
            theirs.as_deref().map(str::parse::<u64>),
        ) {
            (Some(Ok(mine)), Some(Ok(theirs))) => theirs >= mine,
            _ => (mine.is_some() && mine == theirs) || self.object.status == obj.status,
        }
    }
}

#[derive(Default)]
pub struct StatusWriter {
    memory: Mutex<HashMap<String, Remembered>>,
}

/// The CRD's status schema, to name every field a patch must set or clear.
static STATUS_SCHEMA: LazyLock<Value> = LazyLock::new(|| {
    ScheduledWorkflow::crd_manifest()
        .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/status")
        .cloned()
        .unwrap_or(Value::Null)
});

/// Adds an explicit `null` for every field of `schema` that `value` lacks, in every nested
/// object, so a merge patch clears what the new status no longer has. Lists are replaced
/// whole by a merge patch, so they need nothing.
fn with_explicit_nulls(value: &mut Value, schema: &Value) {
    let (Value::Object(map), Some(Value::Object(props))) = (value, schema.get("properties")) else {
        return;
    };
    for (field, field_schema) in props {
        match map.get_mut(field) {
            Some(v) => with_explicit_nulls(v, field_schema),
            None => {
                map.insert(field.clone(), Value::Null);
            }
        }
    }
}

/// The merge patch that makes the stored status equal to `new`, applied only if the object
/// is still at `resource_version` (the API server answers 409 Conflict otherwise).
pub fn patch_body(new: &ScheduledWorkflowStatus, resource_version: Option<&str>) -> Value {
    let mut status = serde_json::to_value(new).unwrap_or_else(|_| json!({}));
    with_explicit_nulls(&mut status, &STATUS_SCHEMA);
    match resource_version {
        Some(rv) => json!({ "metadata": { "resourceVersion": rv }, "status": status }),
        None => json!({ "status": status }),
    }
}

impl StatusWriter {
    fn memory(&self) -> std::sync::MutexGuard<'_, HashMap<String, Remembered>> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The newest version of `obj` known: the object our last status write returned, while
    /// the watch has not delivered it yet; else `obj`. A pass plans from it, so its spec,
    /// status and resourceVersion (the write's precondition) belong together.
    pub fn newest<'a>(&self, obj: &'a SwfObject, now: Timestamp) -> Cow<'a, SwfObject> {
        let Some(uid) = obj.metadata.uid.as_deref() else {
            return Cow::Borrowed(obj);
        };
        let mut memory = self.memory();
        match memory.get(uid) {
            Some(r) if r.fresh(now) && !r.seen_in(obj) => Cow::Owned(r.object.clone()),
            Some(_) => {
                memory.remove(uid);
                Cow::Borrowed(obj)
            }
            None => Cow::Borrowed(obj),
        }
    }

    /// Called for every object the watch delivers: forgets writes it now shows.
    pub fn observed(&self, obj: &SwfObject) {
        if let Some(uid) = obj.metadata.uid.as_deref() {
            let mut memory = self.memory();
            if memory.get(uid).is_some_and(|r| r.seen_in(obj)) {
                memory.remove(uid);
            }
        }
    }

    /// How many writes are remembered (for tests and the cache-size metric).
    pub fn remembered(&self) -> usize {
        self.memory().len()
    }

    /// Patches the status of `base` (the object a pass planned from) to `new` when it differs
    /// or `confirm` asks for a write anyway; true when it wrote. Conditional on `base`'s
    /// resourceVersion: 409 when the object has changed since (so a written status confirms
    /// the pass planned from the newest object).
    pub async fn write(
        &self,
        api: &Api<SwfObject>,
        base: &SwfObject,
        new: ScheduledWorkflowStatus,
        confirm: bool,
        now: Timestamp,
    ) -> Result<bool, kube::Error> {
        if base.status == new && !confirm {
            return Ok(false);
        }
        let (Some(name), Some(uid)) = (base.metadata.name.as_deref(), base.metadata.uid.as_deref()) else {
            return Ok(false); // not a stored object (a pass checks both first)
        };
        let written = api
            .patch_status(
                name,
                &PatchParams {
                    field_manager: Some(super::FIELD_MANAGER.into()),
                    ..Default::default()
                },
                &Patch::Merge(patch_body(&new, base.metadata.resource_version.as_deref())),
            )
            .await?;
        if written.metadata.uid.as_deref() != Some(uid) {
            // The object was deleted and recreated under the same name meanwhile: the status
            // is now the new object's business; its own pass will rewrite it.
            tracing::warn!(%name, "status written to a recreated object");
            return Ok(true);
        }
        // A status write changes nothing but the status and the resourceVersion.
        let mut after = base.clone();
        after.status = written.status;
        after.metadata.resource_version = written.metadata.resource_version;
        self.remember(uid, after, now);
        Ok(true)
    }

    /// Remembers an object read from the API server, like a write's answer.
    pub fn read(&self, obj: SwfObject, now: Timestamp) {
        if let Some(uid) = obj.metadata.uid.clone() {
            self.remember(&uid, obj, now);
        }
    }

    /// Remembers a write until the watch shows it (`observed`) or `MEMORY_TTL` passes.
    fn remember(&self, uid: &str, written: SwfObject, now: Timestamp) {
        let mut memory = self.memory();
        if memory.len() > SWEEP_AT {
            memory.retain(|_, r| r.fresh(now));
        }
        memory.insert(
            uid.to_string(),
            Remembered {
                object: written,
                at: now,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::model::crd::{Condition, ScheduledWorkflow, TriggerStatus};

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn object(status: &ScheduledWorkflowStatus, resource_version: &str) -> SwfObject {
        let typed: ScheduledWorkflow = serde_json::from_value(serde_json::json!({
            "apiVersion": "kubeflow.org/v1beta1", "kind": "ScheduledWorkflow",
            "metadata": {"name": "n", "namespace": "ns", "uid": "u", "resourceVersion": resource_version},
            "spec": {"trigger": {}}, "status": status}))
        .unwrap();
        SwfObject::from_typed(typed)
    }

    fn with_last(t: Timestamp) -> ScheduledWorkflowStatus {
        let mut s = ScheduledWorkflowStatus::default();
        s.trigger.last_triggered_time = Some(Time(t));
        s
    }

    /// Issue 18, bug 6 (a remembered write never forgotten hid the newer status another
    /// replica wrote) and R3 (a pass planned from a stale view wrote status backwards): the
    /// newest object known is the write's answer until the watch shows it or a later one.
    #[test]
    fn the_newest_object_is_our_write_until_the_watch_shows_it_or_a_later_one() {
        let now = at("2026-01-01T00:01:00.250Z");
        let writer = StatusWriter::default();
        let ours = object(&with_last(now), "10");
        writer.remember("u", ours.clone(), now);
        assert_eq!(writer.remembered(), 1);
        writer.observed(&object(&ScheduledWorkflowStatus::default(), "9"));
        assert_eq!(writer.remembered(), 1, "an older revision is not the echo");
        writer.observed(&ours);
        assert_eq!(writer.remembered(), 0, "the echo is recognised");
        // Remembered again; another replica then wrote a newer status (a later revision).
        writer.remember("u", ours.clone(), now);
        let theirs = object(&with_last(at("2026-01-01T00:02:00Z")), "12");
        let newest = writer.newest(&theirs, now);
        assert_eq!(
            newest.metadata.resource_version.as_deref(),
            Some("12"),
            "the newer revision wins"
        );
        assert!(matches!(newest, Cow::Borrowed(_)));
        assert_eq!(writer.remembered(), 0, "and the memory is dropped");
        // Before the cache has caught up (it still shows revision 9), our write is newest:
        // its status, and its resourceVersion as the next write's precondition.
        writer.remember("u", ours.clone(), now);
        let stale = object(&ScheduledWorkflowStatus::default(), "9");
        let newest = writer.newest(&stale, now);
        assert_eq!(newest.status, ours.status);
        assert_eq!(newest.metadata.resource_version.as_deref(), Some("10"));
        // Not after MEMORY_TTL: the watch is assumed to have delivered it by then.
        let later = now.checked_add(MEMORY_TTL).unwrap();
        assert_eq!(
            writer.newest(&stale, later).metadata.resource_version.as_deref(),
            Some("9")
        );
        // A resourceVersion that is not a number: the echo is recognised by its content.
        writer.remember("u", object(&with_last(now), "opaque-1"), now);
        writer.observed(&object(&with_last(now), "opaque-2"));
        assert_eq!(writer.remembered(), 0);
        // ... or by its resourceVersion; another one with another status is not the echo.
        writer.remember("u", object(&with_last(now), "opaque-3"), now);
        writer.observed(&object(&ScheduledWorkflowStatus::default(), "opaque-4"));
        assert_eq!(writer.remembered(), 1, "a different version");
        writer.observed(&object(&ScheduledWorkflowStatus::default(), "opaque-3"));
        assert_eq!(writer.remembered(), 0, "the same version");
    }

    /// An object read afresh (after a 409) is remembered like a write's answer: the newest
    /// object known until the watch shows it.
    #[test]
    fn an_object_read_afresh_is_the_newest_until_the_watch_shows_it() {
        let now = at("2026-01-01T00:01:00Z");
        let writer = StatusWriter::default();
        let fresh = object(&with_last(now), "20");
        writer.read(fresh.clone(), now);
        let stale = object(&ScheduledWorkflowStatus::default(), "19");
        assert_eq!(
            writer.newest(&stale, now).metadata.resource_version.as_deref(),
            Some("20")
        );
        writer.observed(&fresh);
        assert_eq!(writer.remembered(), 0);
    }

    /// Expired writes are swept only once more than `SWEEP_AT` are remembered (a sweep walks
    /// them all); the fresh ones stay.
    #[test]
    fn expired_writes_are_swept_past_the_sweep_threshold() {
        let then = at("2026-01-01T00:00:00Z");
        let later = then.checked_add(MEMORY_TTL).unwrap();
        let writer = StatusWriter::default();
        let obj = object(&with_last(then), "1");
        for i in 0..SWEEP_AT {
            writer.remember(&format!("old-{i}"), obj.clone(), then);
        }
        writer.remember("new-1", obj.clone(), later);
        assert_eq!(
            writer.remembered(),
            SWEEP_AT + 1,
            "not past the threshold yet: no sweep"
        );
        writer.remember("new-2", obj, later);
        assert_eq!(writer.remembered(), 2, "swept: only the fresh writes stay");
    }

    #[test]
    fn the_patch_clears_every_field_the_new_status_lacks() {
        let new = ScheduledWorkflowStatus {
            conditions: vec![Condition {
                type_: "Disabled".into(),
                status: "True".into(),
                ..Default::default()
            }],
            trigger: TriggerStatus {
                last_workflow_index: Some(3),
                ..Default::default()
            },
            ..Default::default()
        };
        let body = patch_body(&new, Some("41"));
        assert_eq!(body["metadata"], json!({"resourceVersion": "41"}), "the precondition");
        let s = &body["status"];
        assert_eq!(s["trigger"]["lastWorkflowIndex"], 3);
        assert!(s["trigger"]["nextTriggeredTime"].is_null() && s["trigger"].get("nextTriggeredTime").is_some());
        assert!(s.get("activeRuns").is_some_and(Value::is_null));
        assert!(s["workflowHistory"].get("active").is_some_and(Value::is_null));
        assert_eq!(s["conditions"][0]["type"], "Disabled");
    }
}
