//! # cairn-core
//!
//! The pure logic of Cairn: no IO, no async, no clock, no global RNG. Time comes
//! in as an argument (`now`, a [`std::time::Duration`] since an origin the
//! caller picks) and randomness from a seed given at construction. The tokio
//! node (`cairn-node`) and the simulator (`cairn-sim`) drive the same code.
//!
//! Map of the modules:
//!
//! - [`id`]: 256-bit ring points and the `NodeId` / `KeyId` newtypes.
//! - [`interval`]: open and half-open intervals that wrap around the ring.
//! - [`wire`]: the messages nodes exchange (their encoding lives in the node).
//! - [`api`]: the JSON shapes of the HTTP API, shared by node and client.

pub mod api;
pub mod id;
pub mod interval;
pub mod wire;

pub use id::{Id, KeyId, NodeId};
pub use wire::Peer;
