//! Membership for shards: who is running. Each replica renews its own Lease
//! `<lease-name>-member-<hash of identity>` (holderIdentity = identity) every retry period and
//! deletes it on a graceful shutdown. A member is live while its Lease changed within its lease
//! duration on our clock (a Lease seen for the first time counts as just changed, as in
//! client-go). Leases left by crashed replicas are deleted by anyone once they have been quiet
//! for `LEFTOVER_AFTER` lease durations.

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api,
    api::{DeleteParams, Preconditions},
};
use tracing::{info, warn};

use super::{
    leader::LeaseConfig,
    lease::Slot,
    shards::{self, LeaseState},
};

/// A membership Lease quiet for this many lease durations belongs to a replica that is gone.
const LEFTOVER_AFTER: u32 = 10;

pub struct Members {
    own: Slot,
    /// Other replicas' membership Leases, by name.
    others: BTreeMap<String, Slot>,
}

impl Members {
    pub fn new(config: &LeaseConfig) -> Self {
        Members {
            own: Slot::new(shards::member_lease_name(&config.name, &config.identity)),
            others: BTreeMap::new(),
        }
    }

    /// Renews this replica's membership, deletes leftovers, and returns the identities of the
    /// live members (this replica's always among them).
    pub async fn refresh(
        &mut self,
        api: &Api<Lease>,
        config: &LeaseConfig,
        leases: &BTreeMap<String, Lease>,
    ) -> Vec<String> {
        self.renew(api, config, leases.get(&self.own.name).cloned()).await;
        self.others.retain(|name, _| leases.contains_key(name));
        let mut live = vec![config.identity.clone()];
        let theirs = leases
            .iter()
            .filter(|(name, _)| shards::is_member_lease(&config.name, name) && **name != self.own.name);
        for (name, lease) in theirs {
            let slot = self
                .others
                .entry(name.clone())
                .or_insert_with(|| Slot::new(name.clone()));
            match slot.observe(Some(lease), config) {
                LeaseState::Theirs | LeaseState::Ours => {
                    live.extend(lease.spec.as_ref().and_then(|s| s.holder_identity.clone()));
                }
                LeaseState::Free
                    if slot
                        .quiet_for()
                        .is_some_and(|q| q > config.lease_duration * LEFTOVER_AFTER) =>
                {
                    delete_leftover(api, lease).await;
                }
                LeaseState::Free => {}
            }
        }
        live
    }

    async fn renew(&mut self, api: &Api<Lease>, config: &LeaseConfig, lease: Option<Lease>) {
        if self.own.observe(lease.as_ref(), config) == LeaseState::Theirs {
            // Two identities with one hash: the other keeps it; we still count ourselves.
            warn!(lease = %self.own.name, "the membership lease is held by another identity");
            return;
        }
        if let Err(e) = self.own.take(api, lease, config).await {
            warn!(error = %e, lease = %self.own.name, "cannot renew the membership lease");
        }
    }

    /// Deletes this replica's membership Lease (graceful shutdown), so others reassign its
    /// shards at once instead of after a lease duration.
    pub async fn leave(&self, api: &Api<Lease>) {
        match api.delete(&self.own.name, &DeleteParams::default()).await {
            Ok(_) => info!(lease = %self.own.name, "left the members"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => warn!(error = %e, lease = %self.own.name, "cannot delete the membership lease"),
        }
    }
}

/// Deletes a crashed replica's membership Lease, only as it was read (a replica that came back
/// and renewed it in between keeps it).
async fn delete_leftover(api: &Api<Lease>, lease: &Lease) {
    let Some(name) = lease.metadata.name.as_deref() else {
        return;
    };
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: lease.metadata.resource_version.clone(),
            uid: lease.metadata.uid.clone(),
        }),
        ..Default::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => info!(lease = %name, "deleted the membership lease of a replica that is gone"),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
        Err(e) => warn!(error = %e, lease = %name, "cannot delete a leftover membership lease"),
    }
}
