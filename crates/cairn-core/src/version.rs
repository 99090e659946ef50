//! Versions of records: a hybrid logical clock (HLC) timestamp with the
//! writer's node id as tie-break, so that every replica orders any two writes
//! the same way and the newer one wins everywhere (last writer wins).
//!
//! An HLC timestamp is (physical milliseconds, logical counter). The physical
//! part follows the wall clock that the caller reads and passes in as `now`
//! (milliseconds since the UNIX epoch); the logical part counts events within
//! one millisecond, and keeps the clock moving forward when the wall clock
//! steps back or when a remote timestamp from a faster clock is seen.
//!
//! Invariants kept by [`Hlc`]:
//! - every timestamp it hands out is strictly greater than every one it handed
//!   out before, and than every remote one it accepted, whatever `now` does;
//! - its physical part never runs ahead of `max(now, remote physical)`, so the
//!   clock stays close to real time;
//! - a remote timestamp more than `max_drift_ms` ahead of `now` is refused (a
//!   peer with a broken clock must not drag every clock into the future).
//!
//! [`Version`] orders by timestamp, then node id: a total order. Its byte form
//! ([`Version::to_bytes`]) is big-endian, so comparing bytes compares
//! versions; storage keeps and hashes that form.

use crate::id::{Id, NodeId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A hybrid logical clock reading: physical milliseconds, then a logical
/// counter. Ordered by physical time, then counter.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct HlcTimestamp {
    /// Milliseconds since the UNIX epoch, as far as the clock knows.
    pub physical_ms: u64,
    /// Events within the same physical millisecond.
    pub logical: u32,
}

impl HlcTimestamp {
    /// The smallest timestamp.
    pub const ZERO: HlcTimestamp = HlcTimestamp {
        physical_ms: 0,
        logical: 0,
    };

    /// The next timestamp after `self`: one more logical tick, or the next
    /// millisecond when the counter is full.
    fn successor(self) -> HlcTimestamp {
        match self.logical.checked_add(1) {
            Some(logical) => HlcTimestamp {
                physical_ms: self.physical_ms,
                logical,
            },
            None => HlcTimestamp {
                physical_ms: self.physical_ms.saturating_add(1),
                logical: 0,
            },
        }
    }
}

impl fmt::Debug for HlcTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.physical_ms, self.logical)
    }
}

/// The default bound on how far ahead of our clock a remote timestamp may be.
pub const DEFAULT_MAX_DRIFT_MS: u64 = 60_000;

/// A hybrid logical clock. Pure: the caller reads the wall clock and passes
/// `now` (milliseconds since the UNIX epoch) to each call.
#[derive(Clone, Debug)]
pub struct Hlc {
    last: HlcTimestamp,
    max_drift_ms: u64,
}

/// A remote timestamp too far ahead of our clock to accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "a remote clock is {ahead_ms} ms ahead of ours (the limit is {max_drift_ms} ms): check the clocks of both machines"
)]
pub struct ClockDriftError {
    /// How far ahead of `now` the remote timestamp was.
    pub ahead_ms: u64,
    /// The limit in force.
    pub max_drift_ms: u64,
}

impl Hlc {
    /// A clock that has handed out nothing yet, refusing remote timestamps
    /// more than `max_drift_ms` ahead of `now`.
    pub fn new(max_drift_ms: u64) -> Hlc {
        Hlc {
            last: HlcTimestamp::ZERO,
            max_drift_ms,
        }
    }

    /// A clock that continues after `last` (e.g. the newest version found in
    /// storage at start), so that a restart with a clock that stepped back
    /// still hands out newer timestamps.
    pub fn resume(last: HlcTimestamp, max_drift_ms: u64) -> Hlc {
        Hlc { last, max_drift_ms }
    }

    /// The last timestamp handed out or accepted.
    pub fn last(&self) -> HlcTimestamp {
        self.last
    }

    /// A timestamp for a local event (a write): strictly after every earlier
    /// one, and at `now` if the wall clock has moved past them.
    pub fn tick(&mut self, now_ms: u64) -> HlcTimestamp {
        let next = if now_ms > self.last.physical_ms {
            HlcTimestamp {
                physical_ms: now_ms,
                logical: 0,
            }
        } else {
            self.last.successor()
        };
        self.last = next;
        next
    }

    /// Takes in a timestamp seen from another node (a replicated write), so
    /// that what this clock hands out next is after it. Returns the merged
    /// reading, itself after both `remote` and every earlier local one.
    pub fn observe(
        &mut self,
        now_ms: u64,
        remote: HlcTimestamp,
    ) -> Result<HlcTimestamp, ClockDriftError> {
        let ahead_ms = remote.physical_ms.saturating_sub(now_ms);
        if ahead_ms > self.max_drift_ms {
            return Err(ClockDriftError {
                ahead_ms,
                max_drift_ms: self.max_drift_ms,
            });
        }
        let newest_seen = self.last.max(remote);
        let next = if now_ms > newest_seen.physical_ms {
            HlcTimestamp {
                physical_ms: now_ms,
                logical: 0,
            }
        } else {
            newest_seen.successor()
        };
        self.last = next;
        Ok(next)
    }
}

impl Default for Hlc {
    fn default() -> Hlc {
        Hlc::new(DEFAULT_MAX_DRIFT_MS)
    }
}

/// The version of a record: who wrote it when. Ordered by timestamp, then by
/// the writer's node id, so two versions are equal only if they are the same
/// write.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Version {
    /// When, by the writer's hybrid logical clock.
    pub timestamp: HlcTimestamp,
    /// The writer: breaks ties between writes at the same timestamp.
    pub node: NodeId,
}

impl Version {
    /// The length of the byte form.
    pub const ENCODED_LEN: usize = 8 + 4 + 32;

    /// The smallest version; every real write is newer.
    pub const ZERO: Version = Version {
        timestamp: HlcTimestamp::ZERO,
        node: NodeId(Id::ZERO),
    };

    /// A version at `timestamp` by `node`.
    pub fn new(timestamp: HlcTimestamp, node: NodeId) -> Version {
        Version { timestamp, node }
    }

    /// Big-endian physical ms, logical counter, node id: comparing these bytes
    /// compares versions.
    pub fn to_bytes(&self) -> [u8; Version::ENCODED_LEN] {
        let mut out = [0u8; Version::ENCODED_LEN];
        out[..8].copy_from_slice(&self.timestamp.physical_ms.to_be_bytes());
        out[8..12].copy_from_slice(&self.timestamp.logical.to_be_bytes());
        out[12..].copy_from_slice(&self.node.0.0);
        out
    }

    /// The inverse of [`Version::to_bytes`]; every byte string of the right
    /// length is a version.
    pub fn from_bytes(bytes: &[u8; Version::ENCODED_LEN]) -> Version {
        let mut physical = [0u8; 8];
        physical.copy_from_slice(&bytes[..8]);
        let mut logical = [0u8; 4];
        logical.copy_from_slice(&bytes[8..12]);
        let mut node = [0u8; 32];
        node.copy_from_slice(&bytes[12..]);
        Version {
            timestamp: HlcTimestamp {
                physical_ms: u64::from_be_bytes(physical),
                logical: u32::from_be_bytes(logical),
            },
            node: NodeId(Id(node)),
        }
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({:?}@{})", self.timestamp, self.node.short())
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}@{}",
            self.timestamp.physical_ms,
            self.timestamp.logical,
            self.node.short()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(n: u8) -> NodeId {
        NodeId(Id([n; 32]))
    }

    fn ts(physical_ms: u64, logical: u32) -> HlcTimestamp {
        HlcTimestamp {
            physical_ms,
            logical,
        }
    }

    #[test]
    fn tick_follows_the_wall_clock_when_it_moves_forward() {
        let mut clock = Hlc::default();
        assert_eq!(clock.tick(1_000), ts(1_000, 0));
        assert_eq!(clock.tick(1_005), ts(1_005, 0));
    }

    #[test]
    fn tick_counts_within_one_millisecond() {
        let mut clock = Hlc::default();
        clock.tick(1_000);
        assert_eq!(clock.tick(1_000), ts(1_000, 1));
        assert_eq!(clock.tick(1_000), ts(1_000, 2));
    }

    #[test]
    fn tick_keeps_going_forward_when_the_wall_clock_steps_back() {
        let mut clock = Hlc::default();
        clock.tick(5_000);
        assert_eq!(clock.tick(1_000), ts(5_000, 1));
    }

    #[test]
    fn a_full_logical_counter_moves_to_the_next_millisecond() {
        let mut clock = Hlc::resume(ts(7, u32::MAX), DEFAULT_MAX_DRIFT_MS);
        assert_eq!(clock.tick(7), ts(8, 0));
    }

    #[test]
    fn observing_a_faster_clock_moves_past_it() {
        let mut clock = Hlc::default();
        clock.tick(1_000);
        let merged = clock.observe(1_000, ts(1_500, 3)).expect("within drift");
        assert_eq!(merged, ts(1_500, 4));
        assert!(clock.tick(1_001) > ts(1_500, 3));
    }

    #[test]
    fn observing_a_slower_clock_follows_ours() {
        let mut clock = Hlc::default();
        clock.tick(2_000);
        assert_eq!(clock.observe(2_100, ts(1_000, 9)), Ok(ts(2_100, 0)));
    }

    #[test]
    fn a_remote_clock_too_far_ahead_is_refused_and_changes_nothing() {
        let mut clock = Hlc::new(100);
        clock.tick(1_000);
        let error = clock.observe(1_000, ts(1_101, 0)).expect_err("too far");
        assert_eq!(error.ahead_ms, 101);
        assert_eq!(clock.last(), ts(1_000, 0));
        assert!(clock.observe(1_000, ts(1_100, 0)).is_ok());
    }

    #[test]
    fn equal_timestamps_are_ordered_by_node() {
        let a = Version::new(ts(5, 0), node(1));
        let b = Version::new(ts(5, 0), node(2));
        assert!(a < b);
        assert!(Version::new(ts(5, 1), node(1)) > b);
    }

    #[test]
    fn byte_form_is_pinned() {
        let version = Version::new(ts(0x0102, 0x0304), node(0xab));
        let bytes = version.to_bytes();
        assert_eq!(&bytes[..12], &[0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4]);
        assert_eq!(&bytes[12..], &[0xab; 32]);
    }

    fn any_timestamp() -> impl Strategy<Value = HlcTimestamp> {
        prop_oneof![
            (0u64..4, 0u32..3).prop_map(|(p, l)| ts(p, l)),
            (any::<u64>(), any::<u32>()).prop_map(|(p, l)| ts(p, l)),
        ]
    }

    fn any_version() -> impl Strategy<Value = Version> {
        (any_timestamp(), 0u8..3).prop_map(|(t, n)| Version::new(t, node(n)))
    }

    /// One thing that can happen to a clock: a local write at a wall-clock
    /// reading, or a remote timestamp arriving.
    #[derive(Clone, Debug)]
    enum Event {
        Tick { now: u64 },
        Observe { now: u64, remote: HlcTimestamp },
    }

    fn events() -> impl Strategy<Value = Vec<Event>> {
        // Wall-clock readings wander up and down around 10_000 (steps back
        // included); remote clocks lead or lag by up to 2 s.
        let event = prop_oneof![
            (9_000u64..11_000).prop_map(|now| Event::Tick { now }),
            (9_000u64..11_000, 0u64..4_000, 0u32..5).prop_map(|(now, offset, logical)| {
                Event::Observe {
                    now,
                    remote: ts(now + offset - 2_000, logical),
                }
            }),
        ];
        proptest::collection::vec(event, 1..200)
    }

    proptest! {
        /// Whatever the wall clock and the remote clocks do, each reading is
        /// after the previous one and after every remote one accepted, and
        /// never ahead of the newest physical time seen.
        #[test]
        fn readings_are_strictly_monotonic(events in events()) {
            let mut clock = Hlc::new(5_000);
            let mut previous = HlcTimestamp::ZERO;
            let mut newest_physical = 0u64;
            for event in events {
                let reading = match event {
                    Event::Tick { now } => {
                        newest_physical = newest_physical.max(now);
                        clock.tick(now)
                    }
                    Event::Observe { now, remote } => {
                        newest_physical = newest_physical.max(now).max(remote.physical_ms);
                        let merged = clock.observe(now, remote).expect("within drift");
                        prop_assert!(merged > remote);
                        merged
                    }
                };
                prop_assert!(reading > previous, "{:?} after {:?}", reading, previous);
                prop_assert!(reading.physical_ms <= newest_physical);
                previous = reading;
            }
        }

        /// Two clocks that exchange timestamps produce causally ordered
        /// versions: a write made after seeing another is newer than it.
        #[test]
        fn a_write_after_a_merge_is_newer_than_what_was_merged(
            a_now in 0u64..1_000, b_now in 0u64..1_000, a_steps in 1usize..5,
        ) {
            let mut a = Hlc::new(10_000);
            let mut b = Hlc::new(10_000);
            let mut sent = a.tick(a_now);
            for step in 1..a_steps {
                sent = a.tick(a_now.saturating_sub(step as u64));
            }
            let sent = Version::new(sent, node(9));
            b.observe(b_now, sent.timestamp).expect("within drift");
            let reply = Version::new(b.tick(b_now), node(0));
            prop_assert!(reply > sent);
        }

        /// Version order is total and antisymmetric, transitive, and the same
        /// as the order of the byte forms.
        #[test]
        fn version_order_is_total_and_matches_bytes(
            a in any_version(), b in any_version(), c in any_version(),
        ) {
            prop_assert_eq!(a.cmp(&b), a.to_bytes().cmp(&b.to_bytes()));
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            prop_assert_eq!(a == b, a.to_bytes() == b.to_bytes());
            if a <= b && b <= c {
                prop_assert!(a <= c);
            }
        }

        #[test]
        fn bytes_round_trip(a in any_version()) {
            prop_assert_eq!(Version::from_bytes(&a.to_bytes()), a);
        }
    }
}
