//! # cairn-sim
//!
//! A deterministic simulator that drives the very same `cairn-core` state
//! machines as the real node, over a simulated network with a virtual clock:
//! ten thousand nodes fit in one process, and any run is reproducible from its
//! seed, event for event.
//!
//! Map of the modules:
//!
//! - [`sim`]: the event loop, the nodes, and the truth (who is a member).
//! - [`network`]: latency, loss and partitions.
//! - [`check`]: the ring invariants, checked against the true membership.
//! - [`model`]: the key/value workload's model of acknowledged operations,
//!   judging what the live stores hold and what reads answered.
//! - [`coverage`]: keys under R live copies, sampled while the run goes.
//! - [`scenario`]: build, settle, churn, converge, final lookups.
//! - [`report`]: what a run measured, as text and JSON.
//! - [`sweep`]: hops against ring size, as a table and an SVG plot.
//! - [`duration`]: `90s`, `30m`, `2h` on the command line.

pub mod check;
pub mod coverage;
pub mod duration;
pub mod model;
pub mod network;
pub mod report;
pub mod scenario;
pub mod sim;
pub mod sweep;

pub use report::Report;
pub use scenario::{Scenario, run, wide_area_ring};
