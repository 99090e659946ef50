//! The Cairn daemon: owns sockets and clocks and carries out what the
//! `cairn-core` state machines decide.
//!
//! Modules:
//! - [`node`]: a running node: the core behind a mutex, the driver task that
//!   carries out its actions and fires its timers, lookups and the ring walk.
//! - [`http`]: the HTTP API (axum), JSON errors everywhere.
//! - [`config`]: the daemon's settings (`NodeConfig`) and why they may not
//!   work (`NodeConfigError`).
//! - [`received`]: counts the records replication moved to this node.
//! - [`transport`]: QUIC between nodes (TLS from the node key, cluster key
//!   hello, length-prefixed postcard frames, one cached connection per peer).

pub mod config;
pub mod http;
pub mod node;
pub mod received;
pub mod transport;

/// The storage benchmark, for `cairn bench store` (the CLI reaches storage only through the node).
pub use cairn_store::bench as store_bench;
pub use config::{NodeConfig, NodeConfigError};
pub use node::{Node, NodeError};
