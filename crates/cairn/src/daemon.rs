//! `cairn node` and `cairn demo`: map flags onto `NodeConfig`, start nodes,
//! print where they listen, and leave gracefully on SIGINT/SIGTERM; and
//! `cairn bench store`. Failures are [`DaemonError`]s; their exit codes are
//! decided in [`crate::exit`].

use crate::cli::{DemoArgs, NodeArgs};
use cairn_core::RingConfig;
use cairn_node::{Node, NodeConfig, NodeError};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;

/// Why nodes could not be started in this process, or a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The `--http` address is taken, or not this machine's.
    #[error("cannot listen for HTTP on {addr}: {source}")]
    HttpBind { addr: SocketAddr, source: io::Error },
    /// The HTTP socket was bound but its address cannot be read.
    #[error("cannot read the HTTP address: {0}")]
    HttpAddr(io::Error),
    /// The HTTP API could not be started on the bound socket.
    #[error("cannot serve HTTP: {0}")]
    HttpServe(io::Error),
    /// The node itself refused to start (config, data dir, cluster key, join...).
    #[error(transparent)]
    Node(#[from] NodeError),
    /// One of the `cairn demo` nodes failed; counted from 0.
    #[error("node {index}: {source}")]
    DemoNode {
        index: usize,
        source: Box<DaemonError>,
    },
    /// `cairn demo` without `--data` needs a temporary directory.
    #[error("cannot create a temporary data dir: {0}")]
    DemoDataDir(io::Error),
    /// `cairn bench store` could not make its directory (under `--dir`).
    #[error("cannot create a directory to measure in: {0}")]
    BenchDir(io::Error),
    /// A measurement of `cairn bench store` failed.
    #[error("the benchmark failed: {0}")]
    Bench(Box<dyn std::error::Error>),
}

/// Runs one node until a signal or a leave request.
pub async fn run_node(args: &NodeArgs) -> Result<(), DaemonError> {
    let ring = RingConfig {
        stabilize_every: Duration::from_millis(args.stabilize_ms),
        ..RingConfig::default()
    };
    let config = NodeConfig {
        listen: args.listen,
        http: Some(args.http),
        data_dir: args.data.clone(),
        join: args.join.clone(),
        cluster_key: args.cluster_key.clone(),
        replicas: args.replicas,
        write_quorum: args.write_quorum,
        read_quorum: args.read_quorum,
        tombstone_grace: args.tombstone_grace,
        join_timeout: Duration::from_secs(args.join_timeout),
        ring,
    };
    let (node, http) = start(config).await?;
    println!(
        "cairn node {} ready: quic={} http=http://{} id={}",
        node.id().short(),
        node.addr(),
        http,
        node.id()
    );
    wait_for_stop(std::slice::from_ref(&node)).await;
    node.leave().await;
    Ok(())
}

/// Starts a node with its HTTP API.
async fn start(mut config: NodeConfig) -> Result<(Node, SocketAddr), DaemonError> {
    let http_addr = config
        .http
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let listener = TcpListener::bind(http_addr)
        .await
        .map_err(|source| DaemonError::HttpBind {
            addr: http_addr,
            source,
        })?;
    let bound = listener.local_addr().map_err(DaemonError::HttpAddr)?;
    config.http = Some(bound);
    let node = Node::start(config).await?;
    let bound = cairn_node::http::serve(node.clone(), listener).map_err(DaemonError::HttpServe)?;
    Ok((node, bound))
}

/// Resolves on SIGINT, SIGTERM, or when any of the nodes was asked to stop.
async fn wait_for_stop(nodes: &[Node]) {
    let stopped = futures_any(nodes);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = match signal(SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!("cannot watch SIGTERM: {error}");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: leaving the ring"),
            _ = terminate.recv() => tracing::info!("SIGTERM: leaving the ring"),
            _ = stopped => tracing::info!("leave requested"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = stopped => {}
        }
    }
}

/// Resolves when the first node of `nodes` is asked to stop (never, if none).
async fn futures_any(nodes: &[Node]) {
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<()>(1);
    for node in nodes {
        let node = node.clone();
        let sender = sender.clone();
        tokio::spawn(async move {
            node.stopped().await;
            let _ = sender.send(()).await;
        });
    }
    drop(sender);
    if receiver.recv().await.is_none() {
        std::future::pending::<()>().await;
    }
}

/// `cairn bench store`: the storage benchmark, in a temporary dir under `dir`.
pub fn run_store_bench(dir: Option<&std::path::Path>, seconds: u64) -> Result<(), DaemonError> {
    let temporary = match dir {
        Some(dir) => std::fs::create_dir_all(dir).and_then(|()| tempfile::tempdir_in(dir)),
        None => tempfile::tempdir(),
    }
    .map_err(DaemonError::BenchDir)?;
    let per_figure = Duration::from_secs(seconds);
    cairn_node::store_bench::run(temporary.path(), per_figure, &mut std::io::stdout())
        .map_err(DaemonError::Bench)
}

/// Runs N nodes in this process on free loopback ports until Ctrl-C.
pub async fn run_demo(args: &DemoArgs) -> Result<(), DaemonError> {
    let temporary;
    let base: PathBuf = match &args.data {
        Some(dir) => dir.clone(),
        None => match tempfile::Builder::new().prefix("cairn-demo-").tempdir() {
            Ok(dir) => {
                temporary = dir;
                temporary.path().to_path_buf()
            }
            Err(error) => return Err(DaemonError::DemoDataDir(error)),
        },
    };
    println!(
        "starting a ring of {} nodes (data under {})",
        args.nodes,
        base.display()
    );
    let mut nodes: Vec<Node> = Vec::new();
    for index in 0..args.nodes {
        let config = NodeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            http: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            data_dir: base.join(format!("node-{index}")),
            join: nodes
                .first()
                .map(|n| vec![n.addr().to_string()])
                .unwrap_or_default(),
            cluster_key: args.cluster_key.clone(),
            ..NodeConfig::default()
        };
        match start(config).await {
            Ok((node, http)) => {
                println!("node {index}: {} http://{http}", node.id().short());
                nodes.push(node);
            }
            Err(error) => {
                for node in &nodes {
                    node.leave().await;
                }
                return Err(DaemonError::DemoNode {
                    index,
                    source: Box::new(error),
                });
            }
        }
    }
    if let Some(first) = nodes.first()
        && let Some(http) = first.info().http
    {
        println!("try:");
        println!("  cairn --node http://{http} ring");
        println!("  cairn --node http://{http} put greeting 'hello, ring'");
        if let Some(other) = nodes.last().and_then(|n| n.info().http) {
            println!("  cairn --node http://{other} get greeting     (through another node)");
        }
        println!("  cairn --node http://{http} whereis greeting");
        println!("  curl http://{http}/v1/kv/greeting");
        println!("(Ctrl-C stops the demo)");
    }
    wait_for_stop(&nodes).await;
    println!("stopping: each node leaves the ring");
    for node in nodes.iter().rev() {
        node.leave().await;
    }
    Ok(())
}
