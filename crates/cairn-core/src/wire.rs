//! Wire messages between nodes. Encoding (postcard, length-prefixed frames)
//! lives in the node crate; this module only says what can be said.
//!
//! Every RPC is one request and one response on its own stream. The first
//! stream of a connection carries [`Hello`] / [`HelloReply`] (protocol version
//! and, with a cluster key, the proof that the peer holds it).

use crate::digest::{NodeDigest, TreeNode};
use crate::id::{Id, KeyId, NodeId};
use crate::range::KeyRange;
use crate::record::Record;
use crate::version::Version;
use core::net::SocketAddr;
use serde::{Deserialize, Serialize}; // A plain address value: the core never opens a socket.

/// The protocol version carried in the first exchange. Bump on any change to
/// the messages below (the golden tests pin their bytes). 2: stabilization
/// exchanges list fingerprints and predecessor lists; `Introduce`,
/// `ProbeFor`, and replication's `Store` and `Fetch` (not released between).
/// 3: anti-entropy descends the digest tree (`SyncNodes`, `ListVersions`)
/// and `SyncRange` no longer asks for the whole range back. 4: a replica
/// that keeps a newer version than a `Store` sent says which (`Newer`).
pub const PROTOCOL_VERSION: u32 = 4;
/// The QUIC ALPN, also versioned.
pub const ALPN: &[u8] = b"cairn/4";
/// The hard limit of one frame's body, in bytes. Records (up to 1 MiB inline)
/// fit with room for their header; bulk data is streamed after a header.
pub const MAX_FRAME: usize = 2 * 1024 * 1024;

/// A node as others reach it: its id and the address of its QUIC endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Peer {
    pub id: NodeId,
    pub addr: SocketAddr,
}

/// The first message on a new connection, from the side that dialed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    /// With a cluster key: a MAC of the connection's exported keying material.
    pub proof: Option<[u8; 32]>,
}

/// The answer to [`Hello`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    Welcome {
        version: u32,
        proof: Option<[u8; 32]>,
    },
    Refused {
        reason: String,
    },
}

/// What one node asks another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Stabilize: "tell me your predecessor and successor list".
    GetState {
        /// The fingerprint of the successor list the asker holds from you
        /// (0: none); if yours is the same, it is not sent again.
        have: u64,
        /// The asker's predecessor list, sent when you (its successor) do
        /// not hold the current one (see `have_predecessors` in the answer).
        predecessors: Option<Vec<Peer>>,
    },
    /// "I believe I am your predecessor."
    Notify,
    /// Liveness check (check predecessor, bootstrap).
    Ping,
    /// One step of an iterative lookup.
    FindSuccessor { target: Id },
    /// "I am leaving the ring": sent to the predecessor (with the leaver's
    /// successor list) and the successor (with the leaver's predecessor).
    Leaving {
        predecessor: Option<Peer>,
        successors: Vec<Peer>,
    },
    /// "Who is your predecessor?": checks a finger in one small round trip.
    GetPredecessor,
    /// "`node` joined between you and me": sent by a node to its old
    /// predecessor when a newcomer became its predecessor, so that the old
    /// one checks the newcomer now rather than at its next stabilization.
    Introduce { node: Peer },
    /// "Ping `target` for me": answered `Pong` once the target answered, or
    /// `Error` if it did not (SWIM's indirect probe of a suspect, through a
    /// path other than the asker's own).
    ProbeFor { target: Peer },
    /// Replication: "store this record durably" (last writer wins). Answered
    /// `Stored` once durable, `Newer` if the replica keeps a newer version,
    /// or `Error`.
    Store { record: Box<Record> },
    /// Replication: "send me your record of this key id".
    Fetch { key_id: KeyId },
    /// Handoff: "store these records durably" (a page of a range this node
    /// must now hold). Answered `Stored` (`won`: any of them was newer).
    StoreMany { records: Vec<Record> },
    /// Anti-entropy: "what do you hold in `range`?" Answered `Digest` (the
    /// root of the digest tree). If the digests differ, the asker descends
    /// with `SyncNodes` and `ListVersions`.
    SyncRange { range: KeyRange },
    /// Listing: "the live keys of `range` that start with `prefix`, up to
    /// `limit`". Answered `Keys`.
    ListKeys {
        range: KeyRange,
        prefix: String,
        limit: u32,
    },
    /// Anti-entropy's descent: "the digests of these tree nodes, within
    /// `range`" (at most [`crate::kv::MAX_SYNC_NODES`]). Answered `Digests`,
    /// one per node, in order.
    SyncNodes {
        range: KeyRange,
        nodes: Vec<TreeNode>,
    },
    /// Anti-entropy's last step: "the (key id, version) of each record under
    /// these buckets, within `range`" (at most [`crate::kv::MAX_SYNC_BUCKETS`]
    /// buckets). Answered `Versions`, capped at
    /// [`crate::kv::MAX_SYNC_VERSIONS`] entries.
    ListVersions {
        range: KeyRange,
        nodes: Vec<TreeNode>,
    },
}

/// What a node answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    State {
        predecessor: Option<Peer>,
        /// `None`: the same list as the fingerprint the asker sent.
        successors: Option<Vec<Peer>>,
        /// The fingerprint of the asker's predecessor list as this node
        /// holds it (0: none), so that it is sent again only when it changed.
        have_predecessors: u64,
        /// The answering node's HTTP address, if it serves one (for `cairn ring`).
        http: Option<String>,
    },
    Ack,
    Pong,
    /// The successor of the target is `node`; `next` are the nodes after it
    /// (the answerer's successor list), to fall back on if `node` is dead.
    Found {
        node: Peer,
        next: Vec<Peer>,
    },
    /// Ask one of these, closest to the target first.
    Closer {
        candidates: Vec<Peer>,
    },
    /// The request could not be served (e.g. the node is leaving).
    Error {
        reason: String,
    },
    /// The answer to `GetPredecessor`.
    Predecessor {
        predecessor: Option<Peer>,
    },
    /// The answer to `Store`: durable; `won` if it was newer than what the
    /// replica held (else the replica keeps its newer or equal version).
    Stored {
        won: bool,
    },
    /// The answer to `SyncRange`: the digest of what the replica holds there.
    Digest {
        digest: NodeDigest,
    },
    /// The answer to `Fetch`: the replica's record, if it has one.
    Record {
        record: Option<Box<Record>>,
    },
    /// The answer to `ListKeys`, in key order; `truncated` if more matched.
    Keys {
        keys: Vec<String>,
        truncated: bool,
    },
    /// The answer to `SyncNodes`.
    Digests {
        digests: Vec<NodeDigest>,
    },
    /// The answer to `ListVersions`, node by node in the order asked.
    Versions {
        entries: Vec<(KeyId, Version)>,
    },
    /// The answer to `Store` when the replica holds a newer version of the
    /// key than the one sent: it keeps that one (durably), which is this.
    Newer {
        version: Version,
    },
}

#[cfg(test)]
mod tests {
    //! Golden bytes: a change to the encoding of any message must be a visible decision.
    use super::*;

    fn peer(byte: u8) -> Peer {
        Peer {
            id: NodeId(Id([byte; 32])),
            addr: "127.0.0.1:7000".parse().expect("addr"),
        }
    }

    fn encode<T: Serialize>(value: &T) -> String {
        hex::encode(postcard::to_stdvec(value).expect("encode"))
    }

    #[test]
    fn golden_bytes_of_requests() {
        assert_eq!(
            encode(&Request::GetState {
                have: 0,
                predecessors: None
            }),
            "000000"
        );
        assert_eq!(
            encode(&Request::GetState {
                have: 1,
                predecessors: Some(vec![peer(7)])
            }),
            format!("00010101{}007f000001d836", "07".repeat(32))
        );
        assert_eq!(encode(&Request::Notify), "01");
        assert_eq!(encode(&Request::Ping), "02");
        assert_eq!(
            encode(&Request::FindSuccessor {
                target: Id::pow2(0)
            }),
            format!("03{}01", "00".repeat(31))
        );
        assert_eq!(
            encode(&Request::Leaving {
                predecessor: None,
                successors: vec![peer(1)]
            }),
            format!("040001{}007f000001d836", "01".repeat(32))
        );
    }

    #[test]
    fn golden_bytes_of_introductions() {
        assert_eq!(
            encode(&Request::Introduce { node: peer(6) }),
            format!("06{}007f000001d836", "06".repeat(32))
        );
    }

    #[test]
    fn golden_bytes_of_indirect_probes() {
        assert_eq!(
            encode(&Request::ProbeFor { target: peer(8) }),
            format!("07{}007f000001d836", "08".repeat(32))
        );
    }

    #[test]
    fn golden_bytes_of_replication() {
        let key_id = KeyId(Id([9; 32]));
        assert_eq!(
            encode(&Request::Fetch { key_id }),
            format!("09{}", "09".repeat(32))
        );
        assert_eq!(encode(&Response::Stored { won: true }), "0701");
        assert_eq!(encode(&Response::Record { record: None }), "0900");
        let version = Version::new(
            crate::version::HlcTimestamp {
                physical_ms: 300,
                logical: 1,
            },
            NodeId(Id([2; 32])),
        );
        assert_eq!(
            encode(&Response::Newer { version }),
            format!("0dac0201{}", "02".repeat(32))
        );
    }

    #[test]
    fn golden_bytes_of_anti_entropy() {
        let range = KeyRange::new(Id([1; 32]), Id::MAX);
        let range_hex = format!("{}{}", "01".repeat(32), "ff".repeat(32));
        assert_eq!(
            encode(&Request::SyncRange { range }),
            format!("0b{range_hex}")
        );
        let bucket = TreeNode::new(crate::digest::LEAF_LEVEL, 4095).expect("in bounds");
        assert_eq!(
            encode(&Request::SyncNodes {
                range,
                nodes: vec![TreeNode::ROOT]
            }),
            format!("0d{range_hex}010000")
        );
        assert_eq!(
            encode(&Request::ListVersions {
                range,
                nodes: vec![bucket]
            }),
            format!("0e{range_hex}0103ff1f")
        );
        assert_eq!(
            encode(&Response::Digests {
                digests: vec![NodeDigest {
                    node: TreeNode::ROOT,
                    count: 1,
                    sum: Id([9; 32])
                }]
            }),
            format!("0b01000001{}", "09".repeat(32))
        );
        let version = Version::new(
            crate::version::HlcTimestamp {
                physical_ms: 300,
                logical: 1,
            },
            NodeId(Id([2; 32])),
        );
        assert_eq!(
            encode(&Response::Versions {
                entries: vec![(KeyId(Id([3; 32])), version)]
            }),
            format!("0c01{}ac0201{}", "03".repeat(32), "02".repeat(32))
        );
    }

    #[test]
    fn golden_bytes_of_finger_checks() {
        assert_eq!(encode(&Request::GetPredecessor), "05");
        assert_eq!(encode(&Response::Predecessor { predecessor: None }), "0600");
    }

    #[test]
    fn the_version_and_the_alpn_agree() {
        assert_eq!(ALPN, format!("cairn/{PROTOCOL_VERSION}").as_bytes());
    }

    #[test]
    fn golden_bytes_of_responses_and_hello() {
        assert_eq!(encode(&Response::Ack), "01");
        assert_eq!(encode(&Response::Pong), "02");
        assert_eq!(
            encode(&Response::Found {
                node: peer(2),
                next: vec![]
            }),
            format!("03{}007f000001d83600", "02".repeat(32))
        );
        assert_eq!(
            encode(&Hello {
                version: 1,
                proof: None
            }),
            "0100"
        );
        assert_eq!(
            encode(&HelloReply::Refused {
                reason: "no".into()
            }),
            "01026e6f"
        );
    }

    #[test]
    fn every_request_round_trips() {
        let all = [
            Request::GetState {
                have: u64::MAX,
                predecessors: Some(vec![peer(2)]),
            },
            Request::Notify,
            Request::Ping,
            Request::FindSuccessor { target: Id::MAX },
            Request::Leaving {
                predecessor: Some(peer(3)),
                successors: vec![peer(4), peer(5)],
            },
        ];
        for request in all {
            let bytes = postcard::to_stdvec(&request).expect("encode");
            let back: Request = postcard::from_bytes(&bytes).expect("decode");
            assert_eq!(back, request);
        }
    }

    #[test]
    fn garbage_does_not_decode_as_a_request() {
        assert!(postcard::from_bytes::<Request>(&[0xff, 0xff, 0xff]).is_err());
        assert!(postcard::from_bytes::<Request>(&[]).is_err());
    }
}
