//! Adaptive request timeouts from measured round trips (RFC 6298): a timeout
//! follows the smoothed round trip plus four deviations (at least twice the
//! smoothed round trip), within configured bounds.
//! Dead peers are thus detected in a few round trips, not a fixed second.
//!
//! The estimate is shared by all peers (one network, one node's load), but
//! Karn's backoff is per peer: a timeout towards one peer doubles the timeout
//! of the next request to that peer only, until it answers. A busy node that
//! loses one datagram in a thousand must not stretch every other timeout.

use crate::config::RtoConfig;
use crate::id::NodeId;
use std::collections::BTreeMap;
use std::time::Duration;

/// The largest backoff factor.
const MAX_BACKOFF: u32 = 64;

/// Smoothed round-trip time and its variation, and each peer's backoff.
#[derive(Clone, Debug)]
pub struct RttEstimator {
    smoothed: Option<Duration>,
    variation: Duration,
    /// Peers whose last requests timed out: 2^k after k timeouts in a row.
    /// Only peers that did not answer since are listed.
    backoff: BTreeMap<NodeId, u32>,
    bounds: RtoConfig,
}

impl RttEstimator {
    pub fn new(bounds: RtoConfig) -> RttEstimator {
        RttEstimator {
            smoothed: None,
            variation: Duration::ZERO,
            backoff: BTreeMap::new(),
            bounds,
        }
    }

    /// Feeds one round trip measured to `from` (which thus answers: its
    /// backoff ends).
    pub fn sample(&mut self, from: NodeId, rtt: Duration) {
        if !self.backoff.is_empty() {
            self.backoff.remove(&from);
        }
        self.sample_network(rtt);
    }

    /// Feeds one round trip measured outside any peer's requests (e.g. a
    /// bootstrap ping before the peer's id was known).
    pub fn sample_network(&mut self, rtt: Duration) {
        match self.smoothed {
            None => {
                self.smoothed = Some(rtt);
                self.variation = rtt / 2;
            }
            Some(srtt) => {
                let deviation = srtt.abs_diff(rtt);
                self.variation = (self.variation * 3 + deviation) / 4;
                self.smoothed = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    /// A request to `peer` timed out: double its timeout until it answers
    /// (Karn's backoff), so that a path that slowed down beyond the timeout is
    /// still measured instead of missed again and again.
    pub fn backoff(&mut self, peer: NodeId) {
        let factor = self.backoff.entry(peer).or_insert(1);
        *factor = (*factor * 2).min(MAX_BACKOFF);
    }

    /// `peer` is gone (judged dead, or left): forget its backoff.
    pub fn forget(&mut self, peer: NodeId) {
        self.backoff.remove(&peer);
    }

    /// How long to wait for an answer from `peer` before calling it unresponsive.
    pub fn timeout(&self, peer: NodeId) -> Duration {
        let factor = self.backoff.get(&peer).copied().unwrap_or(1);
        (self.estimate() * factor).min(self.bounds.max)
    }

    /// The timeout without any backoff: for a peer never timed out, and for
    /// liveness probes. Probes of a suspect go one after another, so doubling
    /// each one would stretch a crash's detection over many round trips; a
    /// slower network still grows the estimate through late answers, and a
    /// late answer revokes any verdict.
    pub fn estimate(&self) -> Duration {
        let base = match self.smoothed {
            None => self.bounds.initial,
            // Four deviations above the mean, but never less than twice it: a
            // round trip that merely varies must not be taken for a death.
            Some(srtt) => (srtt + self.variation * 4).max(srtt * 2),
        };
        base.max(self.bounds.min).min(self.bounds.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn peer(n: u64) -> NodeId {
        NodeId(crate::id::Id::from_high_u64(n))
    }

    #[test]
    fn starts_at_the_initial_timeout() {
        assert_eq!(
            RttEstimator::new(RtoConfig::default()).timeout(peer(1)),
            ms(1000)
        );
    }

    #[test]
    fn fast_peers_get_the_minimum_timeout() {
        let mut rtt = RttEstimator::new(RtoConfig::default());
        for _ in 0..20 {
            rtt.sample(peer(1), Duration::from_micros(300));
        }
        assert_eq!(rtt.timeout(peer(1)), ms(100));
    }

    #[test]
    fn timeouts_back_off_until_the_next_sample() {
        let mut rtt = RttEstimator::new(RtoConfig::default());
        for _ in 0..20 {
            rtt.sample(peer(1), ms(1));
        }
        assert_eq!(rtt.timeout(peer(1)), ms(100));
        rtt.backoff(peer(1));
        rtt.backoff(peer(1));
        assert_eq!(rtt.timeout(peer(1)), ms(400));
        assert_eq!(rtt.timeout(peer(2)), ms(100), "other peers are not slowed");
        assert_eq!(rtt.estimate(), ms(100), "probes are not slowed");
        for _ in 0..10 {
            rtt.backoff(peer(1));
        }
        assert_eq!(rtt.timeout(peer(1)), ms(3000), "capped at the maximum");
        rtt.sample(peer(2), ms(1));
        assert_eq!(
            rtt.timeout(peer(1)),
            ms(3000),
            "an answer from another peer does not end it"
        );
        rtt.sample(peer(1), ms(1));
        assert_eq!(rtt.timeout(peer(1)), ms(100));
    }

    #[test]
    fn timeout_follows_slow_round_trips_and_caps() {
        let mut rtt = RttEstimator::new(RtoConfig::default());
        for _ in 0..20 {
            rtt.sample(peer(1), ms(200));
        }
        assert_eq!(
            rtt.timeout(peer(1)),
            ms(400),
            "at least twice the round trip"
        );
        for _ in 0..20 {
            rtt.sample(peer(1), ms(10_000));
        }
        assert_eq!(rtt.timeout(peer(1)), ms(3000));
    }
}
