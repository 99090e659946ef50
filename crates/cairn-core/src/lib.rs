//! # cairn-core
//!
//! The pure logic of Cairn: no IO, no async, no clock, no global RNG. Time comes
//! in as an argument ([`host::Time`]: a monotonic `now` since an origin the
//! caller picks, and wall-clock milliseconds for versions) and randomness from
//! a seed given at construction. The tokio node (`cairn-node`) and the
//! simulator (`cairn-sim`) drive the same [`Host`].
//!
//! Map of the modules:
//!
//! - [`host`]: the host the node and the simulator drive: owns the state
//!   machines, routes requests, answers, failures and timers to each, and
//!   lets a machine answer a request later.
//! - [`rpc`]: the ids of requests in flight, sent and received.
//! - [`kv`]: replication: the coordinator of client puts, deletes and gets
//!   (quorums, read repair) and the replica side.
//! - [`storage`]: the storage work the core asks for, and its outcome.
//! - [`id`]: 256-bit ring points and the `NodeId` / `KeyId` newtypes.
//! - [`interval`]: open and half-open intervals that wrap around the ring.
//! - [`range`]: ranges of key ids, (after, through], and their segments.
//! - [`routing`]: the routing table: predecessor, successor list, fingers.
//! - [`lookup`]: one iterative lookup as a small state machine.
//! - [`ring`]: the membership state machine (join, stabilize, notify, leave,
//!   fingers, merge probes) that owns a routing table and drives lookups;
//!   one child module per concept.
//! - [`liveness`]: which peers are believed dead, from what evidence.
//! - [`rtt`]: adaptive request timeouts from measured round trips.
//! - [`limits`]: limits on client input (key length), named and checked at the edge.
//! - [`config`]: the protocol's settings, with defaults and `validate()`.
//! - [`rng`]: the seeded RNG (SplitMix64).
//! - [`version`]: record versions: a hybrid logical clock and (timestamp, node id).
//! - [`record`]: records (key id → key, version, value or tombstone), their
//!   limits and last-writer-wins; their disk form lives in the store.
//! - [`digest`]: the digest tree of anti-entropy: fixed id buckets, tree nodes
//!   that are always in bounds, node digests; the store keeps the running sums.
//! - [`wire`]: the messages nodes exchange (their encoding lives in the node).
//! - [`api`]: the JSON shapes of the HTTP API, shared by node and client.

pub mod api;
pub mod config;
pub mod digest;
pub mod host;
pub mod id;
pub mod interval;
pub mod kv;
pub mod limits;
pub mod liveness;
pub mod lookup;
pub mod range;
pub mod record;
pub mod ring;
pub mod rng;
pub mod routing;
pub mod rpc;
pub mod rtt;
pub mod storage;
pub mod version;
pub mod wire;

#[cfg(test)]
mod test_support;

pub use config::{Faults, RingConfig};
pub use host::{Action, Event, Host, Reply, Time};
pub use id::{Id, KeyId, NodeId};
pub use ring::{LookupAnswer, LookupId, Phase, RingEvent, RingNode};
pub use rpc::{InboundId, RpcId};
pub use wire::Peer;
