//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas can run and only one
//! creates runs and writes status.
//!
//! A small module on kube's API rather than a crate: the reconciler needs to ask "may I write
//! *now*?" against a local deadline (`holds`), so that a leader that cannot renew stops
//! creating runs `lease - renew_deadline` before another replica may take the lease. The
//! crates checked (kube-lease-manager, kube-leader-election) publish a held/not-held flag that
//! only flips after a renewal call fails, which can take as long as the API server takes to
//! answer. The rules follow client-go's leaderelection: a lease is expired when its record has
//! not changed for `lease_duration` of *our* clock (no clock-skew assumptions), updates carry
//! the resourceVersion (one winner), and a graceful shutdown releases the lease.
//!
//! Deterministic run names remain the last line of defence: even two writers at once cannot
//! create a second run for a tick.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use jiff::Timestamp;
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::metrics::Metrics;

/// Where the lease is and how it is held.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    /// How long a lease lasts without renewal before another replica may take it.
    pub lease_duration: Duration,
    /// The leader stops writing when it has not renewed for this long (< `lease_duration`).
    pub renew_deadline: Duration,
    /// How often to renew, or to try to acquire.
    pub retry_period: Duration,
}

impl LeaseConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.renew_deadline >= self.lease_duration {
            return Err("the renew deadline must be shorter than the lease duration".into());
        }
        if self.retry_period >= self.renew_deadline {
            return Err("the retry period must be shorter than the renew deadline".into());
        }
        Ok(())
    }
}

#[derive(Debug)]
struct State {
    /// Writes are allowed until this instant (None: not the leader).
    until: Option<Instant>,
    always: bool,
}

/// Whether this replica may write; shared by the election loop and the reconciler.
#[derive(Clone, Debug)]
pub struct Leader {
    state: Arc<Mutex<State>>,
    changes: watch::Sender<bool>,
}

impl Leader {
    /// Leader election off (`--leader-elect=false`, tests): always the leader.
    pub fn always() -> Self {
        Leader {
            state: Arc::new(Mutex::new(State {
                until: None,
                always: true,
            })),
            changes: watch::Sender::new(true),
        }
    }

    fn elected() -> Self {
        Leader {
            state: Arc::new(Mutex::new(State {
                until: None,
                always: false,
            })),
            changes: watch::Sender::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True while this replica holds a lease it renewed less than `renew_deadline` ago.
    pub fn holds(&self) -> bool {
        let s = self.lock();
        s.always || s.until.is_some_and(|t| Instant::now() < t)
    }

    /// Changes of leadership (true: became leader).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.changes.subscribe()
    }

    fn set(&self, until: Option<Instant>) {
        self.lock().until = until;
        let leading = until.is_some();
        self.changes
            .send_if_modified(|v| std::mem::replace(v, leading) != leading);
    }
}

/// What we last saw of the lease and when (our clock).
struct Observed {
    holder: Option<String>,
    renew: Option<Timestamp>,
    at: Instant,
}

/// Starts the election loop; returns the handle the reconciler asks.
pub fn start(client: Client, config: LeaseConfig, metrics: Arc<Metrics>) -> (Leader, Election) {
    let leader = Leader::elected();
    let election = Election {
        api: Api::namespaced(client, &config.namespace),
        config,
        leader: leader.clone(),
        metrics,
        observed: None,
    };
    (leader, election)
}

pub struct Election {
    api: Api<Lease>,
    config: LeaseConfig,
    leader: Leader,
    metrics: Arc<Metrics>,
    observed: Option<Observed>,
}

impl Election {
    /// Tries to acquire or renew every `retry_period` until `stop` resolves; then releases the
    /// lease if held, so another replica takes over at once.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        futures::pin_mut!(stop);
        loop {
            let attempt_started = Instant::now();
            let deadline = self.config.renew_deadline;
            match tokio::time::timeout(deadline, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => self.won(attempt_started),
                Ok(Ok(false)) => self.lost(),
                Ok(Err(e)) => {
                    warn!(error = %e, lease = %self.config.name, "lease request failed");
                    self.lost_if_expired();
                }
                Err(_) => {
                    warn!(lease = %self.config.name, "lease request timed out");
                    self.lost_if_expired();
                }
            }
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(self.config.retry_period) => {}
            }
        }
        self.release().await;
    }

    fn won(&mut self, attempt_started: Instant) {
        if !self.leader.holds() {
            info!(identity = %self.config.identity, lease = %self.config.name, "became the leader");
        }
        // Counted from before the request was sent: the API server may have stamped it later.
        self.leader.set(Some(attempt_started + self.config.renew_deadline));
        self.metrics.set_leader(true);
    }

    fn lost(&mut self) {
        if self.leader.holds() {
            warn!(identity = %self.config.identity, "lost the lease");
        }
        self.leader.set(None);
        self.metrics.set_leader(false);
    }

    /// After a failed renewal the leader keeps writing until its own deadline passes.
    fn lost_if_expired(&mut self) {
        if !self.leader.holds() {
            self.lost();
        }
    }

    fn fresh_spec(&self, previous: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
        let ours = previous.and_then(|p| p.holder_identity.as_deref()) == Some(self.config.identity.as_str());
        let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(i32::MAX)),
            acquire_time: if ours {
                previous.and_then(|p| p.acquire_time.clone())
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if ours { transitions } else { transitions + 1 }),
            ..Default::default()
        }
    }

    /// True when this replica holds the lease after the attempt.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(self.fresh_spec(None, now)),
            };
            return match self.api.create(&super::post_params(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let renew = spec.renew_time.as_ref().map(|t| t.0);
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|o| o.holder != holder || o.renew != renew);
        if changed {
            self.observed = Some(Observed {
                holder: holder.clone(),
                renew,
                at: Instant::now(),
            });
        }
        let duration = spec.lease_duration_seconds.map_or(self.config.lease_duration, |s| {
            Duration::from_secs(s.max(1).unsigned_abs().into())
        });
        let expired = self.observed.as_ref().is_some_and(|o| o.at.elapsed() > duration);
        let mine = holder.as_deref() == Some(self.config.identity.as_str());
        if holder.is_some() && !mine && !expired {
            return Ok(false);
        }
        lease.spec = Some(self.fresh_spec(Some(&spec), now));
        // The resourceVersion we read makes this a compare-and-swap: one replica wins.
        match self.api.replace(&self.config.name, &super::post_params(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up (holder cleared), if we hold it.
    async fn release(&mut self) {
        if !self.leader.holds() {
            return;
        }
        self.leader.set(None);
        self.metrics.set_leader(false);
        let released = async {
            let mut lease = self.api.get(&self.config.name).await?;
            let spec = lease.spec.get_or_insert_with(Default::default);
            if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
                return Ok(());
            }
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
            self.api
                .replace(&self.config.name, &super::post_params(), &lease)
                .await
                .map(|_| ())
        };
        match tokio::time::timeout(self.config.renew_deadline, released).await {
            Ok(Ok(())) => info!(lease = %self.config.name, "released the lease"),
            Ok(Err(e)) => warn!(error = %e, "cannot release the lease"),
            Err(_) => warn!("releasing the lease timed out"),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    /// A replica that has not won the election.
    pub fn not_leader() -> super::Leader {
        super::Leader::elected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_only_until_the_local_deadline() {
        let l = Leader::elected();
        assert!(!l.holds());
        let rx = l.subscribe();
        l.set(Some(Instant::now() + Duration::from_secs(60)));
        assert!(l.holds());
        assert!(*rx.borrow());
        l.set(Some(Instant::now() - Duration::from_millis(1)));
        assert!(!l.holds(), "past its renew deadline a leader stops writing");
        assert!(Leader::always().holds());
    }

    #[test]
    fn renew_deadline_must_be_shorter_than_the_lease() {
        let mut c = LeaseConfig {
            name: "l".into(),
            namespace: "ns".into(),
            identity: "me".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        };
        assert!(c.validate().is_ok());
        c.renew_deadline = Duration::from_secs(15);
        assert!(c.validate().is_err());
    }
}
