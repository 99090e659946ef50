//! A running node: the transport, the core's [`Host`] behind a mutex, and
//! the driver task that carries out the core's actions and fires its timers.
//! The node decides nothing about the ring: it resolves addresses, moves
//! bytes, keeps time, and does what the core says.
//!
//! Flow: peers' requests arrive through the transport and go to the core
//! ([`RequestHandler`]), which answers at once or later (the answer waits on
//! a channel until the core's `Respond` action); every change wakes the
//! driver, which drains the core's actions (send a request, answer one,
//! finish a lookup or a ring walk, report an event) and sleeps until the
//! core's next timeout. Each outgoing request runs in its own task and
//! reports its answer or failure back to the core. Storage never holds the
//! driver up: a write is handed to the store's group commit, whose thread
//! reports it once durable; a point read runs in place; a scan runs on a
//! blocking thread; each outcome waits in a queue the driver feeds to the
//! core.

use crate::config::NodeConfig;
use crate::received::ReceivedCounter;
use crate::transport::{
    Answer, ClusterKey, RequestHandler, Transport, TransportConfig, TransportError,
};
use cairn_core::api::{Finger, Member, NodeInfo, RingView};
use cairn_core::kv::{KvError, OpId, OpResult};
use cairn_core::lookup::LookupError;
use cairn_core::ring::walk::{WalkId, WalkedMember};
use cairn_core::storage::{StorageOutcome, Ticket};
use cairn_core::wire::{Request, Response};
use cairn_core::{
    Action, Event, Host, Id, InboundId, LookupAnswer, LookupId, NodeId, Peer, Phase, Reply,
    RingEvent, Time,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, oneshot, watch};
use tracing::{debug, info, warn};

/// Why a node could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("invalid configuration: {0}")]
    Config(#[from] crate::config::NodeConfigError),
    #[error("data dir: {0}")]
    Identity(#[from] cairn_store::identity::IdentityError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("cannot join the ring: {0}")]
    Join(String),
    #[error("lookup failed: {0}")]
    Lookup(#[from] LookupError),
    #[error("the node is shutting down")]
    ShuttingDown,
    #[error("data dir: cannot open the store: {0}")]
    Store(#[from] cairn_store::StoreError),
    /// A client operation failed (no quorum, bad key, ...).
    #[error(transparent)]
    Kv(#[from] KvError),
}

/// How long a leaving node hands its records over at most before it goes.
pub use cairn_core::kv::HANDOFF_BEFORE_LEAVE;

/// How many members `ring_view` walks at most (the core's limit).
pub use cairn_core::ring::walk::MAX_RING_WALK;

/// What the driver and the request handler share.
struct Shared {
    core: Mutex<Host>,
    origin: Instant,
    /// Requests the core answers later, waiting for their answer.
    inbound: Mutex<HashMap<InboundId, oneshot::Sender<Response>>>,
    /// Woken whenever the core may have new actions or an earlier timeout.
    wake: Notify,
    lookups: Mutex<HashMap<LookupId, oneshot::Sender<Result<LookupAnswer, LookupError>>>>,
    walks: Mutex<HashMap<WalkId, oneshot::Sender<Vec<WalkedMember>>>>,
    /// Client operations waiting for their quorum.
    ops: Mutex<HashMap<OpId, oneshot::Sender<Result<OpResult, KvError>>>>,
    /// The node's durable store. Writes are handed over without waiting
    /// and point reads run in place (`cairn_store::is_quick`); the other
    /// calls block, so they run on blocking threads.
    store: Arc<dyn cairn_store::Store>,
    /// Storage outcomes not yet fed to the core (the driver takes them).
    stored: Mutex<Vec<(Ticket, StorageOutcome)>>,
    /// The core's phase as last seen by the driver, for waiting on joins and leaves.
    phase: watch::Sender<PhaseView>,
    /// Set when the node should stop (leave request, signal).
    stop: watch::Sender<bool>,
    /// The records replication moved here, for `GET /v1/node`.
    received: ReceivedCounter,
}

/// The coarse phase, as observed from outside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PhaseView {
    Active,
    Joining,
    JoinFailed(String),
    Leaving,
    Left,
}

impl Shared {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Both clocks: monotonic since start, and the wall clock for versions.
    fn time(&self) -> Time {
        let wall_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        Time {
            now: self.now(),
            wall_ms,
        }
    }

    fn core(&self) -> MutexGuard<'_, Host> {
        // A panic while holding the lock would be a bug in the core; keep serving.
        self.core
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl RequestHandler for Shared {
    fn handle(&self, from: Peer, request: Request) -> Answer {
        self.received.count_request(&request);
        let time = self.time();
        let answer = {
            let mut core = self.core();
            match core.handle_request(time, from, request) {
                Reply::Now(response) => Answer::Now(response),
                Reply::Later(inbound) => {
                    // Registered under the core's lock: the driver cannot see
                    // the answer before the waiter is here.
                    let (answer, wait) = oneshot::channel();
                    lock(&self.inbound).insert(inbound, answer);
                    Answer::Later(wait)
                }
            }
        };
        self.wake.notify_one();
        answer
    }
}

/// A handle on a running node. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    shared: Arc<Shared>,
    transport: Transport,
    http: Option<String>,
}

impl Node {
    /// Starts a node: loads (or creates) its key, binds QUIC, starts the driver,
    /// and joins through the `config.join` addresses (every one that answers
    /// is handed to the core, which tries them in turn).
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        config.validate()?;
        let key = cairn_store::identity::load_or_create_node_key(&config.data_dir)?;
        let store =
            cairn_store::RedbStore::open(&config.data_dir, cairn_store::StoreConfig::default())?;
        let cluster_key = match &config.cluster_key {
            Some(path) => Some(ClusterKey::from_file(path)?),
            None => None,
        };
        let transport_config = TransportConfig {
            listen: config.listen,
            cluster_key,
            ..TransportConfig::default()
        };
        let origin = Instant::now();
        let (phase, _) = watch::channel(PhaseView::Active);
        let (stop, _) = watch::channel(false);
        // The transport needs the handler, the core needs the transport's address:
        // bind first with a core placeholder, then put the real core in.
        let placeholder = Peer {
            id: NodeId(Id::ZERO),
            addr: config.listen,
        };
        let shared = Arc::new(Shared {
            core: Mutex::new(Host::new(
                placeholder,
                config.ring.clone(),
                config.kv_config(),
                0,
                Time {
                    now: Duration::ZERO,
                    wall_ms: 0,
                },
            )),
            origin,
            inbound: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            lookups: Mutex::new(HashMap::new()),
            walks: Mutex::new(HashMap::new()),
            ops: Mutex::new(HashMap::new()),
            store: Arc::new(store),
            stored: Mutex::new(Vec::new()),
            phase,
            stop,
            received: ReceivedCounter::default(),
        });
        let transport = Transport::bind(transport_config, &key, shared.clone())?;
        let me = Peer {
            id: transport.local_id(),
            addr: transport.local_addr(),
        };
        let http = config.http.map(|addr| addr.to_string());
        let mut ring_config = config.ring_config();
        ring_config.http = http.clone();
        let seed = me.id.id().high_u64() ^ u64::from(origin.elapsed().subsec_nanos());
        *shared.core() = Host::new(me, ring_config, config.kv_config(), seed, shared.time());
        info!(id = %me.id, addr = %me.addr, "node started");
        let started = shared.time();
        if let Some(last) = cairn_store::alive::last_alive_ms(&config.data_dir) {
            let away = Duration::from_millis(started.wall_ms.saturating_sub(last));
            shared.core().came_back_after(away);
            if shared.core().kv_quarantined() {
                warn!(
                    away = ?away,
                    "this node was away longer than the tombstone grace: checking its records with their other replicas before it serves them"
                );
            }
        }
        tokio::spawn(mark_alive(shared.clone(), config.data_dir.clone()));
        let node = Node {
            shared,
            transport,
            http,
        };
        tokio::spawn(drive(node.shared.clone(), node.transport.clone()));
        if !config.join.is_empty()
            && let Err(error) = node.join(&config.join, config.join_timeout).await
        {
            // Stop the driver and free the port: the caller may try again.
            node.leave().await;
            return Err(error);
        }
        Ok(node)
    }

    /// Joins the ring through `addrs`: learns which nodes answer there (the
    /// transport authenticates their ids), then hands them all to the core,
    /// which tries them in turn and retries as it sees fit until its
    /// deadline. Everything, the first pings included, ends by `timeout`.
    async fn join(&self, addrs: &[String], timeout: Duration) -> Result<(), NodeError> {
        let deadline = Instant::now() + timeout;
        let bootstraps = self.reach_bootstraps(addrs, deadline).await?;
        let mut phase = self.shared.phase.subscribe();
        {
            let time = self.shared.time();
            let mut core = self.shared.core();
            // The core's deadline is the user's: what is left of it.
            core.join(
                time,
                &bootstraps,
                deadline.saturating_duration_since(Instant::now()),
            );
            self.shared.phase.send_replace(PhaseView::Joining);
        }
        self.shared.wake.notify_one();
        let through: Vec<String> = bootstraps.iter().map(|p| p.addr.to_string()).collect();
        let through = through.join(", ");
        let wait = phase.wait_for(|p| !matches!(p, PhaseView::Joining));
        // The core answers by its deadline; the margin only guards a stuck driver.
        match tokio::time::timeout_at((deadline + Duration::from_secs(2)).into(), wait).await {
            Ok(Ok(view)) => match &*view {
                PhaseView::Active => {
                    info!(via = %through, "joined the ring");
                    Ok(())
                }
                PhaseView::JoinFailed(reason) => Err(NodeError::Join(reason.clone())),
                other => Err(NodeError::Join(format!(
                    "stopped while joining ({other:?})"
                ))),
            },
            Ok(Err(_)) => Err(NodeError::Join("the node stopped".into())),
            Err(_) => Err(NodeError::Join(format!(
                "gave up after {timeout:?}: no answer through {through} in time"
            ))),
        }
    }

    /// The nodes that answer a ping at `addrs`, as peers with their ids;
    /// asks again every half second until one answers or `deadline` passes.
    async fn reach_bootstraps(
        &self,
        addrs: &[String],
        deadline: Instant,
    ) -> Result<Vec<Peer>, NodeError> {
        let mut last_error = String::from("no address to join through");
        loop {
            let mut pings = tokio::task::JoinSet::new();
            for addr in addrs {
                let resolved: SocketAddr = tokio::net::lookup_host(addr.as_str())
                    .await
                    .map_err(|e| NodeError::Join(format!("cannot resolve {addr}: {e}")))?
                    .next()
                    .ok_or_else(|| NodeError::Join(format!("{addr} resolves to no address")))?;
                let transport = self.transport.clone();
                let addr = addr.clone();
                pings.spawn(async move {
                    let sent = Instant::now();
                    let ping = transport.request(resolved, None, &Request::Ping);
                    let answer = tokio::time::timeout_at(deadline.into(), ping).await;
                    (addr, resolved, sent.elapsed(), answer)
                });
            }
            let mut reached = Vec::new();
            while let Some(done) = pings.join_next().await {
                let Ok((addr, resolved, rtt, answer)) = done else {
                    continue;
                };
                match answer {
                    Ok(Ok((id, _))) if id == self.id() => {
                        return Err(NodeError::Join(format!(
                            "{addr} is this node itself; give the address of another member"
                        )));
                    }
                    Ok(Ok((id, _))) => {
                        // The first ping includes the handshake: an upper bound of a round trip.
                        self.shared.core().record_rtt(rtt);
                        reached.push(Peer { id, addr: resolved });
                    }
                    Ok(Err(error @ TransportError::Refused { .. })) => {
                        return Err(NodeError::Join(error.to_string()));
                    }
                    Ok(Err(error)) => {
                        warn!(via = %addr, "cannot reach the node to join through: {error}");
                        last_error = error.to_string();
                    }
                    Err(_) => last_error = format!("no answer from {addr} in time"),
                }
            }
            if !reached.is_empty() {
                return Ok(reached);
            }
            if Instant::now() + Duration::from_millis(500) >= deadline {
                return Err(NodeError::Join(format!(
                    "gave up after {:?}: {last_error}",
                    deadline.saturating_duration_since(Instant::now())
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub fn id(&self) -> NodeId {
        self.transport.local_id()
    }

    /// The QUIC address peers reach this node at.
    pub fn addr(&self) -> SocketAddr {
        self.transport.local_addr()
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// This node's routing state, for `GET /v1/node`.
    pub fn info(&self) -> NodeInfo {
        let core = self.shared.core();
        let table = core.ring().routing();
        NodeInfo {
            id: table.me().id,
            addr: table.me().addr,
            http: self.http.clone(),
            predecessor: table.predecessor(),
            predecessors: table.predecessors().to_vec(),
            successors: table.successors().to_vec(),
            fingers: table
                .fingers()
                .map(|(index, node)| Finger {
                    start: table.finger_start(index),
                    node,
                })
                .collect(),
            stored: None,
            held: Some(core.ring().held_range()),
            received: Some(self.shared.received.totals()),
        }
    }

    /// What the store holds (off the event loop); `None` if it failed.
    pub async fn stored(&self) -> Option<cairn_core::api::StoredTotals> {
        let store = self.shared.store.clone();
        let stats = tokio::task::spawn_blocking(move || store.stats())
            .await
            .ok()?
            .ok()?;
        Some(cairn_core::api::StoredTotals {
            records: stats.values,
            tombstones: stats.tombstones,
            bytes: stats.record_bytes,
        })
    }

    /// Looks up successor(target), driven by this node.
    pub async fn lookup(&self, target: Id) -> Result<LookupAnswer, NodeError> {
        let (answer, wait) = oneshot::channel();
        {
            let time = self.shared.time();
            let mut core = self.shared.core();
            if matches!(core.phase(), Phase::Leaving { .. } | Phase::Left) {
                return Err(NodeError::ShuttingDown);
            }
            let id = core.start_lookup(time, target);
            lock(&self.shared.lookups).insert(id, answer);
        }
        self.shared.wake.notify_one();
        match wait.await {
            Ok(result) => Ok(result?),
            Err(_) => Err(NodeError::ShuttingDown),
        }
    }

    /// Writes `value` under `key` on a write quorum of its replicas.
    pub async fn put(&self, key: &[u8], value: Vec<u8>) -> Result<OpResult, NodeError> {
        self.operate(|core, time| core.put(time, key, value)).await
    }

    /// Deletes `key` (a tombstone, on a write quorum).
    pub async fn delete(&self, key: &[u8]) -> Result<OpResult, NodeError> {
        self.operate(|core, time| core.delete(time, key)).await
    }

    /// The newest record of `key` a read quorum holds.
    pub async fn get(&self, key: &[u8]) -> Result<OpResult, NodeError> {
        self.operate(|core, time| core.get(time, key)).await
    }

    /// Which replicas of `key` hold which version.
    pub async fn locate(&self, key: &[u8]) -> Result<OpResult, NodeError> {
        self.operate(|core, time| core.locate(time, key)).await
    }

    /// Live keys starting with `prefix`, from every member a ring walk finds.
    pub async fn list(&self, prefix: &str, limit: usize) -> Result<OpResult, NodeError> {
        let ring = self.ring_view().await;
        let members: Vec<Peer> = ring
            .members
            .iter()
            .map(|m| Peer {
                id: m.id,
                addr: m.addr,
            })
            .collect();
        self.operate(|core, time| core.list(time, prefix, &members, limit))
            .await
    }

    /// Starts a client operation in the core and waits for its end.
    async fn operate(
        &self,
        start: impl FnOnce(&mut Host, Time) -> Result<OpId, KvError>,
    ) -> Result<OpResult, NodeError> {
        let (answer, wait) = oneshot::channel();
        {
            let time = self.shared.time();
            let mut core = self.shared.core();
            let op = start(&mut core, time)?;
            // Registered under the core's lock: its end cannot come first.
            lock(&self.shared.ops).insert(op, answer);
        }
        self.shared.wake.notify_one();
        match wait.await {
            Ok(result) => Ok(result?),
            Err(_) => Err(NodeError::ShuttingDown),
        }
    }

    /// The members seen by walking successor lists around the ring, starting
    /// here, each judged by the core on the way.
    pub async fn ring_view(&self) -> RingView {
        let (answer, wait) = oneshot::channel();
        {
            let time = self.shared.time();
            let mut core = self.shared.core();
            let id = core.start_walk(time);
            lock(&self.shared.walks).insert(id, answer);
        }
        self.shared.wake.notify_one();
        let members = wait.await.unwrap_or_default();
        RingView {
            members: members
                .into_iter()
                .map(|m| Member {
                    id: m.peer.id,
                    addr: m.peer.addr,
                    http: m.http,
                    state: m.state,
                    stored: None,
                })
                .collect(),
        }
    }

    /// Leaves the ring gracefully: hands its records to the nodes that
    /// become their replicas (for up to [`HANDOFF_BEFORE_LEAVE`]), tells the
    /// neighbours, then closes the transport.
    pub async fn leave(&self) {
        if *self.shared.phase.borrow() == PhaseView::Active {
            {
                let time = self.shared.time();
                self.shared.core().hand_off_before_leaving(time);
            }
            self.shared.wake.notify_one();
            let deadline = Instant::now() + HANDOFF_BEFORE_LEAVE;
            while self.shared.core().handing_off() {
                if Instant::now() >= deadline {
                    warn!(
                        "the handoff before leaving did not finish in time; leaving anyway (the replicas repair the rest)"
                    );
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            info!("records handed over; leaving the ring");
        }
        let mut phase = self.shared.phase.subscribe();
        {
            let time = self.shared.time();
            self.shared.core().leave(time);
        }
        self.shared.wake.notify_one();
        let left = phase.wait_for(|p| *p == PhaseView::Left);
        if tokio::time::timeout(Duration::from_secs(5), left)
            .await
            .is_err()
        {
            warn!("neighbours did not confirm the leave in time; stopping anyway");
        }
        self.transport.shutdown().await;
        self.shared.stop.send_replace(true);
        info!("left the ring");
    }

    /// Asks the node to stop (as `POST /v1/node/leave` does); whoever waits in
    /// [`Node::stopped`] then calls [`Node::leave`].
    pub fn request_stop(&self) {
        self.shared.stop.send_replace(true);
    }

    /// Resolves once a stop was requested.
    pub async fn stopped(&self) {
        let mut stop = self.shared.stop.subscribe();
        let _ = stop.wait_for(|stopped| *stopped).await;
    }
}

/// Writes the time into the data dir now and every minute, until the node
/// stops: how long it was away, should it come back (see `came_back_after`).
async fn mark_alive(shared: Arc<Shared>, dir: std::path::PathBuf) {
    let mut stop = shared.stop.subscribe();
    loop {
        let wall_ms = shared.time().wall_ms;
        let dir_now = dir.clone();
        let written =
            tokio::task::spawn_blocking(move || cairn_store::alive::mark_alive(&dir_now, wall_ms))
                .await;
        if let Ok(Err(error)) = written {
            warn!("cannot write the alive mark in the data dir: {error}");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The driver: fires the core's timers and carries out its actions, until the node has left.
async fn drive(shared: Arc<Shared>, transport: Transport) {
    loop {
        let (actions, next_timeout, left) = {
            let stored = std::mem::take(&mut *lock(&shared.stored));
            let time = shared.time();
            let mut core = shared.core();
            for (ticket, outcome) in stored {
                core.storage_done(time, ticket, outcome);
            }
            if core.poll_timeout().is_some_and(|t| t <= time.now) {
                core.handle_timeout(time);
            }
            let mut actions = Vec::new();
            while let Some(action) = core.poll_action() {
                actions.push(action);
            }
            (actions, core.poll_timeout(), *core.phase() == Phase::Left)
        };
        for action in actions {
            carry_out(&shared, &transport, action);
        }
        if left {
            return;
        }
        let sleep = match next_timeout {
            Some(at) => at.saturating_sub(shared.now()),
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = shared.wake.notified() => {}
        }
    }
}

fn carry_out(shared: &Arc<Shared>, transport: &Transport, action: Action) {
    match action {
        Action::Send { rpc, to, request } => {
            let shared = shared.clone();
            let transport = transport.clone();
            tokio::spawn(async move {
                let result = transport.request(to.addr, Some(to.id), &request).await;
                let time = shared.time();
                match result {
                    Ok((_, response)) => {
                        shared.received.count_response(&response);
                        shared.core().handle_response(time, rpc, response)
                    }
                    Err(error) => {
                        debug!(peer = %to.id.short(), addr = %to.addr, "request failed: {error}");
                        shared.core().handle_failure(time, rpc);
                    }
                }
                shared.wake.notify_one();
            });
        }
        Action::Respond { inbound, response } => {
            if let Some(waiter) = lock(&shared.inbound).remove(&inbound) {
                let _ = waiter.send(response);
            }
        }
        Action::LookupDone { lookup, result } => {
            if let Some(waiter) = lock(&shared.lookups).remove(&lookup) {
                let _ = waiter.send(result);
            }
        }
        Action::WalkDone { walk, members } => {
            if let Some(waiter) = lock(&shared.walks).remove(&walk) {
                let _ = waiter.send(members);
            }
        }
        Action::Storage { ticket, request } => {
            // The outcome waits for the driver, which feeds it to the core.
            let report = {
                let shared = shared.clone();
                move |outcome| {
                    lock(&shared.stored).push((ticket, outcome));
                    shared.wake.notify_one();
                }
            };
            if cairn_store::is_quick(&request) {
                // A write is queued for the group commit (its outcome comes
                // from the store's thread once durable); a point read runs here.
                cairn_store::execute_then(shared.store.as_ref(), request, Box::new(report));
            } else {
                let store = shared.store.clone();
                tokio::spawn(async move {
                    let outcome = tokio::task::spawn_blocking(move || {
                        cairn_store::execute(store.as_ref(), request)
                    })
                    .await
                    .unwrap_or_else(|error| StorageOutcome::Failed(format!("store task: {error}")));
                    report(outcome);
                });
            }
        }
        Action::KvDone { op, result } => {
            if let Some(waiter) = lock(&shared.ops).remove(&op) {
                let _ = waiter.send(result);
            }
        }
        Action::Event(Event::Ring(event)) => report(shared, event),
    }
}

fn report(shared: &Shared, event: RingEvent) {
    match event {
        RingEvent::Joined { successor } => {
            info!(successor = %successor.id.short(), addr = %successor.addr, "joined: successor answered");
            shared.phase.send_replace(PhaseView::Active);
        }
        RingEvent::JoinFailed { reason } => {
            warn!("join failed: {reason}");
            shared.phase.send_replace(PhaseView::JoinFailed(reason));
        }
        RingEvent::Isolated { reason } => {
            warn!("alone on the ring: {reason}; serving as a ring of one meanwhile");
        }
        RingEvent::SuccessorChanged { successor } => match successor {
            Some(peer) => {
                info!(successor = %peer.id.short(), addr = %peer.addr, "successor changed")
            }
            None => info!("no successor: alone on the ring"),
        },
        RingEvent::PredecessorChanged { predecessor } => match predecessor {
            Some(peer) => {
                info!(predecessor = %peer.id.short(), addr = %peer.addr, "predecessor changed")
            }
            None => info!("predecessor cleared"),
        },
        RingEvent::PeerFailed {
            peer,
            dropped: true,
        } => {
            warn!(peer = %peer.id.short(), addr = %peer.addr, "peer missed its probes: judged dead, dropped from the routing table")
        }
        RingEvent::PeerFailed {
            peer,
            dropped: false,
        } => {
            debug!(peer = %peer.id.short(), addr = %peer.addr, "a peer given up before is still silent")
        }
        RingEvent::RangeChanged { held, replicas } => {
            let replicas: Vec<String> = replicas.iter().map(|p| p.id.short()).collect();
            debug!(
                held = ?held,
                replicas = %replicas.join(","),
                "held range or replica set changed"
            );
        }
        RingEvent::Left => {
            shared.phase.send_replace(PhaseView::Left);
        }
    }
}
