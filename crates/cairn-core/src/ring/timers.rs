//! The ring's periodic work as data: one timer per kind, and whether that
//! kind's round is still under way.
//!
//! Invariant: at most one round of each kind is in flight (a round that is
//! busy when its timer fires is skipped, not doubled), and every periodic
//! kind always has its next firing time set while the node is a member; a
//! one-off kind (a join retry) is set only while it is wanted.

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
    /// Start the next join attempt (one-off, after a failed one).
    JoinRetry,
}

impl Timer {
    /// Every kind, in the order [`Timers::due`] yields them.
    pub const ALL: [Timer; 5] = [
        Timer::Stabilize,
        Timer::CheckPredecessor,
        Timer::MergeProbe,
        Timer::FixFinger,
        Timer::JoinRetry,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// When each kind next fires, and which rounds are under way.
#[derive(Clone, Debug, Default)]
pub struct Timers {
    next: [Option<Duration>; Timer::ALL.len()],
    busy: [bool; Timer::ALL.len()],
}

impl Timers {
    pub fn set(&mut self, timer: Timer, at: Duration) {
        self.next[timer.index()] = Some(at);
    }

    pub fn unset(&mut self, timer: Timer) {
        self.next[timer.index()] = None;
    }

    /// The timers due at `now`, in [`Timer::ALL`] order.
    pub fn due(&self, now: Duration) -> impl Iterator<Item = Timer> + '_ {
        Timer::ALL
            .into_iter()
            .filter(move |t| self.next[t.index()].is_some_and(|at| at <= now))
    }

    /// The earliest firing time.
    pub fn next(&self) -> Option<Duration> {
        self.next.iter().flatten().copied().min()
    }

    /// True while a round of this kind waits for its answers.
    pub fn is_busy(&self, timer: Timer) -> bool {
        self.busy[timer.index()]
    }

    pub fn set_busy(&mut self, timer: Timer, busy: bool) {
        self.busy[timer.index()] = busy;
    }
}
