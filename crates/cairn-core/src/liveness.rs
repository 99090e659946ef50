//! Which peers this node believes alive, suspect, dead or departed, and on
//! what evidence.
//!
//! A single missed request proves little: a datagram was lost, a peer was
//! busy for a moment. So a miss only makes a peer *suspect*; the ring then
//! probes it, one probe at a time, and only `misses_to_dead` misses in a row
//! (the first one and the probes after it) make it *dead*. Misses of other
//! requests while a probe is under way are not counted again: they overlap
//! the probe in time and are not independent evidence. At the first miss the
//! ring also asks another node to probe the suspect (SWIM's indirect probe);
//! if that node reports an answer, the count starts again, once per
//! suspicion: a chance loss then needs twice the misses to kill a live peer,
//! while a peer this node cannot reach itself is still given up in the end
//! (a successor must answer *this* node to be of use). Chord's successor
//! lists give the ring enough other peers to route around a suspect meanwhile.
//!
//! Invariants:
//! - a peer is dead only after `misses_to_dead` consecutive misses, or
//!   departed only after it said so (a leave notice, or an error answer that
//!   says it does not serve the ring);
//! - any direct word from a peer (a request from it, or an answer to one of
//!   ours, however late) revokes whatever was believed at once;
//! - at most one probe per suspect is in flight, and a miss of a request
//!   sent before the peer's last word is no evidence (it is stale);
//! - verdicts older than `memory` are forgotten, so a peer that other nodes
//!   still mention is let back in after a while even if it never speaks to
//!   this node.

use crate::id::NodeId;
use std::collections::BTreeMap;
use std::time::Duration;

/// What this node believes of one peer that is not simply alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Belief {
    /// It missed `misses` requests in a row; a probe may be under way;
    /// `reprieved` once another node reported an answer from it.
    Suspect {
        misses: u32,
        probing: bool,
        reprieved: bool,
    },
    /// It missed too many in a row.
    Dead { since: Duration },
    /// It said it leaves (or cannot serve the ring).
    Departed { since: Duration },
}

/// What a miss leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Suspect: send a probe now (`probe`), or one is already under way;
    /// `first` if the suspicion starts with this miss (ask another node too).
    Suspect { probe: bool, first: bool },
    /// Judged dead by this miss: drop it.
    Dead,
    /// Dead or departed already: nothing new.
    AlreadyGone,
}

/// The beliefs of one node about its peers.
#[derive(Clone, Debug)]
pub struct Liveness {
    /// Only peers that are not simply alive.
    beliefs: BTreeMap<NodeId, Belief>,
    /// When peers that were in doubt last spoke to this node: requests sent
    /// before then that fail afterwards are stale evidence.
    last_word: BTreeMap<NodeId, Duration>,
    /// Consecutive misses that make a peer dead (at least 1).
    misses_to_dead: u32,
    /// How long a dead or departed verdict is kept without news.
    memory: Duration,
}

impl Liveness {
    pub fn new(misses_to_dead: u32, memory: Duration) -> Liveness {
        Liveness {
            beliefs: BTreeMap::new(),
            last_word: BTreeMap::new(),
            misses_to_dead: misses_to_dead.max(1),
            memory,
        }
    }

    /// True if `id` is dead or departed and was not heard from since: keep it
    /// off the lists other nodes send.
    pub fn is_dead(&self, id: NodeId) -> bool {
        matches!(
            self.beliefs.get(&id),
            Some(Belief::Dead { .. } | Belief::Departed { .. })
        )
    }

    /// What this node believes of `id`, in the words of the HTTP API.
    pub fn state_of(&self, id: NodeId) -> crate::api::MemberState {
        use crate::api::MemberState;
        match self.beliefs.get(&id) {
            None => MemberState::Alive,
            Some(Belief::Suspect { .. }) => MemberState::Suspect,
            Some(Belief::Dead { .. }) => MemberState::Dead,
            Some(Belief::Departed { .. }) => MemberState::Leaving,
        }
    }

    /// True if `id` missed a request lately and is being probed.
    pub fn is_suspect(&self, id: NodeId) -> bool {
        matches!(self.beliefs.get(&id), Some(Belief::Suspect { .. }))
    }

    /// `id` spoke to this node directly at `now`: whatever we thought, it
    /// lives. True if that revoked a verdict of dead.
    pub fn heard_from(&mut self, now: Duration, id: NodeId) -> bool {
        if self.beliefs.is_empty() {
            return false; // The common case.
        }
        let Some(belief) = self.beliefs.remove(&id) else {
            return false;
        };
        self.last_word.insert(id, now);
        matches!(belief, Belief::Dead { .. })
    }

    /// A request to `id`, sent at `sent_at`, timed out or failed; `by_probe`
    /// if it was a probe.
    pub fn missed(
        &mut self,
        now: Duration,
        id: NodeId,
        sent_at: Duration,
        by_probe: bool,
    ) -> Verdict {
        if self.last_word.get(&id).is_some_and(|word| sent_at < *word) {
            // It spoke after this request left: the miss says nothing new.
            return Verdict::Suspect {
                probe: false,
                first: false,
            };
        }
        let (misses, reprieved) = match self.beliefs.get(&id) {
            Some(Belief::Dead { .. } | Belief::Departed { .. }) => return Verdict::AlreadyGone,
            // Overlaps the probe under way: not independent evidence.
            Some(Belief::Suspect { probing: true, .. }) if !by_probe => {
                return Verdict::Suspect {
                    probe: false,
                    first: false,
                };
            }
            Some(Belief::Suspect {
                misses, reprieved, ..
            }) => (misses + 1, *reprieved),
            None => (1, false),
        };
        if misses >= self.misses_to_dead {
            self.beliefs.insert(id, Belief::Dead { since: now });
            return Verdict::Dead;
        }
        self.beliefs.insert(
            id,
            Belief::Suspect {
                misses,
                probing: true,
                reprieved,
            },
        );
        Verdict::Suspect {
            probe: true,
            first: misses == 1 && !reprieved,
        }
    }

    /// Another node reports that suspect `id` answered it: the count of
    /// misses starts again, once per suspicion. (A verdict of dead stands:
    /// only `id`'s own word to this node revokes it.)
    pub fn reported_alive(&mut self, id: NodeId) {
        if let Some(Belief::Suspect {
            misses, reprieved, ..
        }) = self.beliefs.get_mut(&id)
            && !*reprieved
        {
            *misses = 0;
            *reprieved = true;
        }
    }

    /// `id` said it leaves the ring, or answered that it cannot serve it.
    pub fn departed(&mut self, now: Duration, id: NodeId) {
        self.beliefs.insert(id, Belief::Departed { since: now });
    }

    /// Forgets verdicts older than the memory. Suspicions stay until their
    /// probe decides them.
    pub fn forget_old(&mut self, now: Duration) {
        let memory = self.memory;
        if !self.last_word.is_empty() {
            self.last_word
                .retain(|_, word| now.saturating_sub(*word) < memory);
        }
        if self.beliefs.is_empty() {
            return;
        }
        self.beliefs.retain(|_, belief| match belief {
            Belief::Suspect { .. } => true,
            Belief::Dead { since } | Belief::Departed { since } => {
                now.saturating_sub(*since) < memory
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Id;

    fn id(n: u64) -> NodeId {
        NodeId(Id::from_high_u64(n))
    }

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn one_miss_makes_a_peer_suspect_and_asks_for_a_probe() {
        let mut liveness = Liveness::new(3, at(30_000));
        assert_eq!(
            liveness.missed(at(0), id(1), at(0), false),
            Verdict::Suspect {
                probe: true,
                first: true
            }
        );
        assert!(liveness.is_suspect(id(1)));
        assert!(!liveness.is_dead(id(1)));
    }

    #[test]
    fn misses_that_overlap_the_probe_are_not_counted() {
        let mut liveness = Liveness::new(3, at(30_000));
        liveness.missed(at(0), id(1), at(0), false);
        for _ in 0..10 {
            assert_eq!(
                liveness.missed(at(1), id(1), at(1), false),
                Verdict::Suspect {
                    probe: false,
                    first: false
                }
            );
        }
        assert!(!liveness.is_dead(id(1)));
    }

    #[test]
    fn consecutive_probe_misses_make_a_peer_dead() {
        let mut liveness = Liveness::new(3, at(30_000));
        liveness.missed(at(0), id(1), at(0), false);
        assert_eq!(
            liveness.missed(at(300), id(1), at(300), true),
            Verdict::Suspect {
                probe: true,
                first: false
            }
        );
        assert_eq!(
            liveness.missed(at(600), id(1), at(600), true),
            Verdict::Dead
        );
        assert!(liveness.is_dead(id(1)));
        assert_eq!(
            liveness.missed(at(900), id(1), at(900), false),
            Verdict::AlreadyGone
        );
    }

    #[test]
    fn an_answer_clears_a_suspicion_and_restarts_the_count() {
        let mut liveness = Liveness::new(3, at(30_000));
        liveness.missed(at(0), id(1), at(0), false);
        liveness.missed(at(300), id(1), at(300), true);
        assert!(!liveness.heard_from(at(450), id(1)), "it was only suspect");
        assert!(!liveness.is_suspect(id(1)));
        liveness.missed(at(600), id(1), at(600), false);
        assert_eq!(
            liveness.missed(at(900), id(1), at(900), true),
            Verdict::Suspect {
                probe: true,
                first: false
            },
            "the count started again"
        );
    }

    #[test]
    fn a_report_from_another_node_restarts_the_count_once() {
        let mut liveness = Liveness::new(3, at(30_000));
        liveness.missed(at(0), id(1), at(0), false);
        liveness.missed(at(300), id(1), at(300), true);
        liveness.reported_alive(id(1));
        liveness.missed(at(600), id(1), at(600), true);
        assert!(
            !liveness.is_dead(id(1)),
            "reprieved: the count started again"
        );
        liveness.reported_alive(id(1));
        liveness.missed(at(900), id(1), at(900), true);
        assert_eq!(
            liveness.missed(at(1200), id(1), at(1200), true),
            Verdict::Dead,
            "a second report does not save a peer this node cannot reach"
        );
    }

    #[test]
    fn a_miss_of_a_request_sent_before_the_last_word_is_stale() {
        let mut liveness = Liveness::new(3, at(30_000));
        liveness.missed(at(300), id(1), at(0), false);
        liveness.heard_from(at(350), id(1));
        // The probe sent at 300 fails after the peer spoke at 350: stale.
        assert_eq!(
            liveness.missed(at(500), id(1), at(300), true),
            Verdict::Suspect {
                probe: false,
                first: false
            }
        );
        assert!(!liveness.is_suspect(id(1)), "no second probe chain starts");
        // A request sent after the word that fails is news again.
        assert_eq!(
            liveness.missed(at(900), id(1), at(600), false),
            Verdict::Suspect {
                probe: true,
                first: true
            }
        );
    }

    #[test]
    fn a_report_does_not_revoke_a_dead_verdict() {
        let mut liveness = Liveness::new(1, at(30_000));
        liveness.missed(at(0), id(1), at(0), false);
        liveness.reported_alive(id(1));
        assert!(liveness.is_dead(id(1)));
    }

    #[test]
    fn a_live_answer_revokes_a_dead_verdict_at_once() {
        let mut liveness = Liveness::new(1, at(30_000));
        assert_eq!(liveness.missed(at(0), id(1), at(0), false), Verdict::Dead);
        assert!(liveness.heard_from(at(10), id(1)));
        assert!(!liveness.is_dead(id(1)));
    }

    #[test]
    fn verdicts_are_forgotten_after_the_memory_but_suspicions_wait_for_their_probe() {
        let mut liveness = Liveness::new(2, at(1000));
        liveness.departed(at(0), id(1));
        liveness.missed(at(0), id(2), at(0), false);
        liveness.forget_old(at(1000));
        assert!(!liveness.is_dead(id(1)));
        assert!(liveness.is_suspect(id(2)));
    }
}
