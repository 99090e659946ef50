//! The `cairn` command line: parses flags, then either starts nodes (`node`,
//! `demo`) or calls a node's HTTP API through `cairn-client` and prints.
//! Exit codes: 0 ok · 1 key not found · 2 bad usage or input · 3 ring/network
//! error, all decided in [`exit`].

mod bench_kv;
mod cli;
mod daemon;
mod exit;
mod output;

use clap::Parser;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = cli::Cli::parse();
    let default_log = match cli.command {
        cli::Command::Node(_) => "info,quinn=warn,rustls=warn",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_log)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => exit::finish(Err(exit::Error::Runtime(error))),
    };
    // `finish` ends the process while the runtime is still alive: dropping it
    // first would wait for blocking tasks (a slow DNS lookup) for nothing.
    exit::finish(runtime.block_on(run(&cli)))
}

/// Runs the command.
async fn run(cli: &cli::Cli) -> Result<(), exit::Error> {
    match &cli.command {
        cli::Command::Node(args) => daemon::run_node(args).await?,
        cli::Command::Demo(args) => daemon::run_demo(args).await?,
        cli::Command::Bench(cli::Bench::Store { dir, seconds }) => {
            daemon::run_store_bench(dir.as_deref(), *seconds)?
        }
        cli::Command::Bench(cli::Bench::Kv {
            clients,
            seconds,
            value_size,
            get_percent,
            keys,
            through_one,
            no_preload,
        }) => {
            let load = bench_kv::Load {
                clients: *clients as usize,
                seconds: *seconds,
                value_size: *value_size as usize,
                get_percent: *get_percent as u32,
                keys: *keys,
                through_one: *through_one,
                preload: !*no_preload,
            };
            bench_kv::run(&cli.node, &load).await?
        }
        _ => cli::run_client_command(cli).await?,
    }
    Ok(())
}
