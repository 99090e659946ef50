//! The ring's periodic work as data: one timer per kind, and whether that
//! kind's round is still under way.
//!
//! Invariant: at most one round of each kind is in flight (a round that is
//! busy when its timer fires is skipped, not doubled), and every kind always
//! has its next firing time set while the node is a member.

use std::time::Duration;

/// The kinds of periodic work, in the order they run when due together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Ask the first successor for its predecessor and list.
    Stabilize,
    /// Make sure the predecessor still answers.
    CheckPredecessor,
    /// Look up successor(me) through a peer given up for dead (see `merge`).
    MergeProbe,
    /// Check or refresh one finger.
    FixFinger,
}

impl Timer {
    /// Every kind, in the order [`Timers::due`] yields them.
    pub const ALL: [Timer; 4] = [
        Timer::Stabilize,
        Timer::CheckPredecessor,
        Timer::MergeProbe,
        Timer::FixFinger,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// When each kind next fires, and which rounds are under way.
#[derive(Clone, Debug)]
pub struct Timers {
    next: [Duration; Timer::ALL.len()],
    busy: [bool; Timer::ALL.len()],
}

impl Timers {
    /// Every timer due at `now` (the caller sets each one again).
    pub fn new(now: Duration) -> Timers {
        Timers {
            next: [now; Timer::ALL.len()],
            busy: [false; Timer::ALL.len()],
        }
    }

    pub fn set(&mut self, timer: Timer, at: Duration) {
        self.next[timer.index()] = at;
    }

    /// The timers due at `now`, in [`Timer::ALL`] order.
    pub fn due(&self, now: Duration) -> impl Iterator<Item = Timer> + '_ {
        Timer::ALL
            .into_iter()
            .filter(move |t| self.next[t.index()] <= now)
    }

    /// The earliest firing time.
    pub fn next(&self) -> Option<Duration> {
        self.next.iter().copied().min()
    }

    /// True while a round of this kind waits for its answers.
    pub fn is_busy(&self, timer: Timer) -> bool {
        self.busy[timer.index()]
    }

    pub fn set_busy(&mut self, timer: Timer, busy: bool) {
        self.busy[timer.index()] = busy;
    }
}
