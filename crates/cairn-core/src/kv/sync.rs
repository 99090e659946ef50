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

/// The most differing nodes of one level whose children are asked next
/// (all 256 of level 2: the bound that binds is the version list's); the
/// rest are followed at a later period.
pub const MAX_SYNC_PARENTS: usize = 256;
/// The most tree nodes one `SyncNodes` asks for (16 children of each of
/// [`MAX_SYNC_PARENTS`] parents): about 40 bytes a digest, some 160 KiB.
pub const MAX_SYNC_NODES: usize = 16 * MAX_SYNC_PARENTS;
/// The most buckets one `ListVersions` asks for (all of them: a replica
/// that missed a whole range, its handoff given up, is repaired in one
/// period if the version lists fit).
pub const MAX_SYNC_BUCKETS: usize = crate::digest::BUCKETS as usize;
/// The most (key id, version) entries one `ListVersions` answers with: some
/// 75 bytes each, about 600 KiB, well inside a frame. A list cut there is
/// compared only over the buckets it holds whole, and the next period goes
/// on from there (a single bucket of more entries than this, some 2^25
/// records in a store, would never be compared).
pub const MAX_SYNC_VERSIONS: usize = 8192;
/// The most keys one sync sends, and the most it fetches; the rest go at
/// the next period. The records sent are read and sent at once (pages of
/// [`PUSH_PAGE_RECORDS`]) after one store call, so this also bounds that burst.
pub const MAX_SYNC_KEYS: usize = 1024;

/// Where a sync is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    /// Comparing the root digests.
    Root,
    /// Comparing the digests of these nodes (one level).
    Nodes(Vec<TreeNode>),
    /// Comparing the version lists of these buckets.
    Buckets(Vec<TreeNode>),
    /// Reading the records to send.
    Reading,
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
            Step::Reading => return,
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
            (Step::Reading, StorageOutcome::Records(records)) => {
                return self.on_sync_read(sync, records);
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
                differing(&[TreeNode::ROOT], mine, theirs).inspect(|differ| {
                    if !differ.is_empty() {
                        self.syncs_differing += 1;
                    }
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
        state.step = Step::Reading;
        for key_id in fetch {
            self.send(Waiter::Pull(key_id), peer, Request::Fetch { key_id });
        }
        if send.is_empty() {
            return self.end_sync(sync);
        }
        self.store(Waiter::Sync(sync), StorageRequest::GetMany(send));
    }

    /// The records to send were read (those gone meanwhile left out): they
    /// go to the peer in pages.
    fn on_sync_read(&mut self, sync: u64, records: Vec<Record>) {
        let Some(state) = self.syncs.remove(&sync) else {
            return;
        };
        if self.quarantined {
            return;
        }
        let mut page: Vec<Record> = Vec::new();
        let mut bytes = 0;
        for record in records {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::entry_hash;
    use crate::id::Id;
    use crate::kv::{KvAction, KvConfig};
    use crate::test_support::peer;
    use crate::version::HlcTimestamp;
    use std::time::Duration;

    fn record(key: &[u8], ms: u64) -> Record {
        let version = Version::new(
            HlcTimestamp {
                physical_ms: ms,
                logical: 0,
            },
            peer(1).id,
        );
        Record::value(key, version, format!("{ms}").into_bytes())
    }

    /// One side's store, as a map, answering what a real store would.
    #[derive(Default)]
    struct Side(BTreeMap<KeyId, Record>);

    impl Side {
        fn with(records: &[Record]) -> Side {
            Side(records.iter().map(|r| (r.key_id, r.clone())).collect())
        }

        fn under(&self, range: KeyRange, node: TreeNode) -> impl Iterator<Item = &Record> {
            let buckets = node.buckets();
            self.0.values().filter(move |r| {
                range.contains(r.key_id)
                    && buckets.contains(&(TreeNode::bucket_of(r.key_id).index() as u16))
            })
        }

        fn digest(&self, range: KeyRange, node: TreeNode) -> NodeDigest {
            let mut digest = NodeDigest {
                node,
                count: 0,
                sum: Id::ZERO,
            };
            for record in self.under(range, node) {
                digest.count += 1;
                digest.sum = digest
                    .sum
                    .wrapping_add(entry_hash(record.key_id, record.version));
            }
            digest
        }

        fn versions(&self, range: KeyRange, nodes: &[TreeNode]) -> Vec<(KeyId, Version)> {
            nodes
                .iter()
                .flat_map(|node| self.under(range, *node).map(|r| (r.key_id, r.version)))
                .collect()
        }

        fn apply(&mut self, records: Vec<Record>) {
            for record in records {
                let newer = self
                    .0
                    .get(&record.key_id)
                    .is_none_or(|held| held.version < record.version);
                if newer {
                    self.0.insert(record.key_id, record);
                }
            }
        }

        fn storage(&mut self, request: StorageRequest) -> StorageOutcome {
            match request {
                StorageRequest::Digest { range } => {
                    StorageOutcome::Digest(self.digest(range, TreeNode::ROOT))
                }
                StorageRequest::DigestNodes { range, nodes } => {
                    StorageOutcome::Digests(nodes.iter().map(|n| self.digest(range, *n)).collect())
                }
                StorageRequest::Versions { range, nodes, .. } => {
                    StorageOutcome::Versions(self.versions(range, &nodes))
                }
                StorageRequest::GetMany(key_ids) => StorageOutcome::Records(
                    key_ids
                        .iter()
                        .filter_map(|k| self.0.get(k).cloned())
                        .collect(),
                ),
                StorageRequest::Apply(records) => {
                    let won = vec![None; records.len()];
                    self.apply(records);
                    StorageOutcome::Stored(won)
                }
                StorageRequest::Scan { .. } => StorageOutcome::Scanned(Vec::new()),
                other => StorageOutcome::Failed(format!("not in this test: {other:?}")),
            }
        }

        fn answer(&mut self, request: Request) -> Response {
            match request {
                Request::SyncRange { range } => Response::Digest {
                    digest: self.digest(range, TreeNode::ROOT),
                },
                Request::SyncNodes { range, nodes } => Response::Digests {
                    digests: nodes.iter().map(|n| self.digest(range, *n)).collect(),
                },
                Request::ListVersions { range, nodes } => Response::Versions {
                    entries: self.versions(range, &nodes),
                },
                Request::Fetch { key_id } => Response::Record {
                    record: self.0.get(&key_id).cloned().map(Box::new),
                },
                Request::StoreMany { records } => {
                    self.apply(records);
                    Response::Stored { won: true }
                }
                other => Response::Error {
                    reason: format!("not in this test: {other:?}"),
                },
            }
        }
    }

    /// Node 1 holding the whole ring with node 2, its handoff done: the
    /// next timeout starts a sync.
    fn node_with_replica(mine: &mut Side) -> Replication {
        let mut kv = Replication::new(peer(1), KvConfig::default());
        kv.on_holding(
            Duration::ZERO,
            KeyRange::whole(),
            KeyRange::whole(),
            vec![peer(1), peer(2)],
            None,
        );
        // The handoff to the new replica reads an (empty) page and ends.
        run(&mut kv, mine, &mut Side::default(), |_| None);
        assert!(!kv.handing_off());
        let every = kv.config().sync_every;
        kv.handle_timeout(every, 0);
        kv
    }

    /// Carries out every action, answering from `mine` and `theirs` (or with
    /// `intercept`'s answer, `Some(None)` for a failure), until none are
    /// left; returns the requests sent to the peer.
    fn run(
        kv: &mut Replication,
        mine: &mut Side,
        theirs: &mut Side,
        mut intercept: impl FnMut(&Request) -> Option<Option<Response>>,
    ) -> Vec<Request> {
        let mut sent = Vec::new();
        let now = kv.config().sync_every;
        while let Some(action) = kv.poll_action() {
            match action {
                KvAction::Storage { ticket, request } => {
                    let outcome = mine.storage(request);
                    kv.on_storage(now, ticket, outcome);
                }
                KvAction::Send { rpc, to, request } => {
                    assert_eq!(to, peer(2));
                    sent.push(request.clone());
                    match intercept(&request) {
                        Some(Some(response)) => kv.handle_response(now, rpc, response),
                        Some(None) => kv.handle_failure(now, rpc),
                        None => {
                            let response = theirs.answer(request);
                            kv.handle_response(now, rpc, response);
                        }
                    }
                }
                other => panic!("unexpected action {other:?}"),
            }
        }
        sent
    }

    fn kinds(sent: &[Request]) -> Vec<&'static str> {
        sent.iter()
            .map(|r| match r {
                Request::SyncRange { .. } => "SyncRange",
                Request::SyncNodes { .. } => "SyncNodes",
                Request::ListVersions { .. } => "ListVersions",
                Request::StoreMany { .. } => "StoreMany",
                Request::Fetch { .. } => "Fetch",
                _ => "other",
            })
            .collect()
    }

    fn common() -> Vec<Record> {
        (0..50)
            .map(|i| record(format!("k{i}").as_bytes(), 5))
            .collect()
    }

    #[test]
    fn equal_roots_end_the_sync_after_one_round_trip() {
        let mut mine = Side::with(&common());
        let mut theirs = Side::with(&common());
        let mut kv = node_with_replica(&mut mine);
        let sent = run(&mut kv, &mut mine, &mut theirs, |_| None);
        assert_eq!(kinds(&sent), vec!["SyncRange"]);
        assert!(kv.syncs.is_empty());
        assert_eq!((kv.sync_sent_records, kv.sync_fetched_records), (0, 0));
        assert_eq!(kv.syncs_differing, 0);
    }

    #[test]
    fn a_key_newer_here_descends_to_its_bucket_and_only_it_is_sent() {
        let newer = record(b"k7", 9);
        let mut mine = Side::with(&common());
        mine.apply(vec![newer.clone(), record(b"only here", 3)]);
        let mut theirs = Side::with(&common());
        let mut kv = node_with_replica(&mut mine);
        let sent = run(&mut kv, &mut mine, &mut theirs, |_| None);
        assert_eq!(
            kinds(&sent),
            vec![
                "SyncRange",
                "SyncNodes",
                "SyncNodes",
                "SyncNodes",
                "ListVersions",
                "StoreMany"
            ]
        );
        let Some(Request::ListVersions { nodes, .. }) = sent.get(4) else {
            panic!("versions listed: {sent:?}");
        };
        let mut expected = vec![
            TreeNode::bucket_of(newer.key_id),
            TreeNode::bucket_of(KeyId::of_key(b"only here")),
        ];
        expected.sort();
        expected.dedup();
        assert_eq!(nodes, &expected, "only the differing buckets");
        let Some(Request::StoreMany { records }) = sent.last() else {
            panic!("a page sent: {sent:?}");
        };
        let mut keys: Vec<&[u8]> = records.iter().map(|r| r.key.as_slice()).collect();
        keys.sort();
        assert_eq!(keys, vec![b"k7".as_slice(), b"only here"]);
        assert_eq!(theirs.0.get(&newer.key_id), Some(&newer));
        assert_eq!(theirs.0.len(), mine.0.len());
        assert_eq!(kv.sync_sent_records, 2);
        assert!(kv.syncs.is_empty());
    }

    #[test]
    fn a_key_newer_at_the_replica_is_fetched_and_applied_here() {
        let newer = record(b"k7", 9);
        let mut mine = Side::with(&common());
        let mut theirs = Side::with(&common());
        theirs.apply(vec![newer.clone()]);
        let mut kv = node_with_replica(&mut mine);
        let sent = run(&mut kv, &mut mine, &mut theirs, |_| None);
        assert_eq!(
            kinds(&sent),
            vec![
                "SyncRange",
                "SyncNodes",
                "SyncNodes",
                "SyncNodes",
                "ListVersions",
                "Fetch"
            ]
        );
        assert_eq!(
            sent.last(),
            Some(&Request::Fetch {
                key_id: newer.key_id
            })
        );
        assert_eq!(mine.0.get(&newer.key_id), Some(&newer));
        assert_eq!(kv.sync_fetched_records, 1);
        // Now equal: the next sync is one round trip.
        let every = kv.config().sync_every;
        kv.handle_timeout(every * 2, 0);
        let again = run(&mut kv, &mut mine, &mut theirs, |_| None);
        assert_eq!(kinds(&again), vec!["SyncRange"]);
    }

    #[test]
    fn a_failed_or_malformed_answer_mid_descent_ends_the_sync() {
        let answers = [
            None,
            Some(Response::Error {
                reason: "busy".into(),
            }),
            Some(Response::Digests {
                digests: Vec::new(),
            }),
        ];
        for answer in answers {
            let mut mine = Side::with(&common());
            mine.apply(vec![record(b"k7", 9)]);
            let mut theirs = Side::with(&common());
            let mut kv = node_with_replica(&mut mine);
            let mut levels = 0;
            let sent = run(&mut kv, &mut mine, &mut theirs, |request| {
                if matches!(request, Request::SyncNodes { .. }) {
                    levels += 1;
                    if levels == 2 {
                        return Some(answer.clone());
                    }
                }
                None
            });
            assert_eq!(
                kinds(&sent),
                vec!["SyncRange", "SyncNodes", "SyncNodes"],
                "{answer:?}: nothing after the bad answer"
            );
            assert!(kv.syncs.is_empty(), "{answer:?}: the sync ended");
            assert_eq!(theirs.0.len(), common().len(), "{answer:?}: nothing sent");
        }
    }

    #[test]
    fn a_peer_asking_for_more_than_a_sync_does_is_refused() {
        let mut kv = Replication::new(peer(2), KvConfig::default());
        let too_many = Request::SyncNodes {
            range: KeyRange::whole(),
            nodes: vec![TreeNode::ROOT; MAX_SYNC_NODES + 1],
        };
        let not_buckets = Request::ListVersions {
            range: KeyRange::whole(),
            nodes: vec![TreeNode::ROOT],
        };
        for request in [too_many, not_buckets] {
            let answer = kv.handle_request(Duration::ZERO, peer(1), InboundId(1), request);
            assert!(matches!(answer, Some(Response::Error { .. })), "{answer:?}");
        }
        assert!(kv.poll_action().is_none(), "the store is not asked");
    }

    #[test]
    fn a_cut_version_list_is_compared_only_over_its_whole_buckets() {
        let range = KeyRange::whole();
        let buckets: Vec<TreeNode> = (0..3)
            .map(|i| TreeNode::new(crate::digest::LEAF_LEVEL, i).expect("in bounds"))
            .collect();
        let key_in = |bucket: u16, n: u32| {
            let mut id = crate::digest::bucket_low(bucket);
            id.0[28..].copy_from_slice(&n.to_be_bytes());
            KeyId(id)
        };
        let v = record(b"x", 5).version;
        // Mine is cut in bucket 1; theirs is whole and lacks a key in every bucket.
        let mut mine: Vec<(KeyId, Version)> = (0..MAX_SYNC_VERSIONS as u32 - 2)
            .map(|n| (key_in(0, n + 1), v))
            .collect();
        mine.push((key_in(1, 1), v));
        mine.push((key_in(1, 2), v));
        let theirs: Vec<(KeyId, Version)> = mine[1..mine.len() - 1].to_vec();
        let (send, fetch) = versions_differing(range, &buckets, &mine, &theirs).expect("sound");
        assert_eq!(send, vec![key_in(0, 1)], "bucket 1 is not compared: cut");
        assert!(fetch.is_empty());
        let outside = vec![(key_in(5, 1), v)];
        assert_eq!(versions_differing(range, &buckets, &outside, &[]), None);
    }
}
