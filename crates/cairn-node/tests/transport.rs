//! The QUIC transport between real endpoints on 127.0.0.1: identity, reuse,
//! cluster keys, and bad input that must not hurt a node.

use cairn_core::NodeId;
use cairn_core::wire::{MAX_FRAME, Peer, Request, Response};
use cairn_node::transport::{
    Answer, ClusterKey, RequestHandler, Transport, TransportConfig, TransportError,
};
use ed25519_dalek::SigningKey;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::time::timeout;

/// How long the recorder takes to answer what it answers later.
const LATER: Duration = Duration::from_millis(50);

/// Every test finishes well within this, or fails.
const TEST_LIMIT: Duration = Duration::from_secs(20);

/// Answers Ping with Pong, Introduce with Ack 50 ms later, ProbeFor never
/// (its answer is dropped), and anything else with Ack; counts calls and
/// remembers the last caller.
#[derive(Default)]
struct Recorder {
    calls: AtomicU64,
    last_from: std::sync::Mutex<Option<Peer>>,
}

impl RequestHandler for Recorder {
    fn handle(&self, from: Peer, request: Request) -> Answer {
        self.calls.fetch_add(1, Ordering::SeqCst);
        *self.last_from.lock().expect("lock") = Some(from);
        match request {
            Request::Ping => Answer::Now(Response::Pong),
            Request::Introduce { .. } => {
                let (answer, wait) = tokio::sync::oneshot::channel();
                tokio::spawn(async move {
                    tokio::time::sleep(LATER).await;
                    let _ = answer.send(Response::Ack);
                });
                Answer::Later(wait)
            }
            Request::ProbeFor { .. } => {
                let (answer, wait) = tokio::sync::oneshot::channel::<Response>();
                drop(answer);
                Answer::Later(wait)
            }
            _ => Answer::Now(Response::Ack),
        }
    }
}

struct Node {
    transport: Transport,
    recorder: Arc<Recorder>,
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn id_of(seed: u8) -> NodeId {
    NodeId::from_public_key(&key(seed).verifying_key().to_bytes())
}

fn cluster_key(byte: u8) -> ClusterKey {
    ClusterKey::from_secret(&[byte; 32]).expect("cluster key")
}

fn config(cluster_key: Option<ClusterKey>) -> TransportConfig {
    TransportConfig {
        cluster_key,
        connect_timeout: Duration::from_millis(1500),
        request_timeout: Duration::from_secs(3),
        ..TransportConfig::default()
    }
}

fn node(seed: u8, cluster_key: Option<ClusterKey>) -> Node {
    let recorder = Arc::new(Recorder::default());
    let transport =
        Transport::bind(config(cluster_key), &key(seed), recorder.clone()).expect("bind");
    Node {
        transport,
        recorder,
    }
}

async fn ping(from: &Node, to: &Node) -> Result<(NodeId, Response), TransportError> {
    from.transport
        .request(to.transport.local_addr(), None, &Request::Ping)
        .await
}

async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    timeout(TEST_LIMIT, future)
        .await
        .expect("test took too long")
}

#[tokio::test]
async fn a_request_is_answered_and_names_the_peer() {
    bounded(async {
        let a = node(1, None);
        let b = node(2, None);
        assert_eq!(b.transport.local_id(), id_of(2));
        assert_ne!(b.transport.local_addr().port(), 0);
        let (id, response) = ping(&a, &b).await.expect("ping");
        assert_eq!(id, id_of(2));
        assert_eq!(response, Response::Pong);
        let from = b
            .recorder
            .last_from
            .lock()
            .expect("lock")
            .expect("a caller");
        assert_eq!(from.id, id_of(1));
        // The dialer dials from its listen socket, so the peer sees that address.
        assert_eq!(from.addr, a.transport.local_addr());
        let (_, ack) = a
            .transport
            .request(b.transport.local_addr(), Some(id_of(2)), &Request::Notify)
            .await
            .expect("notify");
        assert_eq!(ack, Response::Ack);
    })
    .await;
}

#[tokio::test]
async fn a_hundred_requests_share_one_connection_and_replies_reuse_it() {
    bounded(async {
        let a = node(1, None);
        let b = node(2, None);
        for _ in 0..100 {
            assert_eq!(ping(&a, &b).await.expect("ping").1, Response::Pong);
        }
        assert_eq!(a.transport.connections_opened(), 1);
        assert_eq!(b.transport.connections_opened(), 1);
        // B answers back over the connection A opened.
        for _ in 0..10 {
            assert_eq!(ping(&b, &a).await.expect("ping back").1, Response::Pong);
        }
        assert_eq!(a.transport.connections_opened(), 1);
        assert_eq!(b.transport.connections_opened(), 1);
        assert_eq!(b.recorder.calls.load(Ordering::SeqCst), 100);
        assert_eq!(a.recorder.calls.load(Ordering::SeqCst), 10);
    })
    .await;
}

#[tokio::test]
async fn concurrent_first_requests_share_one_dial() {
    bounded(async {
        let a = node(1, None);
        let b = node(2, None);
        let to = b.transport.local_addr();
        let requests = (0..20).map(|_| {
            let transport = a.transport.clone();
            tokio::spawn(async move { transport.request(to, None, &Request::Ping).await })
        });
        for request in requests.collect::<Vec<_>>() {
            assert_eq!(
                request.await.expect("join").expect("ping").1,
                Response::Pong
            );
        }
        assert_eq!(a.transport.connections_opened(), 1);
        assert_eq!(b.transport.connections_opened(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_closed_connection_is_replaced_by_a_new_dial() {
    bounded(async {
        let a = node(1, None);
        let b = node(2, None);
        let addr = b.transport.local_addr();
        ping(&a, &b).await.expect("first ping");
        b.transport.shutdown().await;
        drop(b);
        // A new node (new key) on the same address, as soon as the old
        // endpoint's tasks have let go of the socket.
        let deadline = Instant::now() + Duration::from_secs(5);
        let b2 = loop {
            let bound = Transport::bind(
                TransportConfig {
                    listen: addr,
                    ..config(None)
                },
                &key(3),
                Arc::new(Recorder::default()),
            );
            match bound {
                Ok(transport) => break transport,
                Err(error) => assert!(Instant::now() < deadline, "cannot rebind: {error}"),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        // The close from the old node may take a moment to arrive.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match a.transport.request(addr, None, &Request::Ping).await {
                Ok((id, _)) if id == id_of(3) => break,
                other => assert!(
                    Instant::now() < deadline,
                    "never reached the new node: {other:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(a.transport.connections_opened(), 2);
        b2.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_wrong_expected_id_is_refused() {
    bounded(async {
        let a = node(1, None);
        let b = node(2, None);
        let error = a
            .transport
            .request(b.transport.local_addr(), Some(id_of(9)), &Request::Ping)
            .await
            .expect_err("wrong peer");
        match error {
            TransportError::WrongPeer { expected, got, .. } => {
                assert_eq!(expected, id_of(9));
                assert_eq!(got, id_of(2));
            }
            other => panic!("expected WrongPeer, got {other:?}"),
        }
        assert_eq!(b.recorder.calls.load(Ordering::SeqCst), 0);
    })
    .await;
}

#[tokio::test]
async fn the_same_cluster_key_works() {
    bounded(async {
        let a = node(1, Some(cluster_key(7)));
        let b = node(2, Some(cluster_key(7)));
        assert_eq!(ping(&a, &b).await.expect("ping").1, Response::Pong);
        assert_eq!(ping(&b, &a).await.expect("ping back").1, Response::Pong);
    })
    .await;
}

fn assert_refused_for_cluster_key(result: Result<(NodeId, Response), TransportError>) {
    match result {
        Err(TransportError::Refused { reason, .. }) => {
            assert!(reason.contains("cluster key"), "reason: {reason}");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
}

#[tokio::test]
async fn a_different_cluster_key_is_refused_before_any_request() {
    bounded(async {
        let a = node(1, Some(cluster_key(7)));
        let b = node(2, Some(cluster_key(8)));
        assert_refused_for_cluster_key(ping(&a, &b).await);
        assert_refused_for_cluster_key(ping(&b, &a).await);
        assert_eq!(a.recorder.calls.load(Ordering::SeqCst), 0);
        assert_eq!(b.recorder.calls.load(Ordering::SeqCst), 0);
    })
    .await;
}

#[tokio::test]
async fn no_cluster_key_against_a_cluster_key_is_refused_both_ways() {
    bounded(async {
        let open = node(1, None);
        let closed = node(2, Some(cluster_key(7)));
        let refused = ping(&open, &closed).await;
        assert!(
            matches!(&refused, Err(TransportError::Refused { reason, .. }) if reason.contains("requires a cluster key")),
            "{refused:?}"
        );
        assert_refused_for_cluster_key(refused);
        let refused = ping(&closed, &open).await;
        assert!(
            matches!(&refused, Err(TransportError::Refused { reason, .. }) if reason.contains("this node has none")),
            "{refused:?}"
        );
        assert_refused_for_cluster_key(refused);
        assert_eq!(open.recorder.calls.load(Ordering::SeqCst), 0);
        assert_eq!(closed.recorder.calls.load(Ordering::SeqCst), 0);
    })
    .await;
}

/// Writes `bytes` on a raw request stream (then finishes it if `finish`): the
/// node must reset that stream promptly and go on answering on the same
/// connection.
async fn assert_bad_frame_fails_its_stream_only(bytes: &[u8], finish: bool) {
    let a = node(1, None);
    let b = node(2, None);
    let (mut send, mut recv) = a
        .transport
        .open_raw_stream(b.transport.local_addr())
        .await
        .expect("raw stream");
    send.write_all(bytes).await.expect("write");
    if finish {
        send.finish().expect("finish");
    }
    let read = timeout(Duration::from_secs(5), recv.read_to_end(1024))
        .await
        .expect("the node must answer the bad stream promptly");
    assert!(read.is_err(), "the bad stream must be reset, got {read:?}");
    assert_eq!(ping(&a, &b).await.expect("ping after").1, Response::Pong);
    assert_eq!(
        a.transport.connections_opened(),
        1,
        "same connection still up"
    );
    assert_eq!(b.recorder.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_oversized_frame_fails_its_stream_only() {
    bounded(async {
        let too_long = u32::try_from(MAX_FRAME + 1).expect("fits");
        assert_bad_frame_fails_its_stream_only(&too_long.to_be_bytes(), false).await;
    })
    .await;
}

#[tokio::test]
async fn garbage_in_a_frame_fails_its_stream_only() {
    bounded(async {
        assert_bad_frame_fails_its_stream_only(&[0, 0, 0, 3, 0xff, 0xff, 0xff], true).await;
    })
    .await;
}

#[tokio::test]
async fn a_half_open_stream_does_not_hold_up_other_requests() {
    bounded(async {
        let a = node(1, None);
        let b = node(2, None);
        let (mut send, _recv) = a
            .transport
            .open_raw_stream(b.transport.local_addr())
            .await
            .expect("raw stream");
        send.write_all(&[0, 0]).await.expect("write");
        for _ in 0..20 {
            let answered = timeout(Duration::from_secs(1), ping(&a, &b))
                .await
                .expect("answered promptly");
            assert_eq!(answered.expect("ping").1, Response::Pong);
        }
        // Keep the half-open stream alive until here.
        drop(send);
    })
    .await;
}

#[tokio::test]
async fn garbage_datagrams_do_not_hurt() {
    bounded(async {
        let a = node(1, None);
        let b = node(2, None);
        ping(&a, &b).await.expect("ping before");
        let socket = UdpSocket::bind("127.0.0.1:0").expect("udp");
        let target = b.transport.local_addr();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for i in 0..500usize {
            let len = [1, 20, 100, 1200, 1500][i % 5];
            let datagram: Vec<u8> = (0..len)
                .map(|_| {
                    // xorshift: deterministic noise.
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            // Some look like QUIC long-header packets, some like short ones.
            let mut datagram = datagram;
            if i % 2 == 0 {
                datagram[0] |= 0xc0;
            }
            socket.send_to(&datagram, target).expect("send garbage");
        }
        // Existing connections and new ones both still work.
        assert_eq!(ping(&a, &b).await.expect("ping after").1, Response::Pong);
        let c = node(3, None);
        assert_eq!(ping(&c, &b).await.expect("new peer").1, Response::Pong);
    })
    .await;
}

#[tokio::test]
async fn dialing_where_nothing_listens_fails_within_the_connect_timeout() {
    bounded(async {
        let a = node(1, None);
        // A bound socket that never answers: nothing can take its port meanwhile.
        let silent = UdpSocket::bind("127.0.0.1:0").expect("udp");
        let addr: SocketAddr = silent.local_addr().expect("addr");
        let started = Instant::now();
        let error = a
            .transport
            .request(addr, None, &Request::Ping)
            .await
            .expect_err("nobody there");
        let took = started.elapsed();
        assert!(
            matches!(error, TransportError::Connect { .. }),
            "unexpected {error:?}"
        );
        assert!(took < Duration::from_millis(2500), "took {took:?}");
        // A closed port (ICMP unreachable) fails in time too.
        drop(silent);
        let started = Instant::now();
        assert!(
            a.transport
                .request(addr, None, &Request::Ping)
                .await
                .is_err()
        );
        assert!(started.elapsed() < Duration::from_millis(2500));
    })
    .await;
}

#[tokio::test]
async fn shutdown_stops_serving() {
    bounded(async {
        let a = node(1, None);
        let b = node(2, None);
        ping(&a, &b).await.expect("ping");
        b.transport.shutdown().await;
        assert!(ping(&a, &b).await.is_err());
        a.transport.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn an_answer_that_comes_later_reaches_the_asker() {
    bounded(async {
        let a = node(1, None);
        let b = node(2, None);
        let asked = Instant::now();
        let introduce = Request::Introduce {
            node: Peer {
                id: id_of(3),
                addr: "127.0.0.1:9".parse().expect("addr"),
            },
        };
        let (_, answer) = a
            .transport
            .request(b.transport.local_addr(), Some(id_of(2)), &introduce)
            .await
            .expect("the later answer arrives");
        assert_eq!(answer, Response::Ack);
        assert!(asked.elapsed() >= LATER, "answered before it was ready");
    })
    .await;
}

#[tokio::test]
async fn an_answer_that_never_comes_fails_only_its_own_request() {
    bounded(async {
        let a = node(1, None);
        let b = node(2, None);
        let probe = Request::ProbeFor {
            target: Peer {
                id: id_of(3),
                addr: "127.0.0.1:9".parse().expect("addr"),
            },
        };
        let failed = a
            .transport
            .request(b.transport.local_addr(), Some(id_of(2)), &probe)
            .await;
        assert!(
            failed.is_err(),
            "a dropped answer must fail the request: {failed:?}"
        );
        assert_eq!(ping(&a, &b).await.expect("ping after").1, Response::Pong);
        assert_eq!(
            a.transport.connections_opened(),
            1,
            "the connection is kept"
        );
    })
    .await;
}
