//! The simulated network: per-message latency, loss, and partitions.

use cairn_core::rng::Rng;
use std::time::Duration;

/// How messages travel.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkModel {
    /// One-way latency is drawn uniformly from [min, max]. Default 20 to 80 ms.
    pub latency_min: Duration,
    pub latency_max: Duration,
    /// Fraction of messages lost, 0 to 1. Default 0.
    pub loss: f64,
}

impl Default for NetworkModel {
    fn default() -> Self {
        NetworkModel {
            latency_min: Duration::from_millis(20),
            latency_max: Duration::from_millis(80),
            loss: 0.0,
        }
    }
}

impl NetworkModel {
    /// The delay of one message, or `None` if it is lost.
    pub fn delay(&self, rng: &mut Rng) -> Option<Duration> {
        if self.loss > 0.0 && rng.next_f64() < self.loss {
            return None;
        }
        let spread = self.latency_max.saturating_sub(self.latency_min);
        Some(self.latency_min + spread.mul_f64(rng.next_f64()))
    }
}

/// A set of nodes cut off from the rest between `start` and `end`.
#[derive(Clone, Debug, PartialEq)]
pub struct Partition {
    pub start: Duration,
    pub end: Duration,
    /// Fraction of the ring's id space (from id 0) whose nodes are cut off.
    pub fraction: f64,
}

impl Partition {
    /// True if a message between ids `a` and `b` (top 64 bits) is cut at `now`.
    pub fn cuts(&self, now: Duration, a: u64, b: u64) -> bool {
        if now < self.start || now >= self.end {
            return false;
        }
        let limit = (self.fraction * u64::MAX as f64) as u64;
        (a < limit) != (b < limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_stays_in_bounds() {
        let model = NetworkModel::default();
        let mut rng = Rng::new(1);
        for _ in 0..1000 {
            let delay = model.delay(&mut rng).expect("no loss");
            assert!(delay >= model.latency_min && delay <= model.latency_max);
        }
    }

    #[test]
    fn loss_drops_about_the_asked_fraction() {
        let model = NetworkModel {
            loss: 0.25,
            ..NetworkModel::default()
        };
        let mut rng = Rng::new(2);
        let lost = (0..10_000)
            .filter(|_| model.delay(&mut rng).is_none())
            .count();
        assert!((2000..3000).contains(&lost), "{lost}");
    }

    #[test]
    fn a_partition_cuts_only_across_and_only_while_it_lasts() {
        let cut = Partition {
            start: Duration::from_secs(10),
            end: Duration::from_secs(20),
            fraction: 0.5,
        };
        let low = 1u64 << 10;
        let high = u64::MAX - 5;
        assert!(cut.cuts(Duration::from_secs(15), low, high));
        assert!(!cut.cuts(Duration::from_secs(15), low, low + 1));
        assert!(!cut.cuts(Duration::from_secs(5), low, high));
        assert!(!cut.cuts(Duration::from_secs(20), low, high));
    }
}
