//! The watcher: a process of its own, one per contender's namespace, that records with its own
//! clock every Job it sees (a metadata-only watch): the first sighting of each uid, each
//! deletion, and each time its watch starts over with a fresh list (a relist) or fails.
//! `creationTimestamp` has one-second resolution; the watcher's clock has microseconds.
//!
//! One line per record, tab-separated:
//!   `seen|deleted  observed_unix_micros  uid  name  schedule  tick_unix_s  created_unix_s`
//!   `relist|error  observed_unix_micros`
//! (tick and created are empty when the Job does not say.)

use std::{collections::HashSet, io::Write, path::Path};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::{
    Api,
    core::PartialObjectMeta,
    runtime::{WatchStreamExt, watcher},
};

use crate::accounting::{EventKind, RunEvent};

/// KFP's label with the tick a run is for (Unix seconds).
const EPOCH_LABEL: &str = "scheduledworkflows.kubeflow.org/workflowEpoch";
const SWF_LABEL: &str = "scheduledworkflows.kubeflow.org/scheduledWorkflowName";

pub async fn run(namespace: &str, out: &Path) {
    let client = kube::Client::try_default().await.unwrap();
    let api: Api<PartialObjectMeta<Job>> = Api::namespaced(client, namespace);
    let mut file = std::io::BufWriter::new(std::fs::File::create(out).unwrap());
    let ready = out.with_extension("ready");
    let mut recorder = Recorder::default();
    let mut stream = watcher(api, watcher::Config::default()).default_backoff().boxed();
    while let Some(event) = stream.next().await {
        let now = jiff::Timestamp::now().as_microsecond();
        let line = match event {
            Ok(watcher::Event::InitDone) => {
                std::fs::write(&ready, "ready").unwrap();
                None
            }
            Ok(event) => recorder.record(event, now),
            Err(e) => {
                eprintln!("watch: {e}");
                Some(format!("error\t{now}"))
            }
        };
        if let Some(line) = line {
            writeln!(file, "{line}").unwrap();
            file.flush().unwrap();
        }
    }
}

/// What the watcher writes for a watch event: the first sighting and the deletion of each
/// uid (a name deleted and created again is a new uid), and each list after the first.
#[derive(Default)]
struct Recorder {
    seen: HashSet<String>,
    deleted: HashSet<String>,
    lists: usize,
}

impl Recorder {
    fn record(&mut self, event: watcher::Event<PartialObjectMeta<Job>>, now: i64) -> Option<String> {
        let uid = |job: &PartialObjectMeta<Job>| job.metadata.uid.clone().unwrap_or_default();
        match event {
            watcher::Event::Init => {
                self.lists += 1;
                (self.lists > 1).then(|| format!("relist\t{now}"))
            }
            watcher::Event::InitDone => None,
            watcher::Event::Apply(job) | watcher::Event::InitApply(job) => self
                .seen
                .insert(uid(&job))
                .then(|| format_run(&run_event(EventKind::Seen, now, &job))),
            watcher::Event::Delete(job) => self
                .deleted
                .insert(uid(&job))
                .then(|| format_run(&run_event(EventKind::Deleted, now, &job))),
        }
    }
}

fn run_event(kind: EventKind, observed_micros: i64, job: &PartialObjectMeta<Job>) -> RunEvent {
    let m = &job.metadata;
    let (schedule, tick) = schedule_and_tick(job);
    RunEvent {
        kind,
        observed_micros,
        uid: m.uid.clone().unwrap_or_default(),
        name: m.name.clone().unwrap_or_default(),
        schedule,
        tick,
        created: m.creation_timestamp.as_ref().map(|t| t.0.as_second()),
    }
}

/// Which schedule a Job is for, and its tick: swf-operator's (and KFP's) labels, or a CronJob
/// owner and the v2 controller's name suffix (the tick in minutes since the epoch).
fn schedule_and_tick(job: &PartialObjectMeta<Job>) -> (String, Option<i64>) {
    let labels = job.metadata.labels.clone().unwrap_or_default();
    if let (Some(schedule), Some(epoch)) = (labels.get(SWF_LABEL), labels.get(EPOCH_LABEL)) {
        return (schedule.clone(), epoch.parse().ok());
    }
    let schedule = job
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "CronJob")
        .map(|o| o.name.clone())
        .unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let minutes = name.rsplit('-').next().and_then(|m| m.parse::<i64>().ok());
    (schedule, minutes.and_then(|m| m.checked_mul(60)))
}

fn format_run(e: &RunEvent) -> String {
    let kind = match e.kind {
        EventKind::Seen => "seen",
        EventKind::Deleted => "deleted",
    };
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    format!(
        "{kind}\t{}\t{}\t{}\t{}\t{}\t{}",
        e.observed_micros,
        e.uid,
        e.name,
        e.schedule,
        opt(e.tick),
        opt(e.created)
    )
}

/// What one watcher recorded.
#[derive(Debug, Default)]
pub struct WatchLog {
    pub runs: Vec<RunEvent>,
    /// Lists after the first: the watch started over.
    pub relists: usize,
    /// Watch errors (each followed by a retry: a re-watch or a relist).
    pub errors: usize,
}

fn parse_run(kind: EventKind, fields: &[&str]) -> Option<RunEvent> {
    let opt = |s: &str| {
        if s.is_empty() {
            Some(None)
        } else {
            s.parse().ok().map(Some)
        }
    };
    let [micros, uid, name, schedule, tick, created] = fields else {
        return None;
    };
    Some(RunEvent {
        kind,
        observed_micros: micros.parse().ok()?,
        uid: uid.to_string(),
        name: name.to_string(),
        schedule: schedule.to_string(),
        tick: opt(tick)?,
        created: opt(created)?,
    })
}

/// Reads a watcher's file; a line it cannot read (the last one, being written) is skipped.
pub fn parse(text: &str) -> WatchLog {
    let mut log = WatchLog::default();
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.split_first() {
            Some((&"seen", rest)) => log.runs.extend(parse_run(EventKind::Seen, rest)),
            Some((&"deleted", rest)) => log.runs.extend(parse_run(EventKind::Deleted, rest)),
            Some((&"relist", _)) => log.relists += 1,
            Some((&"error", _)) => log.errors += 1,
            _ => {}
        }
    }
    log
}

pub fn read(path: &Path) -> WatchLog {
    parse(&std::fs::read_to_string(path).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back() {
        let run = RunEvent {
            kind: EventKind::Deleted,
            observed_micros: 1_700_000_040_123_456,
            uid: "0b6c-uid".into(),
            name: "s-00001-1700000040".into(),
            schedule: "s-00001".into(),
            tick: Some(1_700_000_040),
            created: None,
        };
        let text = format!("relist\t1\n{}\nerror\t2\nrelist\t3\n", format_run(&run));
        let log = parse(&text);
        assert_eq!(log.runs, [run]);
        assert_eq!((log.relists, log.errors), (2, 1));
    }

    fn job(uid: &str, name: &str) -> PartialObjectMeta<Job> {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {"name": name, "uid": uid, "labels": {SWF_LABEL: "s-1", EPOCH_LABEL: "1700000040"}}
        }))
        .unwrap()
    }

    /// A run deleted and created again under its name (the duplicate the benchmark exists to
    /// catch) is recorded as seen, deleted, seen again; repeated events and the first list
    /// add nothing, a second list is a relist.
    #[test]
    fn each_uid_is_recorded_when_first_seen_and_when_deleted() {
        use watcher::Event::{Apply, Delete, Init, InitApply, InitDone};
        let (first, second) = (job("uid-1", "s-1-1700000040"), job("uid-2", "s-1-1700000040"));
        let events = [
            Init,
            InitApply(first.clone()),
            InitDone,
            Apply(first.clone()),
            Delete(first.clone()),
            Delete(first),
            Apply(second.clone()),
            Init,
            InitApply(second),
        ];
        let mut recorder = Recorder::default();
        let lines: Vec<String> = events
            .into_iter()
            .enumerate()
            .filter_map(|(i, e)| recorder.record(e, i as i64))
            .collect();
        let log = parse(&lines.join("\n"));
        let runs: Vec<(EventKind, &str, i64)> = log
            .runs
            .iter()
            .map(|r| (r.kind, r.uid.as_str(), r.observed_micros))
            .collect();
        assert_eq!(
            runs,
            [
                (EventKind::Seen, "uid-1", 1),
                (EventKind::Deleted, "uid-1", 4),
                (EventKind::Seen, "uid-2", 6)
            ]
        );
        assert_eq!(log.relists, 1);
        assert_eq!(log.runs[0].tick, Some(1_700_000_040));
    }

    #[test]
    fn a_line_cut_short_is_skipped() {
        let log = parse("seen\t1700000040123456\tuid\tname\ts-1\n");
        assert!(log.runs.is_empty());
    }
}
