//! Writing status: a JSON merge patch of the status subresource (no resourceVersion, so it
//! cannot conflict with a user's spec change), sent only when the status differs.
//!
//! The watch delivers our own write a little later; a pass that runs in between (woken by a
//! run event) would read the status from before the write. Planning does not depend on it
//! (runs decide what has run), but skip decisions (`skipThrough`) and the re-enable rule do,
//! so the last status written per object is remembered until the watch shows it.

use std::{
    collections::HashMap,
    sync::{LazyLock, Mutex},
};

use jiff::{SignedDuration, Timestamp};

use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};

use crate::{
    crd::{ScheduledWorkflow, ScheduledWorkflowStatus},
    stored::SwfObject,
};

/// A remembered write older than this is dropped (the watch has certainly delivered it, or
/// the object is gone).
const MEMORY_TTL: SignedDuration = SignedDuration::from_secs(60);
/// Past this many remembered writes, expired ones are swept.
const SWEEP_AT: usize = 10_000;

struct Remembered {
    /// As the watch will deliver it (read back through JSON: times in whole seconds).
    status: ScheduledWorkflowStatus,
    /// The object's resourceVersion after the write.
    resource_version: Option<String>,
    /// The pass's clock when written.
    at: Timestamp,
}

impl Remembered {
    fn fresh(&self, now: Timestamp) -> bool {
        now.duration_since(self.at) < MEMORY_TTL
    }

    /// The watch has delivered this write, or a later version of the object (another
    /// replica's write after a handover, say): the cache is the newest then. resourceVersions
    /// are etcd revisions, compared as numbers when both are; otherwise only equality counts.
    fn seen_in(&self, obj: &SwfObject) -> bool {
        if self.status == obj.status {
            return true;
        }
        let (Some(mine), Some(theirs)) = (&self.resource_version, &obj.metadata.resource_version) else {
            return false;
        };
        match (mine.parse::<u64>(), theirs.parse::<u64>()) {
            (Ok(mine), Ok(theirs)) => theirs >= mine,
            _ => mine == theirs,
        }
    }
}

/// `status` as it comes back from the API server: what the watch will deliver (a `Time`
/// keeps whole seconds), so the echo of a write compares equal to what was remembered.
fn as_stored(status: ScheduledWorkflowStatus) -> ScheduledWorkflowStatus {
    serde_json::to_value(&status)
        .and_then(serde_json::from_value)
        .unwrap_or(status)
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

/// The merge patch that makes the stored status equal to `new`.
pub fn patch_body(new: &ScheduledWorkflowStatus) -> Value {
    let mut status = serde_json::to_value(new).unwrap_or_else(|_| json!({}));
    with_explicit_nulls(&mut status, &STATUS_SCHEMA);
    json!({ "status": status })
}

impl StatusWriter {
    fn memory(&self) -> std::sync::MutexGuard<'_, HashMap<String, Remembered>> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The newest status of `obj`: our last write while the cache has not caught up with it.
    pub fn latest(&self, uid: &str, obj: &SwfObject, now: Timestamp) -> ScheduledWorkflowStatus {
        let mut memory = self.memory();
        match memory.get(uid) {
            Some(r) if r.fresh(now) && !r.seen_in(obj) => r.status.clone(),
            Some(_) => {
                memory.remove(uid);
                obj.status.clone()
            }
            None => obj.status.clone(),
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

    /// Patches the status to `new` when it differs from `current`; true when it wrote.
    pub async fn write(
        &self,
        api: &Api<SwfObject>,
        name: &str,
        uid: &str,
        current: &ScheduledWorkflowStatus,
        new: ScheduledWorkflowStatus,
        now: Timestamp,
    ) -> Result<bool, kube::Error> {
        if *current == new {
            return Ok(false);
        }
        let written = api
            .patch_status(
                name,
                &PatchParams {
                    field_manager: Some(super::FIELD_MANAGER.into()),
                    ..Default::default()
                },
                &Patch::Merge(patch_body(&new)),
            )
            .await?;
        if written.metadata.uid.as_deref() != Some(uid) {
            // The object was deleted and recreated under the same name meanwhile: the status
            // is now the new object's business; its own pass will rewrite it.
            tracing::warn!(%name, "status written to a recreated object");
            return Ok(true);
        }
        self.remember(uid, new, written.metadata.resource_version, now);
        Ok(true)
    }

    /// Remembers a write until the watch shows it (`observed`) or `MEMORY_TTL` passes.
    fn remember(&self, uid: &str, status: ScheduledWorkflowStatus, resource_version: Option<String>, now: Timestamp) {
        let mut memory = self.memory();
        if memory.len() > SWEEP_AT {
            memory.retain(|_, r| r.fresh(now));
        }
        let remembered = Remembered {
            status: as_stored(status),
            resource_version,
            at: now,
        };
        memory.insert(uid.to_string(), remembered);
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::crd::{Condition, ScheduledWorkflow, TriggerStatus};

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

    /// Issue 18, bug 6: the remembered write had nanoseconds, its echo whole seconds, so it was
    /// never forgotten and, after a handover, hid the newer status another replica wrote.
    #[test]
    fn a_remembered_write_is_forgotten_by_its_echo_and_never_hides_a_newer_status() {
        let now = at("2026-01-01T00:01:00.250Z");
        let writer = StatusWriter::default();
        writer.remember("u", with_last(now), Some("10".into()), now);
        let echo = object(&as_stored(with_last(now)), "10");
        writer.observed(&echo);
        assert_eq!(writer.remembered(), 0, "the echo (whole seconds) matches the write");
        // Remembered again; another replica then wrote a newer status (a later revision).
        writer.remember("u", with_last(now), Some("10".into()), now);
        let newer = with_last(at("2026-01-01T00:02:00Z"));
        let theirs = object(&newer, "12");
        assert_eq!(writer.latest("u", &theirs, now), newer, "the newer revision wins");
        // Before the cache has caught up (it still shows revision 9), our write is newest.
        writer.remember("u", with_last(now), Some("10".into()), now);
        let stale = object(&ScheduledWorkflowStatus::default(), "9");
        assert_eq!(writer.latest("u", &stale, now), as_stored(with_last(now)));
        // A resourceVersion that is not a number: the echo is recognised by its content.
        writer.remember("u", with_last(now), Some("opaque-1".into()), now);
        writer.observed(&object(&as_stored(with_last(now)), "opaque-2"));
        assert_eq!(writer.remembered(), 0);
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
        let body = patch_body(&new);
        let s = &body["status"];
        assert_eq!(s["trigger"]["lastWorkflowIndex"], 3);
        assert!(s["trigger"]["nextTriggeredTime"].is_null() && s["trigger"].get("nextTriggeredTime").is_some());
        assert!(s.get("activeRuns").is_some_and(Value::is_null));
        assert!(s["workflowHistory"].get("active").is_some_and(Value::is_null));
        assert_eq!(s["conditions"][0]["type"], "Disabled");
    }
}
