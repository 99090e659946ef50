//! Anti-entropy: every period, the owner of a primary range compares it
//! with each other member of its replica set, and only what differs moves.
//!
//! One sync is a descent of the store's digest tree ([`crate::digest`]):
//! 1. both sides digest the root of the range (`SyncRange`); equal roots end
//!    the sync, so a converged ring pays one small round trip per replica;
//! 2. else, level by level, both digest the children of the nodes that
//!    differed (`SyncNodes`, one request per level), keeping those that
//!    still differ, down to the buckets;
//! 3. both list the (key id, version) entries of the differing buckets
//!    (`ListVersions`);
//! 4. each key this node holds newer (or the peer lacks) is read and sent in
//!    `StoreMany` pages; each the peer holds newer (or this node lacks) is
//!    fetched (`Fetch`) and applied here. Last writer wins on both sides,
//!    so a record that changed meanwhile is never overwritten by an older one.
//!
//! Invariants:
//! - a sync ends at the first failed, lost, malformed or oversized answer,
//!   and acts only on whole answers; the next period starts afresh;
//! - the work of one sync is bounded ([`MAX_SYNC_PARENTS`] nodes followed per
//!   level, [`MAX_SYNC_BUCKETS`] buckets listed, [`MAX_SYNC_KEYS`] keys each
//!   way): what is left still differs at the next period and is taken then;
//! - a quarantined node starts no sync and sends no records (it still
//!   answers digests and version lists, which carry no values).

use super::{PUSH_PAGE_BYTES, PUSH_PAGE_RECORDS, Replication, Waiter};
use crate::digest::{NodeDigest, TreeNode};
use crate::id::KeyId;
use crate::range::KeyRange;
use crate::record::Record;
use crate::rpc::InboundId;
use crate::storage::{StorageOutcome, StorageRequest};
use crate::version::Version;
use crate::wire::{Peer, Request, Response};
use std::collections::{BTreeMap, BTreeSet};

/// The most differing nodes of one level whose children are asked next;
/// the rest are followed at a later period.
pub const MAX_SYNC_PARENTS: usize = 64;
/// The most tree nodes one `SyncNodes` asks for (16 children of each of
/// [`MAX_SYNC_PARENTS`] parents): about 40 bytes a digest, some 40 KiB.
pub const MAX_SYNC_NODES: usize = 16 * MAX_SYNC_PARENTS;
/// The most buckets one `ListVersions` asks for.
pub const MAX_SYNC_BUCKETS: usize = 64;
/// The most (key id, version) entries one `ListVersions` answers with: some
/// 75 bytes each, about 600 KiB, well inside a frame. A list cut there is
/// compared only over the buckets it holds whole, and the next period goes
/// on from there (a single bucket of more entries than this, some 2^25
/// records in a store, would never be compared).
pub const MAX_SYNC_VERSIONS: usize = 8192;
/// The most keys one sync sends, and the most it fetches.
pub const MAX_SYNC_KEYS: usize = 256;

/// Where a sync is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    /// Comparing the root digests.
    Root,
    /// Comparing the digests of these nodes (one level).
    Nodes(Vec<TreeNode>),
    /// Comparing the version lists of these buckets.
    Buckets(Vec<TreeNode>),
    /// Reading the records to send: how many reads are still out.
    Reading(usize),
}

/// One side's answer to the current step.
#[derive(Clone, Debug)]
enum Answer {
    Digests(Vec<NodeDigest>),
    Versions(Vec<(KeyId, Version)>),
}

/// One anti-entropy comparison of `range` with `peer`.
#[derive(Clone, Debug)]
pub(super) struct Sync {
    pub(super) peer: Peer,
    range: KeyRange,
    step: Step,
    mine: Option<Answer>,
    theirs: Option<Answer>,
    /// Records read to be sent (the `Reading` step).
    read: Vec<Record>,
}

impl Replication {
    /// Compares the primary range with every other replica of it.
    pub(super) fn start_syncs(&mut self) {
        if self.config.faults.no_repair || self.quarantined {
            return;
        }
        let Some(holding) = self.holding.clone() else {
            return;
        };
        let me = self.me.id;
        for peer in holding.replicas.iter().filter(|p| p.id != me) {
            let busy = self.syncs.values().any(|s| s.peer.id == peer.id);
            if busy {
                continue;
            }
            let sync = self.next_sync_id;
            self.next_sync_id += 1;
            self.syncs.insert(
                sync,
                Sync {
                    peer: *peer,
                    range: holding.primary,
                    step: Step::Root,
                    mine: None,
                    theirs: None,
                    read: Vec::new(),
                },
            );
            self.ask_step(sync);
        }
    }

    /// Asks the local store and the peer the same question for the current step.
    fn ask_step(&mut self, sync: u64) {
        let Some(state) = self.syncs.get_mut(&sync) else {
            return;
        };
        state.mine = None;
        state.theirs = None;
        let (peer, range) = (state.peer, state.range);
        let (local, remote) = match &state.step {
            Step::Root => (
                StorageRequest::Digest { range },
                Request::SyncRange { range },
            ),
            Step::Nodes(nodes) => (
                StorageRequest::DigestNodes {
                    range,
                    nodes: nodes.clone(),
                },
                Request::SyncNodes {
                    range,
                    nodes: nodes.clone(),
                },
            ),
            Step::Buckets(nodes) => (
                StorageRequest::Versions {
                    range,
                    nodes: nodes.clone(),
                    limit: MAX_SYNC_VERSIONS,
                },
                Request::ListVersions {
                    range,
                    nodes: nodes.clone(),
                },
            ),
            Step::Reading(_) => return,
        };
        self.store(Waiter::Sync(sync), local);
        self.send(Waiter::Sync(sync), peer, remote);
    }

    /// The local store answered a step of `sync` (or read a record to send).
    pub(super) fn on_sync_storage(&mut self, sync: u64, outcome: StorageOutcome) {
        let Some(state) = self.syncs.get_mut(&sync) else {
            return; // Ended already.
        };
        let answer = match (&state.step, outcome) {
            (Step::Reading(_), StorageOutcome::Got(record)) => {
                return self.on_sync_read(sync, record);
            }
            (Step::Root, StorageOutcome::Digest(digest)) => Answer::Digests(vec![digest]),
            (Step::Nodes(_), StorageOutcome::Digests(digests)) => Answer::Digests(digests),
            (Step::Buckets(_), StorageOutcome::Versions(entries)) => Answer::Versions(entries),
            _ => return self.end_sync(sync),
        };
        state.mine = Some(answer);
        self.sync_step_done(sync);
    }

    /// The peer answered a step of `sync`.
    pub(super) fn on_sync_response(&mut self, sync: u64, response: Response) {
        let Some(state) = self.syncs.get_mut(&sync) else {
            return;
        };
        let answer = match (&state.step, response) {
            (Step::Root, Response::Digest { digest }) => Answer::Digests(vec![digest]),
            (Step::Nodes(_), Response::Digests { digests }) => Answer::Digests(digests),
            (Step::Buckets(_), Response::Versions { entries }) => Answer::Versions(entries),
            // An error, or an answer of the wrong kind: the sync ends.
            _ => return self.end_sync(sync),
        };
        state.theirs = Some(answer);
        self.sync_step_done(sync);
    }

    pub(super) fn end_sync(&mut self, sync: u64) {
        self.syncs.remove(&sync);
    }

    /// Both answers of a step may be in: compare them and go on.
    fn sync_step_done(&mut self, sync: u64) {
        let Some(state) = self.syncs.get(&sync) else {
            return;
        };
        let (Some(mine), Some(theirs)) = (&state.mine, &state.theirs) else {
            return;
        };
        let next = match (&state.step, mine, theirs) {
            (Step::Root, Answer::Digests(mine), Answer::Digests(theirs)) => {
                differing(&[TreeNode::ROOT], mine, theirs).map(|differ| {
                    if !differ.is_empty() {
                        self.syncs_differing += 1;
                    }
                    differ
                })
            }
            (Step::Nodes(nodes), Answer::Digests(mine), Answer::Digests(theirs)) => {
                differing(nodes, mine, theirs)
            }
            (Step::Buckets(buckets), Answer::Versions(mine), Answer::Versions(theirs)) => {
                let (range, buckets) = (state.range, buckets.clone());
                return match versions_differing(range, &buckets, mine, theirs) {
                    Some((send, fetch)) => self.repair(sync, send, fetch),
                    None => self.end_sync(sync),
                };
            }
            _ => None,
        };
        let Some(differ) = next else {
            return self.end_sync(sync); // A malformed answer.
        };
        if differ.is_empty() {
            return self.end_sync(sync);
        }
        let range = state.range;
        let step = if differ[0].is_bucket() {
            Step::Buckets(differ.into_iter().take(MAX_SYNC_BUCKETS).collect())
        } else {
            let children: Vec<TreeNode> = differ
                .iter()
                .take(MAX_SYNC_PARENTS)
                .flat_map(TreeNode::children)
                .filter(|child| overlaps(range, *child))
                .collect();
            Step::Nodes(children)
        };
        if let Some(state) = self.syncs.get_mut(&sync) {
            state.step = step;
        }
        self.ask_step(sync);
    }

    /// The keys that differ are known: fetch those the peer holds newer, and
    /// read those this node holds newer to send them.
    fn repair(&mut self, sync: u64, send: Vec<KeyId>, fetch: Vec<KeyId>) {
        let Some(state) = self.syncs.get_mut(&sync) else {
            return;
        };
        if self.quarantined {
            self.syncs.remove(&sync);
            return;
        }
        let peer = state.peer;
        state.step = Step::Reading(send.len());
        for key_id in fetch {
            self.send(Waiter::Pull(key_id), peer, Request::Fetch { key_id });
        }
        if send.is_empty() {
            return self.end_sync(sync);
        }
        for key_id in send {
            self.store(Waiter::Sync(sync), StorageRequest::Get(key_id));
        }
    }

    /// A record to send was read (`None`: gone meanwhile); once all are,
    /// they go to the peer in pages.
    fn on_sync_read(&mut self, sync: u64, record: Option<Record>) {
        let Some(state) = self.syncs.get_mut(&sync) else {
            return;
        };
        let Step::Reading(left) = &mut state.step else {
            return;
        };
        *left = left.saturating_sub(1);
        if let Some(record) = record {
            state.read.push(record);
        }
        if *left > 0 {
            return;
        }
        let Some(state) = self.syncs.remove(&sync) else {
            return;
        };
        if self.quarantined {
            return;
        }
        let mut page: Vec<Record> = Vec::new();
        let mut bytes = 0;
        for record in state.read {
            let size = record.stored_bytes();
            if !page.is_empty()
                && (page.len() >= PUSH_PAGE_RECORDS || bytes + size > PUSH_PAGE_BYTES)
            {
                self.send_sync_page(state.peer, std::mem::take(&mut page));
                bytes = 0;
            }
            bytes += size;
            page.push(record);
        }
        if !page.is_empty() {
            self.send_sync_page(state.peer, page);
        }
    }

    fn send_sync_page(&mut self, peer: Peer, records: Vec<Record>) {
        self.sync_sent_records += records.len() as u64;
        self.send(Waiter::Repair, peer, Request::StoreMany { records });
    }

    /// The peer's answer to a `Fetch` of `key_id` that anti-entropy sent:
    /// applied here (last writer wins) if it is a sound record of that key.
    pub(super) fn on_pulled(&mut self, key_id: KeyId, response: Response) {
        if let Response::Record {
            record: Some(record),
        } = response
            && record.key_id == key_id
            && record.check().is_ok()
        {
            self.sync_fetched_records += 1;
            self.store(Waiter::Repair, StorageRequest::Apply(vec![*record]));
        }
    }

    /// A peer's anti-entropy request: answered once the store has done its
    /// part, or refused at once if it asks for more than a sync ever does.
    pub(super) fn serve_sync(&mut self, inbound: InboundId, request: Request) -> Option<Response> {
        let storage = match request {
            Request::SyncRange { range } => StorageRequest::Digest { range },
            Request::SyncNodes { nodes, .. } if nodes.len() > MAX_SYNC_NODES => {
                return Some(Response::Error {
                    reason: format!(
                        "{} tree nodes asked at once; at most {MAX_SYNC_NODES}",
                        nodes.len()
                    ),
                });
            }
            Request::SyncNodes { range, nodes } => StorageRequest::DigestNodes { range, nodes },
            Request::ListVersions { nodes, .. }
                if nodes.len() > MAX_SYNC_BUCKETS || nodes.iter().any(|n| !n.is_bucket()) =>
            {
                return Some(Response::Error {
                    reason: format!("versions are listed for at most {MAX_SYNC_BUCKETS} buckets"),
                });
            }
            Request::ListVersions { range, nodes } => StorageRequest::Versions {
                range,
                nodes,
                limit: MAX_SYNC_VERSIONS,
            },
            _ => {
                return Some(Response::Error {
                    reason: "not an anti-entropy request".into(),
                });
            }
        };
        self.store(Waiter::Inbound(inbound), storage);
        None
    }
}

/// The nodes whose digests differ, in the order asked; `None` if either
/// answer is not one digest per node asked, in order.
fn differing(
    asked: &[TreeNode],
    mine: &[NodeDigest],
    theirs: &[NodeDigest],
) -> Option<Vec<TreeNode>> {
    if mine.len() != asked.len() || theirs.len() != asked.len() {
        return None;
    }
    let mut differ = Vec::new();
    for ((node, mine), theirs) in asked.iter().zip(mine).zip(theirs) {
        if mine.node != *node || theirs.node != *node {
            return None;
        }
        if !mine.matches(theirs) {
            differ.push(*node);
        }
    }
    Some(differ)
}

/// The keys to send (held newer here, or only here) and to fetch (held
/// newer there, or only there), each at most [`MAX_SYNC_KEYS`]; `None` if
/// either list is malformed (too long, or a key outside what was asked).
fn versions_differing(
    range: KeyRange,
    buckets: &[TreeNode],
    mine: &[(KeyId, Version)],
    theirs: &[(KeyId, Version)],
) -> Option<(Vec<KeyId>, Vec<KeyId>)> {
    let asked: BTreeSet<TreeNode> = buckets.iter().copied().collect();
    let whole = |list: &[(KeyId, Version)]| -> Option<BTreeSet<TreeNode>> {
        if list.len() > MAX_SYNC_VERSIONS {
            return None;
        }
        if list.iter().any(|(key_id, _)| {
            !range.contains(*key_id) || !asked.contains(&TreeNode::bucket_of(*key_id))
        }) {
            return None;
        }
        // A list cut at the cap holds its last bucket only in part (and the
        // buckets after it not at all): compare the buckets before it.
        match list.last() {
            Some((last, _)) if list.len() == MAX_SYNC_VERSIONS => {
                let cut = TreeNode::bucket_of(*last);
                Some(buckets.iter().copied().take_while(|b| *b != cut).collect())
            }
            _ => Some(asked.clone()),
        }
    };
    let (mine_whole, theirs_whole) = (whole(mine)?, whole(theirs)?);
    let compared = |key_id: &KeyId| {
        let bucket = TreeNode::bucket_of(*key_id);
        mine_whole.contains(&bucket) && theirs_whole.contains(&bucket)
    };
    let mine_map: BTreeMap<KeyId, Version> = mine.iter().copied().collect();
    let theirs_map: BTreeMap<KeyId, Version> = theirs.iter().copied().collect();
    let send = mine
        .iter()
        .filter(|(key_id, version)| {
            compared(key_id) && theirs_map.get(key_id).is_none_or(|theirs| theirs < version)
        })
        .map(|(key_id, _)| *key_id)
        .take(MAX_SYNC_KEYS)
        .collect();
    let fetch = theirs
        .iter()
        .filter(|(key_id, version)| {
            compared(key_id) && mine_map.get(key_id).is_none_or(|mine| mine < version)
        })
        .map(|(key_id, _)| *key_id)
        .take(MAX_SYNC_KEYS)
        .collect();
    Some((send, fetch))
}

/// True if some id under `node` is in `range` (else both sides digest it
/// as empty, and asking is a waste).
fn overlaps(range: KeyRange, node: TreeNode) -> bool {
    let (low, high) = node.id_span();
    range.contains(KeyId(low))
        || range.contains(KeyId(high))
        || (low <= range.through && range.through <= high)
}
