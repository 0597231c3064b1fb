//! Leader election and shards (docs/shards.md): `leader` runs the election, `lease` holds one
//! Lease by client-go's rules, `members` keeps this replica's membership Lease, and `shards`
//! (pure) decides which replica owns which shard.
pub mod leader;
mod lease;
mod members;
pub mod shards;
