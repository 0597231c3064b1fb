//! One `coordination.k8s.io/v1` Lease, held with client-go's leaderelection rules: a lease is
//! expired when its record has not changed for its lease duration on *our* clock (no
//! clock-skew assumptions), every write carries the resourceVersion read (a compare-and-swap:
//! one winner), and giving it up clears the holder so another replica takes it at once.
//! Used for the leader's Lease, for each shard's and for each replica's membership Lease
//! (`leader.rs`).

use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::Api;

use super::{leader::LeaseConfig, shards::LeaseState};

/// What we last saw of the lease and when (our clock).
struct Observed {
    holder: Option<String>,
    renew: Option<Timestamp>,
    at: Instant,
}

/// One Lease by name, with what this replica has observed of it.
pub struct Slot {
    pub name: String,
    observed: Option<Observed>,
}

impl Slot {
    pub fn new(name: String) -> Self {
        Slot { name, observed: None }
    }

    /// Records the lease as read (`None`: it does not exist) and says who holds it now.
    pub fn observe(&mut self, lease: Option<&Lease>, config: &LeaseConfig) -> LeaseState {
        let Some(spec) = lease.map(|l| l.spec.clone().unwrap_or_default()) else {
            self.observed = None;
            return LeaseState::Free;
        };
        let holder = spec.holder_identity.filter(|h| !h.is_empty());
        let renew = spec.renew_time.map(|t| t.0);
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
        let duration = spec.lease_duration_seconds.map_or(config.lease_duration, |s| {
            Duration::from_secs(s.max(1).unsigned_abs().into())
        });
        let expired = self.quiet_for().is_some_and(|q| q > duration);
        match holder {
            Some(h) if h == config.identity => LeaseState::Ours,
            Some(_) if !expired => LeaseState::Theirs,
            _ => LeaseState::Free,
        }
    }

    /// How long the lease's record has not changed, on our clock (`None`: never seen).
    pub fn quiet_for(&self) -> Option<Duration> {
        self.observed.as_ref().map(|o| o.at.elapsed())
    }

    /// Creates the lease (`lease` is `None`) or takes or renews it with the resourceVersion it
    /// was read with. True when this replica holds it afterwards.
    pub async fn take(
        &self,
        api: &Api<Lease>,
        lease: Option<Lease>,
        config: &LeaseConfig,
    ) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let written = match lease {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        namespace: Some(config.namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(fresh_spec(None, config, now)),
                };
                api.create(&crate::controller::post_params(), &lease).await
            }
            Some(mut lease) => {
                lease.spec = Some(fresh_spec(lease.spec.as_ref(), config, now));
                api.replace(&self.name, &crate::controller::post_params(), &lease).await
            }
        };
        match written {
            Ok(_) => Ok(true),
            // Another replica wrote first: it won.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Clears the holder of `lease` (as read) if it is this replica, so another replica may take
    /// it at once.
    pub async fn give_up(&self, api: &Api<Lease>, mut lease: Lease, identity: &str) -> Result<(), kube::Error> {
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(identity) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        api.replace(&self.name, &crate::controller::post_params(), &lease)
            .await
            .map(|_| ())
    }

    /// As `give_up`, reading the lease first (on shutdown, when no recent read is at hand).
    pub async fn read_and_give_up(&self, api: &Api<Lease>, identity: &str) -> Result<(), kube::Error> {
        match api.get_opt(&self.name).await? {
            Some(lease) => self.give_up(api, lease, identity).await,
            None => Ok(()),
        }
    }
}

/// The spec this replica writes when it takes or renews a lease.
fn fresh_spec(previous: Option<&LeaseSpec>, config: &LeaseConfig, now: Timestamp) -> LeaseSpec {
    let ours = previous.and_then(|p| p.holder_identity.as_deref()) == Some(config.identity.as_str());
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(i32::try_from(config.lease_duration.as_secs()).unwrap_or(i32::MAX)),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LeaseConfig {
        LeaseConfig {
            name: "l".into(),
            namespace: "ns".into(),
            identity: "me".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            shards: 1,
        }
    }

    fn held_by(holder: &str, seconds: i32) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(seconds),
                renew_time: Some(MicroTime(Timestamp::UNIX_EPOCH)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn who_holds_a_lease_is_read_with_our_clock() {
        let mut slot = Slot::new("l".into());
        let c = config();
        assert_eq!(slot.observe(None, &c), LeaseState::Free);
        assert_eq!(slot.observe(Some(&held_by("me", 15)), &c), LeaseState::Ours);
        // A renewTime far in the past does not make it expired: only our clock counts.
        assert_eq!(slot.observe(Some(&held_by("other", 15)), &c), LeaseState::Theirs);
        assert_eq!(slot.observe(Some(&held_by("", 15)), &c), LeaseState::Free);
        let mut quick = Slot::new("q".into());
        quick.observe(Some(&held_by("other", 1)), &c);
        if let Some(o) = quick.observed.as_mut() {
            o.at = o.at.checked_sub(Duration::from_secs(2)).unwrap();
        }
        assert_eq!(
            quick.observe(Some(&held_by("other", 1)), &c),
            LeaseState::Free,
            "unchanged past its duration"
        );
    }

    #[test]
    fn taking_over_counts_a_transition_renewing_does_not() {
        let c = config();
        let now = Timestamp::UNIX_EPOCH;
        let mut theirs = held_by("other", 15).spec.unwrap_or_default();
        theirs.lease_transitions = Some(4);
        assert_eq!(fresh_spec(Some(&theirs), &c, now).lease_transitions, Some(5));
        let renewed = fresh_spec(Some(&fresh_spec(None, &c, now)), &c, now);
        assert_eq!(renewed.lease_transitions, Some(1));
        assert_eq!(renewed.holder_identity.as_deref(), Some("me"));
    }
}
