//! Prometheus metrics, served on `/metrics`.

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceLabel {
    pub namespace: String,
}

pub struct Metrics {
    registry: Registry,
    runs_created: Family<NamespaceLabel, Counter>,
    reconcile_errors: Counter,
    trigger_lag: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("swf");
        let runs_created = Family::<NamespaceLabel, Counter>::default();
        let reconcile_errors = Counter::default();
        // From 10 ms to ~3 h: catch-up runs are late by design.
        let trigger_lag = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.01, 2.5, 14,
        ));
        registry.register("runs_created", "Runs created", runs_created.clone());
        registry.register("reconcile_errors", "Failed reconcile passes", reconcile_errors.clone());
        registry.register(
            "trigger_lag_seconds",
            "Run creation time minus its scheduled time",
            trigger_lag.clone(),
        );
        Metrics {
            registry,
            runs_created,
            reconcile_errors,
            trigger_lag,
        }
    }
}

impl Metrics {
    pub fn run_created(&self, namespace: &str, lag_seconds: f64) {
        self.runs_created
            .get_or_create(&NamespaceLabel {
                namespace: namespace.into(),
            })
            .inc();
        self.trigger_lag.observe(lag_seconds.max(0.0));
    }

    pub fn reconcile_failed(&self) {
        self.reconcile_errors.inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("text encoding");
        out
    }
}
