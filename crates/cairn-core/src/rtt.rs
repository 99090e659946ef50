//! Adaptive request timeouts from measured round trips (RFC 6298): a timeout
//! follows the smoothed round trip plus four deviations (at least twice the
//! smoothed round trip), within configured bounds.
//! Dead peers are thus detected in a few round trips, not a fixed second.

use crate::config::RtoConfig;
use std::time::Duration;

/// Smoothed round-trip time and its variation.
#[derive(Clone, Debug)]
pub struct RttEstimator {
    smoothed: Option<Duration>,
    variation: Duration,
    /// 1, or 2^k after k timeouts in a row.
    backoff: u32,
    bounds: RtoConfig,
}

impl RttEstimator {
    pub fn new(bounds: RtoConfig) -> RttEstimator {
        RttEstimator {
            smoothed: None,
            variation: Duration::ZERO,
            backoff: 1,
            bounds,
        }
    }

    /// Feeds one measured round trip.
    pub fn sample(&mut self, rtt: Duration) {
        self.backoff = 1;
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

    /// A request timed out: double the timeout until the next measured round
    /// trip (Karn's backoff), so that a network that slowed down beyond the
    /// timeout is still measured instead of declared dead again and again.
    pub fn backoff(&mut self) {
        self.backoff = (self.backoff * 2).min(64);
    }

    /// How long to wait for an answer before calling the peer unresponsive.
    pub fn timeout(&self) -> Duration {
        let base = match self.smoothed {
            None => self.bounds.initial,
            // Four deviations above the mean, but never less than twice it: a
            // round trip that merely varies must not be taken for a death.
            Some(srtt) => (srtt + self.variation * 4).max(srtt * 2),
        };
        (base.max(self.bounds.min) * self.backoff).min(self.bounds.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn starts_at_the_initial_timeout() {
        assert_eq!(RttEstimator::new(RtoConfig::default()).timeout(), ms(1000));
    }

    #[test]
    fn fast_peers_get_the_minimum_timeout() {
        let mut rtt = RttEstimator::new(RtoConfig::default());
        for _ in 0..20 {
            rtt.sample(Duration::from_micros(300));
        }
        assert_eq!(rtt.timeout(), ms(100));
    }

    #[test]
    fn timeouts_back_off_until_the_next_sample() {
        let mut rtt = RttEstimator::new(RtoConfig::default());
        for _ in 0..20 {
            rtt.sample(ms(1));
        }
        assert_eq!(rtt.timeout(), ms(100));
        rtt.backoff();
        rtt.backoff();
        assert_eq!(rtt.timeout(), ms(400));
        for _ in 0..10 {
            rtt.backoff();
        }
        assert_eq!(rtt.timeout(), ms(3000), "capped at the maximum");
        rtt.sample(ms(1));
        assert_eq!(rtt.timeout(), ms(100));
    }

    #[test]
    fn timeout_follows_slow_round_trips_and_caps() {
        let mut rtt = RttEstimator::new(RtoConfig::default());
        for _ in 0..20 {
            rtt.sample(ms(200));
        }
        assert_eq!(rtt.timeout(), ms(400), "at least twice the round trip");
        for _ in 0..20 {
            rtt.sample(ms(10_000));
        }
        assert_eq!(rtt.timeout(), ms(3000));
    }
}
