//! What a run measured, as text for people and JSON for scripts.

use serde::Serialize;
use std::fmt::Write;

/// Lookup figures over a set of lookups.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LookupStats {
    pub count: usize,
    /// Timed out or ran out of candidates.
    pub failed: usize,
    /// Answered with a node that is not the true successor.
    pub wrong: usize,
    /// Of the wrong ones, answered with a node that had crashed or left.
    pub wrong_gone: usize,
    /// (failed + wrong) / count.
    pub failure_rate: f64,
    pub hops_mean: f64,
    pub hops_p50: u32,
    pub hops_p99: u32,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
}

impl LookupStats {
    pub fn from_outcomes(outcomes: &[crate::sim::LookupOutcome]) -> LookupStats {
        let count = outcomes.len();
        let failed = outcomes.iter().filter(|o| o.failed).count();
        let wrong = outcomes.iter().filter(|o| !o.failed && !o.correct).count();
        let wrong_gone = outcomes
            .iter()
            .filter(|o| !o.failed && !o.correct && o.gone_owner)
            .count();
        let mut hops: Vec<u32> = outcomes
            .iter()
            .filter(|o| !o.failed)
            .map(|o| o.hops)
            .collect();
        hops.sort_unstable();
        let mut latency: Vec<f64> = outcomes
            .iter()
            .filter(|o| !o.failed)
            .map(|o| o.latency.as_secs_f64() * 1000.0)
            .collect();
        latency.sort_by(f64::total_cmp);
        LookupStats {
            count,
            failed,
            wrong,
            wrong_gone,
            failure_rate: if count == 0 {
                0.0
            } else {
                (failed + wrong) as f64 / count as f64
            },
            hops_mean: if hops.is_empty() {
                0.0
            } else {
                hops.iter().map(|h| f64::from(*h)).sum::<f64>() / hops.len() as f64
            },
            hops_p50: percentile(&hops, 0.50).unwrap_or(0),
            hops_p99: percentile(&hops, 0.99).unwrap_or(0),
            latency_p50_ms: percentile(&latency, 0.50).unwrap_or(0.0),
            latency_p99_ms: percentile(&latency, 0.99).unwrap_or(0.0),
        }
    }
}

/// The value below which a fraction `p` of the sorted values lie.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(at.min(sorted.len() - 1)).copied()
}

/// Messages and bytes per node per second over a window.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Traffic {
    pub messages_per_node_per_s: f64,
    pub bytes_per_node_per_s: f64,
    /// The same by request kind (a response counts with its request).
    pub by_kind: std::collections::BTreeMap<String, KindTraffic>,
}

/// The traffic of one request kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct KindTraffic {
    pub messages_per_node_per_s: f64,
    pub bytes_per_node_per_s: f64,
}

/// Replication's repair traffic over a window: handoff pages (`StoreMany`,
/// pushed on a change of the ring or by anti-entropy for what differs) and
/// anti-entropy's comparisons (`SyncRange`, `SyncNodes`, `ListVersions`).
/// Client writes and read repairs (`Store`) and reads (`Fetch`, which also
/// carries anti-entropy's pulls of records the peer holds newer) are not
/// repair traffic here.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RepairTraffic {
    pub bytes_per_node_per_s: f64,
    pub handoff_bytes_per_node_per_s: f64,
    pub anti_entropy_bytes_per_node_per_s: f64,
}

impl RepairTraffic {
    pub fn from_traffic(traffic: &Traffic) -> RepairTraffic {
        let bytes = |kind: &str| {
            traffic
                .by_kind
                .get(kind)
                .map_or(0.0, |t| t.bytes_per_node_per_s)
        };
        let handoff = bytes("StoreMany");
        let anti_entropy = bytes("SyncRange") + bytes("SyncNodes") + bytes("ListVersions");
        RepairTraffic {
            bytes_per_node_per_s: handoff + anti_entropy,
            handoff_bytes_per_node_per_s: handoff,
            anti_entropy_bytes_per_node_per_s: anti_entropy,
        }
    }
}

/// The key/value workload: its operations, the check of the live stores at
/// the end against the model of acknowledged writes, and the keys under R
/// copies while the run went.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct KvReport {
    pub ops: crate::model::KvOps,
    /// Keys with an acknowledged write, and of those, keys deleted (their
    /// winning acknowledged write is a delete).
    pub keys: u64,
    pub keys_deleted: u64,
    /// At the end: keys whose acknowledged state is not the newest record
    /// on any live member (must be 0).
    pub lost: u64,
    /// At the end: deleted keys whose newest live record is a value (must be 0).
    pub resurrected: u64,
    /// At the end: keys whose newest record is on fewer than R live members.
    pub under_replicated: u64,
    /// Sampled from the start of churn to the end of the run.
    pub under_r: crate::coverage::UnderReplication,
}

/// Everything a run measured. Same seed and settings, same report (but `wall_seconds`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    pub seed: u64,
    pub nodes: usize,
    pub events: u64,
    pub simulated_seconds: f64,
    /// Seconds after the last join until the ring was correct.
    pub build_converge_s: Option<f64>,
    /// Maintenance only (no churn, no client lookups), on the settled ring.
    pub maintenance: Traffic,
    pub churn_joins: u64,
    pub churn_crashes: u64,
    pub churn_leaves: u64,
    pub churn_join_failures: u64,
    /// Peers judged dead (after `misses_to_dead` misses in a row) and
    /// dropped from a routing table, over the whole run.
    pub peer_failures: u64,
    /// Judgements of dead (dropped or not) of peers that were alive: false
    /// death declarations.
    pub false_deaths: u64,
    /// False death declarations per node-hour lived.
    pub false_deaths_per_node_hour: f64,
    /// From a crash to its predecessor's judgement of it (the node whose first
    /// successor it was), seconds.
    pub crash_detection_p50_s: f64,
    pub crash_detection_p99_s: f64,
    /// Crashes whose predecessor had not judged them dead by the end of the
    /// run, and crashes whose predecessor was gone first (not measured).
    pub crashes_unjudged: u64,
    pub crashes_unwatched: u64,
    /// Lookups started during churn (finished then or while settling).
    pub churn_lookups: LookupStats,
    /// All traffic during churn (maintenance, joins, client lookups and
    /// key/value operations).
    pub churn_traffic: Traffic,
    /// Of it, replication's repair traffic.
    pub churn_repair: RepairTraffic,
    /// True if the ring was disturbed (churn, crashes, a partition) after it settled.
    pub disturbed: bool,
    /// Seconds after churn (or the partition) stopped until the ring was correct.
    pub converge_after_churn_s: Option<f64>,
    /// Lookups on the settled ring at the end: every one must be correct.
    pub final_lookups: LookupStats,
    /// The key/value workload (all zero without one).
    pub kv: KvReport,
    /// Keys per node, max / mean, for 100,000 random keys on the final ring.
    pub keys_imbalance: f64,
    /// The first broken invariant, if the ring did not converge.
    pub violation: Option<String>,
    #[serde(skip)]
    pub wall_seconds: f64,
    #[serde(skip)]
    pub peak_memory_mib: Option<f64>,
}

impl Report {
    /// The report for people.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let opt =
            |v: Option<f64>| v.map_or("did not converge".to_string(), |s| format!("{s:.1} s"));
        let _ = writeln!(
            out,
            "cairn-sim: {} nodes, seed {}, {} events, {:.0} s simulated",
            self.nodes, self.seed, self.events, self.simulated_seconds
        );
        let _ = writeln!(
            out,
            "ring built by joins; correct {} after the last join",
            opt(self.build_converge_s)
        );
        let _ = writeln!(
            out,
            "maintenance (settled ring): {:.2} msg/node/s, {:.0} B/node/s",
            self.maintenance.messages_per_node_per_s, self.maintenance.bytes_per_node_per_s
        );
        let kinds: Vec<String> = self
            .maintenance
            .by_kind
            .iter()
            .map(|(kind, t)| format!("{kind} {:.0}", t.bytes_per_node_per_s))
            .collect();
        let _ = writeln!(out, "  by kind, B/node/s: {}", kinds.join(", "));
        if self.churn_lookups.count > 0
            || self.churn_joins + self.churn_crashes + self.churn_leaves > 0
        {
            let _ = writeln!(
                out,
                "churn: {} joins, {} crashes, {} leaves, {} failed joins; all traffic {:.2} msg/node/s, {:.0} B/node/s",
                self.churn_joins,
                self.churn_crashes,
                self.churn_leaves,
                self.churn_join_failures,
                self.churn_traffic.messages_per_node_per_s,
                self.churn_traffic.bytes_per_node_per_s
            );
            let kinds: Vec<String> = self
                .churn_traffic
                .by_kind
                .iter()
                .map(|(kind, t)| format!("{kind} {:.0}", t.bytes_per_node_per_s))
                .collect();
            let _ = writeln!(out, "  by kind, B/node/s: {}", kinds.join(", "));
            let _ = writeln!(
                out,
                "repair traffic during churn: {:.1} B/node/s (handoff {:.1}, anti-entropy {:.1})",
                self.churn_repair.bytes_per_node_per_s,
                self.churn_repair.handoff_bytes_per_node_per_s,
                self.churn_repair.anti_entropy_bytes_per_node_per_s
            );
            write_lookups(&mut out, "lookups during churn", &self.churn_lookups);
        }
        if self.disturbed {
            let _ = writeln!(
                out,
                "converged {} after churn (or crashes, or a partition) stopped",
                opt(self.converge_after_churn_s)
            );
        }
        write_lookups(&mut out, "lookups on the settled ring", &self.final_lookups);
        let _ = writeln!(
            out,
            "peers judged dead and dropped: {}; live peers judged dead (false deaths): {} = {:.4} per node-hour",
            self.peer_failures, self.false_deaths, self.false_deaths_per_node_hour
        );
        let _ = writeln!(
            out,
            "crash to its predecessor's judgement: p50 {:.2} s, p99 {:.2} s ({} never judged, {} not measured: the predecessor went first)",
            self.crash_detection_p50_s,
            self.crash_detection_p99_s,
            self.crashes_unjudged,
            self.crashes_unwatched
        );
        write_kv(&mut out, &self.kv);
        let _ = writeln!(
            out,
            "keys per node (100,000 keys): max/mean {:.2}",
            self.keys_imbalance
        );
        match &self.violation {
            Some(v) => {
                let _ = writeln!(out, "INVARIANT BROKEN: {v}");
            }
            None => {
                let _ = writeln!(out, "invariants hold at the end");
            }
        }
        let _ = write!(out, "wall time {:.1} s", self.wall_seconds);
        if let Some(mib) = self.peak_memory_mib {
            let _ = write!(out, ", peak memory {mib:.0} MiB");
        }
        out.push('\n');
        out
    }
}

fn write_kv(out: &mut String, kv: &KvReport) {
    let ops = &kv.ops;
    let writes = ops.puts_acked
        + ops.puts_failed
        + ops.puts_unanswered
        + ops.deletes_acked
        + ops.deletes_failed
        + ops.deletes_unanswered;
    if writes == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "puts: {} acknowledged, {} failed, {} unanswered; deletes: {} acknowledged, {} failed, {} unanswered (failed and unanswered writes are indeterminate); {} refused at once",
        ops.puts_acked,
        ops.puts_failed,
        ops.puts_unanswered,
        ops.deletes_acked,
        ops.deletes_failed,
        ops.deletes_unanswered,
        ops.refused
    );
    if ops.gets_answered + ops.gets_failed > 0 {
        let _ = writeln!(
            out,
            "gets: {} answered, {} stale (older than a write acknowledged before the get), {} failed",
            ops.gets_answered, ops.gets_stale, ops.gets_failed
        );
    }
    let _ = writeln!(
        out,
        "acknowledged writes older (by version) than a write of their key acknowledged before they started: {}, of which {} deletes (a coordinator's clock behind: they lose)",
        ops.writes_behind_earlier, ops.deletes_behind_earlier
    );
    let _ = writeln!(
        out,
        "at the end: {} acknowledged writes lost, {} deleted keys resurrected, {} keys on fewer than R live nodes (of {} keys, {} deleted)",
        kv.lost, kv.resurrected, kv.under_replicated, kv.keys, kv.keys_deleted
    );
    let under = &kv.under_r;
    let _ = writeln!(
        out,
        "under R live copies (sampled every {:.0} s, {} samples): {:.0} key-seconds; {} episodes, p50 {:.0} s, p99 {:.0} s, max {:.0} s ({} open at the end); at most {} keys at once",
        under.sample_every_s,
        under.samples,
        under.key_seconds,
        under.episodes,
        under.episode_p50_s,
        under.episode_p99_s,
        under.episode_max_s,
        under.episodes_open_at_end,
        under.peak_keys
    );
}

fn write_lookups(out: &mut String, what: &str, stats: &LookupStats) {
    let _ = writeln!(
        out,
        "{what}: {} ({} failed, {} wrong of which {} gone: {:.4}%), hops mean {:.2} p50 {} p99 {}, latency p50 {:.0} ms p99 {:.0} ms",
        stats.count,
        stats.failed,
        stats.wrong,
        stats.wrong_gone,
        stats.failure_rate * 100.0,
        stats.hops_mean,
        stats.hops_p50,
        stats.hops_p99,
        stats.latency_p50_ms,
        stats.latency_p99_ms
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_small_set() {
        let values = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert_eq!(percentile(&values, 0.5), Some(6));
        assert_eq!(percentile(&values, 0.99), Some(10));
        assert_eq!(percentile::<u32>(&[], 0.5), None);
    }
}
