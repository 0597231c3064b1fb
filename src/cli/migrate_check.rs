//! `swf-operator migrate-check`: what changes, per ScheduledWorkflow, when this operator takes
//! over from KFP's controller. Read-only. The assessment is pure; `check_cluster` reads.

use std::collections::HashMap;

use anyhow::Context as _;
use clap::Args;
use jiff::Timestamp;
use kube::{
    Api, Client,
    api::{ApiResource, GroupVersionKind, ListParams},
};

use crate::{
    model::{
        crd::ScheduledWorkflowSpec,
        keys::LABEL_OWNED,
        runkind::RunKind,
        stored::{RunObject, SwfObject},
    },
    scheduling::{
        runstate::{self, ObservedRun},
        schedule::{self, Schedule},
        status,
        validate::{self, RunSource, V1Policy},
    },
};

#[derive(Args, Debug)]
pub struct MigrateCheckArgs {
    /// Only this namespace (default: all).
    #[arg(long, short = 'n')]
    namespace: Option<String>,
    #[command(flatten)]
    rules: super::RulesArgs,
}

impl MigrateCheckArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let rules = self.rules.rules()?;
        let assessments = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(async {
                let client = kube::Client::try_default()
                    .await
                    .context("no Kubernetes configuration found")?;
                check_cluster(
                    client,
                    self.namespace.as_deref(),
                    &rules.default_time_zone,
                    &rules.v1_policy,
                )
                .await
            })?;
        let (text, attention) = report(&assessments);
        print!("{text}");
        if attention {
            std::process::exit(1);
        }
        Ok(())
    }
}

/// What the operator will do with one schedule.
#[derive(Debug, Default, PartialEq)]
pub struct Assessment {
    pub name: String,
    /// What the user should know (how it is read, what it adopts).
    pub notes: Vec<String>,
    /// What needs the user's attention: refused, or read differently than KFP reads it.
    pub attention: Vec<String>,
}

/// Assesses one schedule given the runs it owns (of its kind), at `now`.
pub fn assess(obj: &SwfObject, runs: &[ObservedRun], default_tz: &str, v1: &V1Policy, now: Timestamp) -> Assessment {
    let ns = obj.metadata.namespace.clone().unwrap_or_default();
    let mut a = Assessment {
        name: format!("{ns}/{}", obj.metadata.name.clone().unwrap_or_default()),
        ..Default::default()
    };
    let spec = match &obj.spec {
        Ok(spec) => spec,
        Err(e) => {
            a.attention
                .push(format!("refused: the stored spec cannot be read: {e}"));
            return a;
        }
    };
    let v = match validate::validate(spec, default_tz) {
        Ok(v) => v,
        Err(invalid) => {
            a.attention
                .extend(invalid.0.into_iter().map(|e| format!("refused: {e}")));
            return a;
        }
    };
    if let Err(e) = v1.check(&ns, &v.source) {
        a.attention.push(format!("refused: {e}"));
    }
    a.attention.extend(v.warnings.iter().cloned());
    let zone = match &spec.time_zone {
        Some(z) => format!("time zone {z} (spec.timeZone)"),
        None => format!("time zone {default_tz} (--default-time-zone / CRON_SCHEDULE_TIMEZONE, as KFP's)"),
    };
    a.notes.push(format!(
        "{}; {zone}",
        crate::scheduling::schedule::describe(&spec.trigger, &v.time_zone)
    ));
    if let RunSource::Template(_) = v.source {
        a.notes.push(format!("runs {} (runTemplate)", v.source.kind()));
    }
    a.notes.push(next_tick(obj, spec, &v.schedule, runs, now));
    adopted(&mut a, obj, runs);
    a
}

/// The tick the operator will run first, from status raised to the runs that exist (as the
/// planner reads it).
fn next_tick(
    obj: &SwfObject,
    spec: &ScheduledWorkflowSpec,
    schedule: &Schedule,
    runs: &[ObservedRun],
    now: Timestamp,
) -> String {
    if !spec.enabled {
        return "disabled: no tick runs until spec.enabled is true".into();
    }
    let mut state = status::recorded_state(&obj.status.trigger);
    state.last_triggered = state.last_triggered.max(runstate::summarize(runs).latest_tick);
    let created = obj.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
    let position = state.position(schedule, created);
    match schedule::upcoming(schedule, position, position.floor, 1).first() {
        None => "no tick left before its endTime".into(),
        Some(t) if *t <= now && spec.no_catchup == Some(true) => {
            format!("next tick: due now (missed since {t}; noCatchup: only the latest runs)")
        }
        Some(t) if *t <= now => format!("next tick: {t}, due now (every tick missed since then runs, oldest first)"),
        Some(t) => format!("next tick: {t}"),
    }
}

/// What the runs that exist tell the operator, and how status will be raised from them.
fn adopted(a: &mut Assessment, obj: &SwfObject, runs: &[ObservedRun]) {
    let summary = runstate::summarize(runs);
    if runs.is_empty() {
        return;
    }
    a.notes.push(format!(
        "adopts {} run(s), {} active; the next index is {}",
        runs.len(),
        summary.active,
        summary
            .highest_index
            .max(obj.status.trigger.last_workflow_index.unwrap_or(0))
            + 1
    ));
    let recorded = obj.status.trigger.last_triggered_time.as_ref().map(|t| t.0);
    if let Some(latest) = summary.latest_tick
        && recorded < Some(latest)
    {
        a.notes.push(format!(
            "status records {} but a run exists for {latest}: that tick counts as run (KFP writes trigger status late)",
            recorded.map_or("no tick".to_string(), |t| t.to_string())
        ));
    }
}

/// Reads every ScheduledWorkflow (and the runs of their kinds) and assesses each.
pub async fn check_cluster(
    client: Client,
    namespace: Option<&str>,
    default_tz: &str,
    v1: &V1Policy,
) -> anyhow::Result<Vec<Assessment>> {
    let swfs: Api<SwfObject> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let objects = swfs.list(&ListParams::default()).await?.items;
    let now = Timestamp::now();
    let mut runs_by_owner: HashMap<String, Vec<ObservedRun>> = HashMap::new();
    let mut kinds: Vec<RunKind> = objects
        .iter()
        .filter_map(|o| o.spec.as_ref().ok())
        .filter_map(|s| validate::validate(s, default_tz).ok())
        .map(|v| v.source.kind())
        .collect();
    kinds.sort();
    kinds.dedup();
    for kind in kinds {
        let gvk = GroupVersionKind::gvk(&kind.group, &kind.version, &kind.kind);
        let Ok((resource, _)) = kube::discovery::pinned_kind(&client, &gvk).await else {
            continue; // an unknown kind is reported per schedule by `assess`
        };
        for run in list_runs(&client, namespace, &resource).await? {
            let observed = runstate::observe(&kind, &run);
            for owner in run.metadata.owner_references.iter().flatten() {
                runs_by_owner
                    .entry(owner.uid.clone())
                    .or_default()
                    .push(observed.clone());
            }
        }
    }
    Ok(objects
        .iter()
        .map(|o| {
            let uid = o.metadata.uid.clone().unwrap_or_default();
            let runs = runs_by_owner.get(&uid).map(Vec::as_slice).unwrap_or_default();
            assess(o, runs, default_tz, v1, now)
        })
        .collect())
}

async fn list_runs(client: &Client, namespace: Option<&str>, resource: &ApiResource) -> anyhow::Result<Vec<RunObject>> {
    let api: Api<RunObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    };
    let selector = format!("{LABEL_OWNED}=true");
    Ok(api.list(&ListParams::default().labels(&selector)).await?.items)
}

/// The report as printed; true when something needs attention.
pub fn report(assessments: &[Assessment]) -> (String, bool) {
    let mut out = String::new();
    for a in assessments {
        let verdict = if a.attention.is_empty() { "OK" } else { "ATTENTION" };
        out.push_str(&format!("{}: {verdict}\n", a.name));
        for n in &a.notes {
            out.push_str(&format!("  {n}\n"));
        }
        for n in &a.attention {
            out.push_str(&format!("  ! {n}\n"));
        }
    }
    let needing = assessments.iter().filter(|a| !a.attention.is_empty()).count();
    out.push_str(&format!(
        "{} schedule(s), {needing} need(s) attention\n",
        assessments.len()
    ));
    (out, needing > 0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(spec: serde_json::Value, status: serde_json::Value) -> SwfObject {
        serde_json::from_value(json!({"metadata": {"name": "s", "namespace": "kubeflow", "uid": "u"},
            "spec": spec, "status": status}))
        .unwrap()
    }

    fn now() -> Timestamp {
        "2026-01-01T00:01:30Z".parse().unwrap()
    }

    fn wf() -> serde_json::Value {
        json!({"spec": "{\"entrypoint\": \"main\", \"templates\": []}"})
    }

    #[test]
    fn reports_how_each_schedule_is_read_and_what_it_adopts() {
        let five = obj(
            json!({"trigger": {"cronSchedule": {"cron": "0 0 * * *"}}, "workflow": wf(), "maxConcurrency": 50}),
            json!({}),
        );
        let a = assess(&five, &[], "UTC", &V1Policy::default(), now());
        assert!(a.attention.iter().any(|n| n.contains("5-field")), "{a:?}");
        assert!(
            a.attention
                .iter()
                .any(|n| n.contains("spec.maxConcurrency: 50 is outside")),
            "{a:?}"
        );
        assert!(a.notes[0].contains("--default-time-zone"), "{a:?}");

        let bad = obj(
            json!({"trigger": {"cronSchedule": {"cron": "0 0 0 30 2 *"}}, "workflow": wf()}),
            json!({}),
        );
        let a = assess(&bad, &[], "UTC", &V1Policy::default(), now());
        assert!(
            a.attention[0].starts_with("refused: spec.trigger.cronSchedule.cron"),
            "{a:?}"
        );

        let blocked = assess(&five, &[], "UTC", &V1Policy::new(true, ""), now());
        assert!(
            blocked
                .attention
                .iter()
                .any(|n| n.contains("not allowed to run v1 pipelines"))
        );

        let good = obj(
            json!({"enabled": true, "trigger": {"periodicSchedule": {"intervalSecond": 60}}, "workflow": wf(), "timeZone": "Europe/Berlin"}),
            json!({"trigger": {"lastTriggeredTime": "2026-01-01T00:00:00Z", "lastWorkflowIndex": 4}}),
        );
        let run: RunObject = serde_json::from_value(json!({"metadata": {"name": "s-5-123", "namespace": "kubeflow",
            "labels": {"scheduledworkflows.kubeflow.org/workflowEpoch": "1767225660", "scheduledworkflows.kubeflow.org/workflowIndex": "5"}}}))
        .unwrap();
        let runs = vec![runstate::observe(&RunKind::argo_workflow(), &run)];
        let a = assess(&good, &runs, "UTC", &V1Policy::default(), now());
        assert!(a.attention.is_empty(), "{a:?}");
        assert!(
            a.notes
                .iter()
                .any(|n| n == "adopts 1 run(s), 1 active; the next index is 6"),
            "{a:?}"
        );
        assert!(
            a.notes
                .iter()
                .any(|n| n.contains("a run exists for 2026-01-01T00:01:00Z")),
            "{a:?}"
        );
        // The run for 00:01 counts as run though status records 00:00: 00:02 is next.
        assert!(a.notes.iter().any(|n| n == "next tick: 2026-01-01T00:02:00Z"), "{a:?}");
        let later = "2026-01-01T00:10:00Z".parse().unwrap();
        let behind = assess(&good, &runs, "UTC", &V1Policy::default(), later);
        assert!(
            behind
                .notes
                .iter()
                .any(|n| n.starts_with("next tick: 2026-01-01T00:02:00Z, due now")),
            "{behind:?}"
        );
        assert!(
            assess(&five, &[], "UTC", &V1Policy::default(), now())
                .notes
                .iter()
                .any(|n| n.starts_with("disabled: no tick runs")),
        );
        let (text, attention) = report(&[a]);
        assert!(
            !attention && text.ends_with("1 schedule(s), 0 need(s) attention\n"),
            "{text}"
        );
    }
}
