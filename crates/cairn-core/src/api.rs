//! The JSON shapes of the HTTP API (DESIGN.md, Interfaces), shared by the node
//! that serves them and the client that reads them. Fields may be added; none
//! of these may be renamed.

use crate::id::{Id, NodeId};
use crate::range::KeyRange;
use crate::wire::Peer;
use core::net::SocketAddr;
use serde::{Deserialize, Serialize}; // A plain address value: the core never opens a socket.

/// `GET /v1/node`: this node and its routing state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: NodeId,
    pub addr: SocketAddr,
    /// The node's HTTP address (`host:port`), if it serves one.
    pub http: Option<String>,
    pub predecessor: Option<Peer>,
    /// The predecessor and the nodes before it (R of them): with this node,
    /// whose keys it holds.
    #[serde(default)]
    pub predecessors: Vec<Peer>,
    pub successors: Vec<Peer>,
    /// Distinct fingers in use: `start` = node id + 2^i, `node` = successor(start) as known.
    pub fingers: Vec<Finger>,
    /// What its store holds (`None`: the store did not say).
    #[serde(default)]
    pub stored: Option<StoredTotals>,
    /// The keys it must hold, (R-th predecessor, itself], as it knows its
    /// predecessors now (the whole ring while it knows fewer than R).
    #[serde(default)]
    pub held: Option<KeyRange>,
    /// What replication moved to it since it started.
    #[serde(default)]
    pub received: Option<ReceivedTotals>,
}

/// The records that arrived at a node since it started: pushed to it by
/// peers (`Store`, `StoreMany`) or answered to its `Fetch` requests. Counted
/// as they arrive, whether or not they were newer than what it held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedTotals {
    /// Records, pushed and fetched.
    pub records: u64,
    /// Their key and value bytes (as [`StoredTotals::bytes`] counts them).
    pub bytes: u64,
    /// The part of `records` that answered its `Fetch` requests (anti-entropy
    /// pulls, and reads it coordinated).
    pub fetched_records: u64,
    /// The part of `bytes` that answered its `Fetch` requests.
    pub fetched_bytes: u64,
}

/// What a node's store holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTotals {
    /// Records holding a value (replicas included).
    pub records: u64,
    /// Tombstones kept for deleted keys.
    pub tombstones: u64,
    /// Key and value bytes of all records.
    pub bytes: u64,
}

/// One finger of [`NodeInfo`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finger {
    pub start: Id,
    pub node: Peer,
}

/// `GET /v1/ring`: the members seen by walking successor lists, in ring order
/// starting at the answering node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingView {
    pub members: Vec<Member>,
}

/// One member of [`RingView`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: NodeId,
    pub addr: SocketAddr,
    pub http: Option<String>,
    pub state: MemberState,
    /// What its store holds, if asked (`cairn ring` asks each member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<StoredTotals>,
}

/// How a member looks from the node that walked the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// It answered.
    Alive,
    /// It missed a request but is not yet given up on.
    Suspect,
    /// It announced that it is leaving.
    Leaving,
    /// It did not answer.
    Dead,
}

/// `GET /v1/lookup/{key}`: the node responsible for a key, and what finding it cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupView {
    pub key_id: Id,
    pub node: Peer,
    pub hops: u32,
    pub micros: u64,
}

/// `GET /v1/kv/{key}/locations`: the key's replica set in ring order, and
/// which members hold the newest version the coordinator found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locations {
    pub key_id: Id,
    pub replicas: Vec<Location>,
    /// The newest version any replica holds (hex), if any.
    pub version: Option<String>,
    /// Bytes of the newest value (none for a tombstone or no record).
    pub size: Option<u64>,
    /// True if the newest record is a tombstone (the key was deleted).
    pub deleted: bool,
}

/// `GET /v1/keys?prefix=P`: live keys that start with P, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyList {
    pub keys: Vec<String>,
    /// More keys matched than the limit.
    pub truncated: bool,
    /// Members that did not answer: their keys are not in the list.
    pub members_missing: usize,
}

/// One replica of [`Locations`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub id: NodeId,
    pub addr: SocketAddr,
    /// It holds the newest version known to the coordinator.
    pub holds: bool,
    /// It answered (false: it did not answer in time).
    pub answered: bool,
    /// The version it holds (hex), if any.
    pub version: Option<String>,
}

/// Every error answer: `{"error": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}
