//! The watcher: a process of its own that timestamps, with its own clock, the first time it
//! sees each Job (a metadata-only watch of every namespace), and says which schedule and which
//! tick the Job belongs to. `creationTimestamp` has one-second resolution; this has
//! microseconds. One line per Job: `observed_unix_micros namespace name owner tick_unix_s`.

use std::{collections::HashSet, io::Write, path::Path};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::{
    Api,
    core::PartialObjectMeta,
    runtime::{WatchStreamExt, watcher},
};

/// KFP's label with the tick a run is for (Unix seconds).
const EPOCH_LABEL: &str = "scheduledworkflows.kubeflow.org/workflowEpoch";
const SWF_LABEL: &str = "scheduledworkflows.kubeflow.org/scheduledWorkflowName";

pub async fn run(out: &Path) {
    let client = kube::Client::try_default().await.unwrap();
    let api: Api<PartialObjectMeta<Job>> = Api::all(client);
    let mut file = std::io::BufWriter::new(std::fs::File::create(out).unwrap());
    let ready = out.with_extension("ready");
    let mut seen = HashSet::new();
    let mut stream = watcher(api, watcher::Config::default()).default_backoff().boxed();
    while let Some(event) = stream.next().await {
        let now = jiff::Timestamp::now().as_microsecond();
        let objects = match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => vec![o],
            Ok(watcher::Event::InitDone) => {
                std::fs::write(&ready, "ready").unwrap();
                vec![]
            }
            Ok(_) => vec![],
            Err(e) => {
                eprintln!("watch: {e}");
                vec![]
            }
        };
        for meta in objects {
            let m = &meta.metadata;
            let (ns, name) = (
                m.namespace.clone().unwrap_or_default(),
                m.name.clone().unwrap_or_default(),
            );
            if !seen.insert((ns.clone(), name.clone())) {
                continue;
            }
            let (owner, tick) = owner_and_tick(&meta);
            writeln!(file, "{now}\t{ns}\t{name}\t{owner}\t{tick}").unwrap();
        }
        file.flush().unwrap();
    }
}

/// Which schedule a Job is for, and its tick: swf-operator's (and KFP's) labels, or a CronJob
/// owner and the v2 controller's name suffix (the tick in minutes since the epoch).
fn owner_and_tick(meta: &PartialObjectMeta<Job>) -> (String, i64) {
    let labels = meta.metadata.labels.clone().unwrap_or_default();
    if let (Some(owner), Some(epoch)) = (labels.get(SWF_LABEL), labels.get(EPOCH_LABEL)) {
        return (owner.clone(), epoch.parse().unwrap_or(-1));
    }
    let owner = meta
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "CronJob")
        .map(|o| o.name.clone())
        .unwrap_or_default();
    let name = meta.metadata.name.clone().unwrap_or_default();
    let minutes = name.rsplit('-').next().and_then(|m| m.parse::<i64>().ok());
    (owner, minutes.map_or(-1, |m| m * 60))
}

/// One observed Job.
#[derive(Clone, Debug)]
pub struct Seen {
    pub observed_micros: i64,
    pub namespace: String,
    pub owner: String,
    pub tick: i64,
}

pub fn read(path: &Path) -> Vec<Seen> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Some(Seen {
                observed_micros: f.first()?.parse().ok()?,
                namespace: f.get(1)?.to_string(),
                owner: f.get(3)?.to_string(),
                tick: f.get(4)?.parse().ok()?,
            })
        })
        .collect()
}
