//! Harness for the multi-process tests: starts the real `cairn` binary on
//! 127.0.0.1 with free ports and temporary data dirs, talks to its HTTP API
//! with a tiny std-only HTTP/1.1 client, and polls for conditions with
//! deadlines.
//!
//! Invariants:
//! - Every spawned child is owned by a [`Process`] guard that SIGKILLs and
//!   reaps it on drop, also when a test panics; nothing else is ever killed.
//! - Every wait has a deadline, and a failed wait says what it saw last
//!   (the ring views, or the child's stderr).

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use serde_json::Value;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// How long a node may take to print its ready line (a join included).
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a ring may take to converge after a change.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a process may take to exit after it was asked to.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause between two checks of a polled condition.
pub const POLL_EVERY: Duration = Duration::from_millis(100);
/// Socket timeout of one HTTP request (a ring walk past a dead member can
/// take a few request timeouts).
const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

/// The binary under test.
pub fn cairn_bin() -> &'static str {
    env!("CARGO_BIN_EXE_cairn")
}

/// A test's scratch space: data dirs, key files and stderr logs live here and
/// are removed at the end (kept if `CAIRN_KEEP_TEST_DIRS` is set).
pub struct Scratch {
    dir: tempfile::TempDir,
    logs: std::cell::Cell<u32>,
}

impl Scratch {
    pub fn new(test: &str) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix(&format!("cairn-it-{test}-"))
            .tempdir()
            .expect("create a temporary dir");
        Scratch {
            dir,
            logs: std::cell::Cell::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The data dir for a node called `name` (the same path each time, so
    /// that a node can be restarted on its data).
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A fresh file for one process's stderr (a restarted node gets a new one).
    fn stderr_log(&self, name: &str) -> PathBuf {
        let n = self.logs.get() + 1;
        self.logs.set(n);
        self.dir.path().join(format!("{name}.{n}.stderr.log"))
    }

    /// Writes a cluster key file of 32 pseudo-random bytes (distinct per `seed`).
    pub fn cluster_key(&self, name: &str, seed: u64) -> PathBuf {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let bytes: Vec<u8> = (0..32)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).expect("write a cluster key file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("CAIRN_KEEP_TEST_DIRS").is_some() {
            let kept = std::mem::replace(
                &mut self.dir,
                tempfile::tempdir().expect("create a temporary dir"),
            );
            eprintln!("kept test dir {}", kept.keep().display());
        }
    }
}

/// A spawned `cairn` process: its stdout lines arrive on a channel, its
/// stderr goes to a file. SIGKILLed and reaped on drop unless it has exited.
pub struct Process {
    name: String,
    child: Child,
    lines: Receiver<String>,
    stderr_path: PathBuf,
    exited: Option<ExitStatus>,
}

impl Process {
    /// Starts `cairn ARGS...`; `name` labels it in messages.
    pub fn spawn(scratch: &Scratch, name: &str, args: &[OsString]) -> Process {
        let stderr_path = scratch.stderr_log(name);
        let stderr = File::create(&stderr_path).expect("create the stderr log");
        let mut child = Command::new(cairn_bin())
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("CAIRN_TEST_LOG")
                    .unwrap_or_else(|_| "info,quinn=warn,rustls=warn".into()),
            )
            .env_remove("CAIRN_NODE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn the cairn binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Process {
            name: name.to_string(),
            child,
            lines,
            stderr_path,
            exited: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_else(|e| format!("<no stderr: {e}>"))
    }

    /// The next stdout line, or an error (with stderr) if the process closes
    /// stdout or the deadline passes first.
    pub fn next_line(&mut self, timeout: Duration) -> Result<String, String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => Err(format!(
                "{}: no line on stdout within {timeout:?}; stderr:\n{}",
                self.name,
                self.stderr()
            )),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.wait_exit(Duration::from_secs(5));
                Err(format!(
                    "{}: stdout closed (exit: {status:?}); stderr:\n{}",
                    self.name,
                    self.stderr()
                ))
            }
        }
    }

    /// Stdout lines that arrived and were not read yet.
    pub fn pending_lines(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// SIGKILL (a crash), then reap.
    pub fn kill(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }

    /// Sends a signal by name (`TERM`, `INT`) with kill(1), to this child only.
    pub fn signal(&self, signal: &str) {
        assert!(self.exited.is_none(), "{} has already exited", self.name);
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill(1)");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Waits for the process to exit; Err if it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        if let Some(status) = self.exited {
            return Ok(status);
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.exited = Some(status);
                    return Ok(status);
                }
                Ok(None) if Instant::now() >= deadline => {
                    return Err(format!(
                        "{} still running after {timeout:?}; stderr:\n{}",
                        self.name,
                        self.stderr()
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(error) => return Err(format!("{}: cannot wait: {error}", self.name)),
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How to start one `cairn node`.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub name: String,
    pub data: PathBuf,
    pub join: Vec<String>,
    pub cluster_key: Option<PathBuf>,
    /// The QUIC address to listen on; a free port when `None`.
    pub listen: Option<SocketAddr>,
    pub extra: Vec<String>,
}

impl NodeOptions {
    /// A node called `name` with its data dir in the scratch space.
    pub fn new(scratch: &Scratch, name: &str) -> NodeOptions {
        NodeOptions {
            name: name.to_string(),
            data: scratch.data_dir(name),
            join: Vec::new(),
            cluster_key: None,
            listen: None,
            extra: Vec::new(),
        }
    }

    pub fn join(mut self, quic: impl ToString) -> NodeOptions {
        self.join.push(quic.to_string());
        self
    }

    pub fn cluster_key(mut self, path: &Path) -> NodeOptions {
        self.cluster_key = Some(path.to_path_buf());
        self
    }

    fn args(&self) -> Vec<OsString> {
        let listen = self
            .listen
            .map_or_else(|| "127.0.0.1:0".to_string(), |addr| addr.to_string());
        let mut args: Vec<OsString> = ["node", "--listen", &listen, "--http", "127.0.0.1:0"]
            .iter()
            .map(OsString::from)
            .collect();
        args.push("--data".into());
        args.push(self.data.clone().into());
        for via in &self.join {
            args.push("--join".into());
            args.push(via.into());
        }
        if let Some(key) = &self.cluster_key {
            args.push("--cluster-key".into());
            args.push(key.clone().into());
        }
        args.extend(self.extra.iter().map(OsString::from));
        args
    }

    /// Spawns the node without waiting for it (for nodes expected to fail).
    pub fn spawn(&self, scratch: &Scratch) -> Process {
        Process::spawn(scratch, &self.name, &self.args())
    }

    /// Spawns the node and waits for its ready line; panics with its stderr if
    /// it exits or stays silent.
    pub fn start(&self, scratch: &Scratch) -> Node {
        let mut process = self.spawn(scratch);
        let line = process
            .next_line(READY_TIMEOUT)
            .unwrap_or_else(|e| panic!("node {} did not start: {e}", self.name));
        let ready = parse_ready(&line)
            .unwrap_or_else(|e| panic!("node {}: {e}; stderr:\n{}", self.name, process.stderr()));
        Node {
            process,
            options: self.clone(),
            id: ready.id,
            quic: ready.quic,
            http: ready.http,
        }
    }
}

/// What a node's ready line says.
#[derive(Debug)]
pub struct Ready {
    pub id: String,
    pub quic: SocketAddr,
    pub http: SocketAddr,
}

/// Parses `cairn node <8hex> ready: quic=ADDR http=http://ADDR id=<64hex>`.
pub fn parse_ready(line: &str) -> Result<Ready, String> {
    let bad = |why: &str| format!("unexpected ready line ({why}): {line:?}");
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.len() != 7 || words[0] != "cairn" || words[1] != "node" || words[3] != "ready:" {
        return Err(bad("shape"));
    }
    let short = words[2];
    let field = |word: &str, prefix: &str| -> Result<String, String> {
        word.strip_prefix(prefix)
            .map(str::to_string)
            .ok_or_else(|| bad(prefix))
    };
    let quic = field(words[4], "quic=")?;
    let http = field(words[5], "http=http://")?;
    let id = field(words[6], "id=")?;
    if !is_hex_id(&id) {
        return Err(bad("id is not 64 lowercase hex digits"));
    }
    if short.len() != 8 || !id.starts_with(short) {
        return Err(bad("the short id is not the id's first 8 digits"));
    }
    Ok(Ready {
        id,
        quic: quic.parse().map_err(|_| bad("quic address"))?,
        http: http.parse().map_err(|_| bad("http address"))?,
    })
}

pub fn is_hex_id(id: &str) -> bool {
    id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A running node, started by [`NodeOptions::start`].
pub struct Node {
    pub process: Process,
    pub options: NodeOptions,
    pub id: String,
    pub quic: SocketAddr,
    pub http: SocketAddr,
}

impl Node {
    pub fn short(&self) -> &str {
        &self.id[..8]
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// GET a JSON document that must come with 200.
    pub fn get_json(&self, path: &str) -> Result<Value, String> {
        let response = http_request(self.http, "GET", path)
            .map_err(|e| format!("{} GET {path}: {e}", self.short()))?;
        if response.status != 200 {
            return Err(format!(
                "{} GET {path}: status {} body {}",
                self.short(),
                response.status,
                response.body
            ));
        }
        response
            .json()
            .map_err(|e| format!("{} GET {path}: {e}", self.short()))
    }

    /// The member ids of this node's `/v1/ring`, with states other than
    /// alive marked, e.g. `["ab12…", "cd34…(dead)"]` in `describe`.
    pub fn ring(&self) -> Result<Vec<RingMember>, String> {
        let ring = self.get_json("/v1/ring")?;
        let members = ring["members"]
            .as_array()
            .ok_or_else(|| format!("{}: /v1/ring has no members array: {ring}", self.short()))?;
        members
            .iter()
            .map(|m| {
                Ok(RingMember {
                    id: str_field(m, "id")?,
                    state: str_field(m, "state")?,
                })
            })
            .collect()
    }

    /// `(predecessor id, successor ids)` from `/v1/node`.
    pub fn neighbours(&self) -> Result<(Option<String>, Vec<String>), String> {
        let info = self.get_json("/v1/node")?;
        if info["id"].as_str() != Some(&self.id) {
            return Err(format!(
                "{}: /v1/node has id {}, the ready line said {}",
                self.short(),
                info["id"],
                self.id
            ));
        }
        let predecessor = match &info["predecessor"] {
            Value::Null => None,
            peer => Some(str_field(peer, "id")?),
        };
        let successors = info["successors"]
            .as_array()
            .ok_or_else(|| format!("{}: /v1/node has no successors: {info}", self.short()))?
            .iter()
            .map(|peer| str_field(peer, "id"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((predecessor, successors))
    }

    /// Runs the CLI against this node: `cairn --node URL ARGS...`.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        cli_at(&self.url(), args)
    }
}

/// Runs the CLI against the node at `url`: `cairn --node URL ARGS...`
/// (stdin empty, `CAIRN_NODE` unset), and waits for it.
pub fn cli_at(url: &str, args: &[impl AsRef<std::ffi::OsStr>]) -> std::process::Output {
    Command::new(cairn_bin())
        .arg("--node")
        .arg(url)
        .args(args)
        .env_remove("CAIRN_NODE")
        .stdin(Stdio::null())
        .output()
        .expect("run the cairn CLI")
}

pub fn str_field(value: &Value, field: &str) -> Result<String, String> {
    value[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no string {field:?} in {value}"))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingMember {
    pub id: String,
    pub state: String,
}

/// Checks that `nodes` form exactly one correct ring: every node's
/// `/v1/ring` lists all of them alive, in ascending-id cyclic order starting
/// at itself; every node's first successor and predecessor are its
/// neighbours in that order, and its successor list holds every other node
/// once, in ring order (a ring smaller than the successor list length).
/// On failure, the message shows every node's view.
pub fn check_ring(nodes: &[&Node]) -> Result<(), String> {
    check(nodes, true)
}

/// Like [`check_ring`], without `/v1/ring`: only each node's own
/// predecessor and successor list (the routing state, without a ring walk
/// that may wait on dead members).
pub fn check_neighbours(nodes: &[&Node]) -> Result<(), String> {
    check(nodes, false)
}

fn check(nodes: &[&Node], with_ring_walk: bool) -> Result<(), String> {
    let mut sorted: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
    sorted.sort_unstable();
    let n = sorted.len();
    let mut problems = Vec::new();
    let mut views = String::new();
    for node in nodes {
        let position = sorted
            .iter()
            .position(|id| *id == node.id)
            .expect("the node is in the list");
        // The ring in order starting at this node.
        let expected: Vec<&str> = (0..n).map(|k| sorted[(position + k) % n]).collect();
        let _ = write!(views, "  {} ({}):", node.short(), node.process.name());
        let ring = with_ring_walk.then(|| node.ring());
        match ring {
            None => {}
            Some(Ok(members)) => {
                let shown: Vec<String> = members
                    .iter()
                    .map(|m| {
                        let short = m.id.get(..8).unwrap_or(&m.id);
                        if m.state == "alive" {
                            short.to_string()
                        } else {
                            format!("{short}({})", m.state)
                        }
                    })
                    .collect();
                let _ = write!(views, " ring [{}]", shown.join(" "));
                let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
                if ids != expected || members.iter().any(|m| m.state != "alive") {
                    problems.push(format!("{}: wrong ring", node.short()));
                }
            }
            Some(Err(e)) => {
                let _ = write!(views, " ring error: {e}");
                problems.push(e);
            }
        }
        match node.neighbours() {
            Ok((predecessor, successors)) => {
                let short = |id: &str| id.get(..8).unwrap_or(id).to_string();
                let _ = writeln!(
                    views,
                    "; pred {}; succ [{}]",
                    predecessor.as_deref().map_or("none".into(), short),
                    successors
                        .iter()
                        .map(|s| short(s))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                if n == 1 {
                    continue;
                }
                let want_pred = expected[n - 1];
                if predecessor.as_deref() != Some(want_pred) {
                    problems.push(format!(
                        "{}: predecessor should be {}",
                        node.short(),
                        short(want_pred)
                    ));
                }
                let want_successors: Vec<&str> = expected[1..].to_vec();
                if successors.first().map(String::as_str) != Some(want_successors[0]) {
                    problems.push(format!(
                        "{}: first successor should be {}",
                        node.short(),
                        short(want_successors[0])
                    ));
                } else if successors != want_successors {
                    problems.push(format!(
                        "{}: successor list should be every other node in ring order",
                        node.short()
                    ));
                }
            }
            Err(e) => {
                let _ = writeln!(views, "; node error: {e}");
                problems.push(e);
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "expected ring [{}]\n{}problems: {}",
            sorted
                .iter()
                .map(|id| &id[..8])
                .collect::<Vec<_>>()
                .join(" "),
            views,
            problems.join("; ")
        ))
    }
}

/// Polls `check` every [`POLL_EVERY`] until it succeeds or `timeout`
/// passes; then panics with `what` and the last error seen. Returns the value
/// and how long it took.
pub fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> (T, Duration) {
    let started = Instant::now();
    loop {
        let last = match check() {
            Ok(value) => return (value, started.elapsed()),
            Err(error) => error,
        };
        if started.elapsed() >= timeout {
            panic!("{what}: still not true after {timeout:?}; last seen:\n{last}");
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// Waits until `nodes` form a correct ring (see [`check_ring`]); returns how long it took.
pub fn converge(what: &str, nodes: &[&Node]) -> Duration {
    let ((), took) = eventually(what, CONVERGE_TIMEOUT, || check_ring(nodes));
    took
}

/// Starts `count` nodes: the first alone, the others joining through it.
pub fn start_ring(scratch: &Scratch, count: usize) -> Vec<Node> {
    let first = NodeOptions::new(scratch, "n0").start(scratch);
    let via = first.quic;
    let mut nodes = vec![first];
    for i in 1..count {
        nodes.push(
            NodeOptions::new(scratch, &format!("n{i}"))
                .join(via)
                .start(scratch),
        );
    }
    nodes
}

/// The smallest id >= `key_id` among `ids`, else the smallest (64-hex strings
/// of equal length sort like the numbers).
pub fn true_successor<'a>(ids: &[&'a str], key_id: &str) -> &'a str {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted
        .iter()
        .find(|id| **id >= key_id)
        .copied()
        .unwrap_or(sorted[0])
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn percent_encode(key: &str) -> String {
    let mut out = String::new();
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// One HTTP answer.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Result<Value, String> {
        serde_json::from_str(&self.body).map_err(|e| format!("not JSON ({e}): {:?}", self.body))
    }
}

/// A minimal HTTP/1.1 request without a body over std's TcpStream
/// (`Connection: close`; content-length, chunked and close-delimited bodies).
pub fn http_request(addr: SocketAddr, method: &str, path: &str) -> Result<HttpResponse, String> {
    http_send(addr, method, path, &[])
}

/// [`http_request`] with a body.
pub fn http_send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<HttpResponse, String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(HTTP_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(HTTP_TIMEOUT)))
        .map_err(|e| format!("socket timeouts: {e}"))?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.write_all(body))
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {:?}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let mut body = raw[end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8(body).map_err(|e| format!("body is not UTF-8: {e}"))?,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]).to_string();
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

// ---- values (`/v1/kv`) ----
//
// These take the node's HTTP address rather than a `&Node` so that writer
// and reader threads can share them (a `Node` owns its process' channel).

/// `PUT /v1/kv/{key}`: Ok(the version stored) only on 200.
pub fn kv_put(http: SocketAddr, key: &str, value: &str) -> Result<String, String> {
    let path = format!("/v1/kv/{}", percent_encode(key));
    let answer = http_send(http, "PUT", &path, value.as_bytes())?;
    written_version(&answer, "PUT", key)
}

/// `DELETE /v1/kv/{key}`: Ok(the tombstone's version) only on 200.
pub fn kv_delete(http: SocketAddr, key: &str) -> Result<String, String> {
    let path = format!("/v1/kv/{}", percent_encode(key));
    let answer = http_request(http, "DELETE", &path)?;
    written_version(&answer, "DELETE", key)
}

fn written_version(answer: &HttpResponse, method: &str, key: &str) -> Result<String, String> {
    if answer.status != 200 {
        return Err(format!(
            "{method} {key} answered {}: {}",
            answer.status, answer.body
        ));
    }
    let json = answer.json()?;
    str_field(&json, "version").map_err(|e| format!("{method} {key}: {e}"))
}

/// `GET /v1/kv/{key}`: the value, `None` on 404 (never written, or
/// deleted), Err on any other answer.
pub fn kv_get(http: SocketAddr, key: &str) -> Result<Option<String>, String> {
    Ok(kv_get_versioned(http, key)?.map(|(value, _)| value))
}

/// [`kv_get`] with the version the node sent as `ETag` (hex, unquoted).
pub fn kv_get_versioned(http: SocketAddr, key: &str) -> Result<Option<(String, String)>, String> {
    let answer = http_request(http, "GET", &format!("/v1/kv/{}", percent_encode(key)))?;
    match answer.status {
        200 => {
            let version = answer
                .header("etag")
                .map(|tag| tag.trim_matches('"').to_string())
                .ok_or_else(|| format!("GET {key}: 200 without an ETag"))?;
            Ok(Some((answer.body, version)))
        }
        404 => Ok(None),
        status => Err(format!("GET {key} answered {status}: {}", answer.body)),
    }
}

/// One replica of `GET /v1/kv/{key}/locations`.
#[derive(Clone, Debug)]
pub struct Replica {
    pub id: String,
    /// It holds the newest version the coordinator found.
    pub holds: bool,
    /// It answered the coordinator in time.
    pub answered: bool,
    /// The version it holds (hex), if any.
    pub version: Option<String>,
}

/// `GET /v1/kv/{key}/locations`, read.
#[derive(Clone, Debug)]
pub struct Locations {
    pub key_id: String,
    /// The replica set, in ring order.
    pub replicas: Vec<Replica>,
    /// The newest version any replica holds (hex).
    pub version: Option<String>,
    /// The newest record is a tombstone.
    pub deleted: bool,
    /// The whole answer, for messages.
    pub json: Value,
}

/// `GET /v1/kv/{key}/locations` through the node at `http`.
pub fn kv_locations(http: SocketAddr, key: &str) -> Result<Locations, String> {
    let path = format!("/v1/kv/{}/locations", percent_encode(key));
    let answer = http_request(http, "GET", &path)?;
    if answer.status != 200 {
        return Err(format!(
            "locations of {key} answered {}: {}",
            answer.status, answer.body
        ));
    }
    let json = answer.json()?;
    let replicas = json["replicas"]
        .as_array()
        .ok_or_else(|| format!("locations of {key}: no replicas array: {json}"))?
        .iter()
        .map(|r| {
            Ok(Replica {
                id: str_field(r, "id")?,
                holds: r["holds"].as_bool().ok_or("no bool \"holds\"")?,
                answered: r["answered"].as_bool().ok_or("no bool \"answered\"")?,
                version: r["version"].as_str().map(str::to_string),
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .map_err(|e| format!("locations of {key}: {e}: {json}"))?;
    Ok(Locations {
        key_id: str_field(&json, "key_id")?,
        replicas,
        version: json["version"].as_str().map(str::to_string),
        deleted: json["deleted"].as_bool().unwrap_or(false),
        json,
    })
}

/// The replica set DESIGN.md prescribes for `key_id` on a ring of `ids`:
/// successor(key id) and the next `replicas - 1` nodes clockwise (all of
/// them on a smaller ring), in ring order.
pub fn replica_set(ids: &[&str], key_id: &str, replicas: usize) -> Vec<String> {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    let owner = true_successor(ids, key_id);
    let at = sorted
        .iter()
        .position(|id| *id == owner)
        .expect("the successor is one of the ids");
    (0..replicas.min(sorted.len()))
        .map(|k| sorted[(at + k) % sorted.len()].to_string())
        .collect()
}

/// Checks, through the node at `http`, that `key` is on exactly the replica
/// set `live` prescribes (R = 3) and that every member of it answered and
/// holds the newest version; returns the locations for further checks.
pub fn check_fully_replicated(
    http: SocketAddr,
    key: &str,
    live: &[&str],
) -> Result<Locations, String> {
    let located = kv_locations(http, key)?;
    let expected = replica_set(live, &located.key_id, 3);
    let named: Vec<&str> = located.replicas.iter().map(|r| r.id.as_str()).collect();
    if named != expected {
        return Err(format!(
            "{key}: replica set [{}], expected [{}]: {}",
            shorts(&named),
            shorts(&expected),
            located.json
        ));
    }
    if located.version.is_none() {
        return Err(format!("{key}: no replica holds it: {}", located.json));
    }
    if let Some(missing) = located.replicas.iter().find(|r| !r.holds) {
        return Err(format!(
            "{key}: {} does not hold the newest version: {}",
            &missing.id[..8.min(missing.id.len())],
            located.json
        ));
    }
    Ok(located)
}

fn shorts(ids: &[impl AsRef<str>]) -> String {
    ids.iter()
        .map(|id| id.as_ref().get(..8).unwrap_or(id.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `work` on every item from `threads` threads at once (each takes the
/// next item not taken yet); the first error, if any, after all have ended.
pub fn in_parallel<T: Sync>(
    threads: usize,
    items: &[T],
    work: impl Fn(&T) -> Result<(), String> + Sync,
) -> Result<(), String> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let errors = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let at = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(at) else { break };
                    if let Err(error) = work(item) {
                        errors
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .push(error);
                    }
                }
            });
        }
    });
    let errors = errors
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match errors.first() {
        None => Ok(()),
        Some(first) => Err(format!("{} failed; the first: {first}", errors.len())),
    }
}
