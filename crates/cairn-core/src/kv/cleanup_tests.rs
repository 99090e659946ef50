//! Unit tests of dropping records: excess records, old tombstones, quarantine.

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
    kv.on_storage(Duration::ZERO, ticket, StorageOutcome::Removed(vec![true]));
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
