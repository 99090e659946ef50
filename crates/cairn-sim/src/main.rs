//! `cairn-sim`: run a scenario (or a sweep) and print what it measured.

use anyhow::{Context, bail};
use cairn_sim::duration::parse_duration;
use cairn_sim::network::NetworkModel;
use cairn_sim::sweep::{SweepPoint, svg, table};
use cairn_sim::{Scenario, run, wide_area_ring};
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

/// Simulate a Cairn ring: thousands of nodes running the real ring protocol
/// (cairn-core) over a simulated network with a virtual clock. The same seed
/// gives the same run, event for event.
///
/// A run builds the ring by joins (one every --join-every), lets it settle,
/// measures maintenance traffic, then churns it for --duration (sessions of
/// mean --churn-mean; as many arrivals as departures) while --lookups lookups
/// run, stops, measures how long the ring takes to become correct, and checks
/// that every lookup on the settled ring reaches the true successor. With
/// --puts, --deletes and --gets, a key/value workload runs during churn and
/// the live stores are checked against it at the end.
#[derive(Parser, Debug)]
#[command(name = "cairn-sim", version)]
struct Args {
    /// Ring size.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Mean session length under churn (e.g. 1h, 30m); without it, no churn.
    #[arg(long, value_parser = parse_duration)]
    churn_mean: Option<Duration>,
    /// How long churn and its lookups last (simulated time).
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    duration: Duration,
    /// Lookups of random ids from random members during --duration.
    #[arg(long, default_value_t = 10_000)]
    lookups: usize,
    /// Lookups on the settled ring at the end (each must be correct).
    #[arg(long, default_value_t = 2_000)]
    final_lookups: usize,
    /// Puts from random members during --duration, each of its own value: a
    /// new key, or (one in four) an overwrite of a key already named. At the
    /// end the live nodes' stores are checked against the model of
    /// acknowledged writes: lost (the acknowledged state is not the newest
    /// record on any live node), resurrected (a deleted key's newest record
    /// is a value), under-replicated (newest record on fewer than R live
    /// nodes); keys under R copies are also sampled every 5 s during the run.
    #[arg(long, default_value_t = 0)]
    puts: usize,
    /// Deletes from random members during --duration, each of a key holding
    /// an acknowledged value. Default: a tenth of --puts.
    #[arg(long)]
    deletes: Option<usize>,
    /// Gets of keys already written, from random members during --duration;
    /// an answer older than a write acknowledged before the get started is
    /// counted as stale, an error as failed.
    #[arg(long, default_value_t = 0)]
    gets: usize,
    /// The seed: one seed, one run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Rerun the scenario of this seed (give the same other flags) with a
    /// trace of recent events, printed if an invariant is broken.
    #[arg(long, value_name = "SEED")]
    replay: Option<u64>,
    /// Time between joins while building the ring. Default: 100ms, or less
    /// for large rings so that building takes at most 200 s of simulated time.
    #[arg(long, value_parser = parse_duration)]
    join_every: Option<Duration>,
    /// Fraction of departures that are crashes; the rest leave gracefully.
    #[arg(long, default_value_t = 0.5)]
    crash_fraction: f64,
    /// One-way latency, uniform between these bounds.
    #[arg(long, value_parser = parse_duration, default_value = "20ms")]
    latency_min: Duration,
    #[arg(long, value_parser = parse_duration, default_value = "80ms")]
    latency_max: Duration,
    /// Fraction of messages lost (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Crash this many consecutive members at once after the ring settled.
    #[arg(long, default_value_t = 0)]
    consecutive_crashes: usize,
    /// Cut off a fraction of the id space after the ring settled, e.g. `60s:0.3`.
    #[arg(long, value_name = "LENGTH:FRACTION")]
    partition: Option<String>,
    /// Stabilization period (the wide-area preset uses 2s).
    #[arg(long, value_parser = parse_duration)]
    stabilize_every: Option<Duration>,
    /// Successor list length L.
    #[arg(long)]
    successors: Option<usize>,
    /// Hop mean for N = 10, 100, 1000, 10000 (static rings), as a table and an SVG plot in --out.
    #[arg(long)]
    sweep: bool,
    /// Where --sweep writes sweep.txt, sweep.json and sweep.svg.
    #[arg(long, default_value = "sim-out")]
    out: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Print no progress lines to stderr.
    #[arg(long, short)]
    quiet: bool,
    /// While converging, print what is still wrong every 10 simulated seconds.
    #[arg(long, short)]
    verbose: bool,
}

fn scenario(args: &Args) -> anyhow::Result<Scenario> {
    let mut ring = wide_area_ring();
    if let Some(every) = args.stabilize_every {
        ring.stabilize_every = every;
    }
    if let Some(length) = args.successors {
        ring.successor_list_len = length;
    }
    ring.validate().context("ring settings")?;
    if !(0.0..=1.0).contains(&args.loss) || !(0.0..=1.0).contains(&args.crash_fraction) {
        bail!("--loss and --crash-fraction are fractions between 0 and 1");
    }
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let partition = match &args.partition {
        None => None,
        Some(text) => {
            let (length, fraction) = text
                .split_once(':')
                .context("--partition is LENGTH:FRACTION, e.g. 60s:0.3")?;
            let length = parse_duration(length).map_err(anyhow::Error::msg)?;
            let fraction: f64 = fraction
                .parse()
                .context("the partition fraction is a number between 0 and 1")?;
            Some((length, fraction))
        }
    };
    Ok(Scenario {
        nodes: args.nodes,
        seed: args.replay.unwrap_or(args.seed),
        join_every: args.join_every.unwrap_or_else(|| {
            Duration::from_millis(100).min(Duration::from_secs(200) / args.nodes.max(1) as u32)
        }),
        churn_mean: args.churn_mean,
        duration: args.duration,
        crash_fraction: args.crash_fraction,
        lookups: if args.churn_mean.is_some() {
            args.lookups
        } else {
            0
        },
        final_lookups: args.final_lookups,
        puts: args.puts,
        deletes: args.deletes.unwrap_or(args.puts / 10),
        gets: args.gets,
        consecutive_crashes: args.consecutive_crashes,
        partition,
        network: NetworkModel {
            latency_min: args.latency_min,
            latency_max: args.latency_max.max(args.latency_min),
            loss: args.loss,
        },
        ring,
        trace: args.replay.is_some(),
        verbose: args.verbose,
        progress: !args.quiet,
        ..Scenario::default()
    })
}

/// Peak resident memory of this process (Linux), in MiB.
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let base = scenario(&args)?;
    if args.sweep {
        let mut points = Vec::new();
        for nodes in [10, 100, 1000, 10_000] {
            eprintln!("sweep: N = {nodes} ...");
            let report = run(&Scenario {
                nodes,
                churn_mean: None,
                lookups: 0,
                ..base.clone()
            });
            if let Some(violation) = &report.violation {
                eprintln!("N = {nodes}: invariant broken: {violation}");
            }
            points.push(SweepPoint::from_report(&report));
        }
        std::fs::create_dir_all(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?;
        let text = table(&points);
        std::fs::write(args.out.join("sweep.txt"), &text)?;
        std::fs::write(
            args.out.join("sweep.json"),
            serde_json::to_string_pretty(&points)?,
        )?;
        std::fs::write(args.out.join("sweep.svg"), svg(&points))?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&points)?);
        } else {
            print!("{text}");
            println!(
                "wrote {}/sweep.txt, sweep.json and sweep.svg",
                args.out.display()
            );
        }
        return Ok(());
    }
    let mut report = run(&base);
    report.peak_memory_mib = peak_memory_mib();
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["wall_seconds"] = serde_json::json!(report.wall_seconds);
        value["peak_memory_mib"] = serde_json::json!(report.peak_memory_mib);
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", report.text());
    }
    if report.violation.is_some() {
        std::process::exit(1);
    }
    Ok(())
}
