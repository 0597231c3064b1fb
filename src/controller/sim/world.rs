//! The truth, as a real API server would hold it: the one ScheduledWorkflow (`ns/nightly`), its
//! Jobs, and a log of everything that happened to them (creations, deletions, finishes, status
//! writes, user edits), each stamped with its place in one global order (`Seq`) and its sim
//! time. The operator sees the world only through the HTTP API (`api.rs`) and the watch events
//! the world emits into `outbox` (the driver hands them to each instance's streams).

use std::{collections::BTreeMap, sync::Arc};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::{Value, json};

use super::{
    dice::Dice,
    records::{
        Cause, Deleted, Detail, Finished, Origin, PassLog, Request, RunRecord, Seq, Stamp, StatusWrite, UserEdit,
    },
    time::{SimClock, millis, whole},
};
use crate::model::{
    crd::ScheduledWorkflowSpec,
    keys::LABEL_EPOCH,
    stored::{RunObject, SwfObject},
};

pub const NS: &str = "ns";
pub const NAME: &str = "nightly";
pub const UID: &str = "swf-uid";

/// A Job that exists now.
pub struct Job {
    pub obj: Value,
    /// Its entry in `World::runs`.
    pub run: usize,
    /// Being deleted: removed at this time, by this cause.
    pub remove_at: Option<(Timestamp, Cause)>,
}

/// The ScheduledWorkflow as stored.
pub struct Swf {
    pub spec: ScheduledWorkflowSpec,
    pub annotations: BTreeMap<String, String>,
    pub generation: i64,
    pub resource_version: u64,
    pub created: Timestamp,
    pub status: Value,
}

/// A change a watch reports, decoded once for every instance that receives it.
#[derive(Clone, Debug)]
pub enum Change {
    Swf(Arc<SwfObject>),
    Job {
        name: String,
        obj: Arc<RunObject>,
        deleted: bool,
        /// What happened, in a word, for the trace.
        what: &'static str,
    },
}

#[derive(Clone, Debug)]
pub struct WatchEvent {
    pub cause: Cause,
    pub change: Change,
}

/// Probabilities of the API server's faults, each per request while faults are on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    pub on: bool,
    /// POST answered 500, nothing created.
    pub post_fail: f64,
    /// POST that creates, then answers 500 (the client saw a failure).
    pub post_slow: f64,
    pub get_fail: f64,
    pub patch_fail: f64,
    pub delete_fail: f64,
}

pub struct World {
    pub clock: SimClock,
    pub dice: Dice,
    seq: Seq,
    rv: u64,
    uids: u64,
    pub swf: Swf,
    pub jobs: BTreeMap<String, Job>,
    pub runs: Vec<RunRecord>,
    pub edits: Vec<UserEdit>,
    pub statuses: Vec<StatusWrite>,
    /// When each (annotation, value) was first set on the object.
    pub first_set: BTreeMap<(String, String), Seq>,
    pub outbox: Vec<WatchEvent>,
    pub pass: Option<PassLog>,
    pub faults: Faults,
    /// The cluster's clock minus the operator's, in seconds (one constant per seed).
    pub skew: i64,
    /// How often a delete leaves the object with a deletionTimestamp for a while.
    pub deferred_delete: f64,
    /// Requests the simulated server does not serve (a harness gap, reported as a failure).
    pub unexpected: Vec<String>,
    /// Requests that would write the ScheduledWorkflow other than its status (I11).
    pub spec_writes: Vec<String>,
}

impl World {
    pub fn new(clock: SimClock, dice: Dice, spec: ScheduledWorkflowSpec, created: Timestamp) -> Self {
        let swf = Swf {
            spec,
            annotations: BTreeMap::new(),
            generation: 1,
            resource_version: 1,
            created,
            status: json!({}),
        };
        let first = UserEdit {
            when: Stamp { seq: 0, at: created },
            rv: 1,
            spec: swf.spec.clone(),
        };
        World {
            clock,
            dice,
            seq: 0,
            rv: 1,
            uids: 0,
            swf,
            jobs: BTreeMap::new(),
            runs: Vec::new(),
            edits: vec![first],
            statuses: Vec::new(),
            first_set: BTreeMap::new(),
            outbox: Vec::new(),
            pass: None,
            faults: Faults::default(),
            skew: 0,
            deferred_delete: 0.0,
            unexpected: Vec::new(),
            spec_writes: Vec::new(),
        }
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn next_seq(&mut self) -> Seq {
        self.seq += 1;
        self.seq
    }

    pub fn seq(&self) -> Seq {
        self.seq
    }

    fn stamp(&mut self) -> Stamp {
        Stamp {
            seq: self.next_seq(),
            at: self.now(),
        }
    }

    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    fn emit(&mut self, cause: Cause, change: Change) {
        self.next_seq();
        self.outbox.push(WatchEvent { cause, change });
    }

    fn emit_swf(&mut self, cause: Cause) {
        let decoded = self.swf_object();
        self.emit(cause, Change::Swf(Arc::new(decoded)));
    }

    /// The object as a watch decodes it (built from the typed parts: the same value as
    /// decoding `swf_json`, without a JSON round trip per event).
    pub fn swf_object(&self) -> SwfObject {
        let s = &self.swf;
        let metadata = ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(NS.into()),
            uid: Some(UID.into()),
            generation: Some(s.generation),
            resource_version: Some(s.resource_version.to_string()),
            creation_timestamp: Some(Time(s.created)),
            annotations: (!s.annotations.is_empty()).then(|| s.annotations.clone()),
            ..Default::default()
        };
        let (status, status_error) = match serde_json::from_value(s.status.clone()) {
            Ok(status) => (status, None),
            Err(e) => (
                Default::default(),
                Some(crate::model::stored::DecodeError(e.to_string())),
            ),
        };
        SwfObject {
            metadata,
            spec: Ok(s.spec.clone()),
            status,
            status_error,
            enabled_unset: false,
        }
    }

    fn emit_job(&mut self, cause: Cause, name: &str, obj: &Value, deleted: bool) {
        if let Ok(decoded) = serde_json::from_value::<RunObject>(obj.clone()) {
            let what = job_state(obj, deleted);
            let (name, obj) = (name.to_string(), Arc::new(decoded));
            self.emit(
                cause,
                Change::Job {
                    name,
                    obj,
                    deleted,
                    what,
                },
            );
        }
    }

    /// Who is writing: the instance whose pass is running, else a user.
    pub fn writer(&self) -> Cause {
        self.pass
            .as_ref()
            .map_or(Cause::User, |p| Cause::Operator(p.incarnation))
    }

    pub fn swf_json(&self) -> Value {
        let s = &self.swf;
        json!({
            "apiVersion": "kubeflow.org/v1beta1", "kind": "ScheduledWorkflow",
            "metadata": {"name": NAME, "namespace": NS, "uid": UID, "generation": s.generation,
                "resourceVersion": s.resource_version.to_string(),
                "creationTimestamp": s.created.to_string(), "annotations": s.annotations},
            "spec": s.spec, "status": s.status,
        })
    }

    pub fn jobs_json(&self) -> Vec<Value> {
        self.jobs.values().map(|j| j.obj.clone()).collect()
    }

    /// A user's edit of the spec and/or annotations: one write (generation bumped only when
    /// the spec changed), logged, and a watch event.
    pub fn user_edit(&mut self, edit: impl FnOnce(&mut ScheduledWorkflowSpec, &mut BTreeMap<String, String>)) {
        let before = serde_json::to_value(&self.swf.spec).unwrap_or(Value::Null);
        edit(&mut self.swf.spec, &mut self.swf.annotations);
        if serde_json::to_value(&self.swf.spec).unwrap_or(Value::Null) != before {
            self.swf.generation += 1;
        }
        self.rv += 1;
        self.swf.resource_version = self.rv;
        let when = self.stamp();
        for (k, v) in &self.swf.annotations {
            self.first_set.entry((k.clone(), v.clone())).or_insert(when.seq);
        }
        self.edits.push(UserEdit {
            when,
            rv: self.rv,
            spec: self.swf.spec.clone(),
        });
        self.emit_swf(Cause::User);
    }

    /// `PATCH .../status` with a JSON merge patch (RFC 7386); the whole object back. A patch
    /// that changes nothing is no write, as in the API server (its storage skips an update
    /// that leaves the object as it was): same resourceVersion, no watch event.
    pub fn patch_status(&mut self, patch: &Value) -> Value {
        let before = self.swf.status.clone();
        merge(&mut self.swf.status, &patch["status"]);
        if self.swf.status == before {
            return self.swf_json();
        }
        self.rv += 1;
        self.swf.resource_version = self.rv;
        let when = self.stamp();
        let pass = self.pass.as_ref().map_or(0, |p| p.id);
        self.statuses.push(StatusWrite {
            when,
            rv: self.rv,
            by: self.writer(),
            pass,
            status: self.swf.status.clone(),
        });
        self.emit_swf(self.writer());
        self.swf_json()
    }

    /// `POST .../jobs`: the object with uid, creationTimestamp and resourceVersion; `Err` with
    /// the name when it is taken.
    pub fn create_job(&mut self, mut obj: Value) -> Result<Value, String> {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
        if self.jobs.contains_key(&name) {
            return Err(name);
        }
        self.uids += 1;
        let uid = format!("job-{}", self.uids);
        obj["metadata"]["uid"] = json!(uid);
        obj["metadata"]["creationTimestamp"] = json!(whole(self.now()).to_string());
        obj["metadata"]["resourceVersion"] = json!(self.next_rv());
        obj["status"] = json!({});
        let origin = Origin::of(&obj);
        let tick = obj["metadata"]["labels"][LABEL_EPOCH]
            .as_str()
            .and_then(|s| s.parse().ok())
            .and_then(|s| Timestamp::from_second(s).ok());
        let created = self.stamp();
        let index = self.runs.len();
        self.runs.push(RunRecord {
            uid,
            name: name.clone(),
            tick,
            origin,
            created,
            pass: self.pass.as_ref().map_or(0, |p| p.id),
            busy: Vec::new(),
            finished: None,
            deleted: None,
            removed: None,
        });
        self.jobs.insert(
            name.clone(),
            Job {
                obj: obj.clone(),
                run: index,
                remove_at: None,
            },
        );
        self.runs[index].busy = self.busy_like(index);
        self.emit_job(self.writer(), &name, &obj, false);
        Ok(obj)
    }

    /// The active runs of the same class as `runs[index]` (backfill or the schedule's own).
    fn busy_like(&self, index: usize) -> Vec<usize> {
        let backfill = self.runs[index].origin.is_backfill();
        self.jobs
            .values()
            .map(|j| j.run)
            .filter(|&i| self.runs[i].active() && self.runs[i].origin.is_backfill() == backfill)
            .collect()
    }

    pub fn get_job(&self, name: &str) -> Option<&Job> {
        self.jobs.get(name)
    }

    /// `DELETE .../jobs/{name}` with background propagation: gone at once, or first given a
    /// deletionTimestamp and removed a few seconds later. `None` when there is no such Job.
    pub fn delete_job(&mut self, name: &str, by: Cause) -> Option<(Value, bool)> {
        let run = self.jobs.get(name)?.run;
        if self.runs[run].deleted.is_some() {
            return Some((self.jobs[name].obj.clone(), false)); // already being deleted
        }
        let was_active = self.runs[run].active();
        let when = self.stamp();
        self.runs[run].deleted = Some(Deleted { when, by });
        if self.dice.chance(self.deferred_delete) {
            let delay = millis(self.dice.range(500, 15_000));
            let job = self.jobs.get_mut(name)?;
            job.obj["metadata"]["deletionTimestamp"] = json!(whole(when.at).to_string());
            job.remove_at = Some((when.at + delay, by));
            let obj = job.obj.clone();
            self.touch_and_emit(name, by, false);
            return Some((obj, was_active));
        }
        let obj = self.remove(name, by)?;
        Some((obj, was_active))
    }

    fn touch_and_emit(&mut self, name: &str, cause: Cause, deleted: bool) {
        let rv = self.next_rv();
        if let Some(job) = self.jobs.get_mut(name) {
            job.obj["metadata"]["resourceVersion"] = json!(rv);
            let obj = job.obj.clone();
            self.emit_job(cause, name, &obj, deleted);
        }
    }

    fn remove(&mut self, name: &str, cause: Cause) -> Option<Value> {
        self.touch_and_emit(name, cause, true);
        let job = self.jobs.remove(name)?;
        let when = self.stamp();
        self.runs[job.run].removed = Some(when);
        Some(job.obj)
    }

    /// Removes the Jobs whose deletion is due.
    pub fn remove_due(&mut self) -> Vec<String> {
        let now = self.now();
        let due: Vec<(String, Cause)> = self
            .jobs
            .iter()
            .filter_map(|(n, j)| j.remove_at.filter(|(at, _)| *at <= now).map(|(_, c)| (n.clone(), c)))
            .collect();
        for (name, cause) in &due {
            self.remove(name, *cause);
        }
        due.into_iter().map(|(n, _)| n).collect()
    }

    pub fn next_removal(&self) -> Option<Timestamp> {
        self.jobs.values().filter_map(|j| j.remove_at.map(|(at, _)| at)).min()
    }

    /// A Job finishes: `Complete` or `Failed` with times on the cluster's clock.
    pub fn finish_job(&mut self, name: &str, failed: bool) {
        let Some(run) = self.jobs.get(name).map(|j| j.run) else {
            return;
        };
        let reported = whole(self.now() + super::time::secs(self.skew));
        let at = json!(reported.to_string());
        let status = if failed {
            json!({"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                "lastTransitionTime": at}]})
        } else {
            json!({"conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": at}],
                "completionTime": at})
        };
        if let Some(job) = self.jobs.get_mut(name) {
            job.obj["status"] = status;
        }
        let when = self.stamp();
        self.runs[run].finished = Some(Finished { when, failed, reported });
        self.touch_and_emit(name, Cause::Cluster, false);
    }

    /// Names of the Jobs that are active (not finished, not being deleted).
    pub fn active_jobs(&self) -> Vec<String> {
        self.jobs
            .iter()
            .filter(|(_, j)| self.runs[j.run].active())
            .map(|(n, _)| n.clone())
            .collect()
    }

    pub fn status(&self) -> &Value {
        &self.swf.status
    }

    /// Records a request of the running pass.
    pub fn record(&mut self, method: &'static str, name: &str, code: u16, fault: Option<&'static str>, detail: Detail) {
        let seq = self.next_seq();
        match self.pass.as_mut() {
            Some(p) => p.requests.push(Request {
                seq,
                method,
                name: name.into(),
                code,
                fault,
                detail,
            }),
            None => self.unexpected.push(format!("{method} {name} outside a pass")),
        }
    }
}

/// A Job event in words: added, Complete, Failed, deleting, deleted.
fn job_state(obj: &Value, deleted: bool) -> &'static str {
    let conditions = obj["status"]["conditions"].as_array();
    let has = |t: &str| conditions.is_some_and(|cs| cs.iter().any(|c| c["type"] == t));
    if deleted {
        "deleted"
    } else if !obj["metadata"]["deletionTimestamp"].is_null() {
        "deleting"
    } else if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else {
        "added"
    }
}

/// RFC 7386 JSON merge patch: `null` removes a field, objects merge, anything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                merge(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_patch_removes_nulls_and_merges_objects() {
        let mut target = json!({"a": {"b": 1, "c": 2}, "d": [1, 2], "e": 1});
        merge(&mut target, &json!({"a": {"b": null, "x": 3}, "d": [3], "e": null}));
        assert_eq!(target, json!({"a": {"c": 2, "x": 3}, "d": [3]}));
    }
}
