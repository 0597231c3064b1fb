//! Leader election on `coordination.k8s.io/v1` Leases, so several replicas can run and each
//! schedule is written by one of them: with one shard (the default) the holder of the Lease
//! `--lease-name` writes every schedule; with `--shards N` each shard has its own Lease
//! `<lease-name>-shard-<i>` and replicas split the shards (docs/shards.md).
//!
//! A small module on kube's API rather than a crate: the reconciler needs to ask "may I write
//! *now*?" against a local deadline (`holds_for`), so that a replica that cannot renew stops
//! creating runs `lease - renew_deadline` before another replica may take the lease. The
//! crates checked (kube-lease-manager, kube-leader-election) publish a held/not-held flag that
//! only flips after a renewal call fails, which can take as long as the API server takes to
//! answer. Each Lease is held with client-go's rules (`lease.rs`), and a graceful shutdown
//! releases every Lease held.
//!
//! Sharding, with N > 1:
//! - Each replica renews a membership Lease `<lease-name>-member-<hash of identity>` every
//!   retry period and deletes it on a graceful shutdown. The live members are those whose
//!   membership Lease changed within its lease duration on our clock (`members.rs`).
//! - Every replica computes each shard's preferred owner from the live members
//!   (`shards::assign`: rendezvous hashing with bounded loads), so all replicas agree given the
//!   same view, and every member gets an even share.
//! - A replica acquires a free (or expired) shard Lease when it is the preferred owner, or when
//!   the shard has stayed free for longer than one lease duration (its preferred owner is gone
//!   or sees other members), so no shard stays unowned. It releases a shard it holds when
//!   another live member is preferred, stopping writes first; after a rolling restart the
//!   replica that briefly held everything hands shards back within one retry period.
//!
//! Safety never depends on any of this: runs are named deterministically per tick, so even two
//! writers at once (a view that lags, a paused process) cannot create a second run for a tick.
//! Leases only keep writers from doing the same work twice.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client, api::ListParams};
use tokio::sync::watch;
use tracing::{info, warn};

use super::{lease::Slot, members::Members};
use crate::{
    controller::election::shards::{self, LeaseAction, LeaseState},
    serve::metrics::Metrics,
};

/// Where the leases are and how they are held.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    /// How long a lease lasts without renewal before another replica may take it.
    pub lease_duration: Duration,
    /// A holder stops writing when it has not renewed for this long (< `lease_duration`).
    pub renew_deadline: Duration,
    /// How often to renew, or to try to acquire.
    pub retry_period: Duration,
    /// Shards the schedules are split into (1: one leader writes everything).
    pub shards: u32,
}

impl LeaseConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.renew_deadline >= self.lease_duration {
            return Err("the renew deadline must be shorter than the lease duration".into());
        }
        if self.retry_period >= self.renew_deadline {
            return Err("the retry period must be shorter than the renew deadline".into());
        }
        if self.shards == 0 {
            return Err("there must be at least one shard".into());
        }
        Ok(())
    }
}

#[derive(Debug)]
struct State {
    /// Per shard: writes are allowed until this instant (None: not held).
    until: Vec<Option<Instant>>,
    always: bool,
}

impl State {
    fn holds(&self, shard: usize) -> bool {
        self.always
            || self
                .until
                .get(shard)
                .copied()
                .flatten()
                .is_some_and(|t| Instant::now() < t)
    }
}

/// Which schedules this replica may write; shared by the election loop and the reconciler.
#[derive(Clone, Debug)]
pub struct Leader {
    state: Arc<Mutex<State>>,
    /// Counts shards gained: each change asks for a pass of every schedule.
    gains: watch::Sender<u64>,
}

impl Leader {
    /// Leader election off (`--leader-elect=false`, tests): owns every schedule.
    pub fn always() -> Self {
        Leader {
            state: Arc::new(Mutex::new(State {
                until: vec![None],
                always: true,
            })),
            gains: watch::Sender::new(1),
        }
    }

    fn elected(shards: u32) -> Self {
        Leader {
            state: Arc::new(Mutex::new(State {
                until: vec![None; shards.max(1) as usize],
                always: false,
            })),
            gains: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True while this replica holds at least one lease it renewed less than `renew_deadline`
    /// ago.
    pub fn holds(&self) -> bool {
        let s = self.lock();
        s.always || s.until.iter().any(|u| u.is_some_and(|t| Instant::now() < t))
    }

    /// True while this replica may write the schedule `namespace/name`: it holds the lease of
    /// its shard and renewed it less than `renew_deadline` ago.
    pub fn holds_for(&self, namespace: &str, name: &str) -> bool {
        let s = self.lock();
        let shards = u32::try_from(s.until.len()).unwrap_or(u32::MAX);
        s.holds(shards::shard_of(namespace, name, shards) as usize)
    }

    fn holds_shard(&self, shard: usize) -> bool {
        self.lock().holds(shard)
    }

    /// How many shards this replica may write now.
    pub fn held(&self) -> usize {
        let s = self.lock();
        (0..s.until.len()).filter(|&i| s.holds(i)).count()
    }

    /// Shards gained: every change of the value means this replica has gained one.
    pub fn gains(&self) -> watch::Receiver<u64> {
        self.gains.subscribe()
    }

    /// Sets a shard's deadline; returns the previous one.
    fn set(&self, shard: usize, until: Option<Instant>) -> Option<Instant> {
        let previous = match self.lock().until.get_mut(shard) {
            Some(slot) => std::mem::replace(slot, until),
            None => return None,
        };
        let was_held = previous.is_some_and(|t| Instant::now() < t);
        if until.is_some() && !was_held {
            self.gains.send_modify(|g| *g += 1);
        }
        previous
    }

    /// Clears a shard whose deadline passed without a renewal; true when it did.
    fn lapse(&self, shard: usize) -> bool {
        match self.lock().until.get_mut(shard) {
            Some(until) if until.is_some_and(|t| t <= Instant::now()) => {
                *until = None;
                true
            }
            _ => false,
        }
    }
}

/// Starts the election; returns the handle the reconciler asks and the loop to spawn.
pub fn start(client: Client, config: LeaseConfig, metrics: Arc<Metrics>) -> (Leader, Election) {
    let leader = Leader::elected(config.shards);
    let sharded = config.shards > 1;
    let shards = (0..config.shards.max(1))
        .map(|i| Shard {
            // One shard: the leader's Lease, named as it always was.
            slot: Slot::new(if sharded {
                shards::shard_lease_name(&config.name, i)
            } else {
                config.name.clone()
            }),
            free_since: None,
        })
        .collect();
    let election = Election {
        api: Api::namespaced(client, &config.namespace),
        members: sharded.then(|| Members::new(&config)),
        config,
        leader: leader.clone(),
        metrics,
        shards,
    };
    (leader, election)
}

/// One shard's Lease and since when (our clock) it has been free.
struct Shard {
    slot: Slot,
    free_since: Option<Instant>,
}

impl Shard {
    fn observe(&mut self, lease: Option<&Lease>, config: &LeaseConfig) -> LeaseState {
        let state = self.slot.observe(lease, config);
        match state {
            LeaseState::Free => {
                self.free_since.get_or_insert_with(Instant::now);
            }
            LeaseState::Ours | LeaseState::Theirs => self.free_since = None,
        }
        state
    }

    fn free_for_longer_than(&self, d: Duration) -> bool {
        self.free_since.is_some_and(|t| t.elapsed() > d)
    }
}

pub struct Election {
    api: Api<Lease>,
    config: LeaseConfig,
    leader: Leader,
    metrics: Arc<Metrics>,
    shards: Vec<Shard>,
    /// `None` with one shard: no membership, exactly the single leader Lease.
    members: Option<Members>,
}

impl Election {
    /// Acquires, renews, hands over or waits, every `retry_period`, until `stop` resolves;
    /// then releases what it holds, so other replicas take over at once.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        futures::pin_mut!(stop);
        loop {
            let attempt_started = Instant::now();
            let deadline = self.config.renew_deadline;
            match tokio::time::timeout(deadline, self.attempt(attempt_started)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(error = %e, lease = %self.config.name, "lease request failed"),
                Err(_) => warn!(lease = %self.config.name, "lease request timed out"),
            }
            self.settle();
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(self.config.retry_period) => {}
            }
        }
        self.release().await;
    }

    /// One round: read the leases, renew the membership, then one step per shard.
    async fn attempt(&mut self, started: Instant) -> Result<(), kube::Error> {
        let leases = self.read().await?;
        let members = match self.members.as_mut() {
            Some(m) => m.refresh(&self.api, &self.config, &leases).await,
            None => vec![self.config.identity.clone()],
        };
        let members: Vec<&str> = members.iter().map(String::as_str).collect();
        let owners = shards::assign(&members, self.config.shards);
        for (i, owner) in owners.into_iter().enumerate() {
            let lease = leases.get(&self.shards[i].slot.name).cloned();
            let preferred = owner == Some(self.config.identity.as_str());
            self.step_shard(i, lease, preferred, started).await;
        }
        Ok(())
    }

    /// The leases by name: one GET with one shard (as always), one LIST with more.
    async fn read(&self) -> Result<BTreeMap<String, Lease>, kube::Error> {
        let found = match self.members {
            None => self.api.get_opt(&self.config.name).await?.into_iter().collect(),
            Some(_) => self.api.list(&ListParams::default()).await?.items,
        };
        Ok(found
            .into_iter()
            .filter_map(|l| Some((l.metadata.name.clone()?, l)))
            .collect())
    }

    async fn step_shard(&mut self, i: usize, lease: Option<Lease>, preferred: bool, started: Instant) {
        let state = self.shards[i].observe(lease.as_ref(), &self.config);
        let free_long = self.shards[i].free_for_longer_than(self.config.lease_duration);
        match shards::lease_action(state, preferred, free_long) {
            LeaseAction::Renew | LeaseAction::Acquire => {
                let taken = self.shards[i].slot.take(&self.api, lease, &self.config).await;
                self.record(i, taken, started);
            }
            LeaseAction::Release => self.hand_over(i, lease).await,
            LeaseAction::Wait => self.record(i, Ok(false), started),
        }
    }

    /// Applies the outcome of a take: held until `renew_deadline` after the attempt started
    /// (the API server may have stamped it later), lost, or unchanged on an error (a holder
    /// keeps writing until its own deadline passes: `settle`).
    fn record(&mut self, i: usize, taken: Result<bool, kube::Error>, started: Instant) {
        let lease = &self.shards[i].slot.name;
        let identity = &self.config.identity;
        match taken {
            Ok(true) => {
                let previous = self.leader.set(i, Some(started + self.config.renew_deadline));
                if previous.is_none_or(|t| t <= Instant::now()) {
                    info!(%identity, %lease, shard = i, "acquired the lease");
                }
            }
            Ok(false) => {
                if self.leader.set(i, None).is_some() {
                    warn!(%identity, %lease, shard = i, "lost the lease");
                }
            }
            Err(e) => warn!(error = %e, %lease, "lease request failed"),
        }
    }

    /// Gives a shard to its preferred owner: writes stop before the holder is cleared.
    async fn hand_over(&mut self, i: usize, lease: Option<Lease>) {
        self.leader.set(i, None);
        let slot = &self.shards[i].slot;
        let Some(lease) = lease else { return };
        match slot.give_up(&self.api, lease, &self.config.identity).await {
            Ok(()) => info!(lease = %slot.name, shard = i, "released the lease to the shard's preferred owner"),
            Err(e) => warn!(error = %e, lease = %slot.name, "cannot release the lease"),
        }
    }

    /// Stops writing for shards whose renew deadline passed; keeps the gauges current.
    fn settle(&mut self) {
        for (i, shard) in self.shards.iter().enumerate() {
            if self.leader.lapse(i) {
                warn!(lease = %shard.slot.name, "not renewed within the renew deadline: stopped writing");
            }
        }
        self.metrics.set_held(self.leader.held());
    }

    /// On shutdown: stop writing, leave the membership, give up every lease held.
    async fn release(&mut self) {
        let held: Vec<usize> = (0..self.shards.len()).filter(|&i| self.leader.holds_shard(i)).collect();
        for &i in &held {
            self.leader.set(i, None);
        }
        self.metrics.set_held(0);
        let (api, identity) = (&self.api, &self.config.identity);
        let released = async {
            if let Some(members) = &self.members {
                members.leave(api).await;
            }
            for &i in &held {
                let slot = &self.shards[i].slot;
                match slot.read_and_give_up(api, identity).await {
                    Ok(()) => info!(lease = %slot.name, "released the lease"),
                    Err(e) => warn!(error = %e, lease = %slot.name, "cannot release the lease"),
                }
            }
        };
        if tokio::time::timeout(self.config.renew_deadline, released)
            .await
            .is_err()
        {
            warn!("releasing the leases timed out");
        }
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    /// A replica that has not won the election.
    pub fn not_leader() -> super::Leader {
        super::Leader::elected(1)
    }

    /// A replica holding the only lease (for an hour), until `lose` takes it away.
    pub fn holding() -> super::Leader {
        let leader = super::Leader::elected(1);
        let hour = std::time::Duration::from_secs(3600);
        leader.set(0, Some(std::time::Instant::now() + hour));
        leader
    }

    /// The lease lapses (another replica took it).
    pub fn lose(leader: &super::Leader) {
        leader.set(0, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_only_until_the_local_deadline() {
        let l = Leader::elected(1);
        assert!(!l.holds());
        let rx = l.gains();
        l.set(0, Some(Instant::now() + Duration::from_secs(60)));
        assert!(l.holds());
        assert!(l.holds_for("any", "schedule"));
        assert_eq!(*rx.borrow(), 1, "a gain asks for a pass of every schedule");
        l.set(0, Some(Instant::now() - Duration::from_millis(1)));
        assert!(!l.holds(), "past its renew deadline a leader stops writing");
        assert!(l.lapse(0));
        assert!(Leader::always().holds());
        assert!(Leader::always().holds_for("any", "schedule"));
        assert_eq!(Leader::always().held(), 1, "everything, as one shard");
    }

    #[test]
    fn a_replica_writes_only_the_schedules_of_its_shards() {
        let l = Leader::elected(4);
        l.set(2, Some(Instant::now() + Duration::from_secs(60)));
        assert_eq!(l.held(), 1);
        let names: Vec<String> = (0..200).map(|i| format!("s{i}")).collect();
        for name in &names {
            let mine = shards::shard_of("ns", name, 4) == 2;
            assert_eq!(l.holds_for("ns", name), mine, "{name}");
        }
        let rx = l.gains();
        l.set(2, Some(Instant::now() + Duration::from_secs(90)));
        assert_eq!(*rx.borrow(), 1, "a renewal is no gain");
        l.set(3, Some(Instant::now() + Duration::from_secs(90)));
        assert_eq!(*rx.borrow(), 2);
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
            shards: 1,
        };
        assert!(c.validate().is_ok());
        c.renew_deadline = Duration::from_secs(15);
        assert!(c.validate().is_err());
        c.renew_deadline = Duration::from_secs(10);
        c.shards = 0;
        assert!(c.validate().is_err());
    }
}
