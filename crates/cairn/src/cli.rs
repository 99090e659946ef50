//! The command line: flags and subcommands (clap derive), and running the
//! commands that only talk to a node (`info`, `ring`, `lookup`, `leave`).
//!
//! Parsing checks what it can at the edge (addresses, replica count, ring
//! size) so that a bad flag is a usage error (exit 2) before anything starts.
//! Starting nodes (`node`, `demo`) is not done here.

use crate::output;
use cairn_client::{Client, ClientError, DEFAULT_NODE_URL};
use cairn_node::config::MAX_REPLICAS;
use clap::builder::RangedU64ValueParser;
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The most nodes `cairn demo` starts in one process (`--nodes`).
pub const MAX_DEMO_NODES: usize = 64;

const LONG_ABOUT: &str = "\
Cairn is a peer-to-peer distributed hash table: a ring of equal nodes that \
stores keys and values, with no central server. Every node routes requests, \
stores data and answers clients; nodes join through any live node, leave or \
crash, and the ring heals itself.

Each node serves an HTTP API (JSON under /v1). `cairn node` and `cairn demo` \
start nodes; the other commands talk to one running node, chosen with --node.

New here? Run `cairn demo` to start a small ring on this machine; it prints \
each node's HTTP URL. Then, in another terminal, try `cairn ring` and \
`cairn lookup hello`.";

/// The help section of `--node` and `--json`, which every command accepts.
const GLOBAL_OPTIONS: &str = "Global options";

const AFTER_HELP: &str = "\
Exit codes: 0 ok, 1 key not found, 2 bad usage or input, 3 ring or network error.";

/// Cairn: a peer-to-peer distributed hash table.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// The node to talk to: the URL of its HTTP API (`http://` may be left
    /// out). Accepted before or after the command.
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL_OPTIONS,
        env = "CAIRN_NODE",
        value_name = "URL",
        default_value = DEFAULT_NODE_URL
    )]
    pub node: String,

    /// Print the API's JSON instead of tables, for scripts. Accepted before or
    /// after the command.
    #[arg(long, global = true, help_heading = GLOBAL_OPTIONS)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node: join a ring (or start a new one) and serve the HTTP API.
    ///
    /// Without --join, the node starts a ring of its own; give the --listen
    /// address of any live node to join its ring instead. The node keeps its
    /// key and data in --data, so it keeps its id across restarts.
    Node(NodeArgs),

    /// Start a small ring on this machine, in one process, and print each
    /// node's HTTP URL.
    ///
    /// The nodes listen on 127.0.0.1 and stop on Ctrl-C. A good way to try
    /// Cairn: point the other commands at one of the printed URLs with --node.
    Demo(DemoArgs),

    /// Show this node: its id, addresses, predecessor, successor list and
    /// fingers.
    Info,

    /// List the ring's members in ring order: id, address, HTTP address and
    /// state (alive, suspect, leaving, dead).
    ///
    /// The node walks the ring from itself along successor lists.
    Ring,

    /// Find the node responsible for KEY, and how many hops and how long it
    /// took.
    Lookup {
        /// The key: 1 to 1024 bytes of UTF-8, not `.` or `..`. Quote it if it
        /// has spaces; put `--` before it if it starts with `-`.
        key: String,
    },

    /// Ask the node to leave the ring gracefully: it tells its predecessor
    /// and successor, which repair the ring at once, then stops.
    Leave,

    /// Store a value under KEY on a write quorum of its replicas.
    ///
    /// The value is the argument, the contents of -f FILE, or stdin with `-`
    /// (up to 1 MiB). Prints the version stored. If the node answers an
    /// error (exit code 3), the write is indeterminate: it may still take
    /// effect later.
    Put {
        /// The key: 1 to 1024 bytes of UTF-8, not `.` or `..`.
        key: String,
        /// The value; `-` reads it from stdin.
        #[arg(conflicts_with = "file")]
        value: Option<String>,
        /// Read the value from this file.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Option<PathBuf>,
    },

    /// Print the newest value of KEY a read quorum holds (raw bytes), or
    /// write it to a file. Exit code 1 if there is no such key.
    Get {
        /// The key.
        key: String,
        /// Write the value to this file instead of stdout.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },

    /// Delete KEY (a tombstone on a write quorum; the value never comes back).
    Del {
        /// The key.
        key: String,
    },

    /// Show KEY's size, newest version, and which of its replicas hold it.
    Stat {
        /// The key.
        key: String,
    },

    /// Show KEY's replica set in ring order, and which members really hold
    /// the newest version.
    Whereis {
        /// The key.
        key: String,
    },

    /// List the live keys that start with PREFIX (all keys without one), in
    /// order, one per line; at most 10,000 (it says so when there are more).
    /// Every member is asked for its range.
    Ls {
        /// Only keys starting with this.
        #[arg(default_value = "")]
        prefix: String,
    },

    /// Measure this machine: prints figures, changes nothing outside a
    /// temporary directory.
    #[command(subcommand)]
    Bench(Bench),
}

/// What `cairn bench` measures.
#[derive(Debug, Subcommand)]
pub enum Bench {
    /// The storage engine on this disk: durable record puts/s with 1, 8 and
    /// 64 concurrent writers next to the raw fsync rate measured in the same
    /// run, put latency, and 1 MiB chunk write and read MB/s.
    Store {
        /// Directory on the disk to measure (a temporary dir is made inside
        /// it and removed); default: the system's temporary dir.
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
        /// Seconds per figure.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
    },

    /// A running ring's key/value speed: CLIENTS concurrent clients put and
    /// get for SECONDS (keys written first, so gets find them), then ops/s
    /// and latency p50/p99/p999 per operation. The clients are spread over
    /// every member --node's ring walk names (any node answers). It writes
    /// keys `bench-…` into the ring.
    Kv {
        /// Concurrent clients.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
        clients: u64,
        /// How long to run, in seconds.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
        seconds: u64,
        /// Bytes per value.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(0..=1_048_576))]
        value_size: u64,
        /// Percent of operations that are gets (the rest are puts).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=100))]
        get_percent: u64,
        /// How many distinct keys the load uses.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        keys: u64,
        /// Send every request through --node instead of spreading the
        /// clients over every member's HTTP API.
        #[arg(long)]
        through_one: bool,
        /// Do not write the keys first: an earlier run wrote them (gets of
        /// a missing key count as failed). The timed load starts at once.
        #[arg(long)]
        no_preload: bool,
    },
}

/// Flags of `cairn node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Address for node-to-node traffic (QUIC over UDP). Other nodes join
    /// through this address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7000")]
    pub listen: SocketAddr,

    /// Address of the HTTP API, for `cairn` commands and the
    /// browser.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7070")]
    pub http: SocketAddr,

    /// Directory for the node's key and stored data; created if missing.
    #[arg(long, value_name = "DIR", default_value = "./cairn-data")]
    pub data: PathBuf,

    /// Join the ring through the node at HOST:PORT (its --listen address).
    /// Repeat to give several; the first that answers is used. Without it,
    /// the node starts a new ring.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_host_port)]
    pub join: Vec<String>,

    /// How many nodes hold each key (the replication factor), 1 to 8.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 3,
        value_parser = clap::value_parser!(u8).range(1..=MAX_REPLICAS as i64)
    )]
    pub replicas: u8,

    /// W: a put succeeds once this many replicas stored it durably (1 to
    /// --replicas; default a majority, 2 of 3). Otherwise it fails with exit
    /// code 3 / HTTP 503.
    #[arg(
        long,
        value_name = "W",
        value_parser = clap::value_parser!(u8).range(1..=MAX_REPLICAS as i64)
    )]
    pub write_quorum: Option<u8>,

    /// Q: a get asks this many replicas and returns the newest version (1 to
    /// --replicas; default a majority, 2 of 3).
    #[arg(
        long,
        value_name = "Q",
        value_parser = clap::value_parser!(u8).range(1..=MAX_REPLICAS as i64)
    )]
    pub read_quorum: Option<u8>,

    /// How long a delete's tombstone is kept before it is dropped (`10d`,
    /// `36h`, `90m`...). Every replica must learn of the delete within it. A
    /// node that was down longer checks its records with their other
    /// replicas before it serves or hands out any (it drops those no other
    /// replica holds, so that a deleted value does not come back).
    #[arg(long, value_name = "DURATION", default_value = "10d", value_parser = parse_grace)]
    pub tombstone_grace: std::time::Duration,

    /// File holding a secret shared by the ring's nodes (raw bytes, at least
    /// 32; make one with `head -c 32 /dev/urandom > cluster.key`). Nodes
    /// without the same secret are refused. Default: no cluster key.
    #[arg(long, value_name = "FILE")]
    pub cluster_key: Option<PathBuf>,

    /// Milliseconds between two rounds of ring maintenance (stabilize):
    /// lower heals the ring faster and sends more messages.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 500,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub stabilize_ms: u64,

    /// Seconds to keep trying the --join addresses before giving up (exit 3).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 20,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub join_timeout: u64,
}

/// Flags of `cairn demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many nodes to start, 1 to 64.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 5,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_DEMO_NODES as u64)
    )]
    pub nodes: usize,

    /// Directory for the nodes' data, one subdirectory per node; kept after
    /// exit. Default: a temporary directory, removed on exit.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// File holding a secret that every demo node uses (see `cairn node
    /// --help`). Default: no cluster key.
    #[arg(long, value_name = "FILE")]
    pub cluster_key: Option<PathBuf>,
}

/// Checks a `--join` value: a host (name, IPv4 or bracketed IPv6) and a port.
fn parse_host_port(text: &str) -> Result<String, String> {
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!(
            "{text:?} has no port; expected HOST:PORT, e.g. 127.0.0.1:7000"
        ));
    };
    if host.is_empty() {
        return Err(format!(
            "{text:?} has no host; expected HOST:PORT, e.g. 127.0.0.1:7000"
        ));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!(
            "{port:?} is not a port (1 to 65535); expected HOST:PORT, e.g. 127.0.0.1:7000"
        )),
        Ok(_) => Ok(text.to_string()),
    }
}

/// Runs `info`, `ring`, `lookup` or `leave` against the node at `--node`,
/// and prints the answer (a table, or the API's JSON with `--json`).
///
/// `node` and `demo` start nodes and are not handled here: given one, this
/// returns a [`ClientError::BadInput`] rather than doing anything.
pub async fn run_client_command(cli: &Cli) -> Result<(), ClientError> {
    if let Command::Get { key, output } = &cli.command {
        // Raw bytes, not a line of text.
        let value = Client::new(&cli.node)?.get(key).await?;
        return match output {
            Some(path) => {
                std::fs::write(path, &value.bytes).map_err(|error| ClientError::BadInput {
                    message: format!("cannot write {}: {error}", path.display()),
                })
            }
            None => {
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(&value.bytes);
                let _ = stdout.flush();
                Ok(())
            }
        };
    }
    let text = client_command_output(cli).await?;
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (e.g. piped into `head`) leaves nothing more to say.
    let _ = writeln!(stdout, "{text}");
    Ok(())
}

/// The bytes `put` stores: the argument, a file, or stdin (`-`).
fn value_to_put(
    value: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<Vec<u8>, ClientError> {
    use std::io::Read;
    let read_error = |what: &str, error: std::io::Error| ClientError::BadInput {
        message: format!("cannot read {what}: {error}"),
    };
    match (value, file) {
        (_, Some(path)) => {
            std::fs::read(path).map_err(|e| read_error(&path.display().to_string(), e))
        }
        (Some("-"), None) => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| read_error("stdin", e))?;
            Ok(bytes)
        }
        (Some(value), None) => Ok(value.as_bytes().to_vec()),
        (None, None) => Err(ClientError::BadInput {
            message: "give the value: as an argument, with -f FILE, or - to read stdin".into(),
        }),
    }
}

/// `get` prints raw bytes and is handled before the text commands.
fn unreachable_get() -> String {
    String::new()
}

/// What [`run_client_command`] prints, without printing it.
pub async fn client_command_output(cli: &Cli) -> Result<String, ClientError> {
    let client = Client::new(&cli.node)?;
    let json = cli.json;
    Ok(match &cli.command {
        Command::Info => {
            let info = client.node_info().await?;
            if json {
                output::json(&info)
            } else {
                output::info_text(&info)
            }
        }
        Command::Ring => {
            let mut ring = client.ring().await?;
            member_totals(&mut ring).await;
            if json {
                output::json(&ring)
            } else {
                output::ring_text(&ring)
            }
        }
        Command::Lookup { key } => {
            let view = client.lookup(key).await?;
            if json {
                output::json(&view)
            } else {
                output::lookup_text(key, &view)
            }
        }
        Command::Put { key, value, file } => {
            let bytes = value_to_put(value.as_deref(), file.as_deref())?;
            let written = client.put(key, bytes).await?;
            if json {
                output::json(&serde_json::json!({ "key": key, "version": written.version }))
            } else {
                format!("stored {key} (version {})", written.version)
            }
        }
        Command::Del { key } => {
            let written = client.delete(key).await?;
            if json {
                output::json(
                    &serde_json::json!({ "key": key, "version": written.version, "deleted": true }),
                )
            } else {
                format!("deleted {key} (version {})", written.version)
            }
        }
        Command::Stat { key } | Command::Whereis { key } => {
            let locations = client.locations(key).await?;
            if matches!(cli.command, Command::Stat { .. }) && locations.version.is_none() {
                return Err(ClientError::NotFound {
                    message: format!("no such key: {key}"),
                });
            }
            if json {
                output::json(&locations)
            } else if matches!(cli.command, Command::Stat { .. }) {
                output::stat_text(key, &locations)
            } else {
                output::whereis_text(key, &locations)
            }
        }
        Command::Ls { prefix } => {
            let list = client.list(prefix).await?;
            if list.members_missing > 0 {
                eprintln!(
                    "warning: {} member(s) did not answer: their keys are not listed",
                    list.members_missing
                );
            }
            if list.truncated && !json {
                eprintln!(
                    "(more keys match: only the first {} are shown)",
                    list.keys.len()
                );
            }
            if json {
                output::json(&list)
            } else {
                list.keys.join("\n")
            }
        }
        Command::Get { .. } => unreachable_get(),
        Command::Leave => {
            // The leave answer carries no id; ask first, to say who leaves.
            let id = client.node_info().await?.id;
            client.leave().await?;
            if json {
                output::leave_json(&id)
            } else {
                output::leave_text(&id)
            }
        }
        Command::Node(_) | Command::Demo(_) | Command::Bench(_) => {
            return Err(ClientError::BadInput {
                message: "`cairn node` and `cairn demo` start nodes; they are not sent to --node"
                    .to_string(),
            });
        }
    })
}

/// Asks every member with an HTTP address what its store holds (in
/// parallel, 2 s each); a member that does not answer shows none.
async fn member_totals(ring: &mut cairn_core::api::RingView) {
    let mut asks = tokio::task::JoinSet::new();
    for (index, member) in ring.members.iter().enumerate() {
        let Some(http) = member.http.clone() else {
            continue;
        };
        asks.spawn(async move {
            let client = Client::new(&http).ok()?;
            let info = tokio::time::timeout(Duration::from_secs(2), client.node_info())
                .await
                .ok()?
                .ok()?;
            Some((index, info.stored?))
        });
    }
    while let Some(done) = asks.join_next().await {
        if let Ok(Some((index, stored))) = done {
            ring.members[index].stored = Some(stored);
        }
    }
}

/// A tombstone grace: a human duration of at least a minute.
fn parse_grace(text: &str) -> Result<std::time::Duration, String> {
    let grace = humantime::parse_duration(text)
        .map_err(|error| format!("{text:?} is not a duration (try 10d, 36h, 90m): {error}"))?;
    if grace < std::time::Duration::from_secs(60) {
        return Err(format!(
            "{text:?} is too short: the grace must be at least a minute"
        ));
    }
    Ok(grace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::ExitCode;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        let mut argv = vec!["cairn"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv) {
            Ok(cli) => cli,
            Err(err) => panic!("{args:?} should parse: {err}"),
        }
    }

    fn usage_error(args: &[&str]) -> String {
        let mut argv = vec!["cairn"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv) {
            Ok(cli) => panic!("{args:?} should be refused, got {cli:?}"),
            Err(err) => {
                assert_eq!(err.exit_code(), ExitCode::BadInput.code(), "{args:?}");
                err.to_string()
            }
        }
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn node_and_json_are_accepted_before_or_after_the_command() {
        let before = parse(&["--node", "http://10.0.0.1:7070", "--json", "ring"]);
        let after = parse(&["ring", "--node", "http://10.0.0.1:7070", "--json"]);
        for cli in [before, after] {
            assert_eq!(cli.node, "http://10.0.0.1:7070");
            assert!(cli.json);
            assert!(matches!(cli.command, Command::Ring));
        }
        let lookup = parse(&["lookup", "foo", "--json"]);
        assert!(lookup.json);
        assert!(matches!(lookup.command, Command::Lookup { ref key } if key == "foo"));
    }

    #[test]
    fn defaults_match_the_design() {
        let cli = parse(&["info"]);
        assert!(!cli.json);
        // CAIRN_NODE may be set where the tests run; only check the default
        // when it is not.
        if std::env::var_os("CAIRN_NODE").is_none() {
            assert_eq!(cli.node, "http://127.0.0.1:7070");
        }

        let Command::Node(node) = parse(&["node"]).command else {
            panic!("expected node");
        };
        assert_eq!(node.listen, "127.0.0.1:7000".parse().expect("addr"));
        assert_eq!(node.http, "127.0.0.1:7070".parse().expect("addr"));
        assert_eq!(node.data, PathBuf::from("./cairn-data"));
        assert!(node.join.is_empty());
        assert_eq!(node.replicas, 3);
        assert_eq!(node.cluster_key, None);
        assert_eq!(node.stabilize_ms, 500);
        assert_eq!(node.join_timeout, 20);

        let Command::Bench(Bench::Store { dir, seconds }) =
            parse(&["bench", "store", "--seconds", "2"]).command
        else {
            panic!("bench store parses");
        };
        assert_eq!((dir, seconds), (None, 2));
        let Command::Demo(demo) = parse(&["demo"]).command else {
            panic!("expected demo");
        };
        assert_eq!(demo.nodes, 5);
        assert_eq!(demo.data, None);
        assert_eq!(demo.cluster_key, None);
    }

    #[test]
    fn node_flags_are_parsed() {
        let Command::Node(node) = parse(&[
            "node",
            "--listen",
            "0.0.0.0:7001",
            "--http",
            "[::1]:8080",
            "--data",
            "d1",
            "--join",
            "10.0.0.2:7000",
            "--join",
            "seed.example:7000",
            "--replicas",
            "5",
            "--cluster-key",
            "ck",
            "--stabilize-ms",
            "100",
        ])
        .command
        else {
            panic!("expected node");
        };
        assert_eq!(node.listen, "0.0.0.0:7001".parse().expect("addr"));
        assert_eq!(node.http, "[::1]:8080".parse().expect("addr"));
        assert_eq!(node.join, ["10.0.0.2:7000", "seed.example:7000"]);
        assert_eq!(node.replicas, 5);
        assert_eq!(node.cluster_key, Some(PathBuf::from("ck")));
        assert_eq!(node.stabilize_ms, 100);
    }

    #[test]
    fn out_of_range_numbers_are_usage_errors() {
        usage_error(&["node", "--replicas", "0"]);
        usage_error(&["node", "--replicas", "9"]);
        usage_error(&["node", "--stabilize-ms", "0"]);
        usage_error(&["demo", "--nodes", "0"]);
        usage_error(&["demo", "--nodes", "65"]);
        let Command::Node(node) = parse(&["node", "--replicas", "8"]).command else {
            panic!("expected node");
        };
        assert_eq!(node.replicas, 8);
        let Command::Demo(demo) = parse(&["demo", "--nodes", "64"]).command else {
            panic!("expected demo");
        };
        assert_eq!(demo.nodes, 64);
    }

    #[test]
    fn join_needs_a_host_and_a_port() {
        assert!(usage_error(&["node", "--join", "10.0.0.2"]).contains("no port"));
        assert!(usage_error(&["node", "--join", ":7000"]).contains("no host"));
        assert!(usage_error(&["node", "--join", "h:0"]).contains("not a port"));
        assert!(usage_error(&["node", "--join", "h:http"]).contains("not a port"));
        assert!(usage_error(&["node", "--listen", "localhost"]).contains("--listen"));
        let Command::Node(node) = parse(&["node", "--join", "[::1]:7000"]).command else {
            panic!("expected node");
        };
        assert_eq!(node.join, ["[::1]:7000"]);
    }

    #[test]
    fn lookup_needs_a_key() {
        usage_error(&["lookup"]);
        let cli = parse(&["lookup", "--", "-dash"]);
        assert!(matches!(cli.command, Command::Lookup { ref key } if key == "-dash"));
    }

    #[test]
    fn help_explains_cairn_and_points_at_demo() {
        let help = Cli::command().render_long_help().to_string();
        assert!(
            help.contains("peer-to-peer distributed hash table"),
            "{help}"
        );
        assert!(help.contains("cairn demo"), "{help}");
        assert!(help.contains("[env: CAIRN_NODE"), "{help}");
        assert!(help.contains("[default: http://127.0.0.1:7070]"), "{help}");
        assert!(help.contains("Exit codes"), "{help}");
        for command in ["node", "demo", "info", "ring", "lookup", "leave"] {
            assert!(
                help.contains(&format!("  {command} ")),
                "{command} missing: {help}"
            );
        }
    }

    #[test]
    fn every_flag_has_help_and_node_flags_show_defaults() {
        let mut root = Cli::command();
        root.build();
        for sub in root.get_subcommands() {
            assert!(sub.get_about().is_some(), "{} has no help", sub.get_name());
            for arg in sub.get_arguments() {
                assert!(
                    arg.get_help().is_some(),
                    "{} {} has no help",
                    sub.get_name(),
                    arg.get_id()
                );
            }
        }
        let node_help = root
            .find_subcommand_mut("node")
            .expect("node subcommand")
            .render_long_help()
            .to_string();
        for default in [
            "127.0.0.1:7000",
            "127.0.0.1:7070",
            "./cairn-data",
            "[default: 3]",
            "[default: 500]",
        ] {
            assert!(
                node_help.contains(default),
                "{default} missing: {node_help}"
            );
        }
    }

    #[tokio::test]
    async fn node_and_demo_are_not_sent_to_a_node() {
        for args in [&["node"][..], &["demo"][..]] {
            let err = client_command_output(&parse(args))
                .await
                .expect_err("not a client command");
            assert!(
                matches!(err, ClientError::BadInput { .. }),
                "{args:?}: {err:?}"
            );
            assert_eq!(ExitCode::from(&err), ExitCode::BadInput, "{args:?}");
        }
    }

    #[tokio::test]
    async fn a_node_that_is_not_running_is_a_network_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let url = format!("http://{addr}");
        let err = client_command_output(&parse(&["info", "--node", &url]))
            .await
            .expect_err("nothing listens");
        assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
        assert_eq!(ExitCode::from(&err), ExitCode::RingError);
        assert!(err.to_string().contains("cairn node"), "{err}");
    }
}
