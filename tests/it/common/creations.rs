//! Every run there ever was, by uid: from the API server's audit log (`plane::audit_args`:
//! creates and deletes, with the objects) and a list of what exists now. "No tick twice" checks
//! count these, not the runs that survive: while a run exists the API server itself refuses a
//! second one of the same name, so only a deletion (a history limit, Replace, a person) exposes
//! a second creation.
//!
//! Why every write and a list: a create answered 201 is logged with its object, but a create
//! whose client went away (a SIGKILLed operator) can be stored and still be answered 500; such
//! a run is known from a later write's answer (the test marking it finished, its deletion) or
//! from the list. A run created, answered 500, and deleted without anyone writing it in between
//! would escape the count: in these tests a run is deleted only once finished, and finishing
//! it is a logged write (to the status subresource, which the policy logs too: without it, a
//! run whose create and delete were both answered 500 to a SIGKILLed operator was counted as
//! a lost tick).

use std::collections::BTreeMap;

use kube::{Api, ResourceExt, api::DynamicObject};
use serde_json::Value;
use swf_operator::model::{
    crd::ScheduledWorkflow,
    keys::{
        BACKFILL_RUN_ANNOTATION, {self},
    },
};

use super::{TestEnv, job_resource, workflow_resource};

/// One run that existed.
#[derive(Clone, Debug)]
pub struct Run {
    pub name: String,
    pub uid: String,
    /// Its `workflowEpoch` label.
    pub tick: Option<i64>,
    /// The uid its controller ownerReference names.
    pub owner: Option<String>,
    /// It serves a run-now request (not a tick).
    pub run_now: bool,
    /// The backfill request it serves.
    pub backfill: Option<String>,
    /// Its creationTimestamp.
    pub created: jiff::Timestamp,
}

impl Run {
    /// A delete answered with a `Status` (a Job deleted in the background) names the run and
    /// its uid only; the tick is the name's suffix (runs are named `<schedule>-<tick>`).
    fn deleted(status: &Value) -> Option<Run> {
        let details = &status["details"];
        let name = details["name"].as_str()?.to_string();
        Some(Run {
            uid: details["uid"].as_str()?.to_string(),
            tick: name.rsplit('-').next().and_then(|t| t.parse().ok()),
            name,
            owner: None,
            run_now: false,
            backfill: None,
            created: jiff::Timestamp::default(),
        })
    }

    fn of(obj: &Value) -> Option<Run> {
        let meta = &obj["metadata"];
        let text = |v: &Value| v.as_str().map(str::to_string);
        let owner = meta["ownerReferences"]
            .as_array()
            .and_then(|refs| refs.iter().find(|r| r["controller"] == true))
            .and_then(|r| text(&r["uid"]));
        Some(Run {
            name: text(&meta["name"])?,
            uid: text(&meta["uid"])?,
            tick: meta["labels"][keys::LABEL_EPOCH].as_str().and_then(|t| t.parse().ok()),
            owner,
            run_now: meta["annotations"][keys::SERVED_RUN_NOW_ANNOTATION].is_string(),
            backfill: text(&meta["annotations"][BACKFILL_RUN_ANNOTATION]),
            created: meta["creationTimestamp"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or_default(),
        })
    }
}

/// The audit events of `resource` ("jobs", "workflows") in the env's namespace with `verb`.
pub fn events(env: &TestEnv, resource: &str, verb: &str) -> Vec<Value> {
    let Some(path) = env.plane.audit_log() else {
        panic!("runs are counted from the local plane's audit log; USE_EXISTING_CLUSTER has none");
    };
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| {
            e["verb"] == verb
                && e["objectRef"]["resource"] == resource
                && e["objectRef"]["namespace"] == env.namespace.as_str()
        })
        .collect()
}

/// Runs of `resource` whose create was answered 201, in order (with when it was answered).
pub fn created(env: &TestEnv, resource: &str) -> Vec<(jiff::Timestamp, Run)> {
    events(env, resource, "create")
        .into_iter()
        .filter(|e| e["responseStatus"]["code"] == 201)
        .filter_map(|e| {
            let at = e["stageTimestamp"].as_str()?.parse().ok()?;
            Some((at, Run::of(&e["responseObject"])?))
        })
        .collect()
}

/// Every run of `resource` that existed in the env's namespace: seen in any write's answer
/// (a create, a status patch, a delete), or there now; by uid, oldest first.
pub async fn ever(env: &TestEnv, resource: &str) -> Vec<Run> {
    let mut by_uid: BTreeMap<String, Run> = BTreeMap::new();
    for verb in ["create", "patch", "update", "delete"] {
        for e in events(env, resource, verb) {
            let object = &e["responseObject"];
            let run = match object["kind"].as_str() {
                Some("Status") => Run::deleted(object),
                _ => Run::of(object),
            };
            if let Some(run) = run {
                by_uid.entry(run.uid.clone()).or_insert(run);
            }
        }
    }
    let ar = match resource {
        "workflows" => workflow_resource(),
        _ => job_resource(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &env.namespace, &ar);
    for obj in api.list(&Default::default()).await.map(|l| l.items).unwrap_or_default() {
        if let Some(run) = serde_json::to_value(&obj).ok().as_ref().and_then(Run::of) {
            by_uid.entry(run.uid.clone()).or_insert(run);
        }
    }
    let mut runs: Vec<Run> = by_uid.into_values().collect();
    runs.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
    runs
}

/// The uids of every run each tick of `swf` ever had (run-now runs are not ticks): a tick with
/// two is a tick run twice, whether or not both runs still exist.
pub async fn uids_per_tick(env: &TestEnv, swf: &ScheduledWorkflow, resource: &str) -> BTreeMap<i64, Vec<String>> {
    let uid = swf.uid();
    let prefix = format!("{}-", swf.name_any());
    let mut by_tick: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for run in ever(env, resource).await {
        // A run known only from its deletion's Status has no owner: its name says whose it is.
        let ours = run.owner == uid || (run.owner.is_none() && run.name.starts_with(&prefix));
        if ours
            && !run.run_now
            && let Some(tick) = run.tick
        {
            by_tick.entry(tick).or_default().push(run.uid);
        }
    }
    by_tick
}

/// Whether each of `schedules` has had a run of `resource` for a tick later than `after` (Unix
/// seconds): the operator has caught up with them all.
pub async fn all_ran_after<'a>(
    env: &TestEnv,
    schedules: impl IntoIterator<Item = &'a ScheduledWorkflow>,
    resource: &str,
    after: i64,
) -> bool {
    for swf in schedules {
        let latest = uids_per_tick(env, swf, resource).await.keys().max().copied();
        if latest.is_none_or(|tick| tick <= after) {
            return false;
        }
    }
    true
}

/// Ticks that had more than one run.
pub fn twice(by_tick: &BTreeMap<i64, Vec<String>>) -> Vec<i64> {
    by_tick.iter().filter(|(_, u)| u.len() > 1).map(|(t, _)| *t).collect()
}

/// What a schedule's runs add up to, against the ticks it should have run.
#[derive(Debug, Default, PartialEq)]
pub struct Tally {
    /// Ticks that got a run.
    pub ticks: usize,
    /// Runs there were.
    pub runs: usize,
    /// Ticks with more than one run.
    pub twice: Vec<i64>,
    /// Expected ticks without a run.
    pub lost: Vec<i64>,
    /// Runs for ticks not on the expected grid.
    pub off_grid: Vec<i64>,
}

impl std::fmt::Display for Tally {
    /// What the fault tests print: `ticks 60, runs 60, twice [], lost []`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ticks {}, runs {}, twice {:?}, lost {:?}",
            self.ticks, self.runs, self.twice, self.lost
        )
    }
}

impl Tally {
    /// Fails unless every expected tick ran, each once, and no run is off the grid.
    pub fn assert_every_tick_ran_once(&self) {
        assert!(
            self.twice.is_empty() && self.off_grid.is_empty(),
            "ticks run twice or off the grid: {self:?}"
        );
        assert!(self.lost.is_empty(), "expected ticks without a run: {self:?}");
    }

    /// Adds `other`'s counts to these: the tally of several schedules.
    pub fn add(&mut self, other: Tally) {
        self.ticks += other.ticks;
        self.runs += other.runs;
        self.twice.extend(other.twice);
        self.lost.extend(other.lost);
        self.off_grid.extend(other.off_grid);
    }
}

/// Counts `by_tick` against the ticks of a periodic schedule created at `created` (no
/// startTime: `created + k·every`, k ≥ 1) up to `until` (leave a margin for the last tick).
pub fn tally(by_tick: &BTreeMap<i64, Vec<String>>, created: i64, every: i64, until: i64) -> Tally {
    let expected: Vec<i64> = (1..).map(|k| created + k * every).take_while(|t| *t <= until).collect();
    Tally {
        ticks: by_tick.len(),
        runs: by_tick.values().map(Vec::len).sum(),
        twice: twice(by_tick),
        lost: expected.iter().copied().filter(|t| !by_tick.contains_key(t)).collect(),
        off_grid: by_tick
            .keys()
            .copied()
            .filter(|t| (t - created) % every != 0 || *t <= created)
            .collect(),
    }
}

/// The creation time of `swf`, in Unix seconds.
pub fn created_at(swf: &ScheduledWorkflow) -> i64 {
    swf.creation_timestamp().map_or(0, |t| t.0.as_second())
}
