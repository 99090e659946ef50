//! The daemon's configuration: a plain struct, mapped from flags by the binary.

use cairn_core::RingConfig;
use cairn_core::config::ConfigError;
use cairn_core::kv::{KvConfig, KvConfigError};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The most replicas a key may have (`--replicas`); the least is 1. A node
/// must find a key's whole replica set among its successors, so R is at most
/// the successor list length (8).
pub const MAX_REPLICAS: u8 = 8;

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
    /// Replication factor R (used by replication, later), 1 to [`MAX_REPLICAS`]. Default 3.
    pub replicas: u8,
    /// W: a write succeeds once this many replicas stored it durably; 1 to
    /// R. Default (`None`): a majority of R (2 of 3).
    pub write_quorum: Option<u8>,
    /// Q: a read asks this many replicas; 1 to R. Default (`None`): a
    /// majority of R (2 of 3), so that W + Q > R and a read sees the last write.
    pub read_quorum: Option<u8>,
    /// How long tombstones are kept. Default 10 days.
    pub tombstone_grace: Duration,
    /// How long to keep trying to join before giving up; above zero. Default 20 s.
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
            write_quorum: None,
            read_quorum: None,
            tombstone_grace: KvConfig::default().tombstone_grace,
            join_timeout: Duration::from_secs(20),
            ring: RingConfig::default(),
        }
    }
}

/// Why a [`NodeConfig`] cannot work. Each message names the `cairn node`
/// flag to change.
#[derive(Debug, thiserror::Error)]
pub enum NodeConfigError {
    /// The replication factor is outside 1 to [`MAX_REPLICAS`] (or the
    /// successor list length, if that was set lower).
    #[error("--replicas must be 1 to {max} (the successor list length), not {replicas}")]
    ReplicasOutOfRange { replicas: u8, max: usize },
    /// A join that may take no time at all could never succeed.
    #[error(
        "--join-timeout must be above zero: give the seconds to keep trying the --join addresses"
    )]
    ZeroJoinTimeout,
    /// The ring protocol's settings do not work together.
    #[error(transparent)]
    Ring(#[from] ConfigError),
    /// A quorum outside 1 to R.
    #[error("--write-quorum and --read-quorum must be 1 to --replicas: {0}")]
    Quorum(#[from] KvConfigError),
}

impl NodeConfig {
    /// The ring's settings with this node's replication factor in them.
    pub fn ring_config(&self) -> RingConfig {
        RingConfig {
            replicas: usize::from(self.replicas),
            ..self.ring.clone()
        }
    }

    /// Replication's settings: R, W and Q from the flags.
    pub fn kv_config(&self) -> KvConfig {
        let replicas = usize::from(self.replicas);
        let majority = replicas / 2 + 1;
        KvConfig {
            replicas,
            write_quorum: self.write_quorum.map_or(majority, usize::from),
            read_quorum: self.read_quorum.map_or(majority, usize::from),
            tombstone_grace: self.tombstone_grace,
            ..KvConfig::default()
        }
    }

    /// Checks that the values can work together.
    pub fn validate(&self) -> Result<(), NodeConfigError> {
        self.ring.validate()?;
        let max = usize::from(MAX_REPLICAS).min(self.ring.successor_list_len);
        if !(1..=max).contains(&usize::from(self.replicas)) {
            return Err(NodeConfigError::ReplicasOutOfRange {
                replicas: self.replicas,
                max,
            });
        }
        self.ring_config().validate()?;
        self.kv_config().validate()?;
        if self.join_timeout.is_zero() {
            return Err(NodeConfigError::ZeroJoinTimeout);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(NodeConfig::default().validate().is_ok());
    }

    #[test]
    fn replicas_out_of_range_name_the_flag_and_the_value() {
        for replicas in [0, MAX_REPLICAS + 1] {
            let config = NodeConfig {
                replicas,
                ..NodeConfig::default()
            };
            let err = config.validate().expect_err("out of range");
            assert!(
                matches!(err, NodeConfigError::ReplicasOutOfRange { replicas: r, .. } if r == replicas),
                "{err:?}"
            );
            assert_eq!(
                err.to_string(),
                format!("--replicas must be 1 to 8 (the successor list length), not {replicas}")
            );
        }
        for replicas in [1, MAX_REPLICAS] {
            let config = NodeConfig {
                replicas,
                ..NodeConfig::default()
            };
            assert!(config.validate().is_ok(), "{replicas}");
        }
    }

    #[test]
    fn replicas_are_bounded_by_the_successor_list() {
        let mut config = NodeConfig {
            replicas: 5,
            ..NodeConfig::default()
        };
        config.ring.successor_list_len = 4;
        let err = config.validate().expect_err("R > L");
        assert!(
            matches!(
                err,
                NodeConfigError::ReplicasOutOfRange {
                    replicas: 5,
                    max: 4
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            config.ring_config().replicas,
            5,
            "the ring gets the flag's R"
        );
    }

    #[test]
    fn quorums_default_to_a_majority_and_may_not_exceed_the_replicas() {
        let one = NodeConfig {
            replicas: 1,
            ..NodeConfig::default()
        };
        assert_eq!(
            (one.kv_config().write_quorum, one.kv_config().read_quorum),
            (1, 1)
        );
        assert!(NodeConfig::default().kv_config().write_quorum == 2);
        let too_many = NodeConfig {
            write_quorum: Some(4),
            ..NodeConfig::default()
        };
        let err = too_many.validate().expect_err("W > R");
        assert!(matches!(err, NodeConfigError::Quorum(_)), "{err:?}");
        assert!(err.to_string().contains("--write-quorum"), "{err}");
    }

    #[test]
    fn a_zero_join_timeout_names_the_flag() {
        let config = NodeConfig {
            join_timeout: Duration::ZERO,
            ..NodeConfig::default()
        };
        let err = config.validate().expect_err("zero");
        assert!(matches!(err, NodeConfigError::ZeroJoinTimeout), "{err:?}");
        assert!(err.to_string().contains("--join-timeout"), "{err}");
    }

    #[test]
    fn a_bad_ring_setting_is_the_core_error_unchanged() {
        let ring = RingConfig {
            successor_list_len: 0,
            ..RingConfig::default()
        };
        let core_message = ring.validate().expect_err("core refuses").to_string();
        let config = NodeConfig {
            ring,
            ..NodeConfig::default()
        };
        let err = config.validate().expect_err("refused");
        assert!(matches!(err, NodeConfigError::Ring(_)), "{err:?}");
        assert_eq!(err.to_string(), core_message);
    }
}
