//! # cairn-client
//!
//! A Rust client for a Cairn node's HTTP API (DESIGN.md, Interfaces): what the
//! `cairn` CLI and the integration tests use to talk to a running node. It
//! speaks plain HTTP/1.1 through one `reqwest::Client` (connections are kept
//! and reused) and reads the JSON shapes of [`cairn_core::api`].
//!
//! Map of the modules:
//!
//! - [`node_url`]: the node's base URL as the user gives it, checked once.
//! - [`key`]: key limits and the percent-encoding of a key as one path segment.
//! - [`error`]: [`ClientError`], and HTTP statuses mapped to errors.
//!
//! ```no_run
//! # async fn example() -> Result<(), cairn_client::ClientError> {
//! let client = cairn_client::Client::new("127.0.0.1:7070")?;
//! let found = client.lookup("photos/2024/cat.jpg").await?;
//! println!("{} is on {} after {} hops", found.key_id, found.node.addr, found.hops);
//! # Ok(())
//! # }
//! ```

pub mod error;
pub mod key;
pub mod node_url;

pub use error::{ClientError, error_from_status};
pub use key::{MAX_KEY_LEN, encode_key_segment, validate_key};
pub use node_url::NodeUrl;

use cairn_core::api::{KeyList, Locations, LookupView, NodeInfo, RingView};
use reqwest::Url;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// The node URL used when none is given: the default `--http` of `cairn node`.
pub const DEFAULT_NODE_URL: &str = "http://127.0.0.1:7070";

/// The longest a whole request may take, answer included. Generous because a
/// lookup under churn retries through timeouts inside the ring, and a leave
/// hands data over before it answers.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest to wait for a TCP connection: a node that is up accepts at
/// once, so waiting longer only delays telling the user it is not there.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of one node. Cheap to clone (the connection pool is shared).
#[derive(Clone, Debug)]
pub struct Client {
    /// Where the node's API lives, e.g. `http://127.0.0.1:7070`.
    base: NodeUrl,
    /// One HTTP client for every request, so connections are reused.
    http: reqwest::Client,
}

impl Client {
    /// A client of the node at `base_url` (`http://127.0.0.1:7070`, or
    /// `127.0.0.1:7070` without the scheme). Makes no request.
    pub fn new(base_url: &str) -> Result<Client, ClientError> {
        let base = NodeUrl::parse(base_url)?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // Nodes are reached directly; an HTTP_PROXY meant for the web
            // must not capture requests to 127.0.0.1.
            .no_proxy()
            .user_agent(concat!("cairn-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| ClientError::BadUrl {
                url: base_url.to_string(),
                reason: format!("cannot set up the HTTP client: {}", root_cause(&err)),
            })?;
        Ok(Client { base, http })
    }

    /// The node's base URL, normalised (no trailing `/`).
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// `GET /v1/node`: the node's id, addresses, predecessor, successor list
    /// and fingers.
    pub async fn node_info(&self) -> Result<NodeInfo, ClientError> {
        self.get_json("/v1/node").await
    }

    /// `GET /v1/ring`: the members in ring order, starting at this node.
    pub async fn ring(&self) -> Result<RingView, ClientError> {
        self.get_json("/v1/ring").await
    }

    /// `GET /v1/lookup/{key}`: the node responsible for `key`, the hops and
    /// the time the lookup took. The key is checked against the limits
    /// ([`validate_key`]) before anything is sent.
    pub async fn lookup(&self, key: &str) -> Result<LookupView, ClientError> {
        validate_key(key)?;
        self.get_json(&format!("/v1/lookup/{}", encode_key_segment(key)))
            .await
    }

    /// `PUT /v1/kv/{key}`: stores `value` on a write quorum; its version.
    /// An error means the write is indeterminate (it may still take effect).
    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<Written, ClientError> {
        validate_key(key)?;
        let url = self.kv_url(key)?;
        let (_, body) = self
            .send_full(self.http.put(url.clone()).body(value), &url)
            .await?;
        decode(&url, &body)
    }

    /// `DELETE /v1/kv/{key}`: writes a tombstone on a write quorum.
    pub async fn delete(&self, key: &str) -> Result<Written, ClientError> {
        validate_key(key)?;
        let url = self.kv_url(key)?;
        let (_, body) = self.send_full(self.http.delete(url.clone()), &url).await?;
        decode(&url, &body)
    }

    /// `GET /v1/kv/{key}`: the newest value a read quorum holds, with its
    /// version (the `ETag`). A key never written, or deleted, is
    /// [`ClientError::NotFound`].
    pub async fn get(&self, key: &str) -> Result<Value, ClientError> {
        validate_key(key)?;
        let url = self.kv_url(key)?;
        let (headers, bytes) = self.send_full(self.http.get(url.clone()), &url).await?;
        let version = headers
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim_matches('"').to_string());
        Ok(Value { bytes, version })
    }

    /// `GET /v1/kv/{key}/locations`: the key's replicas, which hold the
    /// newest version, and its size.
    pub async fn locations(&self, key: &str) -> Result<Locations, ClientError> {
        validate_key(key)?;
        self.get_json(&format!("/v1/kv/{}/locations", encode_key_segment(key)))
            .await
    }

    /// `GET /v1/keys?prefix=`: live keys starting with `prefix`, in order.
    pub async fn list(&self, prefix: &str) -> Result<KeyList, ClientError> {
        let mut url = self.base.endpoint("/v1/keys")?;
        url.query_pairs_mut().append_pair("prefix", prefix);
        let body = self.send(self.http.get(url.clone()), &url).await?;
        serde_json::from_slice(&body).map_err(|err| ClientError::Decode {
            url: url.to_string(),
            reason: err.to_string(),
        })
    }

    fn kv_url(&self, key: &str) -> Result<Url, ClientError> {
        self.base
            .endpoint(&format!("/v1/kv/{}", encode_key_segment(key)))
    }

    /// `POST /v1/node/leave`: asks the node to leave the ring gracefully.
    /// Returns once the node has accepted; it then hands over its data and
    /// stops on its own.
    pub async fn leave(&self) -> Result<(), ClientError> {
        let url = self.base.endpoint("/v1/node/leave")?;
        self.send(self.http.post(url.clone()), &url).await?;
        Ok(())
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = self.base.endpoint(path)?;
        let body = self.send(self.http.get(url.clone()), &url).await?;
        serde_json::from_slice(&body).map_err(|err| ClientError::Decode {
            url: url.to_string(),
            reason: err.to_string(),
        })
    }

    /// Sends a request and returns the body of a 2xx answer; any other
    /// status becomes an error through [`error_from_status`].
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &Url,
    ) -> Result<Vec<u8>, ClientError> {
        Ok(self.send_full(request, url).await?.1)
    }

    /// [`Client::send`], with the answer's headers.
    async fn send_full(
        &self,
        request: reqwest::RequestBuilder,
        url: &Url,
    ) -> Result<(reqwest::header::HeaderMap, Vec<u8>), ClientError> {
        let response = request
            .send()
            .await
            .map_err(|err| self.transport_error(url, &err))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|err| self.transport_error(url, &err))?;
        if status.is_success() {
            Ok((headers, body.to_vec()))
        } else {
            Err(error_from_status(status.as_u16(), &body))
        }
    }

    /// Maps a failure below HTTP (connect, timeout, broken connection).
    fn transport_error(&self, url: &Url, err: &reqwest::Error) -> ClientError {
        // A connect timeout is reported as both; it means nobody is there.
        if err.is_connect() {
            return ClientError::Unreachable {
                url: self.base.to_string(),
                reason: root_cause(err),
            };
        }
        if err.is_timeout() {
            return ClientError::Timeout {
                url: url.to_string(),
                seconds: REQUEST_TIMEOUT.as_secs(),
            };
        }
        ClientError::Connection {
            url: url.to_string(),
            reason: root_cause(err),
        }
    }
}

/// The answer to a put or delete: the version now on a write quorum.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Written {
    /// The version, as the hex of its bytes (the same as the `ETag`).
    pub version: String,
}

/// A value read back, with its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    pub bytes: Vec<u8>,
    /// The version (the `ETag`), as hex.
    pub version: Option<String>,
}

fn decode<T: DeserializeOwned>(url: &Url, body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|err| ClientError::Decode {
        url: url.to_string(),
        reason: err.to_string(),
    })
}

/// The innermost error's message ("Connection refused (os error 111)"),
/// which says more than reqwest's outer "error sending request".
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}
