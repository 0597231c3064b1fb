//! What every reconcile pass shares: the client, settings, clock, caches and publishers.

use std::{sync::Arc, time::Duration};

use jiff::Timestamp;
use kube::Client;

use super::{
    backoff::Backoff, election::leader::Leader, events::Events, lanes::Lanes, runs::RunCaches,
    status_write::StatusWriter,
};
use crate::{model::runkind::RunKind, scheduling::spec_check::Rules, serve::metrics::Metrics};

/// Settings of one operator process.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Only this namespace, or all when `None`.
    pub namespace: Option<String>,
    /// What every schedule is checked against (default time zone, v1 pipelines).
    pub rules: Rules,
    /// Run kinds whose caches start with the process (others start when first used).
    pub watch_kinds: Vec<RunKind>,
    /// How long a pass waits for a run cache's first list before giving up (and retrying).
    pub cache_wait: Duration,
}

impl Settings {
    pub fn new(namespace: Option<String>, default_time_zone: &str, watch_kinds: Vec<RunKind>) -> Self {
        Settings {
            namespace,
            rules: Rules::in_zone(default_time_zone),
            watch_kinds,
            cache_wait: Duration::from_secs(10),
        }
    }
}

/// Where time comes from: the system clock in production, a fixed instant in tests. The
/// pure modules never read a clock; the reconciler reads this once per pass.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> Timestamp + Send + Sync>);

impl Clock {
    pub fn system() -> Self {
        Clock(Arc::new(Timestamp::now))
    }

    pub fn fixed(t: Timestamp) -> Self {
        Clock(Arc::new(move || t))
    }

    /// A clock read from `f` (a simulation's clock that a test moves).
    pub fn from_fn(f: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        Clock(Arc::new(f))
    }

    pub fn now(&self) -> Timestamp {
        (self.0)()
    }
}

pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub clock: Clock,
    pub runs: RunCaches,
    pub status: StatusWriter,
    pub events: Events,
    pub backoff: Backoff,
    /// Which schedules this replica may write (leader election, shards).
    pub leader: Leader,
    pub metrics: Arc<Metrics>,
    /// The writes in flight, due creates first (`lanes`).
    pub lanes: Lanes,
}
