//! The node-to-node transport: QUIC (quinn) with TLS 1.3, one connection per
//! peer address kept and reused, one bidirectional stream per request.
//!
//! Invariants:
//! - One UDP socket both listens and dials, so a connection accepted from a
//!   peer comes from that peer's listen address and can carry our requests too.
//! - No request stream is served on a connection before its hello succeeded
//!   (protocol version and, with a cluster key, both sides' proofs).
//! - Nothing read from the wire is trusted: frame lengths are checked before
//!   allocating, every read has a deadline, and a bad stream is reset alone,
//!   never its connection's other streams or the node.
//!
//! Submodules: [`tls`] (certificate from the node key, verifiers that pin the
//! peer key), [`frame`] (length-prefixed postcard frames), [`cluster`] (the
//! cluster key and the hello proof).

mod cluster;
mod frame;
mod tls;

pub use cluster::ClusterKey;

use cairn_core::NodeId;
use cairn_core::wire::{Hello, HelloReply, PROTOCOL_VERSION, Peer, Request, Response};
use cluster::Role;
use quinn::{Connection, ConnectionError, RecvStream, SendStream, VarInt};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;
use tokio::time::timeout;
use tracing::{debug, warn};

/// How long a peer may take to send a whole request frame on a stream it opened,
/// to take its answer, and for an accepted connection's handshake and hello.
/// Bounds what a half-open stream or connection, or a peer that never reads, can hold.
pub const INBOUND_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The most request streams one peer may have open to us at once.
pub const MAX_INCOMING_STREAMS: u32 = 256;
/// Flow-control window of one stream (bytes in flight before the reader reads).
const STREAM_RECEIVE_WINDOW: u32 = 4 * 1024 * 1024;
/// Flow-control window of a whole connection.
const CONNECTION_RECEIVE_WINDOW: u32 = 16 * 1024 * 1024;
/// How long shutdown waits for close frames to go out.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// How long a refusing acceptor waits for its refusal to be acknowledged
/// before closing the connection.
const REFUSAL_GRACE: Duration = Duration::from_millis(500);

/// Application close codes of a connection.
mod close_code {
    pub const SHUTDOWN: u32 = 1;
    pub const REFUSED: u32 = 2;
    pub const BAD_PEER: u32 = 3;
    pub const TIMED_OUT: u32 = 4;
}
/// Application codes to reset or stop one stream.
mod stream_code {
    pub const BAD_FRAME: u32 = 1;
    pub const READ_TIMEOUT: u32 = 2;
    /// The answer that was to come later never came.
    pub const NO_ANSWER: u32 = 3;
}

/// How the transport listens and how long it waits.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// The UDP address to listen on and dial from; port 0 picks a free port.
    /// Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// With a key, only peers that prove they hold the same key are served.
    /// Default none.
    pub cluster_key: Option<ClusterKey>,
    /// Limit for a dial: QUIC handshake plus hello. Default 2 s.
    pub connect_timeout: Duration,
    /// Hard upper bound for one request, dial included. Default 5 s; should
    /// be at least `connect_timeout`.
    pub request_timeout: Duration,
    /// A connection with no traffic for this long is closed. Keep-alives go
    /// out at a third of it, so connections to live peers stay up. Default 10 s.
    pub idle_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            cluster_key: None,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
        }
    }
}

impl TransportConfig {
    /// Checks that the timeouts make sense together.
    pub fn validate(&self) -> Result<(), TransportError> {
        let invalid = |reason: &str| Err(TransportError::Config(reason.to_string()));
        if self.connect_timeout.is_zero() || self.request_timeout.is_zero() {
            return invalid("connect_timeout and request_timeout must be above zero");
        }
        if self.idle_timeout < Duration::from_millis(30) {
            return invalid("idle_timeout must be at least 30 ms");
        }
        if self.idle_timeout.as_millis() > u128::from(u32::MAX) {
            return invalid("idle_timeout is too long");
        }
        Ok(())
    }
}

/// How long an answer that comes later may take before the stream is reset
/// (the asker's own timeout is usually shorter).
pub const DEFERRED_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The answer to one request: now, or later through a channel (e.g. once a
/// write is durable, or once another node answered).
pub enum Answer {
    Now(Response),
    /// The answer comes on this channel; if it is dropped, or nothing comes
    /// within [`DEFERRED_ANSWER_TIMEOUT`], the stream is reset.
    Later(tokio::sync::oneshot::Receiver<Response>),
}

/// Answers the requests that peers send.
pub trait RequestHandler: Send + Sync + 'static {
    /// Answer one request from an authenticated peer. Synchronous (the core
    /// sits behind a mutex): must not block for long, it runs on a runtime
    /// worker; work that takes longer answers [`Answer::Later`].
    fn handle(&self, from: Peer, request: Request) -> Answer;
}

/// What went wrong in the transport.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TransportError {
    #[error("invalid transport config: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("cluster key: {0}")]
    ClusterKey(String),
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("no answer from {addr} within {after:?}")]
    Timeout { addr: SocketAddr, after: Duration },
    #[error("the node at {addr} is {got}, not the expected {expected}")]
    WrongPeer {
        addr: SocketAddr,
        expected: NodeId,
        got: NodeId,
    },
    #[error("{addr} refused the connection: {reason}")]
    Refused { addr: SocketAddr, reason: String },
    #[error("a frame of {len} bytes is over the limit of {max} bytes")]
    FrameTooLarge { len: usize, max: usize },
    #[error("cannot decode a frame: {0}")]
    Decode(String),
    #[error("cannot encode a frame: {0}")]
    Encode(String),
    #[error("stream failed: {0}")]
    Stream(String),
}

/// The QUIC endpoint of a node: dials peers, serves their requests.
/// Cheap to clone; all clones share one endpoint.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: quinn::Endpoint,
    client_config: quinn::ClientConfig,
    local_addr: SocketAddr,
    local_id: NodeId,
    cluster_key: Option<ClusterKey>,
    connect_timeout: Duration,
    request_timeout: Duration,
    handler: Arc<dyn RequestHandler>,
    /// One slot per peer address: the live connection, or the dial in progress
    /// (its lock), or the last failed dial.
    slots: Mutex<HashMap<SocketAddr, Arc<Slot>>>,
    connections_opened: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.endpoint
            .close(VarInt::from_u32(close_code::SHUTDOWN), b"node stopped");
    }
}

#[derive(Default)]
struct Slot {
    /// Held while dialing, so that concurrent first requests share one dial.
    state: tokio::sync::Mutex<SlotState>,
    /// Counts finished dials, so that a waiter can tell that the dial it
    /// waited for failed and share that failure instead of dialing again.
    dials_finished: AtomicU64,
}

#[derive(Default)]
struct SlotState {
    established: Option<Established>,
    last_failure: Option<TransportError>,
}

/// A connection whose hello succeeded, and who is on the other end.
#[derive(Clone)]
struct Established {
    connection: Connection,
    peer: Peer,
}

impl Established {
    fn is_open(&self) -> bool {
        self.connection.close_reason().is_none()
    }
}

impl Transport {
    /// Binds the QUIC endpoint (must be called inside a tokio runtime) and
    /// starts the accept loop.
    pub fn bind(
        config: TransportConfig,
        key: &ed25519_dalek::SigningKey,
        handler: Arc<dyn RequestHandler>,
    ) -> Result<Transport, TransportError> {
        config.validate()?;
        let (server_tls, client_tls) = tls::configs(key)?;
        let transport_config = Arc::new(quinn_transport_config(&config)?);
        let tls_error = |error: &dyn std::fmt::Display| TransportError::Tls(error.to_string());

        let server_crypto = quinn::crypto::rustls::QuicServerConfig::try_from(server_tls)
            .map_err(|error| tls_error(&error))?;
        let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
        server_config.transport_config(transport_config.clone());

        let client_crypto = quinn::crypto::rustls::QuicClientConfig::try_from(client_tls)
            .map_err(|error| tls_error(&error))?;
        let mut client_config = quinn::ClientConfig::new(Arc::new(client_crypto));
        client_config.transport_config(transport_config);

        let bind_error = |error: std::io::Error| TransportError::Bind {
            addr: config.listen,
            reason: error.to_string(),
        };
        let socket = std::net::UdpSocket::bind(config.listen).map_err(bind_error)?;
        let endpoint = quinn::Endpoint::new(
            stateless_reset_config(key),
            Some(server_config),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(bind_error)?;
        let local_addr = endpoint.local_addr().map_err(bind_error)?;
        let inner = Arc::new(Inner {
            endpoint: endpoint.clone(),
            client_config,
            local_addr,
            local_id: NodeId::from_public_key(&key.verifying_key().to_bytes()),
            cluster_key: config.cluster_key,
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            handler,
            slots: Mutex::new(HashMap::new()),
            connections_opened: AtomicU64::new(0),
        });
        tokio::spawn(accept_loop(Arc::downgrade(&inner), endpoint));
        Ok(Transport { inner })
    }

    /// The address the endpoint listens on (with the real port if bound to 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// This node's id, from its key.
    pub fn local_id(&self) -> NodeId {
        self.inner.local_id
    }

    /// One RPC: reuse (or dial) the connection to `to`, open one bidirectional
    /// stream, send the request frame, read the response frame.
    /// If `expected` is Some, the peer's certificate key must hash to that id,
    /// else `Err(WrongPeer)`. Returns the peer's id.
    pub async fn request(
        &self,
        to: SocketAddr,
        expected: Option<NodeId>,
        request: &Request,
    ) -> Result<(NodeId, Response), TransportError> {
        let limit = self.inner.request_timeout;
        match timeout(limit, self.request_unbounded(to, expected, request)).await {
            Ok(result) => result,
            Err(_) => {
                // A peer silent for a whole request is most likely gone (crashed,
                // or restarted with a new endpoint that ignores the old
                // connection): drop the connection so the next request redials
                // instead of waiting for the idle timeout.
                self.inner.close_cached(to);
                Err(TransportError::Timeout {
                    addr: to,
                    after: limit,
                })
            }
        }
    }

    async fn request_unbounded(
        &self,
        to: SocketAddr,
        expected: Option<NodeId>,
        request: &Request,
    ) -> Result<(NodeId, Response), TransportError> {
        let frame = frame::encode(request)?;
        let (peer, mut send, mut recv) = self.open_stream(to, expected).await?;
        let stream_error = |what: &str, error: &dyn std::fmt::Display| {
            TransportError::Stream(format!("{what} {to}: {error}"))
        };
        send.write_all(&frame)
            .await
            .map_err(|error| stream_error("cannot send a request to", &error))?;
        send.finish()
            .map_err(|error| stream_error("cannot finish a request to", &error))?;
        let response = frame::read_frame(&mut recv).await?;
        Ok((peer.id, response))
    }

    /// For tests and diagnostics: dial (with hello) and open a raw bi stream
    /// to write arbitrary bytes.
    pub async fn open_raw_stream(
        &self,
        to: SocketAddr,
    ) -> Result<(SendStream, RecvStream), TransportError> {
        let limit = self.inner.request_timeout;
        match timeout(limit, self.open_stream(to, None)).await {
            Ok(result) => result.map(|(_, send, recv)| (send, recv)),
            Err(_) => Err(TransportError::Timeout {
                addr: to,
                after: limit,
            }),
        }
    }

    /// Number of QUIC connections opened by this endpoint so far (dialed and
    /// accepted, counted when their TLS handshake completes).
    pub fn connections_opened(&self) -> u64 {
        self.inner.connections_opened.load(Ordering::Relaxed)
    }

    /// Closes all connections and the endpoint, waiting (bounded) for close
    /// frames to go out. Requests after this fail.
    pub async fn shutdown(&self) {
        self.inner.endpoint.close(
            VarInt::from_u32(close_code::SHUTDOWN),
            b"node shutting down",
        );
        let _ = timeout(SHUTDOWN_GRACE, self.inner.endpoint.wait_idle()).await;
        lock(&self.inner.slots).clear();
    }

    /// Opens a request stream to `to` on the cached connection, dialing if
    /// there is none. A connection found dead on use is replaced once.
    async fn open_stream(
        &self,
        to: SocketAddr,
        expected: Option<NodeId>,
    ) -> Result<(Peer, SendStream, RecvStream), TransportError> {
        let mut retried = false;
        loop {
            let established = self.connection(to).await?;
            if let Some(expected) = expected
                && expected != established.peer.id
            {
                return Err(TransportError::WrongPeer {
                    addr: to,
                    expected,
                    got: established.peer.id,
                });
            }
            match established.connection.open_bi().await {
                Ok((send, recv)) => return Ok((established.peer, send, recv)),
                Err(error) if !retried => {
                    debug!(peer = %to, %error, "cached connection is gone; dialing again");
                    self.inner.evict(to, established.connection.stable_id());
                    retried = true;
                }
                Err(error) => {
                    return Err(TransportError::Stream(format!(
                        "cannot open a stream to {to}: {error}"
                    )));
                }
            }
        }
    }

    /// The live connection to `to`, dialing it if there is none. Concurrent
    /// callers share one dial, and its failure.
    async fn connection(&self, to: SocketAddr) -> Result<Established, TransportError> {
        let slot = self.inner.slot(to);
        let dials_seen = slot.dials_finished.load(Ordering::Acquire);
        let mut state = slot.state.lock().await;
        if let Some(established) = &state.established {
            if established.is_open() {
                return Ok(established.clone());
            }
            state.established = None;
        }
        if slot.dials_finished.load(Ordering::Acquire) != dials_seen
            && let Some(failure) = &state.last_failure
        {
            return Err(failure.clone());
        }
        let result = dial(&self.inner, to).await;
        slot.dials_finished.fetch_add(1, Ordering::Release);
        match result {
            Ok(established) => {
                state.established = Some(established.clone());
                state.last_failure = None;
                Ok(established)
            }
            Err(error) => {
                state.last_failure = Some(error.clone());
                drop(state);
                drop(slot);
                self.inner.prune(to);
                Err(error)
            }
        }
    }
}

/// The endpoint's stateless-reset key, derived from the node key instead of
/// drawn at random: after a crash and restart (same key, same address) the new
/// endpoint answers a peer's packets on the old connection with a reset that
/// the peer accepts, so the peer drops the dead connection at once and redials,
/// instead of timing out request after request (RFC 9000, section 10.3).
/// The connection-id generator's key is derived too: the new endpoint only
/// answers packets whose connection id it recognises as its own (a keyed hash),
/// and the old endpoint's ids must pass that check.
fn stateless_reset_config(key: &ed25519_dalek::SigningKey) -> quinn::EndpointConfig {
    let secret = blake3::derive_key("cairn quic stateless reset v1", key.as_bytes());
    let reset_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
    let mut config = quinn::EndpointConfig::new(Arc::new(reset_key));
    let cid_secret = blake3::derive_key("cairn quic connection id v1", key.as_bytes());
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&cid_secret[..8]);
    let cid_key = u64::from_le_bytes(cid_key);
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    config
}

impl Inner {
    fn slot(&self, addr: SocketAddr) -> Arc<Slot> {
        lock(&self.slots).entry(addr).or_default().clone()
    }

    /// Caches a connection that a peer dialed to us, so that our requests to
    /// it reuse it, unless we already hold a live one (or are dialing). A
    /// live one to a peer that crashed and restarted is reset by the new
    /// process (see [`stateless_reset_config`]), so it does not linger.
    fn adopt(&self, established: &Established) {
        let slot = self.slot(established.peer.addr);
        if let Ok(mut state) = slot.state.try_lock() {
            let live = state.established.as_ref().is_some_and(Established::is_open);
            if !live {
                state.established = Some(established.clone());
                state.last_failure = None;
            }
        }
    }

    /// Forgets the connection `stable_id` to `addr` once it closed.
    fn evict(&self, addr: SocketAddr, stable_id: usize) {
        let mut slots = lock(&self.slots);
        let Some(slot) = slots.get(&addr) else {
            return;
        };
        let Ok(mut state) = slot.state.try_lock() else {
            // Someone is dialing this address right now; they replace it.
            return;
        };
        let ours = state
            .established
            .as_ref()
            .is_some_and(|established| established.connection.stable_id() == stable_id);
        if ours {
            state.established = None;
        }
        let unused = state.established.is_none();
        drop(state);
        // Only the map holds the slot: nobody waits on it, so it can go.
        if unused && Arc::strong_count(slot) == 1 {
            slots.remove(&addr);
        }
    }

    /// Closes and forgets the cached connection to `addr`, if any (unless a dial is under way).
    fn close_cached(&self, addr: SocketAddr) {
        let Some(slot) = lock(&self.slots).get(&addr).cloned() else {
            return;
        };
        let Ok(mut state) = slot.state.try_lock() else {
            return;
        };
        if let Some(established) = state.established.take() {
            debug!(peer = %addr, "request timed out: closing the connection");
            established.connection.close(
                VarInt::from_u32(close_code::TIMED_OUT),
                b"request timed out",
            );
        }
    }

    /// Drops the slot of `addr` if it holds nothing and nobody waits on it.
    fn prune(&self, addr: SocketAddr) {
        let mut slots = lock(&self.slots);
        let Some(slot) = slots.get(&addr) else {
            return;
        };
        let empty = slot
            .state
            .try_lock()
            .is_ok_and(|state| state.established.is_none());
        if empty && Arc::strong_count(slot) == 1 {
            slots.remove(&addr);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn quinn_transport_config(
    config: &TransportConfig,
) -> Result<quinn::TransportConfig, TransportError> {
    let idle = quinn::IdleTimeout::try_from(config.idle_timeout)
        .map_err(|error| TransportError::Config(format!("idle_timeout: {error}")))?;
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(Some(idle))
        .keep_alive_interval(Some(config.idle_timeout / 3))
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_INCOMING_STREAMS))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .stream_receive_window(VarInt::from_u32(STREAM_RECEIVE_WINDOW))
        .receive_window(VarInt::from_u32(CONNECTION_RECEIVE_WINDOW))
        .send_window(u64::from(CONNECTION_RECEIVE_WINDOW));
    Ok(transport)
}

/// The 32 bytes of keying material that cluster proofs cover.
fn session_secret(connection: &Connection) -> Result<[u8; 32], String> {
    let mut secret = [0u8; 32];
    connection
        .export_keying_material(&mut secret, cluster::EXPORTER_LABEL, b"")
        .map_err(|error| format!("cannot export keying material: {error:?}"))?;
    Ok(secret)
}

/// The reason the peer gave when it closed `connection` to refuse us, if it did.
fn refusal_reason(connection: &Connection) -> Option<String> {
    match connection.close_reason()? {
        ConnectionError::ApplicationClosed(close)
            if close.error_code == VarInt::from_u32(close_code::REFUSED) =>
        {
            Some(String::from_utf8_lossy(&close.reason).into_owned())
        }
        _ => None,
    }
}

/// Dials `addr`: QUIC handshake, then hello, all within the connect timeout.
async fn dial(inner: &Arc<Inner>, addr: SocketAddr) -> Result<Established, TransportError> {
    let connect_error = |reason: String| TransportError::Connect { addr, reason };
    let connecting = inner
        .endpoint
        .connect_with(inner.client_config.clone(), addr, tls::SERVER_NAME)
        .map_err(|error| connect_error(error.to_string()))?;
    let limit = inner.connect_timeout;
    let handshake = async {
        let connection = connecting
            .await
            .map_err(|error| connect_error(error.to_string()))?;
        inner.connections_opened.fetch_add(1, Ordering::Relaxed);
        let result = say_hello(inner, &connection, addr).await;
        if let Err(error) = &result {
            connection.close(VarInt::from_u32(close_code::REFUSED), b"hello failed");
            if matches!(error, TransportError::Refused { .. }) {
                warn!(peer = %addr, %error, "peer refused the connection");
            }
        }
        result.map(|peer| Established { connection, peer })
    };
    let established = match timeout(limit, handshake).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(connect_error(format!(
                "no handshake within {limit:?} (is a cairn node listening there?)"
            )));
        }
    };
    tokio::spawn(serve_connection(
        Arc::downgrade(inner),
        inner.handler.clone(),
        established.clone(),
    ));
    Ok(established)
}

/// The dialer's side of the hello; returns who answered.
async fn say_hello(
    inner: &Inner,
    connection: &Connection,
    addr: SocketAddr,
) -> Result<Peer, TransportError> {
    let refused = |reason: String| TransportError::Refused { addr, reason };
    let peer_id = tls::peer_node_id(connection).map_err(refused)?;
    let session = session_secret(connection).map_err(refused)?;
    let hello = Hello {
        version: PROTOCOL_VERSION,
        proof: inner
            .cluster_key
            .as_ref()
            .map(|key| key.proof(&session, Role::Dialer)),
    };
    let exchange = async {
        let (mut send, mut recv) = connection
            .open_bi()
            .await
            .map_err(|error| TransportError::Stream(error.to_string()))?;
        frame::write_frame(&mut send, &hello).await?;
        send.finish()
            .map_err(|error| TransportError::Stream(error.to_string()))?;
        frame::read_frame::<HelloReply>(&mut recv).await
    };
    let reply = match exchange.await {
        Ok(reply) => reply,
        // The acceptor may close before its refusal frame arrives; the close
        // carries the reason too.
        Err(error) => {
            return Err(match refusal_reason(connection) {
                Some(reason) => refused(reason),
                None => connect_error_from(addr, &error),
            });
        }
    };
    match reply {
        HelloReply::Refused { reason } => Err(refused(reason)),
        HelloReply::Welcome { version, proof } => {
            if version != PROTOCOL_VERSION {
                return Err(refused(version_mismatch(version)));
            }
            cluster::check_proof(inner.cluster_key.as_ref(), &session, Role::Acceptor, proof)
                .map_err(refused)?;
            Ok(Peer {
                id: peer_id,
                addr: connection.remote_address(),
            })
        }
    }
}

fn connect_error_from(addr: SocketAddr, error: &TransportError) -> TransportError {
    TransportError::Connect {
        addr,
        reason: format!("hello failed: {error}"),
    }
}

fn version_mismatch(theirs: u32) -> String {
    format!(
        "protocol version mismatch: this node speaks cairn protocol {PROTOCOL_VERSION}, the peer {theirs}"
    )
}

async fn accept_loop(inner: Weak<Inner>, endpoint: quinn::Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        let Some(inner) = inner.upgrade() else {
            break;
        };
        tokio::spawn(accept_connection(inner, incoming));
    }
}

/// Handshake and hello of a connection a peer dialed; then serves it.
async fn accept_connection(inner: Arc<Inner>, incoming: quinn::Incoming) {
    let remote = incoming.remote_address();
    let connection = match timeout(INBOUND_READ_TIMEOUT, incoming).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => {
            debug!(peer = %remote, %error, "incoming handshake failed");
            return;
        }
        Err(_) => {
            debug!(peer = %remote, "incoming handshake timed out");
            return;
        }
    };
    inner.connections_opened.fetch_add(1, Ordering::Relaxed);
    let peer_id = match tls::peer_node_id(&connection) {
        Ok(id) => id,
        Err(reason) => {
            warn!(peer = %remote, %reason, "dropping a peer without a usable certificate");
            connection.close(VarInt::from_u32(close_code::BAD_PEER), reason.as_bytes());
            return;
        }
    };
    let peer = Peer {
        id: peer_id,
        addr: remote,
    };
    match timeout(INBOUND_READ_TIMEOUT, answer_hello(&inner, &connection)).await {
        Ok(Ok(())) => {}
        Ok(Err(HelloFailure::Refused(reason))) => {
            warn!(peer_id = %peer.id, peer = %remote, %reason, "refused a peer");
            connection.close(VarInt::from_u32(close_code::REFUSED), reason.as_bytes());
            return;
        }
        Ok(Err(HelloFailure::Broken(error))) => {
            debug!(peer_id = %peer.id, peer = %remote, %error, "hello failed");
            connection.close(VarInt::from_u32(close_code::BAD_PEER), b"hello failed");
            return;
        }
        Err(_) => {
            debug!(peer_id = %peer.id, peer = %remote, "no hello in time");
            connection.close(VarInt::from_u32(close_code::BAD_PEER), b"no hello in time");
            return;
        }
    }
    let established = Established { connection, peer };
    inner.adopt(&established);
    let handler = inner.handler.clone();
    let weak = Arc::downgrade(&inner);
    drop(inner);
    serve_connection(weak, handler, established).await;
}

enum HelloFailure {
    /// The peer is not one of ours: tell it why.
    Refused(String),
    /// The exchange itself failed.
    Broken(TransportError),
}

/// The acceptor's side of the hello: reads it from the first stream, answers,
/// and refuses a wrong version or cluster proof.
async fn answer_hello(inner: &Inner, connection: &Connection) -> Result<(), HelloFailure> {
    let (mut send, mut recv) = connection
        .accept_bi()
        .await
        .map_err(|error| HelloFailure::Broken(TransportError::Stream(error.to_string())))?;
    let hello: Hello = frame::read_frame(&mut recv)
        .await
        .map_err(HelloFailure::Broken)?;
    let session = session_secret(connection).map_err(HelloFailure::Refused)?;
    let verdict = if hello.version != PROTOCOL_VERSION {
        Err(version_mismatch(hello.version))
    } else {
        cluster::check_proof(
            inner.cluster_key.as_ref(),
            &session,
            Role::Dialer,
            hello.proof,
        )
    };
    let reply = match &verdict {
        Ok(()) => HelloReply::Welcome {
            version: PROTOCOL_VERSION,
            proof: inner
                .cluster_key
                .as_ref()
                .map(|key| key.proof(&session, Role::Acceptor)),
        },
        Err(reason) => HelloReply::Refused {
            reason: reason.clone(),
        },
    };
    frame::write_frame(&mut send, &reply)
        .await
        .map_err(HelloFailure::Broken)?;
    let _ = send.finish();
    if let Err(reason) = verdict {
        // Let the refusal reach the dialer before the close discards it.
        let _ = timeout(REFUSAL_GRACE, send.stopped()).await;
        return Err(HelloFailure::Refused(reason));
    }
    Ok(())
}

/// Serves the request streams a peer opens on an established connection,
/// each in its own task, until the connection closes; then forgets it.
async fn serve_connection(
    inner: Weak<Inner>,
    handler: Arc<dyn RequestHandler>,
    established: Established,
) {
    let Established { connection, peer } = &established;
    let reason = loop {
        match connection.accept_bi().await {
            Ok((send, recv)) => {
                tokio::spawn(serve_stream(handler.clone(), *peer, send, recv));
            }
            Err(error) => break error,
        }
    };
    debug!(peer_id = %peer.id, peer = %peer.addr, %reason, "connection closed");
    if let Some(inner) = inner.upgrade() {
        inner.evict(peer.addr, connection.stable_id());
    }
}

/// Reads one request, answers it, finishes the stream. A bad or slow stream
/// is reset on its own.
async fn serve_stream(
    handler: Arc<dyn RequestHandler>,
    peer: Peer,
    mut send: SendStream,
    mut recv: RecvStream,
) {
    let request: Request = match timeout(INBOUND_READ_TIMEOUT, frame::read_frame(&mut recv)).await {
        Ok(Ok(request)) => request,
        Ok(Err(error)) => {
            match &error {
                TransportError::FrameTooLarge { .. } | TransportError::Decode(_) => {
                    warn!(peer_id = %peer.id, peer = %peer.addr, %error, "bad request frame");
                }
                _ => debug!(peer_id = %peer.id, peer = %peer.addr, %error, "request stream failed"),
            }
            let _ = recv.stop(VarInt::from_u32(stream_code::BAD_FRAME));
            let _ = send.reset(VarInt::from_u32(stream_code::BAD_FRAME));
            return;
        }
        Err(_) => {
            debug!(peer_id = %peer.id, peer = %peer.addr, "request not received in time");
            let _ = recv.stop(VarInt::from_u32(stream_code::READ_TIMEOUT));
            let _ = send.reset(VarInt::from_u32(stream_code::READ_TIMEOUT));
            return;
        }
    };
    let response = match handler.handle(peer, request) {
        Answer::Now(response) => response,
        Answer::Later(answer) => match timeout(DEFERRED_ANSWER_TIMEOUT, answer).await {
            Ok(Ok(response)) => response,
            Ok(Err(_)) => {
                debug!(peer_id = %peer.id, peer = %peer.addr, "the answer was dropped");
                let _ = send.reset(VarInt::from_u32(stream_code::NO_ANSWER));
                return;
            }
            Err(_) => {
                debug!(peer_id = %peer.id, peer = %peer.addr, "no answer in time");
                let _ = send.reset(VarInt::from_u32(stream_code::NO_ANSWER));
                return;
            }
        },
    };
    // A peer that never reads its answer (flow control never opens) must not
    // hold this task, nor the answer's memory, for ever.
    let write = frame::write_frame(&mut send, &response);
    let sent = match timeout(INBOUND_READ_TIMEOUT, write).await {
        Ok(Ok(())) => send
            .finish()
            .map_err(|error| TransportError::Stream(error.to_string())),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(TransportError::Timeout {
            addr: peer.addr,
            after: INBOUND_READ_TIMEOUT,
        }),
    };
    if let Err(error) = sent {
        debug!(peer_id = %peer.id, peer = %peer.addr, %error, "cannot send a response");
        let _ = send.reset(VarInt::from_u32(stream_code::BAD_FRAME));
    }
}
