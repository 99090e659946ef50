//! Ranges of key ids, (after, through]: the value lives in
//! [`cairn_core::range`] (wire messages carry it); it is re-exported here
//! under its old paths for the store's callers.

pub use cairn_core::range::{KeyRange, Segments};
