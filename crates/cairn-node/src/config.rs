//! The daemon's configuration: a plain struct, mapped from flags by the binary.

use cairn_core::RingConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything a node needs to start.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// QUIC address to listen on (port 0 picks a free one). Default 127.0.0.1:7000.
    pub listen: SocketAddr,
    /// HTTP API address (port 0 picks a free one); `None` serves no HTTP. Default 127.0.0.1:7070.
    pub http: Option<SocketAddr>,
    /// The data dir: node key (and later records and chunks). Default ./cairn-data.
    pub data_dir: PathBuf,
    /// Members to join through (`HOST:PORT` of their QUIC endpoint), tried in order.
    /// Empty: start a new ring.
    pub join: Vec<String>,
    /// The cluster secret file; peers without the same secret are refused.
    pub cluster_key: Option<PathBuf>,
    /// Replication factor R (used by replication, later). Default 3.
    pub replicas: u8,
    /// How long to keep trying to join before giving up. Default 20 s.
    pub join_timeout: Duration,
    /// The ring protocol's settings.
    pub ring: RingConfig,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7000)),
            http: Some(SocketAddr::from(([127, 0, 0, 1], 7070))),
            data_dir: PathBuf::from("cairn-data"),
            join: Vec::new(),
            cluster_key: None,
            replicas: 3,
            join_timeout: Duration::from_secs(20),
            ring: RingConfig::default(),
        }
    }
}

impl NodeConfig {
    /// Checks that the values can work together.
    pub fn validate(&self) -> Result<(), String> {
        self.ring.validate().map_err(|e| e.to_string())?;
        if !(1..=16).contains(&self.replicas) {
            return Err(format!("--replicas must be 1 to 16, not {}", self.replicas));
        }
        if self.join_timeout.is_zero() {
            return Err("join_timeout must be above zero".into());
        }
        Ok(())
    }
}
