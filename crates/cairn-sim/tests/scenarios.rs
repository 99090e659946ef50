//! Small scenarios that run in seconds: the ring's invariants hold after
//! joins, after L - 1 consecutive crashes, under random churn (10 seeds) and
//! after a partition heals; runs are deterministic; and a deliberately broken
//! core is caught.

use cairn_core::Faults;
use cairn_sim::{Report, Scenario, run};
use std::time::Duration;

fn small(nodes: usize, seed: u64) -> Scenario {
    Scenario {
        nodes,
        seed,
        join_every: Duration::from_millis(50),
        final_lookups: 300,
        max_converge: Duration::from_secs(300),
        ..Scenario::default()
    }
}

/// The ring is correct at the end and every final lookup found the true successor.
fn assert_healthy(report: &Report, what: &str) {
    assert_eq!(report.violation, None, "{what}: {}", report.text());
    assert!(
        report.final_lookups.count > 0,
        "{what}: no final lookups ran"
    );
    assert_eq!(report.final_lookups.failed, 0, "{what}: {}", report.text());
    assert_eq!(report.final_lookups.wrong, 0, "{what}: {}", report.text());
}

#[test]
fn invariants_hold_after_joins_only() {
    for nodes in [1, 2, 3, 40] {
        let report = run(&small(nodes, 11));
        assert_healthy(&report, &format!("{nodes} nodes"));
        assert!(report.build_converge_s.is_some(), "{}", report.text());
    }
}

#[test]
fn invariants_hold_after_l_minus_one_consecutive_crashes() {
    let scenario = Scenario {
        consecutive_crashes: 7, // L - 1 with the default L = 8.
        ..small(60, 5)
    };
    let report = run(&scenario);
    assert_healthy(&report, "7 consecutive crashes");
    assert!(report.converge_after_churn_s.is_some(), "{}", report.text());
}

#[test]
fn invariants_hold_after_random_churn_for_ten_seeds() {
    for seed in 0..10 {
        let scenario = Scenario {
            churn_mean: Some(Duration::from_secs(300)),
            duration: Duration::from_secs(180),
            lookups: 300,
            ..small(30, seed)
        };
        let report = run(&scenario);
        assert_healthy(&report, &format!("seed {seed}"));
        assert!(
            report.churn_crashes + report.churn_leaves > 5,
            "seed {seed}: the churn must really churn: {}",
            report.text()
        );
        assert!(
            report.churn_lookups.failure_rate < 0.05,
            "seed {seed}: {}",
            report.text()
        );
    }
}

#[test]
fn invariants_hold_after_a_partition_heals() {
    let scenario = Scenario {
        partition: Some((Duration::from_secs(60), 0.4)),
        ..small(40, 3)
    };
    let report = run(&scenario);
    assert_healthy(&report, "partition");
    assert!(
        report.peer_failures > 0,
        "the partition must cut something: {}",
        report.text()
    );
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let scenario = Scenario {
        churn_mean: Some(Duration::from_secs(300)),
        duration: Duration::from_secs(60),
        lookups: 200,
        ..small(25, 42)
    };
    let mut first = run(&scenario);
    let mut second = run(&scenario);
    assert!(first.events > 10_000, "{}", first.events);
    first.wall_seconds = 0.0;
    second.wall_seconds = 0.0;
    assert_eq!(first, second);
    let other = run(&Scenario {
        seed: 43,
        ..scenario
    });
    assert_ne!(first.events, other.events, "another seed, another run");
}

/// The checks can fail: a core whose stabilize ignores its successor's
/// predecessor (Chord's central rule) never links newcomers in.
#[test]
fn a_broken_stabilize_is_caught() {
    let mut scenario = small(20, 9);
    scenario.ring.faults = Faults {
        stabilize_ignores_predecessor: true,
    };
    scenario.max_converge = Duration::from_secs(60);
    scenario.trace = true;
    let report = run(&scenario);
    assert_eq!(report.build_converge_s, None, "{}", report.text());
    let violation = report.violation.expect("the broken ring must be reported");
    assert!(violation.contains("recent events:"), "{violation}");
}

// Regressions the simulator found in the core (simulated time, so exact and
// repeatable, not wall-clock timing).

/// Round trips that vary between 40 and 160 ms must not be taken for deaths:
/// timeouts were once srtt + 4 deviations alone, and a static ring of 100
/// dropped 123 live peers.
#[test]
fn a_static_ring_drops_no_live_peer() {
    let report = run(&small(100, 1));
    assert_healthy(&report, "static ring");
    assert_eq!(report.peer_failures, 0, "{}", report.text());
}

/// Many joins between a node and its old successor used to be walked back one
/// node per stabilization period (123 s for 100 joins at 10 per second); the
/// chain of closer predecessors is now followed at once.
#[test]
fn a_ring_built_by_fast_joins_settles_within_seconds() {
    let scenario = Scenario {
        join_every: Duration::from_millis(100),
        ..small(100, 1)
    };
    let report = run(&scenario);
    assert_healthy(&report, "fast joins");
    let took = report.build_converge_s.expect("converges");
    assert!(
        took < 30.0,
        "settled {took} s after the last join: {}",
        report.text()
    );
}
