//! Replication of records: the coordinator of each client put, delete and
//! get, and the replica side that stores and serves records.
//!
//! A coordinator writes a record (stamped by the host's hybrid logical
//! clock) to every member of the key's replica set in parallel, the local
//! store included, and succeeds once W of them hold it durably. A replica
//! that keeps a newer version says which; when too many do for W to hold
//! this one, the host's clock takes that version in, the record is stamped
//! anew after it and written again (up to [`MAX_RESTAMPS`] times): with
//! clocks apart, an acknowledged write is still newer than every write
//! acknowledged before it (their W replicas and these share one). A read
//! asks Q members, returns the newest version and writes it back to those
//! that answered with an older one (read repair). A replica answers a store
//! only once its store reports it durable (the host defers the answer).
//!
//! Handoff: when this node's replica set gains a member, it pushes its
//! primary range (predecessor, me] to that member, and when a newcomer
//! takes over part of that range, it pushes that part to the newcomer; page
//! by page, each page durable at the receiver before the next is read. A
//! crash or a leave changes the replica sets of the survivors around it,
//! which push to their new members: every key is brought back to R copies.
//! A node drops a record it no longer has to hold only once every member
//! of the key's replica set confirmed holding it, and a tombstone once it is
//! past its grace ([`cleanup`]).
//!
//! Anti-entropy ([`sync`]): every period, a node compares its primary range
//! with each other replica of it, descending the digest tree from the root
//! to the buckets that differ, and moves only the records that differ.
//!
//! Invariants:
//! - an operation ends exactly once: `Ok` only with its quorum of answers,
//!   an error (with how many answered) as soon as the quorum cannot be
//!   reached any more, or at its deadline;
//! - a write that ended in an error is indeterminate: some replicas may hold
//!   it, and it may still win later (callers must say so);
//! - failures here say nothing about a peer's liveness (that is the ring's
//!   judgement alone).

use crate::id::{Id, KeyId};
use crate::limits::MAX_KEY_LEN;
use crate::range::KeyRange;
use crate::record::{MAX_INLINE_VALUE, Record, RecordError};
use crate::rpc::InboundId;
use crate::storage::{StorageOutcome, StorageRequest, Ticket};
use crate::version::Version;
use crate::wire::{Peer, Request, Response};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

mod cleanup;
mod list;
mod sync;
pub use cleanup::{CLEANUP_PAGE_RECORDS, CleanupCounters};
pub use list::{MAX_LIST_BYTES, MAX_LIST_KEYS};
pub use sync::{
    MAX_SYNC_BUCKETS, MAX_SYNC_KEYS, MAX_SYNC_NODES, MAX_SYNC_PARENTS, MAX_SYNC_VERSIONS,
};

/// Replication's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvConfig {
    /// R: how many nodes hold each key. Default 3.
    pub replicas: usize,
    /// W: a write succeeds once this many replicas stored it durably. Default 2.
    pub write_quorum: usize,
    /// Q: a read asks this many replicas and returns the newest. Default 2.
    pub read_quorum: usize,
    /// An operation that has not reached its quorum by then fails. Default 5 s.
    pub op_deadline: Duration,
    /// How often a node compares its primary range with each of its
    /// replicas (anti-entropy). Default 10 s: a divergent key is repaired
    /// within one or two periods; an idle ring pays one small round trip
    /// per replica per period.
    pub sync_every: Duration,
    /// A tombstone older than this is dropped: every replica has had the
    /// time to learn of the delete. Default 10 days. A node that was away
    /// longer must not hand its old records to anyone.
    pub tombstone_grace: Duration,
    /// How often a node sweeps its whole store for tombstones past their
    /// grace (and records it no longer holds). Default 1 hour.
    pub sweep_every: Duration,
    /// Deliberate bugs, off by default: tests switch one on to prove that
    /// the simulator's checks catch it.
    pub faults: KvFaults,
}

/// Deliberately broken replication, for tests of the checks themselves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvFaults {
    /// No handoff and no anti-entropy: records are never brought back to R
    /// copies after a membership change.
    pub no_repair: bool,
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            replicas: 3,
            write_quorum: 2,
            read_quorum: 2,
            op_deadline: Duration::from_secs(5),
            sync_every: Duration::from_secs(10),
            tombstone_grace: Duration::from_secs(10 * 24 * 3600),
            sweep_every: Duration::from_secs(3600),
            faults: KvFaults::default(),
        }
    }
}

/// A replication setting that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KvConfigError {
    #[error("the write quorum is {w}: it must be 1 to the number of replicas ({r})")]
    WriteQuorum { w: usize, r: usize },
    #[error("the read quorum is {q}: it must be 1 to the number of replicas ({r})")]
    ReadQuorum { q: usize, r: usize },
    #[error("the number of replicas must be at least 1")]
    NoReplicas,
}

impl KvConfig {
    /// Checks that 1 ≤ W, Q ≤ R.
    pub fn validate(&self) -> Result<(), KvConfigError> {
        let r = self.replicas;
        if r == 0 {
            return Err(KvConfigError::NoReplicas);
        }
        if self.write_quorum == 0 || self.write_quorum > r {
            return Err(KvConfigError::WriteQuorum {
                w: self.write_quorum,
                r,
            });
        }
        if self.read_quorum == 0 || self.read_quorum > r {
            return Err(KvConfigError::ReadQuorum {
                q: self.read_quorum,
                r,
            });
        }
        Ok(())
    }
}

/// A handoff page holds at most this many records...
pub const PUSH_PAGE_RECORDS: usize = 64;
/// ...and at most this many key and value bytes (records are sent whole, so
/// a page may end early; it always holds at least one): well inside a frame.
pub const PUSH_PAGE_BYTES: u64 = 1 << 20;

/// Names one client operation.
pub type OpId = u64;

/// What a finished operation gives back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// The put or delete is durable on a write quorum, at this version.
    Written { version: Version },
    /// The newest record a read quorum holds (a tombstone for a deleted
    /// key), or none.
    Read { record: Option<Record> },
    /// Every replica of the key, in ring order, with the version it holds
    /// (`None`: none), or `Err` if it did not answer; and the newest record.
    Located {
        replicas: Vec<(Peer, Result<Option<Version>, ()>)>,
        newest: Option<Record>,
    },
    /// Live keys with a prefix, in order; `truncated` if there were more
    /// than the limit; `missing` members did not answer (their ranges are
    /// not in the list).
    Listed {
        keys: Vec<String>,
        truncated: bool,
        missing: usize,
    },
}

/// Why an operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    #[error(
        "only {answered} of {needed} replicas answered the {op} (of {asked} asked); a failed write may still take effect later"
    )]
    NoQuorum {
        op: &'static str,
        answered: usize,
        needed: usize,
        asked: usize,
    },
    #[error("the ring did not name the replicas of the key in time: {0}")]
    NoReplicas(String),
    #[error(
        "the replicas kept newer versions of the key than this write, {attempts} times over (other writes of the key under way); a failed write may still take effect later"
    )]
    Outpaced { attempts: u32 },
    #[error("{0}")]
    Invalid(#[from] RecordError),
    #[error("the key is not valid UTF-8")]
    KeyNotUtf8,
    #[error("this node is not serving: it is leaving or has not joined")]
    NotServing,
}

/// What the replication machine asks the host to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvAction {
    /// Send `request` to `to`; report its answer or failure under `rpc`.
    Send {
        rpc: u64,
        to: Peer,
        request: Request,
    },
    /// Answer a request that was deferred.
    Respond {
        inbound: InboundId,
        response: Response,
    },
    /// Run this on the local store; report the outcome under `ticket`.
    Storage {
        ticket: Ticket,
        request: StorageRequest,
    },
    /// Find the replica set of `target` through the ring (the host starts
    /// the lookup and reports its answer with `on_replicas`).
    Lookup { op: OpId, target: Id },
    /// Write `op` lost to `newer`, a version replicas keep: stamp it anew
    /// after `newer` (the host's clock takes `newer` in) and report the new
    /// version with [`Replication::restamp`].
    Restamp { op: OpId, newer: Version },
    /// An operation ended.
    Done {
        op: OpId,
        result: Result<OpResult, KvError>,
    },
}

/// What a coordinated operation does.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// A put or a delete: this record goes to every replica.
    Write(Record),
    /// A read of this key id.
    Read(KeyId),
    /// Where this key id is: every replica asked, nothing repaired.
    Locate(KeyId),
}

/// One replica's part in an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Asked,
    /// Answered; for a read, with this version (none: no record).
    Answered(Option<Version>),
    /// A write's replica keeps this version, newer than the one sent.
    Refused(Version),
    Failed,
}

#[derive(Clone, Debug)]
struct Op {
    kind: Kind,
    deadline: Duration,
    /// The replica set once known, in ring order, with each one's part.
    replicas: Vec<(Peer, Option<Part>)>,
    /// The newest record read so far.
    newest: Option<Record>,
    /// Started by this node itself (a cleanup confirmation), not a client.
    internal: bool,
    /// A write: how many times it was stamped anew after losing to a newer
    /// version, and whether a new stamp is awaited (answers wait meanwhile).
    restamps: u32,
    restamping: bool,
}

impl Op {
    fn count(&self, wanted: impl Fn(Part) -> bool) -> usize {
        self.replicas
            .iter()
            .filter(|(_, part)| part.is_some_and(&wanted))
            .count()
    }
}

/// Who waits for a request this machine sent, or a store call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiter {
    /// Replica `index` of operation `op`.
    Op { op: OpId, index: usize },
    /// This node, replica `index` of write `op`, refused the write as
    /// older: the version it keeps instead is read.
    OpKept { op: OpId, index: usize },
    /// Nobody: a read repair, fire and forget.
    Repair,
    /// The cleanup pass: a page read, or a removal.
    Cleanup,
    /// A member's part of listing `op`.
    List(OpId),
    /// A peer's request, answered once the store has done its part.
    Inbound(InboundId),
    /// A peer's `Store` of `version` of `key_id`: answered `Stored`, or
    /// `Newer` (once the version kept is read) if it was older.
    InboundStore {
        inbound: InboundId,
        key_id: KeyId,
        version: Version,
    },
    /// The version kept instead of a peer's `Store` of `version`, read.
    InboundKept {
        inbound: InboundId,
        version: Version,
    },
    /// A page of handoff `push`: read from the store, or sent to its target.
    Push(u64),
    /// Anti-entropy `sync`: a step's local or remote answer, or a record
    /// read to be sent.
    Sync(u64),
    /// Anti-entropy's fetch of a record the peer holds newer.
    Pull(KeyId),
}

/// Records of `range` pushed to `to`, a page at a time; `rest` is what is
/// left after the pages sent (`None`: the last page went). A page the target
/// did not take is sent again after [`PUSH_RETRY`], up to [`PUSH_ATTEMPTS`] times.
#[derive(Clone, Debug)]
struct Push {
    to: Peer,
    range: KeyRange,
    rest: Option<KeyRange>,
    /// Where the page under way started, to send it again if it fails.
    page_from: Option<KeyRange>,
    failures: u32,
    retry_at: Option<Duration>,
}

/// How long a failed handoff page waits before it is sent again.
pub const PUSH_RETRY: Duration = Duration::from_secs(1);
/// How many times a handoff page is tried before the push is given up (the
/// next change of the ring starts another).
pub const PUSH_ATTEMPTS: u32 = 5;
/// How many times a write that replicas refused for a newer version is
/// stamped anew (after that version) and sent again before it fails.
pub const MAX_RESTAMPS: u32 = 3;
/// How long a leaving node hands its records over at most before it goes
/// (whoever drives the leave waits for [`Replication::handing_off`] to turn
/// false, or this long; the replicas repair what is left).
pub const HANDOFF_BEFORE_LEAVE: Duration = Duration::from_secs(30);

/// What this node holds and with whom, as last told by the ring.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Holding {
    /// (predecessor, me]: the keys this node owns.
    primary: KeyRange,
    /// (R-th predecessor, me]: the keys this node keeps a replica of.
    held: KeyRange,
    /// Me and my next R - 1 successors: the replicas of those keys.
    replicas: Vec<Peer>,
}

/// The replication state of one node.
#[derive(Clone, Debug)]
pub struct Replication {
    config: KvConfig,
    me: Peer,
    next_op: OpId,
    ops: BTreeMap<OpId, Op>,
    next_rpc: u64,
    /// Requests under way: who waits, and when to give up on them.
    rpcs: BTreeMap<u64, (Waiter, Duration)>,
    /// The time of the last input, for the deadlines of requests sent now.
    now: Duration,
    next_ticket: u64,
    tickets: BTreeMap<Ticket, Waiter>,
    next_push: u64,
    pushes: BTreeMap<u64, Push>,
    holding: Option<Holding>,
    next_sync_id: u64,
    syncs: BTreeMap<u64, sync::Sync>,
    /// When the next anti-entropy round starts (once this node holds a range).
    next_sync: Option<Duration>,
    /// Syncs whose root digests differed (and so descended the tree).
    pub syncs_differing: u64,
    /// Records anti-entropy sent to a replica, and fetched from one and
    /// applied here.
    pub sync_sent_records: u64,
    pub sync_fetched_records: u64,
    /// Listings under way.
    listings: BTreeMap<OpId, list::Listing>,
    /// The pass dropping what this node need not keep, if one is under way.
    cleanup: Option<cleanup::Cleanup>,
    pub cleanup_counters: CleanupCounters,
    /// The holding did not change since the last sync round.
    holding_settled: bool,
    /// The last primary range that had a known predecessor (handoff
    /// compares new ranges with it).
    known_primary: Option<KeyRange>,
    /// This node was alone on the ring (and held everything) since it last
    /// knew a predecessor.
    alone: bool,
    /// Back after longer than the tombstone grace: pushes nothing and
    /// serves no reads until its records are checked ([`cleanup`]).
    quarantined: bool,
    /// When the next sweep for old tombstones starts.
    next_sweep: Option<Duration>,
    /// The wall clock (ms since the UNIX epoch) at the last timeout, for
    /// the age of tombstones.
    wall_ms: u64,
    /// Replicas of writes that ended with their quorum before these
    /// answered, by (operation, replica index): if the write fails there
    /// (a lost request, a store error), it is sent once more, so that a
    /// lost message does not leave the write on W replicas until
    /// anti-entropy, where losing those W would lose it.
    trailing: BTreeMap<(OpId, usize), (Peer, Record)>,
    /// Writes sent once more to a replica that failed them after the quorum.
    pub trailing_retries: u64,
    /// Records handed off (pushed and stored by their new holders), and pages.
    pub pushed_records: u64,
    pub pushed_pages: u64,
    actions: VecDeque<KvAction>,
}

/// Checks a client's key: 1 to [`MAX_KEY_LEN`] bytes of UTF-8.
pub fn check_key(key: &[u8]) -> Result<(), KvError> {
    if key.is_empty() {
        return Err(KvError::Invalid(RecordError::EmptyKey));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(KvError::Invalid(RecordError::KeyTooLong(key.len())));
    }
    if std::str::from_utf8(key).is_err() {
        return Err(KvError::KeyNotUtf8);
    }
    Ok(())
}

impl Replication {
    pub fn new(me: Peer, config: KvConfig) -> Replication {
        Replication {
            config,
            me,
            next_op: 1,
            ops: BTreeMap::new(),
            next_rpc: 1,
            rpcs: BTreeMap::new(),
            trailing: BTreeMap::new(),
            trailing_retries: 0,
            now: Duration::ZERO,
            next_ticket: 1,
            tickets: BTreeMap::new(),
            next_push: 1,
            pushes: BTreeMap::new(),
            holding: None,
            next_sync_id: 1,
            syncs: BTreeMap::new(),
            next_sync: None,
            syncs_differing: 0,
            sync_sent_records: 0,
            sync_fetched_records: 0,
            listings: BTreeMap::new(),
            cleanup: None,
            cleanup_counters: CleanupCounters::default(),
            holding_settled: false,
            known_primary: None,
            alone: false,
            quarantined: false,
            next_sweep: None,
            wall_ms: 0,
            pushed_records: 0,
            pushed_pages: 0,
            actions: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &KvConfig {
        &self.config
    }

    // ---- the coordinator ----

    /// Writes `record` (a value or a tombstone, stamped by the caller) to the
    /// key's replicas; `replicas` if the caller knows them, else a lookup.
    pub fn write(
        &mut self,
        now: Duration,
        record: Record,
        replicas: Option<Vec<Peer>>,
    ) -> Result<OpId, KvError> {
        record.check()?;
        if let Some(bytes) = record.value_bytes()
            && bytes.len() > MAX_INLINE_VALUE
        {
            return Err(KvError::Invalid(RecordError::ValueTooLarge(bytes.len())));
        }
        let target = record.key_id.id();
        Ok(self.start(now, Kind::Write(record), target, replicas))
    }

    /// Asks every replica of `key_id` which version it holds.
    pub fn locate(&mut self, now: Duration, key_id: KeyId, replicas: Option<Vec<Peer>>) -> OpId {
        self.start(now, Kind::Locate(key_id), key_id.id(), replicas)
    }

    /// Reads the newest record of `key_id` from a read quorum.
    pub fn read(&mut self, now: Duration, key_id: KeyId, replicas: Option<Vec<Peer>>) -> OpId {
        self.start(now, Kind::Read(key_id), key_id.id(), replicas)
    }

    /// A fresh operation id (client operations and listings share them).
    fn new_op_id(&mut self) -> OpId {
        let op = self.next_op;
        self.next_op += 1;
        op
    }

    fn start(
        &mut self,
        now: Duration,
        kind: Kind,
        target: Id,
        replicas: Option<Vec<Peer>>,
    ) -> OpId {
        self.now = now;
        let op = self.new_op_id();
        self.ops.insert(
            op,
            Op {
                kind,
                deadline: now + self.config.op_deadline,
                replicas: Vec::new(),
                newest: None,
                internal: false,
                restamps: 0,
                restamping: false,
            },
        );
        match replicas {
            Some(replicas) => self.on_replicas(now, op, Ok(replicas)),
            None => self.actions.push_back(KvAction::Lookup { op, target }),
        }
        op
    }

    /// The replica set of operation `op` is known (owner first), or the ring
    /// could not name it.
    pub fn on_replicas(&mut self, now: Duration, op: OpId, replicas: Result<Vec<Peer>, String>) {
        self.now = now;
        let read_quorum = self.config.read_quorum;
        let replicas = match replicas {
            Ok(replicas) if !replicas.is_empty() => replicas,
            Ok(_) => return self.finish(op, Err(KvError::NoReplicas("no live node".into()))),
            Err(reason) => return self.finish(op, Err(KvError::NoReplicas(reason))),
        };
        let Some(state) = self.ops.get_mut(&op) else {
            return;
        };
        state.replicas = replicas
            .into_iter()
            .take(self.config.replicas)
            .map(|p| (p, None))
            .collect();
        match &state.kind {
            Kind::Write(_) => self.send_write(op),
            Kind::Locate(key_id) => {
                let key_id = *key_id;
                for index in 0..state.replicas.len() {
                    self.ask(op, index, Request::Fetch { key_id });
                }
            }
            Kind::Read(_) => {
                // Ask Q, this node first if it is a replica (a local read).
                let mut order: Vec<usize> = (0..state.replicas.len()).collect();
                let me = self.me.id;
                order.sort_by_key(|i| state.replicas[*i].0.id != me);
                let quorum = read_quorum.min(state.replicas.len());
                for index in order.into_iter().take(quorum) {
                    self.ask_read(op, index);
                }
            }
        }
    }

    /// Sends write `op`'s record to every replica of it.
    fn send_write(&mut self, op: OpId) {
        let Some(state) = self.ops.get(&op) else {
            return;
        };
        let Kind::Write(record) = &state.kind else {
            return;
        };
        let record = record.clone();
        for index in 0..state.replicas.len() {
            self.ask(
                op,
                index,
                Request::Store {
                    record: Box::new(record.clone()),
                },
            );
        }
    }

    /// Write `op` has a new stamp, after the version that beat it (`None`:
    /// the clock could not take that version in): it goes to every replica
    /// again. Answers to the old stamp are not waited for any more.
    pub fn restamp(&mut self, now: Duration, op: OpId, version: Option<Version>) {
        self.now = now;
        let Some(state) = self.ops.get_mut(&op) else {
            return;
        };
        let Kind::Write(record) = &mut state.kind else {
            return;
        };
        let Some(version) = version else {
            let attempts = state.restamps;
            return self.finish(op, Err(KvError::Outpaced { attempts }));
        };
        record.version = version;
        state.restamping = false;
        for (_, part) in &mut state.replicas {
            *part = None;
        }
        let old_round = |waiter: &Waiter| matches!(waiter, Waiter::Op { op: o, .. } | Waiter::OpKept { op: o, .. } if *o == op);
        self.rpcs.retain(|_, (waiter, _)| !old_round(waiter));
        self.tickets.retain(|_, waiter| !old_round(waiter));
        self.send_write(op);
    }

    /// W, or all of a replica set smaller than R (a ring of fewer than R
    /// nodes, where every node holds every key).
    fn write_quorum(&self, replicas: usize) -> usize {
        self.config.write_quorum.min(replicas)
    }

    /// Q, or all of a replica set smaller than it.
    fn read_quorum(&self, replicas: usize) -> usize {
        self.config.read_quorum.min(replicas)
    }

    fn ask_read(&mut self, op: OpId, index: usize) {
        let Some(Kind::Read(key_id)) = self.ops.get(&op).map(|o| o.kind.clone()) else {
            return;
        };
        self.ask(op, index, Request::Fetch { key_id });
    }

    /// Sends `request` to replica `index` of `op`, or runs it on the local
    /// store if that replica is this node.
    fn ask(&mut self, op: OpId, index: usize, request: Request) {
        let Some(state) = self.ops.get_mut(&op) else {
            return;
        };
        let Some((peer, part)) = state.replicas.get_mut(index) else {
            return;
        };
        *part = Some(Part::Asked);
        let peer = *peer;
        let waiter = Waiter::Op { op, index };
        if peer.id == self.me.id && self.quarantined && matches!(request, Request::Fetch { .. }) {
            // Its own records are not trusted yet: the other replicas answer.
            return self.on_part(op, index, None);
        }
        if peer.id == self.me.id {
            let request = match request {
                Request::Store { record } => StorageRequest::Apply(vec![*record]),
                Request::Fetch { key_id } => StorageRequest::Get(key_id),
                _ => return,
            };
            self.store(waiter, request);
        } else {
            self.send(waiter, peer, request);
        }
    }

    fn send(&mut self, waiter: Waiter, to: Peer, request: Request) {
        let rpc = self.next_rpc;
        self.next_rpc += 1;
        // Half the operation's deadline: a request lost on the way (or sent
        // to a replica that crashed unnoticed) fails in time for the
        // operation to ask another replica.
        self.rpcs
            .insert(rpc, (waiter, self.now + self.config.op_deadline / 2));
        self.actions.push_back(KvAction::Send { rpc, to, request });
    }

    fn store(&mut self, waiter: Waiter, request: StorageRequest) {
        let ticket = Ticket(self.next_ticket);
        self.next_ticket += 1;
        self.tickets.insert(ticket, waiter);
        self.actions
            .push_back(KvAction::Storage { ticket, request });
    }

    /// Replica `index` of write `op` keeps `kept` rather than the record
    /// sent: a refusal if `kept` is newer, else (the same version) a store.
    fn on_kept(&mut self, op: OpId, index: usize, kept: Version) {
        let newer = self
            .ops
            .get(&op)
            .is_some_and(|o| matches!(&o.kind, Kind::Write(r) if kept > r.version));
        if newer {
            self.on_answer(op, index, Part::Refused(kept), None);
        } else {
            self.on_part(op, index, Some(None));
        }
    }

    /// Replica `index` of `op` answered (or failed: `None`).
    fn on_part(&mut self, op: OpId, index: usize, answer: Option<Option<Record>>) {
        match answer {
            None => self.on_answer(op, index, Part::Failed, None),
            Some(record) => {
                let part = Part::Answered(record.as_ref().map(|r| r.version));
                self.on_answer(op, index, part, record);
            }
        }
    }

    /// Replica `index` of `op` took `part` in it (with the record it read).
    fn on_answer(&mut self, op: OpId, index: usize, new_part: Part, answer: Option<Record>) {
        let (write_quorum, read_quorum) = (self.config.write_quorum, self.config.read_quorum);
        let Some(state) = self.ops.get_mut(&op) else {
            return; // Ended already: a late answer.
        };
        if state.restamping {
            return;
        }
        let Some((_, part)) = state.replicas.get_mut(index) else {
            return;
        };
        if *part != Some(Part::Asked) {
            return;
        }
        *part = Some(new_part);
        let failed_now = new_part == Part::Failed;
        if let Some(record) = answer
            && state
                .newest
                .as_ref()
                .is_none_or(|n| record.version > n.version)
        {
            state.newest = Some(record);
        }
        let total = state.replicas.len();
        let answered = state.count(|p| matches!(p, Part::Answered(_)));
        let failed = state.count(|p| p == Part::Failed);
        match state.kind.clone() {
            Kind::Write(record) => {
                // Only replicas that hold this version count: W of them
                // means no write acknowledged before is newer (its W
                // replicas and these share one, which would have refused).
                let needed = write_quorum.min(total);
                let refused: Vec<Version> = state
                    .replicas
                    .iter()
                    .filter_map(|(_, p)| match p {
                        Some(Part::Refused(kept)) => Some(*kept),
                        _ => None,
                    })
                    .collect();
                if answered >= needed {
                    self.finish(
                        op,
                        Ok(OpResult::Written {
                            version: record.version,
                        }),
                    );
                } else if total - failed - refused.len() >= needed {
                    // W may still store it: wait.
                } else if let Some(newer) = refused.iter().max().copied() {
                    if state.restamps < MAX_RESTAMPS {
                        state.restamps += 1;
                        state.restamping = true;
                        self.actions.push_back(KvAction::Restamp { op, newer });
                    } else {
                        let attempts = state.restamps;
                        self.finish(op, Err(KvError::Outpaced { attempts }));
                    }
                } else {
                    self.finish(op, Err(no_quorum("write", answered, needed, total)));
                }
            }
            Kind::Locate(_) => {
                if state.count(|p| p == Part::Asked) == 0 {
                    let replicas = state
                        .replicas
                        .iter()
                        .map(|(peer, part)| {
                            let held = match part {
                                Some(Part::Answered(version)) => Ok(*version),
                                _ => Err(()),
                            };
                            (*peer, held)
                        })
                        .collect();
                    let newest = state.newest.clone();
                    self.finish(op, Ok(OpResult::Located { replicas, newest }));
                }
            }
            Kind::Read(_) => {
                let needed = read_quorum.min(total);
                let unasked = state.replicas.iter().position(|(_, p)| p.is_none());
                let asking = state.count(|p| p == Part::Asked);
                if answered >= needed && state.newest.is_none() && unasked.is_some() {
                    // A quorum that has no record may be replicas the data
                    // has not reached yet (a handoff under way): ask the rest
                    // before saying there is none.
                    if let Some(index) = unasked {
                        self.ask_read(op, index);
                    }
                } else if answered >= needed && (state.newest.is_some() || asking == 0) {
                    self.read_done(op);
                } else if answered >= needed {
                    // Others still answering: wait for them.
                } else if failed_now {
                    // Ask a replica not asked yet, if one is left.
                    let next = state.replicas.iter().position(|(_, p)| p.is_none());
                    match next {
                        Some(index) => self.ask_read(op, index),
                        None if total - failed < needed => {
                            self.finish(op, Err(no_quorum("read", answered, needed, total)));
                        }
                        None => {}
                    }
                }
            }
        }
    }

    /// A read has its quorum: answer, and write the newest back to the
    /// replicas that answered with an older version (read repair).
    fn read_done(&mut self, op: OpId) {
        let Some(state) = self.ops.get(&op) else {
            return;
        };
        let newest = state.newest.clone();
        if let Some(newest) = &newest {
            let stale: Vec<Peer> = state
                .replicas
                .iter()
                .filter(|(_, part)| {
                    matches!(part, Some(Part::Answered(v)) if *v != Some(newest.version))
                })
                .map(|(peer, _)| *peer)
                .collect();
            for peer in stale {
                let request = Request::Store {
                    record: Box::new(newest.clone()),
                };
                if peer.id == self.me.id {
                    self.store(Waiter::Repair, StorageRequest::Apply(vec![newest.clone()]));
                } else {
                    self.send(Waiter::Repair, peer, request);
                }
            }
        }
        self.finish(op, Ok(OpResult::Read { record: newest }));
    }

    fn finish(&mut self, op: OpId, result: Result<OpResult, KvError>) {
        match self.ops.remove(&op) {
            Some(state) if state.internal => self.on_confirmed(op, result),
            Some(state) => {
                if let (Kind::Write(record), Ok(_)) = (&state.kind, &result) {
                    self.trail(op, &state, record);
                }
                self.actions.push_back(KvAction::Done { op, result });
            }
            None => {}
        }
    }

    /// Keeps an eye on the replicas of write `op` still answering after its
    /// quorum: see [`Replication::trailing`].
    fn trail(&mut self, op: OpId, state: &Op, record: &Record) {
        for (index, (peer, part)) in state.replicas.iter().enumerate() {
            if *part == Some(Part::Asked) && peer.id != self.me.id {
                self.trailing.insert((op, index), (*peer, record.clone()));
            }
        }
    }

    /// A replica of an ended write answered (`stored`: it holds the write or
    /// a newer version) or failed; a failure is sent the write once more.
    fn on_trailing(&mut self, op: OpId, index: usize, stored: bool) -> bool {
        let Some((peer, record)) = self.trailing.remove(&(op, index)) else {
            return false;
        };
        if !stored {
            self.trailing_retries += 1;
            let request = Request::Store {
                record: Box::new(record),
            };
            self.send(Waiter::Repair, peer, request);
        }
        true
    }

    // ---- the replica side ----

    /// A peer's replication request: answered later, once the store has
    /// done its part. (`Store` records are checked first: a malformed one
    /// is refused without touching the store.)
    pub fn handle_request(
        &mut self,
        now: Duration,
        _from: Peer,
        inbound: InboundId,
        request: Request,
    ) -> Option<Response> {
        self.now = now;
        match request {
            Request::Store { record } => {
                if let Err(error) = record.check() {
                    return Some(Response::Error {
                        reason: format!("refused record: {error}"),
                    });
                }
                let waiter = Waiter::InboundStore {
                    inbound,
                    key_id: record.key_id,
                    version: record.version,
                };
                self.store(waiter, StorageRequest::Apply(vec![*record]));
                None
            }
            Request::Fetch { .. } if self.quarantined => Some(Response::Error {
                reason: "this replica is checking its records after a long absence".into(),
            }),
            Request::Fetch { key_id } => {
                self.store(Waiter::Inbound(inbound), StorageRequest::Get(key_id));
                None
            }
            Request::SyncRange { .. }
            | Request::SyncNodes { .. }
            | Request::ListVersions { .. } => self.serve_sync(inbound, request),
            Request::ListKeys {
                range,
                prefix,
                limit,
            } => {
                self.serve_list(inbound, range, prefix, limit);
                None
            }
            Request::StoreMany { records } => {
                if let Some(error) = records.iter().find_map(|r| r.check().err()) {
                    return Some(Response::Error {
                        reason: format!("refused page: {error}"),
                    });
                }
                self.store(Waiter::Inbound(inbound), StorageRequest::Apply(records));
                None
            }
            _ => Some(Response::Error {
                reason: "not a replication request".into(),
            }),
        }
    }

    // ---- handoff ----

    /// The ring changed what this node holds or with whom: push to new
    /// replicas, and to a newcomer that took over part of the primary range.
    pub fn on_holding(
        &mut self,
        now: Duration,
        primary: KeyRange,
        held: KeyRange,
        replicas: Vec<Peer>,
        predecessor: Option<Peer>,
    ) {
        self.now = now;
        let new = Holding {
            primary,
            held,
            replicas,
        };
        let old = self.holding.replace(new.clone());
        if self.next_sync.is_none() {
            self.next_sync = Some(now + self.config.sync_every);
            self.next_sweep = Some(now + self.config.sweep_every);
        }
        self.resume_quarantine();
        if old.as_ref() == Some(&new) {
            return;
        }
        self.holding_settled = false;
        if new.replicas.len() == 1 && predecessor.is_none() {
            self.alone = true;
        }
        let me = self.me.id;
        for member in &new.replicas {
            let was_one = old
                .as_ref()
                .is_some_and(|o| o.replicas.iter().any(|p| p.id == member.id));
            if member.id != me && !was_one {
                self.start_push(*member, new.primary);
            }
        }
        // Ranges are compared with the last primary range that had a known
        // predecessor: a dead predecessor is first cleared (the range reads
        // as the whole ring for a moment) before the one before it is
        // adopted, and the range this node inherited must still be pushed.
        let Some(predecessor_now) = predecessor else {
            return;
        };
        let known = self.known_primary.replace(new.primary);
        let was_alone = std::mem::take(&mut self.alone);
        match known {
            None if was_alone => {
                // This node was alone and held everything: the newcomer
                // owns the rest of the ring now. (A node that just joined
                // also starts without a known predecessor: it pushes nothing.)
                let rest = KeyRange::new(self.me.id.id(), predecessor_now.id.id());
                self.start_push(predecessor_now, rest);
            }
            None => {}
            Some(known) if known != new.primary => self.diff_primary(known, &new, predecessor),
            Some(_) => {}
        }
    }

    /// The primary range changed from `known` to `new.primary`: push what
    /// a newcomer took over to it, or a dead predecessor's range to my replicas.
    fn diff_primary(&mut self, known: KeyRange, new: &Holding, predecessor: Option<Peer>) {
        let me = self.me.id;
        {
            let (was, now_from) = (known.after, new.primary.after);
            if known.contains(KeyId(now_from)) && now_from != was {
                // A newcomer between my old predecessor and me now owns the
                // part of my old primary range up to it.
                if let Some(newcomer) = predecessor {
                    self.start_push(newcomer, KeyRange::new(was, now_from));
                }
            } else if !new.primary.is_whole() && new.primary.contains(KeyId(was)) {
                // My predecessor went (crashed or left): I own its range too
                // now, and my last replicas never held it.
                let grown = KeyRange::new(now_from, was);
                for member in new.replicas.clone() {
                    if member.id != me {
                        self.start_push(member, grown);
                    }
                }
            }
        }
    }

    /// Before a graceful leave: each range this node holds goes to the node
    /// that becomes its replica when this one is gone. This node holds the
    /// ranges of itself and its first R - 1 predecessors; the range of the
    /// i-th predecessor (i = 0: me) gains the (R - i)-th successor.
    /// `predecessors` and `successors` nearest first.
    pub fn hand_off_before_leaving(
        &mut self,
        now: Duration,
        predecessors: &[Peer],
        successors: &[Peer],
    ) {
        self.now = now;
        let r = self.config.replicas;
        let me = self.me;
        let owners: Vec<Peer> = std::iter::once(me)
            .chain(predecessors.iter().copied())
            .collect();
        for i in 0..r {
            let (Some(owner), Some(before)) = (owners.get(i), owners.get(i + 1)) else {
                break;
            };
            let Some(target) = successors.get(r - i - 1) else {
                continue;
            };
            if target.id == me.id || owners.iter().any(|o| o.id == target.id) {
                continue; // A small ring: the target holds the range already.
            }
            self.start_push(*target, KeyRange::new(before.id.id(), owner.id.id()));
        }
    }

    /// True while handoff pushes are under way.
    pub fn handing_off(&self) -> bool {
        !self.pushes.is_empty()
    }

    fn start_push(&mut self, to: Peer, range: KeyRange) {
        if self.config.faults.no_repair || self.quarantined {
            return;
        }
        let busy = self
            .pushes
            .values()
            .any(|p| p.to.id == to.id && p.range == range);
        if busy {
            return;
        }
        let push = self.next_push;
        self.next_push += 1;
        self.pushes.insert(
            push,
            Push {
                to,
                range,
                rest: Some(range),
                page_from: None,
                failures: 0,
                retry_at: None,
            },
        );
        self.read_page(push);
    }

    fn read_page(&mut self, push: u64) {
        let Some(rest) = self.pushes.get(&push).and_then(|p| p.rest) else {
            self.pushes.remove(&push);
            return;
        };
        let request = StorageRequest::Scan {
            range: rest,
            limit: PUSH_PAGE_RECORDS,
        };
        self.store(Waiter::Push(push), request);
    }

    /// A page was read: send what fits, or end the push if nothing is left.
    fn send_page(&mut self, push: u64, mut records: Vec<Record>) {
        let Some(state) = self.pushes.get_mut(&push) else {
            return;
        };
        if records.is_empty() {
            self.pushes.remove(&push);
            return;
        }
        let mut bytes = 0;
        let fits = records
            .iter()
            .position(|r| {
                bytes += r.stored_bytes();
                bytes > PUSH_PAGE_BYTES
            })
            .unwrap_or(records.len())
            .max(1);
        records.truncate(fits);
        let last = records[records.len() - 1].key_id;
        let to = state.to;
        state.page_from = state.rest;
        state.rest = state.rest.and_then(|rest| rest.rest_after(last));
        self.pushed_records += records.len() as u64;
        self.pushed_pages += 1;
        self.send(Waiter::Push(push), to, Request::StoreMany { records });
    }

    /// The target stored a page: read the next, unless the range is done.
    fn next_page(&mut self, push: u64) {
        match self.pushes.get_mut(&push) {
            Some(state) if state.rest.is_some() => {
                state.failures = 0;
                self.read_page(push);
            }
            _ => {
                self.pushes.remove(&push);
            }
        }
    }

    /// The target did not take a page: try it again in a moment, a few times.
    fn push_failed(&mut self, push: u64) {
        let now = self.now;
        let Some(state) = self.pushes.get_mut(&push) else {
            return;
        };
        state.failures += 1;
        if state.failures >= PUSH_ATTEMPTS {
            self.pushes.remove(&push);
            return;
        }
        state.rest = state.page_from.or(state.rest);
        state.retry_at = Some(now + PUSH_RETRY);
    }

    // ---- outcomes ----

    /// The store did its part for `ticket`.
    pub fn on_storage(&mut self, now: Duration, ticket: Ticket, outcome: StorageOutcome) {
        self.now = now;
        let Some(waiter) = self.tickets.remove(&ticket) else {
            return;
        };
        match waiter {
            Waiter::Op { op, index } => {
                let answer = match outcome {
                    StorageOutcome::Applied(won) if !won.iter().any(|w| *w) => {
                        // Refused as older, or held already: which version stays?
                        let key_id = match self.ops.get(&op).map(|o| &o.kind) {
                            Some(Kind::Write(record)) => record.key_id,
                            _ => return,
                        };
                        let waiter = Waiter::OpKept { op, index };
                        return self.store(waiter, StorageRequest::Get(key_id));
                    }
                    StorageOutcome::Applied(_) => Some(None),
                    StorageOutcome::Got(record) => Some(record),
                    StorageOutcome::Failed(_)
                    | StorageOutcome::Scanned(_)
                    | StorageOutcome::Records(_)
                    | StorageOutcome::Digest(_)
                    | StorageOutcome::Digests(_)
                    | StorageOutcome::Versions(_)
                    | StorageOutcome::Keys { .. } => None,
                };
                self.on_part(op, index, answer);
            }
            Waiter::OpKept { op, index } => match outcome {
                StorageOutcome::Got(Some(kept)) => self.on_kept(op, index, kept.version),
                // Removed meanwhile (a cleanup): it was stored all the same.
                StorageOutcome::Got(None) => self.on_part(op, index, Some(None)),
                _ => self.on_part(op, index, None),
            },
            Waiter::InboundStore {
                inbound,
                key_id,
                version,
            } => match outcome {
                StorageOutcome::Applied(won) if !won.iter().any(|w| *w) => {
                    let waiter = Waiter::InboundKept { inbound, version };
                    self.store(waiter, StorageRequest::Get(key_id));
                }
                other => self.respond(inbound, other),
            },
            Waiter::InboundKept { inbound, version } => {
                let response = match outcome {
                    StorageOutcome::Got(Some(kept)) if kept.version > version => Response::Newer {
                        version: kept.version,
                    },
                    StorageOutcome::Got(_) => Response::Stored { won: false },
                    StorageOutcome::Failed(reason) => Response::Error {
                        reason: format!("the replica's store failed: {reason}"),
                    },
                    _ => Response::Error {
                        reason: "internal: the kept version was not read".into(),
                    },
                };
                self.actions
                    .push_back(KvAction::Respond { inbound, response });
            }
            Waiter::Repair | Waiter::Pull(_) => {}
            Waiter::Cleanup => self.on_cleanup_storage(outcome),
            Waiter::List(op) => self.on_listed(op, Self::list_outcome(outcome)),
            Waiter::Sync(sync) => self.on_sync_storage(sync, outcome),
            Waiter::Push(push) => match outcome {
                StorageOutcome::Scanned(records) => self.send_page(push, records),
                _ => {
                    self.pushes.remove(&push);
                }
            },
            Waiter::Inbound(inbound) => self.respond(inbound, outcome),
        }
    }

    /// Answers a peer's request with what the store did for it.
    fn respond(&mut self, inbound: InboundId, outcome: StorageOutcome) {
        let response = match outcome {
            StorageOutcome::Applied(won) => Response::Stored {
                won: won.iter().any(|w| *w),
            },
            StorageOutcome::Digest(digest) => Response::Digest { digest },
            StorageOutcome::Digests(digests) => Response::Digests { digests },
            StorageOutcome::Versions(entries) => Response::Versions { entries },
            StorageOutcome::Scanned(_) | StorageOutcome::Records(_) => Response::Error {
                reason: "internal: a scan answered a store".into(),
            },
            StorageOutcome::Got(record) => Response::Record {
                record: record.map(Box::new),
            },
            StorageOutcome::Keys { keys, truncated } => Response::Keys { keys, truncated },
            StorageOutcome::Failed(reason) => Response::Error {
                reason: format!("the replica's store failed: {reason}"),
            },
        };
        self.actions
            .push_back(KvAction::Respond { inbound, response });
    }

    /// The answer to request `rpc` arrived.
    pub fn handle_response(&mut self, now: Duration, rpc: u64, response: Response) {
        self.now = now;
        let Some((waiter, _)) = self.rpcs.remove(&rpc) else {
            return;
        };
        if let Waiter::Push(push) = waiter {
            match response {
                Response::Stored { .. } => self.next_page(push),
                _ => self.push_failed(push),
            }
            return;
        }
        if let Waiter::List(op) = waiter {
            return self.on_listed(op, Self::list_answer(response));
        }
        if let Waiter::Sync(sync) = waiter {
            return self.on_sync_response(sync, response);
        }
        if let Waiter::Pull(key_id) = waiter {
            return self.on_pulled(key_id, response);
        }
        if let Waiter::Op { op, index } = waiter {
            let stored = matches!(response, Response::Stored { .. } | Response::Newer { .. });
            if self.on_trailing(op, index, stored) {
                return;
            }
            let answer = match response {
                Response::Newer { version } => return self.on_kept(op, index, version),
                Response::Stored { .. } => Some(None),
                Response::Record { record } => Some(record.map(|r| *r)),
                // An error, or an answer of the wrong kind: this replica failed.
                _ => None,
            };
            self.on_part(op, index, answer);
        }
    }

    /// Request `rpc` failed before it was answered.
    pub fn handle_failure(&mut self, now: Duration, rpc: u64) {
        self.now = now;
        match self.rpcs.remove(&rpc) {
            Some((Waiter::Op { op, index }, _)) => {
                // A replica of an ended write is sent it again; otherwise
                // the failure counts against the operation.
                let retried = self.on_trailing(op, index, false);
                if !retried {
                    self.on_part(op, index, None);
                }
            }
            Some((Waiter::Push(push), _)) => self.push_failed(push),
            Some((Waiter::Sync(sync), _)) => self.end_sync(sync),
            Some((Waiter::List(op), _)) => self.on_listed(op, None),
            _ => {}
        }
    }

    /// Operations past their deadline fail, saying how many replicas answered.
    pub fn handle_timeout(&mut self, now: Duration, wall_ms: u64) {
        self.now = now;
        self.wall_ms = wall_ms;
        if self.next_sync.is_some_and(|at| at <= now) {
            self.next_sync = Some(now + self.config.sync_every);
            self.start_syncs();
            // Records outside the held range go once the ring has been
            // steady for a whole period (and their holders confirm them).
            if self.holding_settled {
                self.start_excess_pass();
            }
            self.holding_settled = true;
        }
        if self.next_sweep.is_some_and(|at| at <= now) {
            self.next_sweep = Some(now + self.config.sweep_every);
            self.start_sweep();
        }
        let again: Vec<u64> = self
            .pushes
            .iter()
            .filter(|(_, p)| p.retry_at.is_some_and(|at| at <= now))
            .map(|(id, _)| *id)
            .collect();
        for push in again {
            if let Some(state) = self.pushes.get_mut(&push) {
                state.retry_at = None;
            }
            self.read_page(push);
        }
        // A request with no answer and no failure by its deadline (lost on
        // the way) fails, as the transport would report.
        let lost: Vec<u64> = self
            .rpcs
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(rpc, _)| *rpc)
            .collect();
        for rpc in lost {
            self.handle_failure(now, rpc);
        }
        let overdue: Vec<OpId> = self
            .ops
            .iter()
            .filter(|(_, o)| o.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for op in overdue {
            let Some(state) = self.ops.get(&op) else {
                continue;
            };
            let error = match &state.kind {
                _ if state.replicas.is_empty() => {
                    KvError::NoReplicas("the lookup did not finish in time".into())
                }
                Kind::Write(_) => no_quorum(
                    "write",
                    state.count(|p| matches!(p, Part::Answered(_))),
                    self.write_quorum(state.replicas.len()),
                    state.replicas.len(),
                ),
                Kind::Locate(_) => no_quorum(
                    "locate",
                    state.count(|p| matches!(p, Part::Answered(_))),
                    state.replicas.len(),
                    state.replicas.len(),
                ),
                Kind::Read(_) => no_quorum(
                    "read",
                    state.count(|p| matches!(p, Part::Answered(_))),
                    self.read_quorum(state.replicas.len()),
                    state.replicas.len(),
                ),
            };
            self.finish(op, Err(error));
        }
    }

    /// When `handle_timeout` should run next: the earliest deadline.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let ops = self.ops.values().map(|o| o.deadline);
        let rpcs = self.rpcs.values().map(|(_, deadline)| *deadline);
        let pushes = self.pushes.values().filter_map(|p| p.retry_at);
        ops.chain(rpcs)
            .chain(pushes)
            .chain(self.next_sync)
            .chain(self.next_sweep)
            .min()
    }

    pub fn poll_action(&mut self) -> Option<KvAction> {
        self.actions.pop_front()
    }
}

fn no_quorum(op: &'static str, answered: usize, needed: usize, asked: usize) -> KvError {
    KvError::NoQuorum {
        op,
        answered,
        needed,
        asked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{peer, version};

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn record(value: &[u8], ms: u64) -> Record {
        Record::value(b"key", version(ms), value.to_vec())
    }

    fn drain(kv: &mut Replication) -> Vec<KvAction> {
        std::iter::from_fn(|| kv.poll_action()).collect()
    }

    /// The rpc of the request sent to `to`, and the ticket of the local store call.
    fn sent_to(actions: &[KvAction], to: Peer) -> u64 {
        actions
            .iter()
            .find_map(|a| match a {
                KvAction::Send { rpc, to: p, .. } if *p == to => Some(*rpc),
                _ => None,
            })
            .expect("a request to that peer")
    }

    fn local_ticket(actions: &[KvAction]) -> Ticket {
        actions
            .iter()
            .find_map(|a| match a {
                KvAction::Storage { ticket, .. } => Some(*ticket),
                _ => None,
            })
            .expect("a local store call")
    }

    fn done(actions: &[KvAction]) -> Option<Result<OpResult, KvError>> {
        actions.iter().find_map(|a| match a {
            KvAction::Done { result, .. } => Some(result.clone()),
            _ => None,
        })
    }

    fn three() -> Vec<Peer> {
        vec![peer(1), peer(2), peer(3)]
    }

    #[test]
    fn a_write_succeeds_once_two_of_three_stored_it() {
        let mut kv = Replication::new(peer(1), KvConfig::default());
        kv.write(at(0), record(b"v", 10), Some(three()))
            .expect("valid");
        let actions = drain(&mut kv);
        kv.on_storage(
            at(1),
            local_ticket(&actions),
            StorageOutcome::Applied(vec![true]),
        );
        assert_eq!(done(&drain(&mut kv)), None, "one of two is not a quorum");
        kv.handle_response(
            at(2),
            sent_to(&actions, peer(3)),
            Response::Stored { won: true },
        );
        assert_eq!(
            done(&drain(&mut kv)),
            Some(Ok(OpResult::Written {
                version: version(10)
            }))
        );
    }

    /// A write on its quorum of this node and peer 3; peer 2 still asked.
    fn a_write_with_its_quorum_before_peer_2(kv: &mut Replication) -> Vec<KvAction> {
        kv.write(at(0), record(b"v", 10), Some(three()))
            .expect("valid");
        let actions = drain(kv);
        kv.on_storage(
            at(1),
            local_ticket(&actions),
            StorageOutcome::Applied(vec![true]),
        );
        kv.handle_response(
            at(2),
            sent_to(&actions, peer(3)),
            Response::Stored { won: true },
        );
        assert!(matches!(done(&drain(kv)), Some(Ok(_))));
        actions
    }

    #[test]
    fn a_replica_that_fails_a_write_after_its_quorum_is_sent_it_once_more() {
        let mut kv = Replication::new(peer(1), KvConfig::default());
        let actions = a_write_with_its_quorum_before_peer_2(&mut kv);
        // The Store to peer 2 was lost: its deadline passes.
        kv.handle_timeout(at(0) + KvConfig::default().op_deadline, 0);
        let again = drain(&mut kv);
        let retry = sent_to(&again, peer(2));
        assert!(
            again.iter().any(|a| matches!(a,
                KvAction::Send { to, request: Request::Store { record }, .. }
                    if *to == peer(2) && record.version == version(10))),
            "the write is sent to peer 2 again: {again:?}"
        );
        assert_eq!(kv.trailing_retries, 1);
        // Once only: the retry failing too leaves the rest to anti-entropy.
        kv.handle_failure(at(3), retry);
        assert!(drain(&mut kv).is_empty());
        // An error answer is a failure too.
        let actions2 = a_write_with_its_quorum_before_peer_2(&mut kv);
        let first = sent_to(&actions2, peer(2));
        assert_ne!(first, sent_to(&actions, peer(2)));
        kv.handle_response(
            at(4),
            first,
            Response::Error {
                reason: "disk full".into(),
            },
        );
        assert!(
            drain(&mut kv)
                .iter()
                .any(|a| matches!(a, KvAction::Send { to, .. } if *to == peer(2)))
        );
        assert_eq!(kv.trailing_retries, 2);
    }

    #[test]
    fn a_replica_that_stores_a_write_after_its_quorum_is_not_sent_it_again() {
        let mut kv = Replication::new(peer(1), KvConfig::default());
        let actions = a_write_with_its_quorum_before_peer_2(&mut kv);
        kv.handle_response(
            at(3),
            sent_to(&actions, peer(2)),
            Response::Stored { won: true },
        );
        kv.handle_timeout(at(0) + KvConfig::default().op_deadline, 0);
        assert!(
            !drain(&mut kv)
                .iter()
                .any(|a| matches!(a, KvAction::Send { to, .. } if *to == peer(2)))
        );
        assert_eq!(kv.trailing_retries, 0);
        assert!(kv.trailing.is_empty());
    }

    #[test]
    fn a_write_fails_as_soon_as_its_quorum_cannot_be_reached() {
        let mut kv = Replication::new(peer(1), KvConfig::default());
        kv.write(at(0), record(b"v", 10), Some(three()))
            .expect("valid");
        let actions = drain(&mut kv);
        kv.on_storage(
            at(1),
            local_ticket(&actions),
            StorageOutcome::Applied(vec![true]),
        );
        kv.handle_failure(at(2), sent_to(&actions, peer(2)));
        kv.handle_response(
            at(3),
            sent_to(&actions, peer(3)),
            Response::Error {
                reason: "disk full".into(),
            },
        );
        assert_eq!(
            done(&drain(&mut kv)),
            Some(Err(KvError::NoQuorum {
                op: "write",
                answered: 1,
                needed: 2,
                asked: 3
            }))
        );
    }

    fn stores_sent(actions: &[KvAction]) -> Vec<(Peer, Version)> {
        actions
            .iter()
            .filter_map(|a| match a {
                KvAction::Send {
                    to,
                    request: Request::Store { record },
                    ..
                } => Some((*to, record.version)),
                _ => None,
            })
            .collect()
    }

    fn restamp_asked(actions: &[KvAction]) -> Option<(OpId, Version)> {
        actions.iter().find_map(|a| match a {
            KvAction::Restamp { op, newer } => Some((*op, *newer)),
            _ => None,
        })
    }

    #[test]
    fn a_write_two_replicas_refuse_for_a_newer_version_is_stamped_after_it_and_sent_again() {
        let mut kv = Replication::new(peer(4), KvConfig::default());
        let op = kv
            .write(at(0), record(b"v", 10), Some(three()))
            .expect("valid");
        let first = drain(&mut kv);
        let newer = Response::Newer {
            version: version(20),
        };
        kv.handle_response(at(1), sent_to(&first, peer(1)), newer.clone());
        assert_eq!(restamp_asked(&drain(&mut kv)), None, "W may still store it");
        kv.handle_response(at(2), sent_to(&first, peer(2)), newer);
        let actions = drain(&mut kv);
        assert_eq!(done(&actions), None, "a refused write is not acknowledged");
        assert_eq!(restamp_asked(&actions), Some((op, version(20))));

        kv.restamp(at(3), op, Some(version(21)));
        let second = drain(&mut kv);
        assert_eq!(
            stores_sent(&second),
            three()
                .into_iter()
                .map(|p| (p, version(21)))
                .collect::<Vec<_>>(),
            "the new stamp goes to every replica"
        );
        kv.handle_response(
            at(4),
            sent_to(&first, peer(3)),
            Response::Stored { won: true },
        );
        assert_eq!(
            done(&drain(&mut kv)),
            None,
            "an answer to the old stamp does not count"
        );
        for replica in [peer(1), peer(3)] {
            kv.handle_response(
                at(5),
                sent_to(&second, replica),
                Response::Stored { won: true },
            );
        }
        assert_eq!(
            done(&drain(&mut kv)),
            Some(Ok(OpResult::Written {
                version: version(21)
            }))
        );
    }

    #[test]
    fn a_write_one_replica_refuses_is_acknowledged_by_the_two_others() {
        let mut kv = Replication::new(peer(4), KvConfig::default());
        kv.write(at(0), record(b"v", 10), Some(three()))
            .expect("valid");
        let actions = drain(&mut kv);
        let answers = [
            (
                peer(1),
                Response::Newer {
                    version: version(20),
                },
            ),
            // The same version held already counts as stored.
            (peer(2), Response::Stored { won: false }),
            (peer(3), Response::Stored { won: true }),
        ];
        for (replica, answer) in answers {
            kv.handle_response(at(1), sent_to(&actions, replica), answer);
        }
        let actions = drain(&mut kv);
        assert_eq!(restamp_asked(&actions), None);
        assert_eq!(
            done(&actions),
            Some(Ok(OpResult::Written {
                version: version(10)
            }))
        );
    }

    #[test]
    fn a_local_replica_that_keeps_a_newer_version_refuses_too() {
        let mut kv = Replication::new(peer(1), KvConfig::default());
        let op = kv
            .write(at(0), record(b"v", 10), Some(three()))
            .expect("valid");
        let actions = drain(&mut kv);
        kv.on_storage(
            at(1),
            local_ticket(&actions),
            StorageOutcome::Applied(vec![false]),
        );
        let read = drain(&mut kv);
        assert!(
            read.iter().any(|a| matches!(
                a,
                KvAction::Storage {
                    request: StorageRequest::Get(_),
                    ..
                }
            )),
            "the version kept is read: {read:?}"
        );
        kv.on_storage(
            at(2),
            local_ticket(&read),
            StorageOutcome::Got(Some(record(b"newer", 30))),
        );
        kv.handle_failure(at(3), sent_to(&actions, peer(2)));
        assert_eq!(
            restamp_asked(&drain(&mut kv)),
            Some((op, version(30))),
            "one refusal and one failure leave no quorum for this version"
        );
    }

    #[test]
    fn a_write_outpaced_every_time_fails_saying_so() {
        let mut kv = Replication::new(peer(4), KvConfig::default());
        let op = kv
            .write(at(0), record(b"v", 10), Some(three()))
            .expect("valid");
        let mut sent = drain(&mut kv);
        for attempt in 0..=MAX_RESTAMPS {
            let newer = version(100 + u64::from(attempt) * 10);
            for replica in three() {
                kv.handle_response(
                    at(1),
                    sent_to(&sent, replica),
                    Response::Newer { version: newer },
                );
            }
            let actions = drain(&mut kv);
            if attempt < MAX_RESTAMPS {
                assert_eq!(restamp_asked(&actions), Some((op, newer)));
                kv.restamp(at(2), op, Some(version(101 + u64::from(attempt) * 10)));
                sent = drain(&mut kv);
            } else {
                assert_eq!(
                    done(&actions),
                    Some(Err(KvError::Outpaced {
                        attempts: MAX_RESTAMPS
                    }))
                );
            }
        }
    }

    #[test]
    fn a_replica_that_keeps_a_newer_version_says_which() {
        for (kept, expected) in [
            (
                30,
                Response::Newer {
                    version: version(30),
                },
            ),
            (10, Response::Stored { won: false }),
        ] {
            let mut kv = Replication::new(peer(2), KvConfig::default());
            let answer = kv.handle_request(
                at(0),
                peer(1),
                InboundId(7),
                Request::Store {
                    record: Box::new(record(b"v", 10)),
                },
            );
            assert_eq!(answer, None, "answered once the store did its part");
            let ticket = local_ticket(&drain(&mut kv));
            kv.on_storage(at(1), ticket, StorageOutcome::Applied(vec![false]));
            let ticket = local_ticket(&drain(&mut kv));
            kv.on_storage(
                at(2),
                ticket,
                StorageOutcome::Got(Some(record(b"kept", kept))),
            );
            assert_eq!(
                drain(&mut kv),
                vec![KvAction::Respond {
                    inbound: InboundId(7),
                    response: expected
                }]
            );
        }
    }

    #[test]
    fn a_write_without_answers_fails_at_its_deadline_saying_so() {
        let mut kv = Replication::new(peer(1), KvConfig::default());
        kv.write(at(0), record(b"v", 10), Some(three()))
            .expect("valid");
        drain(&mut kv);
        let deadline = kv.poll_timeout().expect("a deadline");
        kv.handle_timeout(deadline, 0);
        let result = done(&drain(&mut kv)).expect("ended");
        assert!(
            matches!(
                result,
                Err(KvError::NoQuorum {
                    answered: 0,
                    needed: 2,
                    ..
                })
            ),
            "{result:?}"
        );
        assert!(
            result
                .expect_err("failed")
                .to_string()
                .contains("may still take effect")
        );
    }

    #[test]
    fn a_read_returns_the_newest_and_repairs_the_stale_replica() {
        let mut kv = Replication::new(peer(1), KvConfig::default());
        kv.read(at(0), KeyId::of_key(b"key"), Some(three()));
        let actions = drain(&mut kv);
        let asked: Vec<&KvAction> = actions
            .iter()
            .filter(|a| matches!(a, KvAction::Send { .. } | KvAction::Storage { .. }))
            .collect();
        assert_eq!(
            asked.len(),
            2,
            "Q = 2 asked, the local store first: {actions:?}"
        );
        kv.on_storage(
            at(1),
            local_ticket(&actions),
            StorageOutcome::Got(Some(record(b"old", 5))),
        );
        kv.handle_response(
            at(2),
            sent_to(&actions, peer(2)),
            Response::Record {
                record: Some(Box::new(record(b"new", 9))),
            },
        );
        let after = drain(&mut kv);
        assert_eq!(
            done(&after),
            Some(Ok(OpResult::Read {
                record: Some(record(b"new", 9))
            }))
        );
        assert!(
            after.iter().any(|a| matches!(a,
                KvAction::Storage { request: StorageRequest::Apply(records), .. }
                    if records == &vec![record(b"new", 9)])),
            "the stale local copy is repaired: {after:?}"
        );
    }

    #[test]
    fn a_read_asks_the_next_replica_when_one_fails() {
        let mut kv = Replication::new(peer(9), KvConfig::default());
        kv.read(at(0), KeyId::of_key(b"key"), Some(three()));
        let actions = drain(&mut kv);
        kv.handle_failure(at(1), sent_to(&actions, peer(1)));
        let retry = drain(&mut kv);
        let third = sent_to(&retry, peer(3));
        kv.handle_response(
            at(2),
            sent_to(&actions, peer(2)),
            Response::Record { record: None },
        );
        kv.handle_response(at(3), third, Response::Record { record: None });
        assert_eq!(
            done(&drain(&mut kv)),
            Some(Ok(OpResult::Read { record: None }))
        );
    }

    #[test]
    fn a_read_that_finds_nothing_asks_every_replica_before_saying_so() {
        let mut kv = Replication::new(peer(9), KvConfig::default());
        kv.read(at(0), KeyId::of_key(b"key"), Some(three()));
        let first = drain(&mut kv);
        kv.handle_response(
            at(1),
            sent_to(&first, peer(1)),
            Response::Record { record: None },
        );
        kv.handle_response(
            at(2),
            sent_to(&first, peer(2)),
            Response::Record { record: None },
        );
        let more = drain(&mut kv);
        assert_eq!(done(&more), None, "two empty answers are not the last word");
        let third = sent_to(&more, peer(3));
        kv.handle_response(
            at(3),
            third,
            Response::Record {
                record: Some(Box::new(record(b"v", 10))),
            },
        );
        let after = drain(&mut kv);
        assert_eq!(
            done(&after),
            Some(Ok(OpResult::Read {
                record: Some(record(b"v", 10))
            }))
        );
        let repaired = after
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    KvAction::Send {
                        request: Request::Store { .. },
                        ..
                    }
                )
            })
            .count();
        assert_eq!(repaired, 2, "both empty replicas are repaired: {after:?}");
    }

    #[test]
    fn a_replica_answers_a_store_only_once_its_store_made_it_durable() {
        let mut kv = Replication::new(peer(2), KvConfig::default());
        let answer = kv.handle_request(
            at(0),
            peer(1),
            InboundId(7),
            Request::Store {
                record: Box::new(record(b"v", 10)),
            },
        );
        assert_eq!(answer, None, "deferred");
        let actions = drain(&mut kv);
        kv.on_storage(
            at(1),
            local_ticket(&actions),
            StorageOutcome::Applied(vec![true]),
        );
        assert_eq!(
            drain(&mut kv),
            vec![KvAction::Respond {
                inbound: InboundId(7),
                response: Response::Stored { won: true }
            }]
        );
    }

    #[test]
    fn a_malformed_record_from_a_peer_is_refused_without_touching_the_store() {
        let mut kv = Replication::new(peer(2), KvConfig::default());
        let mut forged = record(b"v", 10);
        forged.key_id = KeyId::of_key(b"another key");
        let answer = kv.handle_request(
            at(0),
            peer(1),
            InboundId(1),
            Request::Store {
                record: Box::new(forged),
            },
        );
        assert!(matches!(answer, Some(Response::Error { .. })), "{answer:?}");
        assert_eq!(drain(&mut kv), vec![]);
    }

    #[test]
    fn bad_keys_and_values_are_refused_before_anything_is_sent() {
        assert!(check_key(b"").is_err());
        assert!(check_key(&vec![b'k'; MAX_KEY_LEN + 1]).is_err());
        assert_eq!(check_key(&[0xff, 0xfe]), Err(KvError::KeyNotUtf8));
        let mut kv = Replication::new(peer(1), KvConfig::default());
        let big = Record::value(b"key", version(1), vec![0; MAX_INLINE_VALUE + 1]);
        assert!(kv.write(at(0), big, Some(three())).is_err());
        assert_eq!(drain(&mut kv), vec![]);
    }

    #[test]
    fn quorums_above_the_replicas_are_refused() {
        let config = KvConfig {
            write_quorum: 4,
            ..KvConfig::default()
        };
        assert_eq!(
            config.validate(),
            Err(KvConfigError::WriteQuorum { w: 4, r: 3 })
        );
        assert!(KvConfig::default().validate().is_ok());
    }
}

#[cfg(test)]
mod cleanup_tests {
    use super::*;
    use crate::test_support::{peer, version};

    const DAY_MS: u64 = 24 * 3600 * 1000;

    fn drain(kv: &mut Replication) -> Vec<KvAction> {
        std::iter::from_fn(|| kv.poll_action()).collect()
    }

    fn scan_ticket(actions: &[KvAction]) -> Option<Ticket> {
        actions.iter().find_map(|a| match a {
            KvAction::Storage {
                ticket,
                request: StorageRequest::Scan { .. },
            } => Some(*ticket),
            _ => None,
        })
    }

    fn removal(actions: &[KvAction]) -> Option<Vec<(KeyId, Version)>> {
        actions.iter().find_map(|a| match a {
            KvAction::Storage {
                request: StorageRequest::Remove(items),
                ..
            } => Some(items.clone()),
            _ => None,
        })
    }

    /// Node 5, holding a range that does not contain `key`'s id, after two
    /// sync rounds on a steady ring: the excess pass has asked for a page.
    fn steady_node_outside(key: &[u8]) -> (Replication, Ticket, Duration) {
        let mut kv = Replication::new(peer(5), KvConfig::default());
        let kid = KeyId::of_key(key).id();
        let held = KeyRange::new(kid, kid.wrapping_add(Id::pow2(200)));
        let primary = KeyRange::new(kid.wrapping_add(Id::pow2(199)), held.through);
        kv.on_holding(
            Duration::ZERO,
            primary,
            held,
            vec![peer(5), peer(6), peer(7)],
            None,
        );
        drain(&mut kv); // The handoff to the new replicas.
        let every = kv.config().sync_every;
        kv.handle_timeout(every, DAY_MS);
        assert_eq!(scan_ticket(&drain(&mut kv)), None, "not settled yet");
        kv.handle_timeout(every * 2, DAY_MS);
        let ticket = scan_ticket(&drain(&mut kv)).expect("the excess pass reads a page");
        (kv, ticket, every * 2)
    }

    /// Answers the locate of the page's one record: each replica with `held`.
    fn answer_locate(
        kv: &mut Replication,
        now: Duration,
        record: &Record,
        held: [Option<Option<Version>>; 3],
    ) -> Vec<KvAction> {
        let actions = drain(kv);
        let op = actions
            .iter()
            .find_map(|a| match a {
                KvAction::Lookup { op, .. } => Some(*op),
                _ => None,
            })
            .expect("the record's replica set is looked up");
        let owners = [peer(1), peer(2), peer(3)];
        kv.on_replicas(now, op, Ok(owners.to_vec()));
        let asked = drain(kv);
        for (owner, held) in owners.iter().zip(held) {
            let rpc = asked
                .iter()
                .find_map(|a| match a {
                    KvAction::Send { rpc, to, .. } if to == owner => Some(*rpc),
                    _ => None,
                })
                .expect("every replica is asked");
            match held {
                Some(version) => {
                    let answer =
                        version.map(|v| Box::new(Record::value(&record.key, v, b"x".to_vec())));
                    kv.handle_response(now, rpc, Response::Record { record: answer });
                }
                None => kv.handle_failure(now, rpc),
            }
        }
        drain(kv)
    }

    #[test]
    fn a_record_outside_the_held_range_goes_once_every_replica_confirmed_it() {
        let record = Record::value(b"moved", version(DAY_MS - 5), b"v".to_vec());
        let (mut kv, ticket, now) = steady_node_outside(b"moved");
        kv.on_storage(now, ticket, StorageOutcome::Scanned(vec![record.clone()]));
        let v = record.version;
        let after = answer_locate(&mut kv, now, &record, [Some(Some(v)); 3]);
        assert_eq!(removal(&after), Some(vec![(record.key_id, v)]));
    }

    #[test]
    fn a_record_is_kept_and_sent_where_a_replica_lacks_it_or_did_not_answer() {
        let record = Record::value(b"moved", version(DAY_MS - 5), b"v".to_vec());
        let v = record.version;
        for held in [
            [Some(Some(v)), Some(None), Some(Some(v))],
            [Some(Some(v)), Some(Some(version(1))), Some(Some(v))],
            [Some(Some(v)), None, Some(Some(v))],
        ] {
            let (mut kv, ticket, now) = steady_node_outside(b"moved");
            kv.on_storage(now, ticket, StorageOutcome::Scanned(vec![record.clone()]));
            let after = answer_locate(&mut kv, now, &record, held);
            assert_eq!(removal(&after), None, "{held:?}: nothing removed");
            let sent = after
                .iter()
                .filter(|a| matches!(a, KvAction::Send { to, request: Request::Store { .. }, .. } if *to == peer(2)))
                .count();
            let expected = usize::from(held[1].is_some());
            assert_eq!(
                sent, expected,
                "{held:?}: the record goes to a replica that lacks it"
            );
            // The record was the last of the range: the pass is over, and
            // the next one starts afresh.
            assert!(kv.cleanup.is_none(), "{held:?}: the pass ended");
        }
    }

    #[test]
    fn tombstones_go_after_their_grace_and_young_ones_stay() {
        let mut kv = Replication::new(peer(5), KvConfig::default());
        kv.on_holding(
            Duration::ZERO,
            KeyRange::whole(),
            KeyRange::whole(),
            vec![peer(5)],
            None,
        );
        let grace_ms = kv.config().tombstone_grace.as_millis() as u64;
        let now_ms = grace_ms + 30 * DAY_MS;
        let sweep = kv.config().sweep_every;
        kv.handle_timeout(sweep, now_ms);
        let ticket = scan_ticket(&drain(&mut kv)).expect("the sweep reads a page");
        let old = Record::tombstone(b"old", version(now_ms - grace_ms - 1000));
        let young = Record::tombstone(b"young", version(now_ms - grace_ms + 1000));
        let value = Record::value(b"value", version(1), b"v".to_vec());
        kv.on_storage(
            sweep,
            ticket,
            StorageOutcome::Scanned(vec![old.clone(), young, value]),
        );
        assert_eq!(
            removal(&drain(&mut kv)),
            Some(vec![(old.key_id, old.version)]),
            "only the tombstone past its grace; a value is held here"
        );
    }

    #[test]
    fn a_node_back_after_the_grace_drops_what_no_other_replica_holds_then_serves() {
        let mut kv = Replication::new(peer(5), KvConfig::default());
        kv.came_back_after(kv.config().tombstone_grace + Duration::from_secs(1));
        assert!(kv.is_quarantined());
        let refused = kv.handle_request(
            Duration::ZERO,
            peer(1),
            InboundId(1),
            Request::Fetch {
                key_id: KeyId::of_key(b"k"),
            },
        );
        assert!(
            matches!(refused, Some(Response::Error { .. })),
            "no reads from its store"
        );
        kv.on_holding(
            Duration::ZERO,
            KeyRange::whole(),
            KeyRange::whole(),
            vec![peer(5), peer(6)],
            None,
        );
        let actions = drain(&mut kv);
        assert!(
            !actions.iter().any(|a| matches!(
                a,
                KvAction::Send {
                    request: Request::StoreMany { .. },
                    ..
                }
            )),
            "it hands nothing out"
        );
        let ticket = scan_ticket(&actions).expect("the check pass reads a page");
        let deleted = Record::value(b"deleted", version(DAY_MS), b"old".to_vec());
        kv.on_storage(
            Duration::ZERO,
            ticket,
            StorageOutcome::Scanned(vec![deleted.clone()]),
        );
        let after = answer_locate(
            &mut kv,
            Duration::ZERO,
            &deleted,
            [Some(None), Some(None), Some(None)],
        );
        assert_eq!(
            removal(&after),
            Some(vec![(deleted.key_id, deleted.version)])
        );
        let ticket = after
            .iter()
            .find_map(|a| match a {
                KvAction::Storage {
                    ticket,
                    request: StorageRequest::Remove(_),
                } => Some(*ticket),
                _ => None,
            })
            .expect("removal");
        kv.on_storage(Duration::ZERO, ticket, StorageOutcome::Applied(vec![true]));
        let next = scan_ticket(&drain(&mut kv));
        if let Some(ticket) = next {
            kv.on_storage(Duration::ZERO, ticket, StorageOutcome::Scanned(Vec::new()));
        }
        assert!(!kv.is_quarantined(), "the pass is over: it serves again");
    }

    #[test]
    fn a_leaving_node_hands_each_range_it_holds_to_its_next_replica() {
        let mut kv = Replication::new(peer(50), KvConfig::default());
        let predecessors = [peer(40), peer(30), peer(20)];
        let successors = [peer(60), peer(70), peer(80), peer(90)];
        kv.hand_off_before_leaving(Duration::ZERO, &predecessors, &successors);
        let mut pushes: Vec<(u64, KeyRange)> = kv
            .pushes
            .values()
            .map(|p| (p.to.id.id().high_u64(), p.range))
            .collect();
        pushes.sort_by_key(|(to, _)| *to);
        let range = |a: u64, b: u64| KeyRange::new(peer(a).id.id(), peer(b).id.id());
        assert_eq!(
            pushes,
            vec![
                (60, range(20, 30)),
                (70, range(30, 40)),
                (80, range(40, 50))
            ],
            "my range to the 3rd successor, my predecessor's to the 2nd, the next to the 1st"
        );
        assert!(kv.handing_off());
    }

    #[test]
    fn a_range_inherited_through_a_cleared_predecessor_is_pushed_to_the_replicas() {
        // Ring 20 40 50 60 70 (me = 50); 40 and 30 die: the predecessor is
        // first cleared, then 20 is adopted. The range (20, 40] must go to
        // my replicas, which never held it.
        let mut kv = Replication::new(peer(50), KvConfig::default());
        let range = |a: u64, b: u64| KeyRange::new(peer(a).id.id(), peer(b).id.id());
        let replicas = vec![peer(50), peer(60), peer(70)];
        kv.on_holding(
            Duration::ZERO,
            range(40, 50),
            range(20, 50),
            replicas.clone(),
            Some(peer(40)),
        );
        drain(&mut kv);
        kv.pushes.clear();
        kv.on_holding(
            Duration::ZERO,
            KeyRange::whole(),
            KeyRange::whole(),
            replicas.clone(),
            None,
        );
        assert!(
            kv.pushes.is_empty(),
            "nothing to push while no predecessor is known"
        );
        kv.on_holding(
            Duration::ZERO,
            range(20, 50),
            KeyRange::whole(),
            replicas,
            Some(peer(20)),
        );
        let mut pushed: Vec<(u64, KeyRange)> = kv
            .pushes
            .values()
            .map(|p| (p.to.id.id().high_u64(), p.range))
            .collect();
        pushed.sort_by_key(|(to, _)| *to);
        assert_eq!(pushed, vec![(60, range(20, 40)), (70, range(20, 40))]);
    }

    #[test]
    fn a_node_that_was_alone_hands_the_newcomer_its_range_and_a_joiner_pushes_nothing() {
        let range = |a: u64, b: u64| KeyRange::new(peer(a).id.id(), peer(b).id.id());
        let mut alone = Replication::new(peer(50), KvConfig::default());
        alone.on_holding(
            Duration::ZERO,
            KeyRange::whole(),
            KeyRange::whole(),
            vec![peer(50)],
            None,
        );
        alone.on_holding(
            Duration::ZERO,
            range(20, 50),
            KeyRange::whole(),
            vec![peer(50), peer(20)],
            Some(peer(20)),
        );
        let mut pushed: Vec<KeyRange> = alone.pushes.values().map(|p| p.range).collect();
        pushed.sort_by_key(|r| r.after);
        assert_eq!(
            pushed,
            vec![range(20, 50), range(50, 20)],
            "mine as a replica, and the newcomer's own"
        );

        // The same when the newcomer shows up as a successor first.
        let mut alone = Replication::new(peer(50), KvConfig::default());
        alone.on_holding(
            Duration::ZERO,
            KeyRange::whole(),
            KeyRange::whole(),
            vec![peer(50)],
            None,
        );
        let both = vec![peer(50), peer(20)];
        alone.on_holding(
            Duration::ZERO,
            KeyRange::whole(),
            KeyRange::whole(),
            both.clone(),
            None,
        );
        alone.on_holding(
            Duration::ZERO,
            range(20, 50),
            KeyRange::whole(),
            both,
            Some(peer(20)),
        );
        assert!(
            alone
                .pushes
                .values()
                .any(|p| p.to == peer(20) && p.range == range(50, 20)),
            "the newcomer's own range, whatever came first"
        );

        let mut joiner = Replication::new(peer(30), KvConfig::default());
        let replicas = vec![peer(30), peer(40), peer(50)];
        joiner.on_holding(
            Duration::ZERO,
            KeyRange::whole(),
            KeyRange::whole(),
            replicas.clone(),
            None,
        );
        joiner.pushes.clear();
        joiner.on_holding(
            Duration::ZERO,
            range(20, 30),
            range(0, 30),
            replicas,
            Some(peer(20)),
        );
        assert!(
            joiner.pushes.is_empty(),
            "a joiner's first predecessor is no newcomer"
        );
    }
}
