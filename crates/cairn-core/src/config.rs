//! Configuration of the ring protocol: a plain struct with defaults and `validate()`.

use std::time::Duration;

/// How a node keeps its place on the ring. Times are durations on the caller's clock.
#[derive(Clone, Debug, PartialEq)]
pub struct RingConfig {
    /// L: how many successors a node remembers. Default 8. The ring survives
    /// the simultaneous crash of up to L - 1 consecutive nodes.
    pub successor_list_len: usize,
    /// R: how many nodes hold each key (successor(key) and the next R - 1).
    /// A node keeps R predecessors, so that it knows the range it holds,
    /// (R-th predecessor, me], and reports changes of it. Default 3; at most
    /// `successor_list_len`.
    pub replicas: usize,
    /// How often a node asks its successor for its predecessor and list. Default 500 ms.
    pub stabilize_every: Duration,
    /// How often a node pings its predecessor. Default 1 s.
    pub check_predecessor_every: Duration,
    /// How often a node refreshes one finger (round robin over the fingers
    /// that differ from the first successor). Default 500 ms.
    pub fix_finger_every: Duration,
    /// Timers are spread by up to this fraction of their period, so that nodes
    /// started together do not tick together. Default 0.1.
    pub timer_jitter: f64,
    /// Request timeouts adapt to measured round trips (RFC 6298 style); these bound them.
    pub rto: RtoConfig,
    /// A lookup that has not finished by then fails. Default 5 s.
    pub lookup_deadline: Duration,
    /// How many answers `FindSuccessor` returns as "ask one of these". Default 4.
    pub lookup_candidates: usize,
    /// How many requests in a row a peer must miss (the first one, then
    /// probes sent one at a time) before it is judged dead. One lost datagram
    /// or a busy moment only makes it suspect. Default 4.
    pub misses_to_dead: u32,
    /// How long a peer judged dead (or that said it left) is kept off this
    /// node's lists when other nodes mention it (a direct message from it
    /// clears this at once). Default 30 s.
    pub dead_memory: Duration,
    /// How often a node probes one peer it gave up for dead, looking up its own
    /// successor through it: this re-links rings that a partition split apart.
    /// Default 10 s.
    pub probe_dead_every: Duration,
    /// How long a peer given up for dead stays in the merge-probe rotation,
    /// from its first verdict (a probe that judges it dead again does not
    /// extend this). Default 10 min.
    pub graveyard_memory: Duration,
    /// The HTTP address this node serves, told to peers for `cairn ring`.
    pub http: Option<String>,
    /// Deliberate bugs, off by default: tests switch one on to prove that the
    /// invariant checks catch it.
    pub faults: Faults,
}

/// Deliberately broken behaviour, for tests of the checks themselves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Stabilize never adopts its successor's predecessor (Chord's core rule),
    /// nor a newcomer its successor introduces: newcomers are never linked in
    /// by their predecessors.
    pub stabilize_ignores_predecessor: bool,
}

/// Bounds of the adaptive request timeout.
#[derive(Clone, Debug, PartialEq)]
pub struct RtoConfig {
    /// Before any round trip was measured. Default 1 s.
    pub initial: Duration,
    /// Never time out sooner than this. Default 100 ms: well above a loopback
    /// or LAN round trip, so that a busy peer (or a busy machine) is not
    /// mistaken for a dead one.
    pub min: Duration,
    /// Never wait longer than this. Default 3 s.
    pub max: Duration,
}

impl Default for RtoConfig {
    fn default() -> Self {
        RtoConfig {
            initial: Duration::from_secs(1),
            min: Duration::from_millis(100),
            max: Duration::from_secs(3),
        }
    }
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            successor_list_len: 8,
            replicas: 3,
            stabilize_every: Duration::from_millis(500),
            check_predecessor_every: Duration::from_secs(1),
            fix_finger_every: Duration::from_millis(500),
            timer_jitter: 0.1,
            rto: RtoConfig::default(),
            lookup_deadline: Duration::from_secs(5),
            lookup_candidates: 4,
            misses_to_dead: 4,
            dead_memory: Duration::from_secs(30),
            probe_dead_every: Duration::from_secs(10),
            graveyard_memory: Duration::from_secs(600),
            http: None,
            faults: Faults::default(),
        }
    }
}

/// A ring configuration that cannot work, naming the setting and the rule.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("invalid ring configuration: successor_list_len is {0}; it must be 1 to 64")]
    SuccessorListLen(usize),
    #[error(
        "invalid ring configuration: replicas is {replicas}; it must be 1 to successor_list_len ({successor_list_len})"
    )]
    Replicas {
        replicas: usize,
        successor_list_len: usize,
    },
    #[error("invalid ring configuration: {name} is {period:?}; it must be at least 1 ms")]
    PeriodTooShort {
        name: &'static str,
        period: Duration,
    },
    #[error("invalid ring configuration: timer_jitter is {0}; it must be between 0 and 0.5")]
    TimerJitter(f64),
    #[error(
        "invalid ring configuration: rto.min ({min:?}) must be above zero and at most rto.max ({max:?})"
    )]
    RtoBounds { min: Duration, max: Duration },
    #[error(
        "invalid ring configuration: rto.initial ({initial:?}) must lie between rto.min and rto.max"
    )]
    RtoInitial { initial: Duration },
    #[error(
        "invalid ring configuration: lookup_deadline ({deadline:?}) must be at least rto.max ({rto_max:?}), or a lookup cannot survive one timeout"
    )]
    LookupDeadline {
        deadline: Duration,
        rto_max: Duration,
    },
    #[error("invalid ring configuration: {0} must be at least 1")]
    Zero(&'static str),
}

impl RingConfig {
    /// Checks that the values can work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=64).contains(&self.successor_list_len) {
            return Err(ConfigError::SuccessorListLen(self.successor_list_len));
        }
        if self.replicas == 0 || self.replicas > self.successor_list_len {
            return Err(ConfigError::Replicas {
                replicas: self.replicas,
                successor_list_len: self.successor_list_len,
            });
        }
        for (name, period) in [
            ("stabilize_every", self.stabilize_every),
            ("check_predecessor_every", self.check_predecessor_every),
            ("fix_finger_every", self.fix_finger_every),
            ("probe_dead_every", self.probe_dead_every),
        ] {
            if period < Duration::from_millis(1) {
                return Err(ConfigError::PeriodTooShort { name, period });
            }
        }
        if !(0.0..=0.5).contains(&self.timer_jitter) {
            return Err(ConfigError::TimerJitter(self.timer_jitter));
        }
        if self.rto.min.is_zero() || self.rto.min > self.rto.max {
            return Err(ConfigError::RtoBounds {
                min: self.rto.min,
                max: self.rto.max,
            });
        }
        if self.rto.initial < self.rto.min || self.rto.initial > self.rto.max {
            return Err(ConfigError::RtoInitial {
                initial: self.rto.initial,
            });
        }
        if self.lookup_deadline < self.rto.max {
            return Err(ConfigError::LookupDeadline {
                deadline: self.lookup_deadline,
                rto_max: self.rto.max,
            });
        }
        if self.misses_to_dead == 0 {
            return Err(ConfigError::Zero("misses_to_dead"));
        }
        if self.lookup_candidates == 0 {
            return Err(ConfigError::Zero("lookup_candidates"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(RingConfig::default().validate(), Ok(()));
    }

    #[test]
    fn a_lookup_deadline_shorter_than_one_timeout_is_refused() {
        let config = RingConfig {
            lookup_deadline: Duration::from_millis(100),
            ..RingConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::LookupDeadline { .. })
        ));
    }

    #[test]
    fn more_replicas_than_successors_are_refused_with_both_numbers() {
        let config = RingConfig {
            replicas: 9,
            ..RingConfig::default()
        };
        let error = config.validate().expect_err("refused");
        assert!(error.to_string().contains("replicas is 9"), "{error}");
        assert!(error.to_string().contains("(8)"), "{error}");
    }

    #[test]
    fn an_empty_successor_list_is_refused() {
        let config = RingConfig {
            successor_list_len: 0,
            ..RingConfig::default()
        };
        assert_eq!(config.validate(), Err(ConfigError::SuccessorListLen(0)));
    }
}
