//! Shards, pure: which shard a schedule is in, which live replica should own each shard, and
//! what a replica does with one shard's Lease. No client, no clock: `controller/election/leader.rs`
//! reads the Leases and acts on what this module decides (docs/shards.md).
//!
//! - A schedule's shard is XXH64 of `namespace/name` modulo the number of shards. XXH64 is a
//!   specified hash with fixed output (std's `DefaultHasher` may change between Rust releases,
//!   and two replicas built by different compilers must agree).
//! - The preferred owner of each shard is decided by rendezvous hashing with bounded loads:
//!   every (member, shard) pair gets a weight, XXH64 of the member's identity seeded with the
//!   shard; pairs are taken from the heaviest down, and a member takes a shard while it has
//!   fewer than its fair share (`shards / members`, one more for the first
//!   `shards % members` members to fill up). So every member ends with an even share (2
//!   replicas, 2 shards: one each), every replica computes the same answer from the same
//!   members, and a member joining or leaving moves about `1 / members` of the shards
//!   (plain rendezvous hashing moves the fewest, but can give one replica every shard).

use xxhash_rust::xxh64::xxh64;

/// The shard of the schedule `namespace/name` among `shards` (0 when there is one or none).
pub fn shard_of(namespace: &str, name: &str, shards: u32) -> u32 {
    if shards <= 1 {
        return 0;
    }
    let hash = xxh64(format!("{namespace}/{name}").as_bytes(), 0);
    // The remainder is below `shards`, a u32.
    u32::try_from(hash % u64::from(shards)).unwrap_or(0)
}

/// The Lease that owns shard `shard`.
pub fn shard_lease_name(lease: &str, shard: u32) -> String {
    format!("{lease}-shard-{shard}")
}

/// The membership Lease of the replica `identity`: a fixed-length hash keeps the name valid
/// whatever the identity (pod names may be long).
pub fn member_lease_name(lease: &str, identity: &str) -> String {
    format!("{}{:016x}", member_lease_prefix(lease), xxh64(identity.as_bytes(), 0))
}

fn member_lease_prefix(lease: &str) -> String {
    format!("{lease}-member-")
}

/// Whether `name` is a membership Lease of the group `lease` (and not of a group whose lease
/// name merely starts the same way).
pub fn is_member_lease(lease: &str, name: &str) -> bool {
    name.strip_prefix(&member_lease_prefix(lease))
        .is_some_and(|hash| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn weight(member: &str, shard: u32) -> u64 {
    xxh64(member.as_bytes(), u64::from(shard))
}

/// The preferred owner of every shard (index = shard) among `members`; `None` only when there
/// are no members. Order and duplicates in `members` do not matter.
pub fn assign<'a>(members: &[&'a str], shards: u32) -> Vec<Option<&'a str>> {
    let mut members = members.to_vec();
    members.sort_unstable();
    members.dedup();
    let mut owners = vec![None; shards as usize];
    if members.is_empty() {
        return owners;
    }
    let (fair, extra) = (owners.len() / members.len(), owners.len() % members.len());
    let mut pairs: Vec<(u64, usize, u32)> = members
        .iter()
        .enumerate()
        .flat_map(|(m, id)| (0..shards).map(move |s| (weight(id, s), m, s)))
        .collect();
    // Heaviest first; equal weights fall back to member and shard order, so the result is
    // the same everywhere.
    pairs.sort_unstable_by(|a, b| b.cmp(a));
    let mut load = vec![0usize; members.len()];
    let mut above_fair = 0;
    for (_, m, s) in pairs {
        let owner = &mut owners[s as usize];
        let room = load[m] < fair || (load[m] == fair && above_fair < extra);
        if owner.is_some() || !room {
            continue;
        }
        if load[m] == fair {
            above_fair += 1;
        }
        load[m] += 1;
        *owner = Some(members[m]);
    }
    owners
}

/// What one shard's Lease says, read with the replica's own clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// No Lease, no holder, or a holder that has not renewed for its lease duration.
    Free,
    Ours,
    /// Held by another replica that renews it.
    Theirs,
}

/// What a replica does with one shard's Lease in one round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseAction {
    Renew,
    Acquire,
    /// Stop writing, then clear the holder so the preferred owner takes it at once.
    Release,
    Wait,
}

/// `preferred`: this replica is the shard's preferred owner. `free_long`: the shard has been
/// free for longer than one lease duration, so its preferred owner is not taking it (gone, or
/// it sees other members): anyone may, so no shard stays unowned.
pub fn lease_action(state: LeaseState, preferred: bool, free_long: bool) -> LeaseAction {
    match state {
        LeaseState::Ours if preferred => LeaseAction::Renew,
        LeaseState::Ours => LeaseAction::Release,
        LeaseState::Free if preferred || free_long => LeaseAction::Acquire,
        LeaseState::Free | LeaseState::Theirs => LeaseAction::Wait,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    fn loads(owners: &[Option<&str>]) -> BTreeMap<String, usize> {
        let mut loads = BTreeMap::new();
        for o in owners {
            *loads
                .entry(o.expect("every shard has an owner").to_string())
                .or_default() += 1;
        }
        loads
    }

    #[test]
    fn the_hash_is_xxh64_and_shards_never_change_between_builds() {
        // XXH64's reference vector: the empty input with seed 0.
        assert_eq!(xxh64(b"", 0), 0xEF46_DB37_51D8_E999);
        // Pinned: a change here would move schedules between shards on an upgrade.
        let pinned: Vec<u32> = (0..8).map(|i| shard_of("default", &format!("s{i}"), 16)).collect();
        assert_eq!(pinned, PINNED_SHARDS);
        assert_eq!(shard_of("any", "thing", 1), 0);
        assert_eq!(shard_of("any", "thing", 0), 0);
    }

    // Checked against an independent XXH64 (the reference algorithm, written from its spec).
    const PINNED_SHARDS: [u32; 8] = [11, 5, 3, 13, 4, 15, 3, 12];

    #[test]
    fn schedules_spread_evenly_over_shards() {
        let mut counts = [0u32; 8];
        for i in 0..8000 {
            counts[shard_of(&format!("ns{}", i % 7), &format!("nightly-{i}"), 8) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (850..1150).contains(&c)), "{counts:?}");
    }

    #[test]
    fn every_member_gets_an_even_share() {
        for members in 1..=7 {
            for shards in 1..=24u32 {
                let ids = names("swf-operator-7d9f-", members);
                let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                let owners = assign(&refs, shards);
                let loads = loads(&owners);
                let (min, max) = (
                    loads.values().min().copied().unwrap_or(0),
                    loads.values().max().copied().unwrap_or(0),
                );
                let fewest = if loads.len() < members { 0 } else { min };
                assert!(max - fewest <= 1, "{members} members, {shards} shards: {loads:?}");
            }
        }
    }

    #[test]
    fn two_replicas_and_two_shards_get_one_each_whatever_their_names() {
        for i in 0..200 {
            let (a, b) = (format!("swf-operator-{i}-a"), format!("pod-{}", i * 7919));
            let owners = assign(&[a.as_str(), b.as_str()], 2);
            assert_ne!(owners[0], owners[1], "{a} {b}");
        }
    }

    #[test]
    fn the_answer_depends_only_on_the_set_of_members() {
        let ids = names("r", 5);
        let forward: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut backward = forward.clone();
        backward.reverse();
        backward.push(forward[2]);
        assert_eq!(assign(&forward, 32), assign(&backward, 32));
        assert_eq!(assign(&[], 3), vec![None, None, None]);
    }

    /// Shards whose owner differs between two assignments.
    fn moved(before: &[Option<&str>], after: &[Option<&str>]) -> usize {
        before.iter().zip(after).filter(|(b, a)| b != a).count()
    }

    #[test]
    fn a_member_joining_or_leaving_moves_about_one_share() {
        let shards = 64;
        for members in 2..=8 {
            let ids = names("swf-operator-5c6b8-", members + 1);
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let before = assign(&refs[..members], shards);
            let after = assign(&refs, shards);
            let share = shards as usize / (members + 1);
            let moves = moved(&before, &after);
            // The new member's share must move; a little more may, to even the others out.
            assert!(
                moves >= share && moves <= share + share / 2 + 2,
                "{members}→{}: {moves} moved, share {share}",
                members + 1
            );
            // Every shard that moved went to the newcomer, or evened the others out.
            let newcomer = refs[members];
            let to_newcomer = after.iter().filter(|o| **o == Some(newcomer)).count();
            assert!(to_newcomer >= share, "{to_newcomer}");
        }
    }

    #[test]
    fn a_member_leaving_hands_on_its_shards_and_keeps_the_rest_mostly_in_place() {
        let ids = names("replica-", 4);
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let before = assign(&refs, 40);
        let after = assign(&refs[..3], 40);
        let leaver: BTreeSet<usize> = (0..40).filter(|&s| before[s] == Some(refs[3])).collect();
        let others_moved = (0..40)
            .filter(|s| !leaver.contains(s) && before[*s] != after[*s])
            .count();
        assert!(others_moved <= 4, "{others_moved} shards of staying members moved");
    }

    #[test]
    fn what_a_replica_does_with_a_shard() {
        use LeaseState::*;
        assert_eq!(lease_action(Ours, true, false), LeaseAction::Renew);
        assert_eq!(lease_action(Ours, false, false), LeaseAction::Release);
        assert_eq!(lease_action(Free, true, false), LeaseAction::Acquire);
        assert_eq!(lease_action(Free, false, false), LeaseAction::Wait);
        assert_eq!(
            lease_action(Free, false, true),
            LeaseAction::Acquire,
            "no shard stays unowned"
        );
        assert_eq!(
            lease_action(Theirs, true, true),
            LeaseAction::Wait,
            "a held lease is never taken"
        );
    }

    #[test]
    fn lease_names() {
        let a = member_lease_name("swf-operator", "swf-operator-7d9f6c-abcde");
        assert_eq!(a, member_lease_name("swf-operator", "swf-operator-7d9f6c-abcde"));
        assert_ne!(a, member_lease_name("swf-operator", "swf-operator-7d9f6c-fghij"));
        assert_eq!(a.len(), "swf-operator-member-".len() + 16);
        assert!(is_member_lease("swf-operator", &a));
        assert!(!is_member_lease("swf", &a), "another group's prefix");
        assert!(!is_member_lease("swf-operator", "swf-operator-shard-0"));
        assert_eq!(shard_lease_name("swf-operator", 3), "swf-operator-shard-3");
    }
}
