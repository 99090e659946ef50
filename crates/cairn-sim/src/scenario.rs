//! A scenario: build a ring by joins, let it settle, measure maintenance,
//! churn it (sessions exponentially distributed, arrivals at the same rate,
//! crashes and graceful leaves), run lookups and a key/value workload (puts,
//! deletes, gets) throughout, stop, measure how long the ring takes to
//! become correct again, and check the live stores against the model of
//! acknowledged writes.

use crate::check::check_ring;
use crate::network::{NetworkModel, Partition};
use crate::report::{
    KindTraffic, KvReport, LookupStats, RepairTraffic, Report, Traffic, percentile,
};
use crate::sim::{Event, Sim, Workload};
use cairn_core::{Id, NodeId, RingConfig};
use std::time::{Duration, Instant};

/// Everything a run depends on (with the seed, it fixes the run).
#[derive(Clone, Debug)]
pub struct Scenario {
    pub nodes: usize,
    pub seed: u64,
    /// Time between two joins while the ring is built.
    pub join_every: Duration,
    /// Mean session length under churn; `None` for no churn.
    pub churn_mean: Option<Duration>,
    /// How long churn (and the lookups during it) lasts.
    pub duration: Duration,
    /// Fraction of departures that are crashes (the rest leave gracefully:
    /// they hand their records over first, as `cairn node` does).
    pub crash_fraction: f64,
    /// Lookups started during churn (spread as a Poisson process).
    pub lookups: usize,
    /// Lookups on the settled ring at the end.
    pub final_lookups: usize,
    /// Puts during churn (spread as a Poisson process), each of its own
    /// value: of a new key, or (a fraction `overwrite_fraction`) of a key
    /// already named. At the end the live stores are checked against the
    /// model of acknowledged writes (see [`crate::model`]).
    pub puts: usize,
    /// Of the puts, the fraction that overwrite a key already named
    /// (deleted or not) instead of naming a new one. Default 0.25.
    pub overwrite_fraction: f64,
    /// Deletes during churn (a Poisson process), each of a key holding an
    /// acknowledged value. Default 0.
    pub deletes: usize,
    /// Gets during churn (a Poisson process) of keys already named; an answer
    /// older than a write acknowledged before the get started is stale. Default 0.
    pub gets: usize,
    /// How often the keys under R live copies are counted, from the start
    /// of churn to the end (when there is a key/value workload). Default 5 s.
    pub sample_every: Duration,
    /// For tests of the checks only: before the final check, put a value a
    /// little newer than the tombstone of this many deleted keys into one
    /// live store each (the resurrection check must count them). Default 0.
    pub plant_resurrections: usize,
    /// Crash this many consecutive members at once, after the ring settled.
    pub consecutive_crashes: usize,
    /// Cut off the nodes of this fraction of the id space for this long, after the ring settled.
    pub partition: Option<(Duration, f64)>,
    /// Give up waiting for a correct ring after this long.
    pub max_converge: Duration,
    pub network: NetworkModel,
    pub ring: RingConfig,
    /// Deliberate replication bugs (off by default), to prove the checks can fail.
    pub kv_faults: cairn_core::kv::KvFaults,
    /// Keep a trace of recent events and print it around a broken invariant.
    pub trace: bool,
    /// Print to stderr what is still wrong, every 10 simulated seconds, while converging.
    pub verbose: bool,
    /// Print the phases and the simulation speed to stderr as the run goes.
    pub progress: bool,
}

/// The ring settings for a simulated wide-area ring: slower maintenance
/// than the loopback defaults, so that each node stays under 1 KB/s.
pub fn wide_area_ring() -> RingConfig {
    RingConfig {
        stabilize_every: Duration::from_secs(2),
        check_predecessor_every: Duration::from_secs(4),
        fix_finger_every: Duration::from_secs(4),
        probe_dead_every: Duration::from_secs(30),
        lookup_deadline: Duration::from_secs(10),
        ..RingConfig::default()
    }
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            nodes: 100,
            seed: 1,
            join_every: Duration::from_millis(100),
            churn_mean: None,
            duration: Duration::from_secs(600),
            crash_fraction: 0.5,
            lookups: 1000,
            final_lookups: 1000,
            puts: 0,
            overwrite_fraction: 0.25,
            deletes: 0,
            gets: 0,
            sample_every: Duration::from_secs(5),
            plant_resurrections: 0,
            consecutive_crashes: 0,
            partition: None,
            max_converge: Duration::from_secs(900),
            network: NetworkModel::default(),
            ring: wide_area_ring(),
            kv_faults: cairn_core::kv::KvFaults::default(),
            trace: false,
            verbose: false,
            progress: false,
        }
    }
}

/// Draws from an exponential distribution of the given mean.
fn exponential(sim: &mut Sim, mean: Duration) -> Duration {
    let u = sim.rng.next_f64();
    mean.mul_f64(-(1.0 - u).ln())
}

fn random_id(sim: &mut Sim) -> Id {
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        chunk.copy_from_slice(&sim.rng.next_u64().to_be_bytes());
    }
    Id(bytes)
}

fn traffic(
    before: &crate::sim::Counters,
    after: &crate::sim::Counters,
    nodes: f64,
    seconds: f64,
) -> Traffic {
    let scale = nodes.max(1.0) * seconds.max(1e-9);
    let by_kind = crate::sim::REQUEST_KINDS
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let messages = after.kind_messages[k] - before.kind_messages[k];
            let bytes = after.kind_bytes[k] - before.kind_bytes[k];
            (
                (*name).to_string(),
                KindTraffic {
                    messages_per_node_per_s: messages as f64 / scale,
                    bytes_per_node_per_s: bytes as f64 / scale,
                },
            )
        })
        .filter(|(_, t)| t.messages_per_node_per_s > 0.0)
        .collect();
    Traffic {
        messages_per_node_per_s: (after.messages - before.messages) as f64 / scale,
        bytes_per_node_per_s: (after.bytes - before.bytes) as f64 / scale,
        by_kind,
    }
}

/// What the workload handler needs to know.
struct Churn {
    mean: Option<Duration>,
    until: Duration,
    crash_fraction: f64,
    lookup_every: Option<Duration>,
    put_every: Option<Duration>,
    delete_every: Option<Duration>,
    get_every: Option<Duration>,
    overwrite_fraction: f64,
    target_nodes: usize,
    /// Arrivals are only taken while building, or while churn lasts; one
    /// scheduled before churn ended but due after it is dropped.
    building: bool,
}

impl Churn {
    fn handle(&self, sim: &mut Sim, event: Workload) {
        let now = sim.now;
        match event {
            Workload::Arrive => {
                if !self.building && now >= self.until {
                    return;
                }
                if let Some(via) = sim
                    .random_member()
                    .and_then(|id| sim.node(id).map(|n| n.me()))
                {
                    let id = sim.spawn(Some(via));
                    if let Some(mean) = self.mean {
                        let session = exponential(sim, mean);
                        sim.schedule(now + session, Event::Workload(Workload::Depart(id)));
                    }
                }
                if let Some(mean) = self.mean
                    && now < self.until
                {
                    let gap = exponential(sim, mean / self.target_nodes.max(1) as u32);
                    sim.schedule(now + gap, Event::Workload(Workload::Arrive));
                }
            }
            Workload::Depart(id) => {
                if now >= self.until {
                    return; // Churn is over: sessions scheduled past it do not end.
                }
                if sim.rng.next_f64() < self.crash_fraction {
                    sim.crash(id);
                } else {
                    sim.leave(id);
                }
            }
            Workload::Put => {
                if let Some(from) = sim.random_member() {
                    sim.start_put(from, self.overwrite_fraction);
                }
                self.again(sim, self.put_every, event);
            }
            Workload::Delete => {
                if let Some(from) = sim.random_member() {
                    sim.start_delete(from);
                }
                self.again(sim, self.delete_every, event);
            }
            Workload::Get => {
                if let Some(from) = sim.random_member() {
                    sim.start_get(from);
                }
                self.again(sim, self.get_every, event);
            }
            Workload::Sample => {
                // Samples go on until the run ends (past churn, while it settles).
                sim.sample_coverage();
                let next = now + sim.coverage.every();
                sim.schedule(next, Event::Workload(Workload::Sample));
            }
            Workload::Lookup => {
                if let Some(from) = sim.random_member() {
                    let target = random_id(sim);
                    sim.start_lookup(from, target);
                }
                self.again(sim, self.lookup_every, event);
            }
        }
    }

    /// Schedules the next client operation of a Poisson process of mean gap
    /// `every`, while churn lasts.
    fn again(&self, sim: &mut Sim, every: Option<Duration>, event: Workload) {
        if let Some(every) = every
            && sim.now < self.until
        {
            let gap = exponential(sim, every);
            sim.schedule(sim.now + gap, Event::Workload(event));
        }
    }
}

/// The mean gap of a Poisson process of `count` events over `duration`.
fn every(duration: Duration, count: usize) -> Option<Duration> {
    (count > 0).then(|| duration / count.max(1) as u32)
}

/// Runs the scenario and reports what it measured.
pub fn run(scenario: &Scenario) -> Report {
    let started = Instant::now();
    let mut sim = Sim::new(
        scenario.seed,
        scenario.ring.clone(),
        scenario.network.clone(),
    );
    sim.kv_faults = scenario.kv_faults.clone();
    sim.coverage = crate::coverage::Coverage::new(scenario.sample_every);
    if scenario.trace {
        sim.enable_trace();
    }
    let mut report = Report {
        seed: scenario.seed,
        nodes: scenario.nodes,
        ..Report::default()
    };
    let idle = Churn {
        mean: None,
        until: Duration::ZERO,
        crash_fraction: 0.0,
        lookup_every: None,
        put_every: None,
        delete_every: None,
        get_every: None,
        overwrite_fraction: scenario.overwrite_fraction,
        target_nodes: scenario.nodes,
        building: false,
    };
    let building = Churn {
        building: true,
        ..Churn { ..idle }
    };

    let say = |sim: &Sim, what: &str| {
        if scenario.progress {
            let wall = started.elapsed().as_secs_f64();
            eprintln!(
                "[{wall:>6.1}s wall, {:>7.0}s simulated, {:>11} events, {:>4.0}k events/s] {what}",
                sim.now.as_secs_f64(),
                sim.counters.events,
                sim.counters.events as f64 / wall.max(1e-9) / 1000.0
            );
        }
    };

    // 1. Build the ring by joins, each through a random member.
    say(
        &sim,
        &format!("building a ring of {} nodes by joins", scenario.nodes),
    );
    sim.spawn(None);
    for k in 1..scenario.nodes {
        sim.schedule(
            scenario.join_every * k as u32,
            Event::Workload(Workload::Arrive),
        );
    }
    let last_join = scenario.join_every * scenario.nodes.saturating_sub(1) as u32;
    sim.run_until(last_join, &mut |sim, event| building.handle(sim, event));
    say(&sim, "all joined; waiting for the ring to be correct");
    report.build_converge_s = converge(&mut sim, scenario, &building);
    say(&sim, "settled; measuring maintenance traffic for 60 s");

    // 2. Maintenance cost on the settled ring, without churn or client lookups.
    let window = Duration::from_secs(60);
    let before = sim.counters.clone();
    let from = sim.now;
    sim.run_until(from + window, &mut |sim, event| idle.handle(sim, event));
    report.maintenance = traffic(
        &before,
        &sim.counters,
        sim.node_count() as f64,
        window.as_secs_f64(),
    );

    // 3. Failures on the settled ring: consecutive crashes, a partition.
    let mut disturbed = false;
    if scenario.consecutive_crashes > 0 {
        let members: Vec<NodeId> = sim.members().map(|p| p.id).collect();
        let start = (sim.rng.next_u64() % members.len().max(1) as u64) as usize;
        for k in 0..scenario
            .consecutive_crashes
            .min(members.len().saturating_sub(1))
        {
            sim.crash(members[(start + k) % members.len()]);
        }
        disturbed = true;
    }
    if let Some((length, fraction)) = scenario.partition {
        let start = sim.now;
        sim.partitions.push(Partition {
            start,
            end: start + length,
            fraction,
        });
        sim.run_until(start + length, &mut |sim, event| idle.handle(sim, event));
        disturbed = true;
    }

    // 4. Churn, with lookups throughout.
    let before = sim.counters.clone();
    let churn_start = sim.now;
    let churn = Churn {
        mean: scenario.churn_mean,
        until: churn_start + scenario.duration,
        crash_fraction: scenario.crash_fraction,
        lookup_every: every(scenario.duration, scenario.lookups),
        put_every: every(scenario.duration, scenario.puts),
        delete_every: every(scenario.duration, scenario.deletes),
        get_every: every(scenario.duration, scenario.gets),
        overwrite_fraction: scenario.overwrite_fraction,
        target_nodes: scenario.nodes,
        building: false,
    };
    if let Some(mean) = scenario.churn_mean {
        let members: Vec<NodeId> = sim.members().map(|p| p.id).collect();
        for id in members {
            let session = exponential(&mut sim, mean);
            sim.schedule(churn_start + session, Event::Workload(Workload::Depart(id)));
        }
        let gap = exponential(&mut sim, mean / scenario.nodes.max(1) as u32);
        sim.schedule(churn_start + gap, Event::Workload(Workload::Arrive));
        disturbed = true;
    }
    let kv_workload = scenario.puts + scenario.deletes + scenario.gets > 0;
    let churning = scenario.churn_mean.is_some() || scenario.lookups > 0 || kv_workload;
    if churning {
        for (count, event) in [
            (scenario.lookups, Workload::Lookup),
            (scenario.puts, Workload::Put),
            (scenario.deletes, Workload::Delete),
            (scenario.gets, Workload::Get),
        ] {
            if count > 0 {
                sim.schedule(churn_start, Event::Workload(event));
            }
        }
        if kv_workload {
            let first = churn_start + scenario.sample_every;
            sim.schedule(first, Event::Workload(Workload::Sample));
        }
        let step = (scenario.duration / 10).max(Duration::from_secs(1));
        let mut at = churn_start;
        while at < churn.until {
            at = (at + step).min(churn.until);
            sim.run_until(at, &mut |sim, event| churn.handle(sim, event));
            say(
                &sim,
                &format!(
                    "churn: {:.0}% done, {} nodes, {} lookups finished",
                    (at - churn_start).as_secs_f64() * 100.0
                        / scenario.duration.as_secs_f64().max(1e-9),
                    sim.node_count(),
                    sim.outcomes.len()
                ),
            );
        }
        let seconds = scenario.duration.as_secs_f64();
        report.churn_traffic = traffic(&before, &sim.counters, sim.node_count() as f64, seconds);
        report.churn_repair = RepairTraffic::from_traffic(&report.churn_traffic);
        report.churn_joins = sim.counters.joins - before.joins;
        report.churn_crashes = sim.counters.crashes - before.crashes;
        report.churn_leaves = sim.counters.leaves - before.leaves;
        report.churn_join_failures = sim.counters.join_failures - before.join_failures;
    }
    report.disturbed = disturbed || churning;
    if disturbed || churning {
        report.converge_after_churn_s = converge(&mut sim, scenario, &churn);
        // Lookups started during churn that were still running finish meanwhile.
        let end = sim.now + scenario.ring.lookup_deadline;
        sim.run_until(end, &mut |sim, event| churn.handle(sim, event));
        report.churn_lookups = LookupStats::from_outcomes(&std::mem::take(&mut sim.outcomes));
    }

    say(&sim, "settled again; final lookups");
    // 5. Lookups on the settled ring: every one must reach successor(target).
    sim.outcomes.clear();
    for _ in 0..scenario.final_lookups {
        if let Some(from) = sim.random_member() {
            let target = random_id(&mut sim);
            sim.start_lookup(from, target);
        }
    }
    let end = sim.now + scenario.ring.lookup_deadline + Duration::from_secs(1);
    sim.run_until(end, &mut |sim, event| idle.handle(sim, event));
    report.final_lookups = LookupStats::from_outcomes(&sim.outcomes);
    // Handoff and anti-entropy have had the settling time to bring every
    // key back to R copies.
    if scenario.plant_resurrections > 0 {
        sim.plant_resurrections(scenario.plant_resurrections);
    }
    sim.model.finish();
    let check = sim.check_kv();
    report.kv = KvReport {
        ops: sim.model.ops.clone(),
        keys: check.keys,
        keys_deleted: check.keys_deleted,
        lost: check.lost,
        resurrected: check.resurrected,
        under_replicated: check.under_replicated,
        under_r: sim.coverage.summary(),
    };
    if kv_workload {
        say(
            &sim,
            &format!(
                "checked the key/value model; {} coverage samples took {:.1} ms of wall time in all",
                sim.coverage.samples(),
                sim.coverage.wall.as_secs_f64() * 1000.0
            ),
        );
    }
    report.keys_imbalance = keys_imbalance(&mut sim, 100_000);
    report.violation = check_ring(&sim).err().map(|v| {
        let mut text = v.to_string();
        if scenario.trace {
            text.push_str("\nrecent events:\n");
            text.push_str(&sim.trace().join("\n"));
        }
        text
    });
    report.events = sim.counters.events;
    report.peer_failures = sim.counters.peer_failures;
    report.false_deaths = sim.counters.false_deaths;
    report.false_deaths_per_node_hour =
        sim.counters.false_deaths as f64 * 3600.0 / sim.counters.node_seconds.max(1e-9);
    let mut delays: Vec<f64> = sim
        .detection_delays
        .iter()
        .map(Duration::as_secs_f64)
        .collect();
    delays.sort_by(f64::total_cmp);
    report.crash_detection_p50_s = percentile(&delays, 0.50).unwrap_or(0.0);
    report.crash_detection_p99_s = percentile(&delays, 0.99).unwrap_or(0.0);
    report.crashes_unjudged = sim.unjudged_crashes() as u64;
    report.crashes_unwatched = sim.counters.unwatched_crashes;
    report.simulated_seconds = sim.now.as_secs_f64();
    report.wall_seconds = started.elapsed().as_secs_f64();
    report
}

/// Runs until the ring is correct and settled; the seconds it took, or `None`.
fn converge(sim: &mut Sim, scenario: &Scenario, churn: &Churn) -> Option<f64> {
    let start = sim.now;
    let mut steps = 0u64;
    loop {
        let verdict = check_ring(sim);
        if sim.all_settled() && verdict.is_ok() {
            return Some((sim.now - start).as_secs_f64());
        }
        if sim.now - start >= scenario.max_converge {
            return None;
        }
        if scenario.verbose && steps.is_multiple_of(20) {
            let what = match verdict {
                Err(violation) => violation.to_string(),
                Ok(()) => "a node is still joining or leaving".to_string(),
            };
            eprintln!("{:>8.1}s converging: {what}", sim.now.as_secs_f64());
        }
        steps += 1;
        let next = sim.now + Duration::from_millis(500);
        sim.run_until(next, &mut |sim, event| churn.handle(sim, event));
    }
}

/// Max / mean of keys per member for `keys` random keys.
fn keys_imbalance(sim: &mut Sim, keys: usize) -> f64 {
    let members = sim.member_count();
    if members == 0 {
        return 0.0;
    }
    let mut counts: std::collections::HashMap<NodeId, usize> = std::collections::HashMap::new();
    for _ in 0..keys {
        let key = random_id(sim);
        if let Some(owner) = sim.true_successor(key) {
            *counts.entry(owner.id).or_default() += 1;
        }
    }
    let max = counts.values().copied().max().unwrap_or(0);
    max as f64 / (keys as f64 / members as f64)
}
