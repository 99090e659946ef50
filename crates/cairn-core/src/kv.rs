//! Replication of records: the coordinator of each client put, delete and
//! get (`coordinator`), and the replica side that stores and serves
//! records (here); what moves when the ring changes (`handoff`), what may
//! be dropped (`cleanup`), anti-entropy (`sync`) and listings
//! (`list`). This module holds the state they share and routes storage
//! outcomes, answers and timeouts to them.
//!
//! A coordinator writes a record (stamped by the host's hybrid logical
//! clock) to every member of the key's replica set in parallel, the local
//! store included, and succeeds once W of them hold it durably. A replica
//! that keeps a newer version says which; when too many do for W to hold
//! this one, the host's clock takes that version in, the record is stamped
//! anew after it and written again (up to [`MAX_RESTAMPS`] times): with
//! clocks apart, an acknowledged write is still newer than every write
//! acknowledged before it (their W replicas and these share one). Once
//! stamped past what W replicas held, a write that replicas still refuse
//! lost to a concurrent one and is acknowledged as overwritten by it. A read
//! asks Q members, returns the newest version and writes it back to those
//! that answered with an older one (read repair). A replica answers a store
//! only once its store reports it durable (the host defers the answer). A
//! replica that fails a write after its quorum is sent it once more.
//!
//! Handoff (`handoff`): when this node's replica set gains a member, it pushes its
//! primary range (predecessor, me] to that member, and when a newcomer
//! takes over part of that range, it pushes that part to the newcomer; page
//! by page, each page durable at the receiver before the next is read. A
//! crash or a leave changes the replica sets of the survivors around it,
//! which push to their new members: every key is brought back to R copies.
//! A node drops a record it no longer has to hold only once every member
//! of the key's replica set confirmed holding it, and a tombstone once it is
//! past its grace (`cleanup`).
//!
//! Anti-entropy (`sync`): every period, a node compares its primary range
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
mod coordinator;
mod handoff;
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
    /// A write stamped anew after W replicas answered (stored it, or kept
    /// a newer version): its stamp is then newer than every write
    /// acknowledged before it started (whose W replicas share one with
    /// those), so a replica that still keeps a newer version holds a
    /// concurrent write, and this one is acknowledged as overwritten by it
    /// (last writer wins) instead of being stamped again and again.
    past_acknowledged: bool,
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
    /// Nobody: a read repair, fire and forget.
    Repair,
    /// The cleanup pass: a page read, or a removal.
    Cleanup,
    /// A member's part of listing `op`.
    List(OpId),
    /// A peer's request, answered once the store has done its part.
    Inbound(InboundId),
    /// A peer's `Store` of `version`: answered `Stored`, or `Newer` with
    /// the version the store keeps if that is newer.
    InboundStore {
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
                    // Refused as older, or held already: the version kept says which.
                    StorageOutcome::Stored(kept) => match kept.first() {
                        Some(Some(kept)) => return self.on_kept(op, index, *kept),
                        _ => Some(None),
                    },
                    StorageOutcome::Got(record) => Some(record),
                    StorageOutcome::Failed(_)
                    | StorageOutcome::Removed(_)
                    | StorageOutcome::Scanned(_)
                    | StorageOutcome::Records(_)
                    | StorageOutcome::Digest(_)
                    | StorageOutcome::Digests(_)
                    | StorageOutcome::Versions(_)
                    | StorageOutcome::Keys { .. } => None,
                };
                self.on_part(op, index, answer);
            }
            Waiter::InboundStore { inbound, version } => match outcome {
                StorageOutcome::Stored(kept) => {
                    let response = match kept.first().copied().flatten() {
                        Some(newer) if newer > version => Response::Newer { version: newer },
                        held => Response::Stored {
                            won: held.is_none(),
                        },
                    };
                    self.actions
                        .push_back(KvAction::Respond { inbound, response });
                }
                other => self.respond(inbound, other),
            },
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
            StorageOutcome::Stored(kept) => Response::Stored {
                won: kept.iter().any(Option::is_none),
            },
            StorageOutcome::Digest(digest) => Response::Digest { digest },
            StorageOutcome::Digests(digests) => Response::Digests { digests },
            StorageOutcome::Versions(entries) => Response::Versions { entries },
            StorageOutcome::Scanned(_)
            | StorageOutcome::Records(_)
            | StorageOutcome::Removed(_) => Response::Error {
                reason: "internal: a scan or a removal answered a peer".into(),
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
mod tests;

#[cfg(test)]
mod cleanup_tests;
