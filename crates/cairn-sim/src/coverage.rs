//! How many live copies each acknowledged key has while the run goes: a
//! periodic sample of the keys on fewer than R live members, and the
//! episodes each key spent there.
//!
//! Sampling is an approximation: a key seen under R copies at k samples in
//! a row counts as one episode of k sample periods (so the figures are good
//! to one period either way), and its key-seconds as k periods. A key whose
//! newest acknowledged write is younger than [`GRACE`] is not judged at that
//! sample: a write is acknowledged by W replicas while its last copy is
//! still on the way.
//!
//! A sample reads the stores themselves, not a record of what they were
//! sent: the (key id, version) list of every live member's store, one pass
//! over each (about R entries per key in all), no record copied.

use crate::model::KvModel;
use crate::report::percentile;
use cairn_core::KeyId;
use cairn_core::version::Version;
use serde::Serialize;
use std::time::Duration;

/// A key acknowledged less than this long before a sample is not judged by it.
pub const GRACE: Duration = Duration::from_secs(1);

/// The sampled figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct UnderReplication {
    /// Time between two samples, seconds.
    pub sample_every_s: f64,
    pub samples: u64,
    /// Σ over samples of the keys under R copies, times the period.
    pub key_seconds: f64,
    /// Times a key went under R copies (a run of samples), and how long
    /// those lasted (sample periods, in seconds).
    pub episodes: u64,
    pub episode_p50_s: f64,
    pub episode_p99_s: f64,
    pub episode_max_s: f64,
    /// Of the episodes, those still under way at the last sample.
    pub episodes_open_at_end: u64,
    /// The most keys under R copies at one sample.
    pub peak_keys: u64,
}

/// The index of possible holders, and the sampled episodes.
#[derive(Debug)]
pub struct Coverage {
    every: Duration,
    /// Per key: live members holding its newest acknowledged version (a
    /// buffer, reused from sample to sample).
    held: Vec<u32>,
    /// Per key: samples in a row it has been seen under R copies.
    under_for: Vec<u32>,
    /// Finished episodes, in samples.
    episodes: Vec<u32>,
    under_samples: u64,
    samples: u64,
    peak: usize,
    /// Wall time spent sampling (not part of the report: it is not deterministic).
    pub wall: std::time::Duration,
}

impl Coverage {
    pub fn new(every: Duration) -> Coverage {
        Coverage {
            every,
            held: Vec::new(),
            under_for: Vec::new(),
            episodes: Vec::new(),
            under_samples: 0,
            samples: 0,
            peak: 0,
            wall: std::time::Duration::ZERO,
        }
    }

    pub fn every(&self) -> Duration {
        self.every
    }

    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// One sample at `now`: every acknowledged key of `model` is under R if
    /// fewer than `want` of the live members' `stores` (each the list of
    /// (key id, version) it holds) hold its newest acknowledged version.
    pub fn sample<'a>(
        &mut self,
        now: Duration,
        model: &KvModel,
        want: usize,
        stores: impl IntoIterator<Item = &'a [(KeyId, Version)]>,
    ) {
        let started = std::time::Instant::now();
        self.samples += 1;
        let keys = model.key_count();
        self.under_for.resize(keys, 0);
        self.held.clear();
        self.held.resize(keys, 0);
        for store in stores {
            for (key_id, version) in store {
                if let Some(key) = model.key_of(*key_id)
                    && model.best(key).is_some_and(|b| *version >= b.version)
                {
                    self.held[key] += 1;
                }
            }
        }
        let want = u32::try_from(want).unwrap_or(u32::MAX);
        let mut under = 0;
        for key in 0..keys {
            let Some(best) = model.best(key) else {
                continue;
            };
            if now.saturating_sub(best.at) < GRACE {
                continue;
            }
            if self.held[key] < want {
                under += 1;
                self.under_for[key] += 1;
            } else if self.under_for[key] > 0 {
                self.episodes.push(self.under_for[key]);
                self.under_for[key] = 0;
            }
        }
        self.under_samples += under as u64;
        self.peak = self.peak.max(under);
        self.wall += started.elapsed();
    }

    /// The figures so far; episodes still under way count as ended now.
    pub fn summary(&self) -> UnderReplication {
        let period = self.every.as_secs_f64();
        let open: Vec<u32> = self.under_for.iter().copied().filter(|n| *n > 0).collect();
        let mut lengths: Vec<f64> = self
            .episodes
            .iter()
            .chain(&open)
            .map(|n| f64::from(*n) * period)
            .collect();
        lengths.sort_by(f64::total_cmp);
        UnderReplication {
            sample_every_s: period,
            samples: self.samples,
            key_seconds: self.under_samples as f64 * period,
            episodes: lengths.len() as u64,
            episode_p50_s: percentile(&lengths, 0.50).unwrap_or(0.0),
            episode_p99_s: percentile(&lengths, 0.99).unwrap_or(0.0),
            episode_max_s: lengths.last().copied().unwrap_or(0.0),
            episodes_open_at_end: open.len() as u64,
            peak_keys: self.peak as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::kv::OpResult;
    use cairn_core::rng::Rng;
    use cairn_core::version::HlcTimestamp;
    use cairn_core::{Id, NodeId};

    fn version(ms: u64) -> Version {
        Version::new(
            HlcTimestamp {
                physical_ms: ms,
                logical: 0,
            },
            NodeId(Id([1; 32])),
        )
    }

    /// A model of one key, acknowledged at time zero at version 10.
    fn one_key() -> KvModel {
        let mut model = KvModel::default();
        let key = model.pick_put_key(&mut Rng::new(1), 0.0);
        let node = NodeId(Id([1; 32]));
        model.write_started(node, 1, key, false);
        let written = Ok(OpResult::Written {
            version: version(10),
        });
        model.on_done(Duration::ZERO, node, 1, written);
        model
    }

    #[test]
    fn an_episode_lasts_as_many_periods_as_samples_saw_it() {
        let model = one_key();
        let key_id = model.key_id(0).expect("key 0");
        let mut coverage = Coverage::new(Duration::from_secs(5));
        let new = [(key_id, version(10))];
        let old = [(key_id, version(9))];
        let at = |s: u64| Duration::from_secs(s);
        // Held by 3, then by 2 (the third holds an older version) for two
        // samples, then by 3 again.
        coverage.sample(at(5), &model, 3, [&new[..], &new, &new]);
        for t in [10, 15] {
            coverage.sample(at(t), &model, 3, [&new[..], &new, &old]);
        }
        coverage.sample(at(20), &model, 3, [&new[..], &new, &new]);
        let figures = coverage.summary();
        assert_eq!(figures.samples, 4);
        assert_eq!(figures.episodes, 1);
        assert_eq!(figures.episode_max_s, 10.0);
        assert_eq!(figures.key_seconds, 10.0);
        assert_eq!(figures.peak_keys, 1);
        assert_eq!(figures.episodes_open_at_end, 0);
    }

    #[test]
    fn a_fresh_write_is_not_judged_and_an_open_episode_is_counted() {
        let model = one_key();
        let mut coverage = Coverage::new(Duration::from_secs(5));
        coverage.sample(Duration::from_millis(500), &model, 3, []);
        assert_eq!(coverage.summary().key_seconds, 0.0, "within the grace");
        coverage.sample(Duration::from_secs(5), &model, 3, []);
        let figures = coverage.summary();
        assert_eq!((figures.episodes, figures.episodes_open_at_end), (1, 1));
        assert_eq!(figures.key_seconds, 5.0);
    }
}
