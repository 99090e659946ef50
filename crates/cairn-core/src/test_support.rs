//! Small builders the unit tests of several modules share.

use crate::id::{Id, NodeId};
use crate::version::{HlcTimestamp, Version};
use crate::wire::Peer;

/// Peer `n`: id `n` in the high bits, port 7000 + n.
pub(crate) fn peer(n: u64) -> Peer {
    Peer {
        id: NodeId(Id::from_high_u64(n)),
        addr: format!("127.0.0.1:{}", 7000 + n).parse().expect("addr"),
    }
}

/// A version at `ms` by peer 1.
pub(crate) fn version(ms: u64) -> Version {
    Version::new(
        HlcTimestamp {
            physical_ms: ms,
            logical: 0,
        },
        peer(1).id,
    )
}
