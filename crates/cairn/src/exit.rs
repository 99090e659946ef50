//! The one place that turns a failure into the process' exit code, and ends
//! the process with it.
//!
//! Exit codes (DESIGN.md, Interfaces): 0 ok · 1 key not found · 2 bad usage
//! or input · 3 ring/network error. clap ends the process itself on a bad
//! flag, with 2: the same code as [`ExitCode::BadInput`] (tested below).
//!
//! Every `match` here is exhaustive, so a new error variant in any layer does
//! not compile until someone decides its exit code.

use crate::daemon::DaemonError;
use cairn_client::ClientError;
use cairn_core::kv::KvError;
use cairn_node::NodeError;
use cairn_node::transport::TransportError;

/// How the process ends. The numbers are the documented interface; scripts
/// rely on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// 0: the command did what was asked.
    Success = 0,
    /// 1: the key asked for does not exist.
    NotFound = 1,
    /// 2: bad usage or input: a flag, an argument, a config or file the user
    /// gave. Changing what was given fixes it.
    BadInput = 2,
    /// 3: the ring or the network failed: a node that cannot be reached or
    /// joined, a socket that cannot be bound, a timeout. Trying again later,
    /// or elsewhere, may work.
    RingError = 3,
}

impl ExitCode {
    /// The number the process exits with.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Everything a `cairn` command can fail with, whichever layer it came from.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command that talks to a node through its HTTP API.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Starting or running nodes in this process (`node`, `demo`, `bench store`).
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// The async runtime could not be made (out of threads or memory).
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Prints the failure, if any, as `error: ...` on stderr and ends the process
/// with its exit code.
pub fn finish(outcome: Result<(), Error>) -> ! {
    let code = match outcome {
        Ok(()) => ExitCode::Success,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(&error)
        }
    };
    std::process::exit(code.code())
}

impl From<&Error> for ExitCode {
    fn from(error: &Error) -> ExitCode {
        match error {
            Error::Client(error) => error.into(),
            Error::Daemon(error) => error.into(),
            Error::Runtime(_) => ExitCode::RingError,
        }
    }
}

impl From<&ClientError> for ExitCode {
    fn from(error: &ClientError) -> ExitCode {
        match error {
            ClientError::NotFound { .. } => ExitCode::NotFound,
            ClientError::BadUrl { .. } | ClientError::BadInput { .. } => ExitCode::BadInput,
            ClientError::Unreachable { .. }
            | ClientError::Timeout { .. }
            | ClientError::Connection { .. }
            | ClientError::Api { .. }
            | ClientError::Decode { .. } => ExitCode::RingError,
        }
    }
}

impl From<&DaemonError> for ExitCode {
    fn from(error: &DaemonError) -> ExitCode {
        match error {
            DaemonError::Node(error) => error.into(),
            DaemonError::DemoNode { source, .. } => source.as_ref().into(),
            // `--dir` names a place the user chose.
            DaemonError::BenchDir(_) => ExitCode::BadInput,
            DaemonError::HttpBind { .. }
            | DaemonError::HttpAddr(_)
            | DaemonError::HttpServe(_)
            | DaemonError::DemoDataDir(_)
            | DaemonError::Bench(_) => ExitCode::RingError,
        }
    }
}

impl From<&NodeError> for ExitCode {
    fn from(error: &NodeError) -> ExitCode {
        match error {
            // Flags, the data dir and the cluster key file are the user's to fix.
            NodeError::Config(_) | NodeError::Identity(_) | NodeError::Store(_) => {
                ExitCode::BadInput
            }
            NodeError::Transport(error) => error.into(),
            NodeError::Kv(KvError::Invalid(_) | KvError::KeyNotUtf8) => ExitCode::BadInput,
            NodeError::Join(_)
            | NodeError::Lookup(_)
            | NodeError::ShuttingDown
            | NodeError::Kv(
                KvError::NoQuorum { .. }
                | KvError::Outpaced { .. }
                | KvError::NoReplicas(_)
                | KvError::NotServing,
            ) => ExitCode::RingError,
        }
    }
}

impl From<&TransportError> for ExitCode {
    fn from(error: &TransportError) -> ExitCode {
        match error {
            // The --cluster-key file is missing, unreadable or too short.
            TransportError::ClusterKey(_) => ExitCode::BadInput,
            TransportError::Config(_)
            | TransportError::Bind { .. }
            | TransportError::Tls(_)
            | TransportError::Connect { .. }
            | TransportError::Timeout { .. }
            | TransportError::WrongPeer { .. }
            | TransportError::Refused { .. }
            | TransportError::FrameTooLarge { .. }
            | TransportError::Decode(_)
            | TransportError::Encode(_)
            | TransportError::Stream(_) => ExitCode::RingError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_client::{Client, error_from_status, validate_key};
    use cairn_core::RingConfig;
    use cairn_core::lookup::LookupError;
    use cairn_node::{Node, NodeConfig, NodeConfigError};
    use std::io;
    use std::net::SocketAddr;
    use std::time::Duration;

    fn code(error: impl Into<Error>) -> ExitCode {
        ExitCode::from(&error.into())
    }

    fn io_error() -> io::Error {
        io::Error::new(io::ErrorKind::AddrInUse, "address in use")
    }

    fn loopback() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 7000))
    }

    /// The error `Node::start` gives for `config`, which must fail before it binds.
    async fn start_error(config: NodeConfig) -> NodeError {
        match Node::start(config).await {
            Ok(_) => panic!("the node must not start"),
            Err(error) => error,
        }
    }

    fn node_config(dir: &std::path::Path) -> NodeConfig {
        NodeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            http: None,
            data_dir: dir.join("data"),
            ..NodeConfig::default()
        }
    }

    #[test]
    fn exit_codes_are_the_documented_numbers() {
        assert_eq!(ExitCode::Success.code(), 0);
        assert_eq!(ExitCode::NotFound.code(), 1);
        assert_eq!(ExitCode::BadInput.code(), 2);
        assert_eq!(ExitCode::RingError.code(), 3);
    }

    #[test]
    fn clap_usage_errors_exit_like_bad_input() {
        use clap::Parser;
        for args in [&["node", "--replicas", "0"][..], &["--bogus"], &["lookup"]] {
            let err = crate::cli::Cli::try_parse_from(
                std::iter::once("cairn").chain(args.iter().copied()),
            )
            .expect_err("a usage error");
            assert_eq!(err.exit_code(), ExitCode::BadInput.code(), "{args:?}");
        }
    }

    #[test]
    fn a_missing_key_is_not_found() {
        let err = error_from_status(404, br#"{"error":"no such key: foo"}"#);
        assert_eq!(code(err), ExitCode::NotFound);
    }

    #[test]
    fn limits_and_malformed_input_are_bad_input() {
        for status in [400, 413, 414, 422, 431] {
            let err = error_from_status(status, br#"{"error":"key is over 1024 bytes"}"#);
            assert_eq!(code(err), ExitCode::BadInput, "{status}");
        }
    }

    #[test]
    fn transient_4xx_and_5xx_are_ring_errors() {
        for status in [408, 429, 500, 502, 503] {
            assert_eq!(
                code(error_from_status(status, b"")),
                ExitCode::RingError,
                "{status}"
            );
        }
    }

    #[test]
    fn a_bad_key_or_node_url_is_bad_input() {
        for key in ["", ".", ".."] {
            let err = validate_key(key).expect_err(key);
            assert_eq!(code(err), ExitCode::BadInput, "{key:?}");
        }
        for url in ["", "ftp://127.0.0.1:7070", "https://127.0.0.1:7070"] {
            let err = Client::new(url).expect_err(url);
            assert_eq!(code(err), ExitCode::BadInput, "{url:?}");
        }
    }

    #[test]
    fn a_node_that_cannot_be_reached_or_read_is_a_ring_error() {
        let url = "http://127.0.0.1:7070".to_string();
        let reason = "connection refused".to_string();
        for err in [
            ClientError::Unreachable {
                url: url.clone(),
                reason: reason.clone(),
            },
            ClientError::Timeout {
                url: url.clone(),
                seconds: 30,
            },
            ClientError::Connection {
                url: url.clone(),
                reason: reason.clone(),
            },
            ClientError::Decode { url, reason },
        ] {
            assert_eq!(code(err), ExitCode::RingError);
        }
    }

    #[test]
    fn bad_node_settings_are_bad_input() {
        let replicas = NodeError::from(NodeConfigError::ReplicasOutOfRange {
            replicas: 0,
            max: 8,
        });
        assert_eq!(code(DaemonError::from(replicas)), ExitCode::BadInput);
        let ring = RingConfig {
            successor_list_len: 0,
            ..RingConfig::default()
        };
        let config = NodeConfig {
            ring,
            ..NodeConfig::default()
        };
        let err = NodeError::from(config.validate().expect_err("refused"));
        assert_eq!(code(DaemonError::from(err)), ExitCode::BadInput);
    }

    #[tokio::test]
    async fn a_data_dir_that_cannot_be_made_is_bad_input() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"not a dir").expect("write");
        let err = start_error(NodeConfig {
            data_dir: file,
            ..node_config(dir.path())
        })
        .await;
        assert!(matches!(err, NodeError::Identity(_)), "{err:?}");
        assert_eq!(code(DaemonError::from(err)), ExitCode::BadInput);
    }

    #[tokio::test]
    async fn a_missing_or_short_cluster_key_is_bad_input() {
        let dir = tempfile::tempdir().expect("tempdir");
        let short = dir.path().join("short.key");
        std::fs::write(&short, b"too short").expect("write");
        for key in [dir.path().join("missing.key"), short] {
            let err = start_error(NodeConfig {
                cluster_key: Some(key),
                ..node_config(dir.path())
            })
            .await;
            assert!(
                matches!(err, NodeError::Transport(TransportError::ClusterKey(_))),
                "{err:?}"
            );
            assert_eq!(code(DaemonError::from(err)), ExitCode::BadInput);
        }
    }

    #[test]
    fn joins_lookups_and_the_network_are_ring_errors() {
        let addr = loopback();
        for err in [
            NodeError::Join("gave up after 20s".into()),
            NodeError::Lookup(LookupError::Leaving),
            NodeError::ShuttingDown,
            NodeError::Transport(TransportError::Bind {
                addr,
                reason: "address in use".into(),
            }),
            NodeError::Transport(TransportError::Timeout {
                addr,
                after: Duration::from_secs(1),
            }),
            NodeError::Transport(TransportError::Refused {
                addr,
                reason: "cluster key mismatch".into(),
            }),
            NodeError::Transport(TransportError::Tls("no provider".into())),
        ] {
            let what = err.to_string();
            assert_eq!(code(DaemonError::from(err)), ExitCode::RingError, "{what}");
        }
    }

    #[test]
    fn the_daemons_own_failures() {
        let http = DaemonError::HttpBind {
            addr: loopback(),
            source: io_error(),
        };
        assert_eq!(code(http), ExitCode::RingError);
        assert_eq!(code(DaemonError::HttpAddr(io_error())), ExitCode::RingError);
        assert_eq!(
            code(DaemonError::HttpServe(io_error())),
            ExitCode::RingError
        );
        assert_eq!(
            code(DaemonError::DemoDataDir(io_error())),
            ExitCode::RingError
        );
        assert_eq!(
            code(DaemonError::Bench("disk full".into())),
            ExitCode::RingError
        );
        assert_eq!(code(DaemonError::BenchDir(io_error())), ExitCode::BadInput);
    }

    #[test]
    fn a_demo_node_fails_with_the_code_of_its_cause() {
        let bad_input = DaemonError::DemoNode {
            index: 3,
            source: Box::new(NodeError::from(NodeConfigError::ZeroJoinTimeout).into()),
        };
        assert!(
            bad_input
                .to_string()
                .starts_with("node 3: invalid configuration: ")
        );
        assert_eq!(code(bad_input), ExitCode::BadInput);
        let ring = DaemonError::DemoNode {
            index: 0,
            source: Box::new(DaemonError::HttpServe(io_error())),
        };
        assert_eq!(code(ring), ExitCode::RingError);
    }

    #[test]
    fn no_runtime_is_a_ring_error() {
        assert_eq!(code(Error::Runtime(io_error())), ExitCode::RingError);
    }

    #[test]
    fn the_message_is_the_layers_own() {
        let client = ClientError::NotFound {
            message: "no such key: foo".into(),
        };
        let text = client.to_string();
        assert_eq!(Error::from(client).to_string(), text);
        let node = NodeError::from(NodeConfigError::ReplicasOutOfRange {
            replicas: 0,
            max: 8,
        });
        assert_eq!(
            Error::from(DaemonError::from(node)).to_string(),
            "invalid configuration: --replicas must be 1 to 8 (the successor list length), not 0"
        );
    }
}
