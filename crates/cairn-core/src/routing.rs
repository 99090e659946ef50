//! The routing table: predecessor list, successor list and fingers.
//!
//! Invariants kept here, whatever is fed in: the successor list never holds
//! this node or a duplicate, is at most L long, and is in ring order starting
//! after this node; the predecessor list likewise, at most its own length,
//! counter-clockwise from this node; the predecessor pointer, when set, is
//! the list's first entry (a list entry is not the predecessor until it
//! notified or was adopted: after the predecessor is removed, the next entry
//! only waits, so that any live notifier may take the place at once); a
//! finger is only kept where it differs from the first successor. A node
//! whose successor list is empty is alone: its own successor.

use crate::id::{Id, NodeId};
use crate::interval::{between_open, between_right_closed};
use crate::wire::Peer;
use std::collections::BTreeMap;

/// What a node knows of its neighbours.
#[derive(Clone, Debug)]
pub struct RoutingTable {
    me: Peer,
    list_len: usize,
    predecessor_len: usize,
    /// The predecessor (a node that notified, or was adopted), if known.
    predecessor: Option<Peer>,
    /// The nodes before me, counter-clockwise; the predecessor first when set.
    predecessors: Vec<Peer>,
    successors: Vec<Peer>,
    /// finger index i -> successor(me + 2^i), only where it is not the first successor.
    fingers: BTreeMap<u8, Peer>,
    /// Counts changes of the successor or predecessor list (entries or
    /// addresses), so that readers can tell cheaply whether they changed.
    generation: u64,
    /// The fingerprint of the successor list at a generation.
    fingerprint: std::cell::Cell<Option<(u64, u64)>>,
}

impl RoutingTable {
    /// An empty table: `list_len` successors and `predecessor_len` (at least
    /// 1) predecessors at most.
    pub fn new(me: Peer, list_len: usize, predecessor_len: usize) -> RoutingTable {
        RoutingTable {
            me,
            list_len,
            predecessor_len: predecessor_len.max(1),
            predecessor: None,
            predecessors: Vec::new(),
            successors: Vec::new(),
            fingers: BTreeMap::new(),
            generation: 0,
            fingerprint: std::cell::Cell::new(None),
        }
    }

    /// Changes whenever the successor or predecessor list changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The fingerprint of the successor list (see [`fingerprint`]),
    /// computed once per change.
    pub fn successors_fingerprint(&self) -> u64 {
        if let Some((generation, value)) = self.fingerprint.get()
            && generation == self.generation
        {
            return value;
        }
        let value = fingerprint(&self.successors);
        self.fingerprint.set(Some((self.generation, value)));
        value
    }

    /// What a successor `to` keeps of my predecessor list (it puts me first
    /// and keeps as many as its own list holds): the list to send it.
    pub fn predecessors_for(&self, to: NodeId) -> Vec<Peer> {
        self.predecessors
            .iter()
            .filter(|p| p.id != to)
            .take(self.predecessor_len - 1)
            .copied()
            .collect()
    }

    /// What I hold of my predecessor's own list (all of mine after it), if
    /// my list starts with it.
    pub fn predecessors_from(&self, predecessor: NodeId) -> Option<&[Peer]> {
        match self.predecessors.split_first() {
            Some((first, rest)) if first.id == predecessor => Some(rest),
            _ => None,
        }
    }

    pub fn me(&self) -> Peer {
        self.me
    }

    pub fn predecessor(&self) -> Option<Peer> {
        self.predecessor
    }

    /// The predecessor and the nodes before it, counter-clockwise.
    pub fn predecessors(&self) -> &[Peer] {
        &self.predecessors
    }

    pub fn successors(&self) -> &[Peer] {
        &self.successors
    }

    /// The first successor; `None` when alone.
    pub fn successor(&self) -> Option<Peer> {
        self.successors.first().copied()
    }

    /// The node responsible for ids in (me, first successor]: the first successor, or me when alone.
    pub fn successor_or_me(&self) -> Peer {
        self.successor().unwrap_or(self.me)
    }

    /// A new predecessor (or none). The old list is kept behind it where it
    /// still lies before it (a newcomer pushes the old predecessor back); the
    /// new predecessor's own list replaces that guess when it arrives.
    pub fn set_predecessor(&mut self, predecessor: Option<Peer>) {
        match predecessor.filter(|p| p.id != self.me.id) {
            None => {
                if self.predecessor.is_some() || !self.predecessors.is_empty() {
                    self.predecessor = None;
                    self.predecessors.clear();
                    self.generation += 1;
                }
            }
            Some(first) => {
                let me = self.me.id.id();
                let behind = first.id.id().distance_to(me);
                let rest: Vec<Peer> = self
                    .predecessors
                    .iter()
                    .filter(|p| p.id.id().distance_to(me) > behind)
                    .copied()
                    .collect();
                if self.predecessor != Some(first) {
                    self.predecessor = Some(first);
                    self.generation += 1;
                }
                self.adopt_predecessors(first, &rest);
            }
        }
    }

    /// Replaces the predecessor list with `first` (the predecessor) followed
    /// by `rest` (its own predecessors): this node and duplicates dropped,
    /// cut to length. Returns true if the list changed.
    pub fn adopt_predecessors(&mut self, first: Peer, rest: &[Peer]) -> bool {
        let list = build_list(self.me, self.predecessor_len, first, rest, |_| true);
        let me = self.me.id.id();
        let ordered = list
            .windows(2)
            .all(|pair| pair[0].id.id().distance_to(me) < pair[1].id.id().distance_to(me));
        let list = if ordered { list } else { vec![first] };
        let changed = list != self.predecessors;
        if changed {
            self.predecessors = list;
            self.generation += 1;
        }
        changed
    }

    /// Replaces the successor list with `first` followed by `rest` (its list):
    /// this node and duplicates dropped, `keep` filtering out peers known dead,
    /// cut to L. Returns true if the list changed.
    pub fn adopt_successors(
        &mut self,
        first: Peer,
        rest: &[Peer],
        keep: impl Fn(&Peer) -> bool,
    ) -> bool {
        let mut list = build_list(self.me, self.list_len, first, rest, keep);
        if !is_ring_ordered(self.me.id.id(), &list) {
            // A peer's list out of order (a stale or lying peer): keep only the first.
            list.truncate(1);
        }
        let changed = list != self.successors;
        if changed {
            self.successors = list;
            self.generation += 1;
            self.prune_fingers();
        }
        changed
    }

    /// Forgets every peer (a node whose join failed).
    pub fn clear(&mut self) {
        self.predecessor = None;
        self.predecessors.clear();
        self.successors.clear();
        self.fingers.clear();
        self.generation += 1;
    }

    /// Forgets a peer everywhere. Returns true if it was known. (If it was
    /// the predecessor, the predecessor is unknown until a node notifies;
    /// the rest of the list stays, for the held range.)
    pub fn remove(&mut self, id: NodeId) -> bool {
        let mut known = false;
        if self.predecessor.is_some_and(|p| p.id == id) {
            self.predecessor = None;
            known = true;
        }
        let before = self.predecessors.len();
        self.predecessors.retain(|p| p.id != id);
        known |= before != self.predecessors.len();
        let before = self.successors.len();
        self.successors.retain(|p| p.id != id);
        known |= before != self.successors.len();
        if known {
            self.generation += 1;
        }
        let before = self.fingers.len();
        self.fingers.retain(|_, p| p.id != id);
        known |= before != self.fingers.len();
        self.prune_fingers();
        known
    }

    /// Updates the address of a known peer that was heard from at a new one.
    pub fn refresh_address(&mut self, peer: Peer) {
        let mut moved = false;
        // Compared by address first: nearly always the same, and cheaper
        // than the 32-byte id.
        let mut update = |p: &mut Peer| {
            if p.addr != peer.addr && p.id == peer.id {
                p.addr = peer.addr;
                moved = true;
            }
        };
        self.predecessor.iter_mut().for_each(&mut update);
        self.predecessors.iter_mut().for_each(&mut update);
        self.successors.iter_mut().for_each(&mut update);
        if moved {
            self.generation += 1;
        }
        for finger in self.fingers.values_mut() {
            if finger.addr != peer.addr && finger.id == peer.id {
                finger.addr = peer.addr;
            }
        }
    }

    /// The start of finger i: me + 2^i.
    pub fn finger_start(&self, index: u8) -> Id {
        self.me.id.id().wrapping_add(Id::pow2(index))
    }

    /// True if finger i is simply the first successor (its start lies in (me, successor]).
    pub fn finger_is_successor(&self, index: u8) -> bool {
        match self.successor() {
            None => true,
            Some(s) => between_right_closed(self.me.id.id(), self.finger_start(index), s.id.id()),
        }
    }

    /// Records finger i. A finger equal to me or to the first successor is not stored.
    pub fn set_finger(&mut self, index: u8, node: Peer) {
        if node.id == self.me.id
            || self.finger_is_successor(index)
            || self.successor().is_some_and(|s| s.id == node.id)
        {
            self.fingers.remove(&index);
        } else {
            self.fingers.insert(index, node);
        }
    }

    /// Finger i, if stored (it differs from the first successor).
    pub fn finger(&self, index: u8) -> Option<Peer> {
        self.fingers.get(&index).copied()
    }

    /// The fingers in use, as (index, node), highest index first.
    pub fn fingers(&self) -> impl Iterator<Item = (u8, Peer)> + '_ {
        self.fingers.iter().rev().map(|(i, p)| (*i, *p))
    }

    fn prune_fingers(&mut self) {
        let stale: Vec<u8> = self
            .fingers
            .keys()
            .copied()
            .filter(|&i| self.finger_is_successor(i))
            .collect();
        for index in stale {
            self.fingers.remove(&index);
        }
    }

    /// Every distinct peer this node knows (successors, fingers, predecessors).
    pub fn known_peers(&self) -> Vec<Peer> {
        let mut peers: Vec<Peer> = Vec::new();
        let all = self
            .successors
            .iter()
            .chain(self.fingers.values())
            .chain(self.predecessors.iter());
        for peer in all {
            if !peers.iter().any(|p| p.id == peer.id) {
                peers.push(*peer);
            }
        }
        peers
    }

    /// Known peers that lie strictly between me and `target`, closest to the
    /// target first: the next hops of a lookup (Chord's closest preceding nodes).
    pub fn closest_preceding(&self, target: Id, limit: usize) -> Vec<Peer> {
        let me = self.me.id.id();
        let mut peers: Vec<Peer> = self
            .known_peers()
            .into_iter()
            .filter(|p| between_open(me, p.id.id(), target))
            .collect();
        peers.sort_by_cached_key(|p| p.id.id().distance_to(target));
        peers.truncate(limit);
        peers
    }

    /// Who owns `target` as far as this node can tell without asking anyone:
    /// me if it lies in (predecessor, me] (or I am alone), my first successor
    /// if it lies in (me, successor]. `None` means a lookup must ask further.
    ///
    /// Only the first successor answers, not the rest of the list: a node
    /// that joined between two later entries shows up in this node's list only
    /// after a few stabilization rounds, and until then the list would name
    /// the wrong owner.
    pub fn local_owner(&self, target: Id) -> Option<Peer> {
        self.local_owner_with_next(target).map(|(owner, _)| owner)
    }

    /// [`RoutingTable::local_owner`] with the nodes that follow the owner on
    /// the ring, as far as this node knows them (fallbacks if the owner is dead).
    pub fn local_owner_with_next(&self, target: Id) -> Option<(Peer, Vec<Peer>)> {
        let me = self.me.id.id();
        let Some(successor) = self.successor() else {
            return Some((self.me, Vec::new()));
        };
        let owns = target == me
            || self
                .predecessor()
                .is_some_and(|p| between_right_closed(p.id.id(), target, me));
        if owns {
            return Some((self.me, self.successors.clone()));
        }
        if between_right_closed(me, target, successor.id.id()) {
            let mut next = self.successors[1..].to_vec();
            if self.successors.len() < self.list_len {
                // A list shorter than L holds every other node: after its
                // last one the ring comes back to me.
                next.push(self.me);
            }
            return Some((successor, next));
        }
        None
    }

    /// The known peer closest clockwise after me: a successor of last resort
    /// when the whole successor list has failed.
    pub fn nearest_known_after_me(&self) -> Option<Peer> {
        let me = self.me.id.id();
        self.known_peers()
            .into_iter()
            .min_by_key(|p| me.distance_to(p.id.id()))
    }
}

/// `first` then `rest`, without `me` and duplicates, `keep` filtering all but
/// `first`, at most `len` long.
fn build_list(
    me: Peer,
    len: usize,
    first: Peer,
    rest: &[Peer],
    keep: impl Fn(&Peer) -> bool,
) -> Vec<Peer> {
    let mut list: Vec<Peer> = Vec::with_capacity(len);
    for peer in std::iter::once(&first).chain(rest.iter()) {
        if list.len() == len {
            break;
        }
        if peer.id == me.id || list.iter().any(|p| p.id == peer.id) {
            continue;
        }
        if peer.id != first.id && !keep(peer) {
            continue;
        }
        list.push(*peer);
    }
    list
}

/// A short fingerprint of a list of peers (ids and addresses), never 0: a
/// node that holds a peer's list tells it this, and the peer sends the list
/// again only if its own differs.
pub fn fingerprint(peers: &[Peer]) -> u64 {
    let mut hasher = blake3::Hasher::new();
    for peer in peers {
        hasher.update(&peer.id.id().0);
        match peer.addr.ip() {
            core::net::IpAddr::V4(ip) => hasher.update(&ip.octets()),
            core::net::IpAddr::V6(ip) => hasher.update(&ip.octets()),
        };
        hasher.update(&peer.addr.port().to_be_bytes());
    }
    let mut word = [0u8; 8];
    word.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    u64::from_le_bytes(word).max(1)
}

/// True if `list` goes clockwise from `start` without passing it again.
pub fn is_ring_ordered(start: Id, list: &[Peer]) -> bool {
    list.windows(2)
        .all(|pair| start.distance_to(pair[0].id.id()) < start.distance_to(pair[1].id.id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn peer(n: u64) -> Peer {
        Peer {
            id: NodeId(Id::from_high_u64(n)),
            addr: format!("127.0.0.1:{}", 1000 + n % 60000)
                .parse()
                .expect("addr"),
        }
    }

    fn table(me: u64) -> RoutingTable {
        RoutingTable::new(peer(me), 3, 3)
    }

    #[test]
    fn a_new_node_is_alone_and_owns_everything() {
        let t = table(10);
        assert_eq!(t.successor(), None);
        assert_eq!(t.successor_or_me(), peer(10));
        assert_eq!(t.local_owner(Id::from_high_u64(999)), Some(peer(10)));
    }

    #[test]
    fn adopt_drops_me_and_duplicates_and_truncates() {
        let mut t = table(10);
        t.adopt_successors(
            peer(20),
            &[peer(30), peer(10), peer(30), peer(40), peer(50)],
            |_| true,
        );
        assert_eq!(t.successors(), &[peer(20), peer(30), peer(40)]);
    }

    #[test]
    fn adopt_in_a_two_node_ring_keeps_only_the_other() {
        let mut t = table(10);
        t.adopt_successors(peer(20), &[peer(10)], |_| true);
        assert_eq!(t.successors(), &[peer(20)]);
    }

    #[test]
    fn adopt_skips_peers_known_dead_but_not_the_first() {
        let mut t = table(10);
        t.adopt_successors(peer(20), &[peer(30), peer(40)], |p| {
            p.id != peer(30).id && p.id != peer(20).id
        });
        assert_eq!(t.successors(), &[peer(20), peer(40)]);
    }

    #[test]
    fn adopt_wraps_in_ring_order() {
        let mut t = table(u64::MAX - 10);
        t.adopt_successors(peer(u64::MAX - 5), &[peer(3), peer(7)], |_| true);
        assert_eq!(t.successors().len(), 3);
    }

    #[test]
    fn an_out_of_order_list_is_cut_to_its_first() {
        let mut t = table(10);
        t.adopt_successors(peer(20), &[peer(40), peer(30)], |_| true);
        assert_eq!(t.successors(), &[peer(20)]);
    }

    #[test]
    fn remove_forgets_everywhere() {
        let mut t = table(10);
        t.adopt_successors(peer(20), &[peer(30)], |_| true);
        t.set_predecessor(Some(peer(5)));
        assert!(t.remove(peer(20).id));
        assert!(t.remove(peer(5).id));
        assert_eq!(t.successors(), &[peer(30)]);
        assert_eq!(t.predecessor(), None);
        assert!(t.predecessors().is_empty());
        assert!(!t.remove(peer(99).id));
    }

    #[test]
    fn local_owner_uses_predecessor_and_successor() {
        let mut t = table(10);
        t.adopt_successors(peer(20), &[], |_| true);
        t.set_predecessor(Some(peer(5)));
        assert_eq!(t.local_owner(Id::from_high_u64(7)), Some(peer(10)));
        assert_eq!(t.local_owner(Id::from_high_u64(10)), Some(peer(10)));
        assert_eq!(t.local_owner(Id::from_high_u64(15)), Some(peer(20)));
        assert_eq!(t.local_owner(Id::from_high_u64(20)), Some(peer(20)));
        assert_eq!(t.local_owner(Id::from_high_u64(25)), None);
    }

    #[test]
    fn local_owner_names_fallbacks_after_the_owner() {
        let mut t = table(10);
        t.adopt_successors(peer(20), &[peer(30), peer(40)], |_| true);
        assert_eq!(
            t.local_owner_with_next(Id::from_high_u64(15)),
            Some((peer(20), vec![peer(30), peer(40)]))
        );
        // Only the first successor answers: (20, 30] may hold a node not yet listed.
        assert_eq!(t.local_owner(Id::from_high_u64(25)), None);
    }

    #[test]
    fn in_a_small_ring_the_nodes_after_the_owner_come_back_to_me() {
        // L = 3, two others: the list holds the whole ring but me.
        let mut t = table(10);
        t.adopt_successors(peer(20), &[peer(30)], |_| true);
        assert_eq!(
            t.local_owner_with_next(Id::from_high_u64(15)),
            Some((peer(20), vec![peer(30), peer(10)]))
        );
    }

    #[test]
    fn fingers_equal_to_the_successor_are_not_stored() {
        let mut t = table(0);
        t.adopt_successors(peer(1), &[], |_| true);
        // Finger 255 starts half way round: far beyond the successor.
        t.set_finger(255, peer(1u64 << 63));
        // Finger 0 starts at me + 1: inside (me, successor].
        t.set_finger(0, peer(1));
        let fingers: Vec<_> = t.fingers().collect();
        assert_eq!(fingers, vec![(255, peer(1u64 << 63))]);
    }

    #[test]
    fn closest_preceding_orders_by_closeness_to_target() {
        let mut t = table(0);
        t.adopt_successors(peer(10), &[peer(20), peer(30)], |_| true);
        t.set_finger(255, peer(1u64 << 63));
        let hops = t.closest_preceding(Id::from_high_u64(25), 8);
        assert_eq!(hops, vec![peer(20), peer(10)]);
        let far = t.closest_preceding(Id::from_high_u64(u64::MAX), 8);
        assert_eq!(far[0], peer(1u64 << 63));
    }

    #[test]
    fn a_newcomer_predecessor_pushes_the_old_ones_back() {
        let mut t = table(100);
        t.set_predecessor(Some(peer(90)));
        t.adopt_predecessors(peer(90), &[peer(80), peer(70)]);
        t.set_predecessor(Some(peer(95)));
        assert_eq!(t.predecessors(), &[peer(95), peer(90), peer(80)]);
    }

    #[test]
    fn a_farther_predecessor_drops_the_ones_after_it() {
        let mut t = table(100);
        t.adopt_predecessors(peer(90), &[peer(80), peer(70)]);
        t.set_predecessor(Some(peer(85)));
        assert_eq!(t.predecessors(), &[peer(85), peer(80), peer(70)]);
    }

    #[test]
    fn a_removed_predecessor_leaves_the_place_to_the_next_notifier() {
        let mut t = table(100);
        t.set_predecessor(Some(peer(90)));
        t.adopt_predecessors(peer(90), &[peer(80), peer(70)]);
        assert!(t.remove(peer(90).id));
        assert_eq!(t.predecessor(), None, "80 never notified: it waits");
        assert_eq!(
            t.predecessors(),
            &[peer(80), peer(70)],
            "kept for the held range"
        );
        t.set_predecessor(Some(peer(70)));
        assert_eq!(
            t.predecessors(),
            &[peer(70)],
            "80 lies between 70 and me: dropped"
        );
    }

    #[test]
    fn a_successor_is_sent_the_predecessors_it_keeps() {
        let mut t = table(100);
        t.set_predecessor(Some(peer(90)));
        t.adopt_predecessors(peer(90), &[peer(80), peer(70)]);
        // R = 3: the successor keeps me and two of mine.
        assert_eq!(t.predecessors_for(peer(200).id), vec![peer(90), peer(80)]);
        // A successor that is itself in my list (a small ring) drops itself.
        assert_eq!(t.predecessors_for(peer(80).id), vec![peer(90), peer(70)]);
        assert_eq!(
            t.predecessors_from(peer(90).id),
            Some(&[peer(80), peer(70)][..])
        );
        assert_eq!(t.predecessors_from(peer(80).id), None);
    }

    #[test]
    fn a_predecessor_list_out_of_order_is_cut_to_its_first() {
        let mut t = table(100);
        t.adopt_predecessors(peer(90), &[peer(70), peer(80)]);
        assert_eq!(t.predecessors(), &[peer(90)]);
    }

    #[test]
    fn fingerprints_tell_lists_apart() {
        assert_eq!(
            fingerprint(&[peer(1), peer(2)]),
            fingerprint(&[peer(1), peer(2)])
        );
        assert_ne!(
            fingerprint(&[peer(1), peer(2)]),
            fingerprint(&[peer(2), peer(1)])
        );
        assert_ne!(fingerprint(&[]), 0);
    }

    proptest! {
        /// Whatever predecessor lists are adopted, the table's invariants hold.
        #[test]
        fn predecessor_list_invariants_hold(me in any::<u64>(), first in any::<u64>(), rest in proptest::collection::vec(any::<u64>(), 0..12)) {
            let mut t = RoutingTable::new(peer(me), 8, 3);
            let rest: Vec<Peer> = rest.into_iter().map(peer).collect();
            t.adopt_predecessors(peer(first), &rest);
            let list = t.predecessors().to_vec();
            prop_assert!(list.len() <= 3);
            prop_assert!(list.iter().all(|p| p.id != peer(me).id));
            let me_id = peer(me).id.id();
            for pair in list.windows(2) {
                prop_assert!(pair[0].id.id().distance_to(me_id) < pair[1].id.id().distance_to(me_id));
            }
        }

        /// Whatever lists are adopted, the table's invariants hold.
        #[test]
        fn successor_list_invariants_hold(me in any::<u64>(), first in any::<u64>(), rest in proptest::collection::vec(any::<u64>(), 0..12)) {
            let mut t = RoutingTable::new(peer(me), 8, 3);
            let rest: Vec<Peer> = rest.into_iter().map(peer).collect();
            t.adopt_successors(peer(first), &rest, |_| true);
            let list = t.successors();
            prop_assert!(list.len() <= 8);
            prop_assert!(list.iter().all(|p| p.id != peer(me).id));
            for (i, p) in list.iter().enumerate() {
                prop_assert!(list[i + 1..].iter().all(|q| q.id != p.id));
            }
            prop_assert!(is_ring_ordered(peer(me).id.id(), list));
        }
    }
}
