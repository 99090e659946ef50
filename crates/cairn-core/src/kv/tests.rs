//! Unit tests of the coordinator, the replica side and handoff.

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
        StorageOutcome::Stored(vec![None]),
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
        StorageOutcome::Stored(vec![None]),
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
        StorageOutcome::Stored(vec![None]),
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

/// Two replicas refuse `op`'s first stamp for version 20, and the
/// coordinator stamps it 21: what it sends then.
fn refused_then_restamped(kv: &mut Replication) -> Vec<KvAction> {
    let op = kv
        .write(at(0), record(b"v", 10), Some(three()))
        .expect("valid");
    let first = drain(kv);
    let newer = Response::Newer {
        version: version(20),
    };
    kv.handle_response(at(1), sent_to(&first, peer(1)), newer.clone());
    kv.handle_response(at(2), sent_to(&first, peer(2)), newer);
    assert_eq!(restamp_asked(&drain(kv)), Some((op, version(20))));
    kv.restamp(at(3), op, Some(version(21)));
    drain(kv)
}

#[test]
fn a_restamped_write_refused_again_by_a_concurrent_newer_one_is_acknowledged_as_overwritten() {
    let mut kv = Replication::new(peer(4), KvConfig::default());
    // W answered the first stamp: 21 is past every write acknowledged before.
    let second = refused_then_restamped(&mut kv);
    let concurrent = Response::Newer {
        version: version(30),
    };
    kv.handle_response(at(4), sent_to(&second, peer(1)), concurrent.clone());
    kv.handle_response(at(5), sent_to(&second, peer(2)), concurrent);
    let actions = drain(&mut kv);
    assert_eq!(restamp_asked(&actions), None, "no race against writers");
    assert_eq!(
        done(&actions),
        Some(Ok(OpResult::Written {
            version: version(21)
        }))
    );
}

#[test]
fn a_write_restamped_after_fewer_than_w_answers_is_not_acknowledged_on_refusals() {
    // Only one replica answered the first stamp (the others failed): a
    // write acknowledged before this one may sit on those two, newer than 21.
    let mut kv = Replication::new(peer(4), KvConfig::default());
    let op = kv
        .write(at(0), record(b"v", 10), Some(three()))
        .expect("valid");
    let first = drain(&mut kv);
    kv.handle_response(
        at(1),
        sent_to(&first, peer(1)),
        Response::Newer {
            version: version(20),
        },
    );
    kv.handle_failure(at(2), sent_to(&first, peer(2)));
    assert_eq!(restamp_asked(&drain(&mut kv)), Some((op, version(20))));
    kv.restamp(at(3), op, Some(version(21)));
    let second = drain(&mut kv);
    let older_but_acknowledged = Response::Newer {
        version: version(25),
    };
    kv.handle_response(
        at(4),
        sent_to(&second, peer(2)),
        older_but_acknowledged.clone(),
    );
    kv.handle_response(at(5), sent_to(&second, peer(3)), older_but_acknowledged);
    let actions = drain(&mut kv);
    assert_eq!(done(&actions), None, "refusals are not a quorum here");
    assert_eq!(restamp_asked(&actions), Some((op, version(25))));
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
    // The store says which version it keeps: nothing more is read.
    kv.on_storage(
        at(1),
        local_ticket(&actions),
        StorageOutcome::Stored(vec![Some(version(30))]),
    );
    assert_eq!(drain(&mut kv), vec![], "no second store call");
    kv.handle_failure(at(3), sent_to(&actions, peer(2)));
    assert_eq!(
        restamp_asked(&drain(&mut kv)),
        Some((op, version(30))),
        "one refusal and one failure leave no quorum for this version"
    );
}

#[test]
fn a_write_outpaced_every_time_fails_saying_so() {
    // Each round one replica keeps a newer version and the others fail:
    // fewer than W answer, so no stamp is known to be past every write
    // acknowledged before, and the write cannot be acknowledged.
    let mut kv = Replication::new(peer(4), KvConfig::default());
    let op = kv
        .write(at(0), record(b"v", 10), Some(three()))
        .expect("valid");
    let mut sent = drain(&mut kv);
    for attempt in 0..=MAX_RESTAMPS {
        let newer = version(100 + u64::from(attempt) * 10);
        kv.handle_response(
            at(1),
            sent_to(&sent, peer(1)),
            Response::Newer { version: newer },
        );
        kv.handle_failure(at(1), sent_to(&sent, peer(2)));
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
        kv.on_storage(
            at(1),
            ticket,
            StorageOutcome::Stored(vec![Some(version(kept))]),
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
        StorageOutcome::Stored(vec![None]),
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
