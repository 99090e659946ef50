//! Intervals on the ring, which wrap past 2^256 - 1 to 0.
//!
//! Chord needs two kinds: the open interval (a, b), "strictly between", used by
//! stabilize and notify; and the half-open (a, b], "a's successor is
//! responsible", used to decide who owns an id. When a == b both cover the whole
//! ring: (a, a) is every point but a, and (a, a] is every point. This is what
//! makes a ring of one node own everything and lets the first joiner be adopted.

use crate::id::Id;

/// True if `x` lies in the open interval (a, b), going clockwise from a.
pub fn between_open(a: Id, x: Id, b: Id) -> bool {
    if a == b {
        return x != a;
    }
    let to_x = a.distance_to(x);
    let to_b = a.distance_to(b);
    to_x != Id::ZERO && to_x < to_b
}

/// True if `x` lies in the half-open interval (a, b], going clockwise from a.
pub fn between_right_closed(a: Id, x: Id, b: Id) -> bool {
    if a == b {
        return true;
    }
    let to_x = a.distance_to(x);
    let to_b = a.distance_to(b);
    to_x != Id::ZERO && to_x <= to_b
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(n: u64) -> Id {
        Id::from_high_u64(n)
    }

    #[test]
    fn open_interval_without_wrap() {
        assert!(between_open(id(10), id(11), id(20)));
        assert!(!between_open(id(10), id(10), id(20)));
        assert!(!between_open(id(10), id(20), id(20)));
        assert!(!between_open(id(10), id(21), id(20)));
    }

    #[test]
    fn open_interval_that_wraps_past_zero() {
        let a = id(u64::MAX - 5);
        let b = id(5);
        assert!(between_open(a, Id::ZERO, b));
        assert!(between_open(a, Id::MAX, b));
        assert!(between_open(a, id(4), b));
        assert!(!between_open(a, id(5), b));
        assert!(!between_open(a, id(6), b));
        assert!(!between_open(a, a, b));
    }

    #[test]
    fn equal_ends_cover_the_ring() {
        let a = id(7);
        assert!(!between_open(a, a, a));
        assert!(between_open(a, id(8), a));
        assert!(between_open(a, id(6), a));
        assert!(between_right_closed(a, a, a));
        assert!(between_right_closed(a, id(6), a));
    }

    #[test]
    fn right_closed_includes_the_end_only() {
        assert!(between_right_closed(id(10), id(20), id(20)));
        assert!(!between_right_closed(id(10), id(10), id(20)));
        let a = id(u64::MAX);
        assert!(between_right_closed(a, Id::ZERO, id(0)));
    }

    fn any_id() -> impl Strategy<Value = Id> {
        // Mix of small, edge and random points, so that equal ends and wraps are common.
        prop_oneof![
            (0u64..8).prop_map(id),
            Just(Id::ZERO),
            Just(Id::MAX),
            any::<[u8; 32]>().prop_map(Id),
        ]
    }

    proptest! {
        /// Reference model: walk clockwise from a, by distances, as exact integers.
        #[test]
        fn open_matches_a_model(a in any_id(), x in any_id(), b in any_id()) {
            let to_x = a.distance_to(x);
            let to_b = a.distance_to(b);
            let model = if a == b { x != a } else { to_x > Id::ZERO && to_x < to_b };
            prop_assert_eq!(between_open(a, x, b), model);
        }

        /// Every x other than a and b is in exactly one of (a, b) and (b, a).
        #[test]
        fn open_intervals_partition_the_ring(a in any_id(), x in any_id(), b in any_id()) {
            prop_assume!(a != b && x != a && x != b);
            prop_assert!(between_open(a, x, b) ^ between_open(b, x, a));
        }

        /// (a, b] is (a, b) plus b.
        #[test]
        fn right_closed_is_open_plus_end(a in any_id(), x in any_id(), b in any_id()) {
            prop_assume!(a != b);
            prop_assert_eq!(between_right_closed(a, x, b), between_open(a, x, b) || x == b);
        }

        /// For a set of nodes, every id has exactly one owner: the n with id in (pred(n), n].
        #[test]
        fn every_id_has_one_owner(mut nodes in proptest::collection::vec(any::<[u8; 32]>().prop_map(Id), 1..12), x in any_id()) {
            nodes.sort();
            nodes.dedup();
            let owners = (0..nodes.len())
                .filter(|&i| {
                    let pred = nodes[(i + nodes.len() - 1) % nodes.len()];
                    between_right_closed(pred, x, nodes[i])
                })
                .count();
            prop_assert_eq!(owners, 1);
        }
    }
}
