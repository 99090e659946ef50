//! `cairn node` and `cairn demo`: map flags onto `NodeConfig`, start nodes,
//! print where they listen, and leave gracefully on SIGINT/SIGTERM.

use crate::cli::{DemoArgs, NodeArgs};
use cairn_core::RingConfig;
use cairn_node::{Node, NodeConfig, NodeError};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;

/// Runs one node until a signal or a leave request; returns the exit code.
pub async fn run_node(args: &NodeArgs) -> i32 {
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
        join_timeout: Duration::from_secs(args.join_timeout),
        ring,
    };
    let (node, http) = match start(config).await {
        Ok(started) => started,
        Err((code, message)) => {
            eprintln!("error: {message}");
            return code;
        }
    };
    println!(
        "cairn node {} ready: quic={} http=http://{} id={}",
        node.id().short(),
        node.addr(),
        http,
        node.id()
    );
    wait_for_stop(std::slice::from_ref(&node)).await;
    node.leave().await;
    0
}

/// Starts a node with its HTTP API; on failure, the exit code and a message.
async fn start(mut config: NodeConfig) -> Result<(Node, SocketAddr), (i32, String)> {
    let http_addr = config
        .http
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let listener = TcpListener::bind(http_addr)
        .await
        .map_err(|e| (3, format!("cannot listen for HTTP on {http_addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| (3, format!("cannot read the HTTP address: {e}")))?;
    config.http = Some(bound);
    let node = Node::start(config).await.map_err(|e| {
        let code = match e {
            NodeError::Config(_) | NodeError::Identity(_) => 2,
            NodeError::Transport(cairn_node::transport::TransportError::ClusterKey(_)) => 2,
            _ => 3,
        };
        (code, e.to_string())
    })?;
    let bound = cairn_node::http::serve(node.clone(), listener)
        .map_err(|e| (3, format!("cannot serve HTTP: {e}")))?;
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
pub fn run_store_bench(dir: Option<&std::path::Path>, seconds: u64) -> i32 {
    let made = match dir {
        Some(dir) => std::fs::create_dir_all(dir).and_then(|()| tempfile::tempdir_in(dir)),
        None => tempfile::tempdir(),
    };
    let temporary = match made {
        Ok(temporary) => temporary,
        Err(error) => {
            eprintln!("error: cannot create a directory to measure in: {error}");
            return 2;
        }
    };
    let per_figure = Duration::from_secs(seconds);
    match cairn_node::store_bench::run(temporary.path(), per_figure, &mut std::io::stdout()) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("error: the benchmark failed: {error}");
            3
        }
    }
}

/// Runs N nodes in this process on free loopback ports until Ctrl-C.
pub async fn run_demo(args: &DemoArgs) -> i32 {
    let temporary;
    let base: PathBuf = match &args.data {
        Some(dir) => dir.clone(),
        None => match tempfile::Builder::new().prefix("cairn-demo-").tempdir() {
            Ok(dir) => {
                temporary = dir;
                temporary.path().to_path_buf()
            }
            Err(error) => {
                eprintln!("error: cannot create a temporary data dir: {error}");
                return 3;
            }
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
            Err((code, message)) => {
                eprintln!("error: node {index}: {message}");
                for node in &nodes {
                    node.leave().await;
                }
                return code;
            }
        }
    }
    if let Some(first) = nodes.first()
        && let Some(http) = first.info().http
    {
        println!("try: cairn --node http://{http} ring   (Ctrl-C stops the demo)");
    }
    wait_for_stop(&nodes).await;
    println!("stopping: each node leaves the ring");
    for node in nodes.iter().rev() {
        node.leave().await;
    }
    0
}
