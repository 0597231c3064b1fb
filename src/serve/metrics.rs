//! Prometheus metrics, served on `/metrics`. Every metric is listed, with what it is for, in
//! the README's "Operations" section.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicI64, AtomicU64},
    },
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::model::crd::Summary;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub namespace: String,
    /// created, adopted (an earlier pass created it), conflict (a foreign object holds the
    /// name), failed.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConditionLabel {
    pub condition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdmissionLabels {
    /// CREATE or UPDATE.
    pub operation: String,
    /// allowed, invalid (the spec), unauthorized (the runs it would create), error (the
    /// review could not be completed; denied).
    pub verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabel {
    pub cache: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScheduleLabels {
    pub namespace: String,
    pub name: String,
}

/// What one schedule contributes to the gauges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct ScheduleGauge {
    condition: String,
    active: i64,
    /// Its current run-failure streak (only schedules with one get a series).
    streak: Option<(ScheduleLabels, i64)>,
}

pub struct Metrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    trigger_lag: Histogram,
    reconciles: Counter,
    reconcile_duration: Histogram,
    reconcile_errors: Family<ReasonLabel, Counter>,
    events_dropped: Family<ReasonLabel, Counter>,
    events_pending: Gauge,
    schedules: Family<ConditionLabel, Gauge>,
    active_runs: Gauge,
    leader: Gauge,
    shards_held: Gauge,
    cache_objects: Family<CacheLabel, Gauge>,
    cache_lists: Family<CacheLabel, Counter>,
    undecodable: Gauge<i64, AtomicI64>,
    status_writes: Counter<u64, AtomicU64>,
    admission_reviews: Family<AdmissionLabels, Counter>,
    failure_streaks: Family<ScheduleLabels, Gauge>,
    per_schedule: Mutex<HashMap<String, ScheduleGauge>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("swf");
        let m = Metrics {
            runs: Family::default(),
            // From 10 ms to ~3 h: catch-up runs are late by design.
            trigger_lag: Histogram::new(exponential_buckets(0.01, 2.5, 14)),
            reconciles: Counter::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            reconcile_errors: Family::default(),
            events_dropped: Family::default(),
            events_pending: Gauge::default(),
            schedules: Family::default(),
            active_runs: Gauge::default(),
            leader: Gauge::default(),
            shards_held: Gauge::default(),
            cache_objects: Family::default(),
            cache_lists: Family::default(),
            undecodable: Gauge::default(),
            status_writes: Counter::default(),
            admission_reviews: Family::default(),
            failure_streaks: Family::default(),
            per_schedule: Mutex::new(HashMap::new()),
            registry: Registry::default(),
        };
        registry.register(
            "runs",
            "Runs the operator tried to create, by namespace and outcome (created, adopted, conflict, failed)",
            m.runs.clone(),
        );
        registry.register(
            "trigger_lag_seconds",
            "Run creation instant minus its scheduled instant",
            m.trigger_lag.clone(),
        );
        registry.register("reconciles", "Reconcile passes", m.reconciles.clone());
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile pass",
            m.reconcile_duration.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconcile passes, by reason",
            m.reconcile_errors.clone(),
        );
        registry.register(
            "events_dropped",
            "Events not published, by reason (queue_full, per_object_rate, total_rate, api_error)",
            m.events_dropped.clone(),
        );
        registry.register(
            "events_pending",
            "Events queued and not yet published or dropped",
            m.events_pending.clone(),
        );
        registry.register(
            "schedules",
            "ScheduledWorkflows by summary condition (Enabled, Disabled, Running, Succeeded, Error)",
            m.schedules.clone(),
        );
        registry.register(
            "active_runs",
            "Runs counted against maxConcurrency",
            m.active_runs.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease (with --shards: at least one shard's)",
            m.leader.clone(),
        );
        registry.register(
            "shards_held",
            "Shards whose lease this replica holds (1 without leader election: it owns everything)",
            m.shards_held.clone(),
        );
        registry.register(
            "cache_objects",
            "Objects in the operator's watch caches, by cache",
            m.cache_objects.clone(),
        );
        registry.register(
            "cache_lists",
            "Full lists of a watch cache: one at start, then one per lost watch (410 Gone, a reconnect)",
            m.cache_lists.clone(),
        );
        registry.register(
            "undecodable_objects",
            "ScheduledWorkflows whose stored spec cannot be decoded (each has an Error condition)",
            m.undecodable.clone(),
        );
        registry.register("status_writes", "Status patches sent", m.status_writes.clone());
        registry.register(
            "schedule_failure_streak",
            "Runs of a schedule that failed in a row, most recent finished first (only schedules with a streak)",
            m.failure_streaks.clone(),
        );
        registry.register(
            "admission_reviews",
            "Admission reviews answered, by operation and verdict (allowed, invalid, unauthorized, error)",
            m.admission_reviews.clone(),
        );
        Metrics { registry, ..m }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Metrics {
    pub fn run(&self, namespace: &str, outcome: &str) {
        self.runs
            .get_or_create(&RunLabels {
                namespace: namespace.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn trigger_lag(&self, seconds: f64) {
        self.trigger_lag.observe(seconds.max(0.0));
    }

    pub fn reconciled(&self, seconds: f64) {
        self.reconciles.inc();
        self.reconcile_duration.observe(seconds);
    }

    pub fn reconcile_failed(&self, reason: &str) {
        self.reconcile_errors
            .get_or_create(&ReasonLabel { reason: reason.into() })
            .inc();
    }

    /// An event joined (+1) or left (-1) the publishing queue.
    pub fn event_pending(&self, change: i64) {
        self.events_pending.inc_by(change);
    }

    pub fn event_dropped(&self, reason: &str) {
        self.events_dropped
            .get_or_create(&ReasonLabel { reason: reason.into() })
            .inc();
    }

    pub fn admission_reviewed(&self, operation: &str, verdict: &str) {
        self.admission_reviews
            .get_or_create(&AdmissionLabels {
                operation: operation.into(),
                verdict: verdict.into(),
            })
            .inc();
    }

    pub fn status_written(&self) {
        self.status_writes.inc();
    }

    /// Shards this replica may write now; `swf_leader` is 1 when it is any.
    pub fn set_held(&self, shards: usize) {
        self.leader.set(i64::from(shards > 0));
        self.shards_held.set(i64::try_from(shards).unwrap_or(i64::MAX));
    }

    pub fn set_cache_size(&self, cache: &str, objects: usize) {
        self.cache_objects
            .get_or_create(&CacheLabel { cache: cache.into() })
            .set(i64::try_from(objects).unwrap_or(i64::MAX));
    }

    pub fn cache_listed(&self, cache: &str) {
        self.cache_lists
            .get_or_create(&CacheLabel { cache: cache.into() })
            .inc();
    }

    pub fn set_undecodable(&self, objects: usize) {
        self.undecodable.set(i64::try_from(objects).unwrap_or(i64::MAX));
    }

    /// Records one schedule's summary condition and active runs (replacing what it had).
    pub fn schedule(&self, uid: &str, condition: &str, active: usize) {
        let mut per = lock(&self.per_schedule);
        let entry = per.entry(uid.to_string()).or_default();
        entry.condition = condition.to_string();
        entry.active = i64::try_from(active).unwrap_or(i64::MAX);
    }

    /// Records how many of a schedule's runs failed in a row (0: none).
    pub fn failure_streak(&self, uid: &str, namespace: &str, name: &str, failed: usize) {
        let labels = ScheduleLabels {
            namespace: namespace.into(),
            name: name.into(),
        };
        let streak = (failed > 0).then(|| (labels, i64::try_from(failed).unwrap_or(i64::MAX)));
        lock(&self.per_schedule).entry(uid.to_string()).or_default().streak = streak;
    }

    /// Forgets schedules that no longer exist.
    pub fn retain_schedules(&self, exists: impl Fn(&str) -> bool) {
        lock(&self.per_schedule).retain(|uid, _| exists(uid));
    }

    fn refresh_gauges(&self) {
        let per = lock(&self.per_schedule);
        let mut by_condition: HashMap<&str, i64> = HashMap::new();
        for c in Summary::ALL {
            by_condition.insert(c.as_str(), 0);
        }
        let mut active = 0;
        self.failure_streaks.clear();
        for s in per.values() {
            if !s.condition.is_empty() {
                *by_condition.entry(s.condition.as_str()).or_default() += 1;
            }
            active += s.active;
            if let Some((labels, failed)) = &s.streak {
                self.failure_streaks.get_or_create(labels).set(*failed);
            }
        }
        for (condition, n) in by_condition {
            self.schedules
                .get_or_create(&ConditionLabel {
                    condition: condition.to_string(),
                })
                .set(n);
        }
        self.active_runs.set(active);
    }

    pub fn render(&self) -> String {
        self.refresh_gauges();
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_follow_the_latest_report_per_schedule() {
        let m = Metrics::default();
        m.schedule("a", "Enabled", 2);
        m.schedule("b", "Error", 0);
        m.schedule("a", "Enabled", 1);
        m.reconcile_failed("RunCreateFailed");
        let text = m.render();
        assert!(text.contains("swf_schedules{condition=\"Enabled\"} 1"), "{text}");
        assert!(text.contains("swf_schedules{condition=\"Error\"} 1"), "{text}");
        assert!(text.contains("swf_active_runs 1"), "{text}");
        assert!(
            text.contains("swf_reconcile_errors_total{reason=\"RunCreateFailed\"} 1"),
            "{text}"
        );
        m.retain_schedules(|uid| uid == "b");
        assert!(m.render().contains("swf_schedules{condition=\"Enabled\"} 0"));
        m.set_held(2);
        let text = m.render();
        assert!(
            text.contains("swf_leader 1") && text.contains("swf_shards_held 2"),
            "{text}"
        );
        m.set_held(0);
        assert!(m.render().contains("swf_leader 0"));
    }
}
