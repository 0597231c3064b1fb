//! Kubernetes Events about ScheduledWorkflows (`events.k8s.io/v1`), published in the
//! background so a pass never waits on them.
//!
//! Each event is its own object with its own note (kube-runtime's Recorder folds repeats into
//! one series that keeps the first note, so `RunCreated` would name the first run forever).
//! Names stay under 253 characters whatever the object's name. The rate is bounded per
//! object and in total; what is over the bound is dropped and counted
//! (`swf_events_dropped_total`).

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{Api, Client};
use tokio::sync::mpsc;
use tracing::warn;

use super::lanes::{Lane, Lanes};
use crate::serve::metrics::Metrics;

/// Events waiting to be sent; past this, new ones are dropped.
const QUEUE: usize = 1024;
/// Per object: a burst of this many, then one per `PER_OBJECT_REFILL`.
const PER_OBJECT_BURST: f64 = 20.0;
const PER_OBJECT_REFILL: Duration = Duration::from_secs(3);
/// In total: a burst of this many, then `TOTAL_PER_SECOND` per second.
const TOTAL_BURST: f64 = 200.0;
const TOTAL_PER_SECOND: f64 = 50.0;
/// The API server refuses notes longer than 1 KiB.
const MAX_NOTE: usize = 1024;
/// Room for the object's name in an event name (253 minus a dot and 16 hex digits).
const NAME_ROOM: usize = 253 - 17;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Warning,
}

/// One event to publish.
#[derive(Clone, Debug)]
pub struct Pending {
    pub regarding: ObjectReference,
    pub kind: Kind,
    pub reason: String,
    pub note: String,
}

/// The sending half: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Events {
    tx: mpsc::Sender<Pending>,
    metrics: Arc<Metrics>,
}

impl Events {
    /// Starts the publisher task.
    pub fn spawn(
        tasks: &super::Tasks,
        client: Client,
        controller: String,
        instance: String,
        metrics: Arc<Metrics>,
        lanes: Lanes,
    ) -> Events {
        let (tx, rx) = mpsc::channel(QUEUE);
        let publisher = Publisher {
            client,
            controller,
            instance,
            metrics: metrics.clone(),
            lanes,
        };
        tasks.spawn(publish_all(rx, publisher));
        Events { tx, metrics }
    }

    /// A publisher whose events go nowhere but `rx` (tests).
    pub fn channel(metrics: Arc<Metrics>) -> (Events, mpsc::Receiver<Pending>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Events { tx, metrics }, rx)
    }

    pub fn publish(&self, regarding: ObjectReference, kind: Kind, reason: &str, note: String) {
        let pending = Pending {
            regarding,
            kind,
            reason: reason.to_string(),
            note,
        };
        match self.tx.try_send(pending) {
            Ok(()) => self.metrics.event_pending(1),
            Err(_) => self.metrics.event_dropped("queue_full"),
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64) -> Self {
        Bucket {
            tokens: burst,
            at: Instant::now(),
        }
    }

    fn take(&mut self, burst: f64, per_second: f64) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * per_second).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The per-object and total budgets.
struct Limits {
    total: Bucket,
    per_object: HashMap<String, Bucket>,
}

impl Limits {
    fn allow(&mut self, object: &str) -> Result<(), &'static str> {
        let per_second = 1.0 / PER_OBJECT_REFILL.as_secs_f64();
        if self.per_object.len() > 10_000 {
            // Objects whose bucket has refilled need no entry.
            let full = PER_OBJECT_BURST - 1.0;
            self.per_object.retain(|_, b| {
                b.take(PER_OBJECT_BURST, per_second);
                b.tokens < full
            });
        }
        let bucket = self
            .per_object
            .entry(object.to_string())
            .or_insert_with(|| Bucket::full(PER_OBJECT_BURST));
        if !bucket.take(PER_OBJECT_BURST, per_second) {
            return Err("per_object_rate");
        }
        if !self.total.take(TOTAL_BURST, TOTAL_PER_SECOND) {
            return Err("total_rate");
        }
        Ok(())
    }
}

/// What the publisher task sends with.
struct Publisher {
    client: Client,
    controller: String,
    instance: String,
    metrics: Arc<Metrics>,
    /// Events wait behind the runs due now, like status writes.
    lanes: Lanes,
}

async fn publish_all(mut rx: mpsc::Receiver<Pending>, publisher: Publisher) {
    let mut limits = Limits {
        total: Bucket::full(TOTAL_BURST),
        per_object: HashMap::new(),
    };
    while let Some(p) = rx.recv().await {
        publish_one(p, &mut limits, &publisher).await;
        publisher.metrics.event_pending(-1);
    }
}

/// Publishes one event within the rate limits, or counts why it was dropped.
async fn publish_one(p: Pending, limits: &mut Limits, publisher: &Publisher) {
    let (metrics, client) = (&publisher.metrics, &publisher.client);
    let key = p.regarding.uid.clone().unwrap_or_default();
    if let Err(why) = limits.allow(&key) {
        metrics.event_dropped(why);
        return;
    }
    let ns = p.regarding.namespace.clone().unwrap_or_default();
    let event = build(
        p,
        &publisher.controller,
        &publisher.instance,
        jiff::Timestamp::now(),
        &random_suffix(),
    );
    let _slot = publisher.lanes.enter(Lane::Later).await;
    if let Err(e) = Api::<Event>::namespaced(client.clone(), &ns)
        .create(&super::post_params(), &event)
        .await
    {
        metrics.event_dropped("api_error");
        warn!(error = %e, namespace = %ns, "cannot publish event");
    }
}

fn random_suffix() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    id[..16].to_string()
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The Event object: a unique name under 253 characters, the note cut to 1 KiB.
pub fn build(p: Pending, controller: &str, instance: &str, now: jiff::Timestamp, suffix: &str) -> Event {
    let object = p.regarding.name.as_deref().unwrap_or("object");
    let name = format!("{}.{suffix}", truncate(object, NAME_ROOM).trim_end_matches(['.', '-']));
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: p.regarding.namespace.clone(),
            ..Default::default()
        },
        event_time: Some(MicroTime(now)),
        action: Some(p.reason.clone()),
        reason: Some(p.reason),
        note: Some(truncate(&p.note, MAX_NOTE).to_string()),
        type_: Some(
            match p.kind {
                Kind::Normal => "Normal",
                Kind::Warning => "Warning",
            }
            .into(),
        ),
        regarding: Some(p.regarding),
        reporting_controller: Some(controller.to_string()),
        reporting_instance: Some(truncate(instance, 128).to_string()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(name: &str, note: &str) -> Pending {
        Pending {
            regarding: ObjectReference {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some("u".into()),
                ..Default::default()
            },
            kind: Kind::Normal,
            reason: "RunCreated".into(),
            note: note.into(),
        }
    }

    #[test]
    fn names_fit_and_notes_are_kept_per_event() {
        let now = jiff::Timestamp::UNIX_EPOCH;
        let long = "a".repeat(253);
        let e = build(pending(&long, "x"), "swf-operator", "pod", now, "0123456789abcdef");
        let name = e.metadata.name.unwrap();
        assert_eq!(name.len(), 253);
        assert!(name.ends_with(".0123456789abcdef"));
        let e = build(pending("nightly", &"é".repeat(2000)), "c", "i", now, "s");
        assert!(e.note.unwrap().len() <= MAX_NOTE);
        let a = build(pending("n", "Created n-1"), "c", "i", now, "1");
        let b = build(pending("n", "Created n-2"), "c", "i", now, "2");
        assert_ne!(a.metadata.name, b.metadata.name);
        assert_eq!(b.note.as_deref(), Some("Created n-2"));
    }

    #[test]
    fn rate_is_bounded_per_object() {
        let mut limits = Limits {
            total: Bucket::full(TOTAL_BURST),
            per_object: HashMap::new(),
        };
        let allowed = (0..100).filter(|_| limits.allow("one").is_ok()).count();
        assert_eq!(allowed, PER_OBJECT_BURST as usize);
        assert!(limits.allow("another").is_ok(), "other objects are not starved");
    }
}
