//! Ranges of key ids on the ring, as Chord hands them out: the half-open arc
//! (after, through], which wraps past 2^256 - 1 to 0 when `after > through`.
//! "Everything between my predecessor and me" is `KeyRange::new(pred, me)`.
//! When both ends are equal the range is the whole ring (a ring of one node
//! owns everything), as in [`crate::interval::between_right_closed`].
//!
//! Every pair of ends names a range, so a [`KeyRange`] read from a peer needs
//! no check. Storage walks a range as at most two non-wrapping segments of
//! ids, so that scans and digests can use ordered lookups.
//!
//! Invariant: [`KeyRange::segments`] covers exactly the ids of the arc, each
//! once, in clockwise order from `after` (checked by the property tests
//! below).

use crate::id::{Id, KeyId};
use crate::interval::between_right_closed;
use serde::{Deserialize, Serialize};

/// The arc (after, through] of the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyRange {
    /// The exclusive start: the arc begins just after this point.
    pub after: Id,
    /// The inclusive end.
    pub through: Id,
}

impl KeyRange {
    /// The arc (after, through]; the whole ring when the ends are equal.
    pub fn new(after: Id, through: Id) -> KeyRange {
        KeyRange { after, through }
    }

    /// The whole ring.
    pub fn whole() -> KeyRange {
        KeyRange::new(Id::ZERO, Id::ZERO)
    }

    /// True if the arc is the whole ring.
    pub fn is_whole(&self) -> bool {
        self.after == self.through
    }

    /// True if `key_id` lies in the arc.
    pub fn contains(&self, key_id: KeyId) -> bool {
        between_right_closed(self.after, key_id.0, self.through)
    }

    /// The rest of the arc after `last`, for paging through a scan: the next
    /// page is `(last, through]`. `None` when `last` is the end of the arc.
    pub fn rest_after(&self, last: KeyId) -> Option<KeyRange> {
        (last.0 != self.through).then(|| KeyRange::new(last.0, self.through))
    }

    /// The arc as non-wrapping, inclusive segments `[low, high]` of ids, in
    /// clockwise order from `after`: one or two of them, never empty.
    pub fn segments(&self) -> Segments {
        let start = self.after.wrapping_add(Id::pow2(0));
        if self.is_whole() {
            // Clockwise from `after`: (after, MAX] then [0, after].
            return if self.after == Id::MAX {
                Segments::one(Id::ZERO, Id::MAX)
            } else {
                Segments::two((start, Id::MAX), (Id::ZERO, self.after))
            };
        }
        if self.after < self.through {
            Segments::one(start, self.through)
        } else if self.after == Id::MAX {
            Segments::one(Id::ZERO, self.through)
        } else {
            Segments::two((start, Id::MAX), (Id::ZERO, self.through))
        }
    }
}

/// One or two inclusive id segments; see [`KeyRange::segments`]. Not a wire
/// value: it is always computed from a range, never read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segments {
    parts: [(Id, Id); 2],
    len: usize,
}

impl Segments {
    fn one(low: Id, high: Id) -> Segments {
        Segments {
            parts: [(low, high), (low, high)],
            len: 1,
        }
    }

    fn two(first: (Id, Id), second: (Id, Id)) -> Segments {
        Segments {
            parts: [first, second],
            len: 2,
        }
    }

    /// The segments in clockwise order.
    pub fn iter(&self) -> impl Iterator<Item = (Id, Id)> + '_ {
        self.parts[..self.len].iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(n: u64) -> Id {
        Id::from_high_u64(n)
    }

    fn any_id() -> impl Strategy<Value = Id> {
        prop_oneof![
            (0u64..6).prop_map(id),
            Just(Id::ZERO),
            Just(Id::MAX),
            any::<[u8; 32]>().prop_map(Id),
        ]
    }

    #[test]
    fn a_plain_arc_is_one_segment() {
        let range = KeyRange::new(id(1), id(5));
        let segments: Vec<_> = range.segments().iter().collect();
        assert_eq!(segments, vec![(id(1).wrapping_add(Id::pow2(0)), id(5))]);
    }

    #[test]
    fn a_wrapping_arc_is_two_segments_in_clockwise_order() {
        let range = KeyRange::new(id(5), id(1));
        let segments: Vec<_> = range.segments().iter().collect();
        assert_eq!(
            segments,
            vec![
                (id(5).wrapping_add(Id::pow2(0)), Id::MAX),
                (Id::ZERO, id(1))
            ]
        );
    }

    #[test]
    fn paging_stops_at_the_end() {
        let range = KeyRange::new(id(5), id(1));
        assert_eq!(range.rest_after(KeyId(id(1))), None);
        assert_eq!(
            range.rest_after(KeyId(id(7))),
            Some(KeyRange::new(id(7), id(1)))
        );
    }

    /// Golden bytes: ranges will travel in wire messages (handoff and
    /// anti-entropy), so a change to their encoding must be a visible decision.
    #[test]
    fn golden_bytes_of_a_range() {
        let range = KeyRange::new(Id([1; 32]), Id::MAX);
        let bytes = postcard::to_stdvec(&range).expect("encode");
        assert_eq!(
            hex::encode(&bytes),
            format!("{}{}", "01".repeat(32), "ff".repeat(32))
        );
        assert_eq!(postcard::from_bytes::<KeyRange>(&bytes), Ok(range));
    }

    #[test]
    fn a_short_range_does_not_decode() {
        assert!(postcard::from_bytes::<KeyRange>(&[0; 63]).is_err());
    }

    proptest! {
        /// A point is in the arc exactly when it is in one of its segments,
        /// and the segments do not overlap.
        #[test]
        fn segments_cover_exactly_the_arc(after in any_id(), through in any_id(), x in any_id()) {
            let range = KeyRange::new(after, through);
            let hits = range.segments().iter().filter(|(low, high)| *low <= x && x <= *high).count();
            prop_assert!(hits <= 1);
            prop_assert_eq!(hits == 1, range.contains(KeyId(x)));
        }

        /// Segments run clockwise: the first starts just after `after`.
        #[test]
        fn segments_start_just_after_the_start(after in any_id(), through in any_id()) {
            let range = KeyRange::new(after, through);
            let first = range.segments().iter().next().map(|(low, _)| low);
            prop_assert_eq!(first, Some(after.wrapping_add(Id::pow2(0))));
        }
    }
}
