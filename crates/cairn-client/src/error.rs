//! What can go wrong talking to a node, in words a user can act on.
//!
//! The variants classify: [`ClientError::NotFound`] is a missing key or
//! route, [`ClientError::BadUrl`] and [`ClientError::BadInput`] are what the
//! user gave, the rest are the node or the network. Turning that into a
//! process exit code is the CLI's business (its `exit` module), not this
//! library's.

use cairn_core::api::ErrorBody;

/// How many characters of a non-JSON error body are kept in a message: enough
/// to read, not so much that an HTML page floods the terminal.
const MAX_RAW_ERROR_CHARS: usize = 512;

/// Why a request to a node failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node URL given (`--node`, `CAIRN_NODE`) cannot be used.
    #[error("bad node URL {url:?}: {reason} (expected e.g. http://127.0.0.1:7070)")]
    BadUrl { url: String, reason: String },

    /// No connection could be made (refused, no route, DNS failure...).
    #[error(
        "cannot reach {url}: {reason}. Is a node running at {url}? \
         Start one with `cairn node` or set --node/CAIRN_NODE"
    )]
    Unreachable { url: String, reason: String },

    /// The node took longer than the request timeout to answer.
    #[error("{url} did not answer within {seconds} s; the ring may be busy, or the node stuck")]
    Timeout { url: String, seconds: u64 },

    /// The connection broke after it was made (reset, closed mid-answer).
    #[error("the connection to {url} failed: {reason}")]
    Connection { url: String, reason: String },

    /// The node answered with an error that is not the user's input at fault.
    #[error("the node answered {status}: {message}")]
    Api { status: u16, message: String },

    /// The thing asked for does not exist (HTTP 404).
    #[error("not found: {message}")]
    NotFound { message: String },

    /// The request was refused because of what the user gave: a key or value
    /// over a limit, a malformed argument (HTTP 400, 413, 414...).
    #[error("bad input: {message}")]
    BadInput { message: String },

    /// The node answered 2xx with a body this client cannot read.
    #[error(
        "cannot read the answer from {url}: {reason} \
         (is the node running the same Cairn version as this client?)"
    )]
    Decode { url: String, reason: String },
}

/// Maps a non-2xx answer to an error. The message is the `error` field of a
/// JSON `{"error": "..."}` body, else the raw body (shortened), else the
/// status' reason phrase.
///
/// 404 is [`ClientError::NotFound`]; other 4xx are the user's input
/// ([`ClientError::BadInput`]) except 408 and 429, which are transient and,
/// like 5xx, are [`ClientError::Api`].
pub fn error_from_status(status: u16, body: &[u8]) -> ClientError {
    let message = error_message(status, body);
    match status {
        404 => ClientError::NotFound { message },
        408 | 429 => ClientError::Api { status, message },
        400..=499 => ClientError::BadInput { message },
        _ => ClientError::Api { status, message },
    }
}

fn error_message(status: u16, body: &[u8]) -> String {
    if let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(body) {
        return error;
    }
    let raw = String::from_utf8_lossy(body);
    let raw = raw.trim();
    if raw.is_empty() {
        return reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|code| code.canonical_reason())
            .unwrap_or("no message")
            .to_string();
    }
    let mut shortened: String = raw.chars().take(MAX_RAW_ERROR_CHARS).collect();
    if shortened.len() < raw.len() {
        shortened.push('…');
    }
    shortened
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_error_body_gives_the_message() {
        let err = error_from_status(500, br#"{"error": "ring is still forming"}"#);
        match &err {
            ClientError::Api { status, message } => {
                assert_eq!(*status, 500);
                assert_eq!(message, "ring is still forming");
            }
            other => panic!("expected Api, got {other:?}"),
        }
    }

    #[test]
    fn a_404_is_not_found() {
        let err = error_from_status(404, br#"{"error":"no such key: foo"}"#);
        assert!(matches!(&err, ClientError::NotFound { message } if message == "no such key: foo"));
    }

    #[test]
    fn limits_and_malformed_input_are_bad_input() {
        for status in [400, 413, 414, 422, 431] {
            let err = error_from_status(status, br#"{"error":"key is over 1024 bytes"}"#);
            assert!(
                matches!(&err, ClientError::BadInput { message } if message == "key is over 1024 bytes"),
                "{status}: {err:?}"
            );
        }
    }

    #[test]
    fn transient_4xx_and_5xx_are_api_errors() {
        for status in [408, 429, 500, 502, 503] {
            let err = error_from_status(status, b"");
            assert!(matches!(err, ClientError::Api { .. }), "{status}: {err:?}");
        }
    }

    #[test]
    fn non_json_body_is_kept_raw_and_trimmed() {
        let err = error_from_status(502, b"  Bad Gateway from proxy\n");
        assert!(
            matches!(&err, ClientError::Api { message, .. } if message == "Bad Gateway from proxy")
        );
    }

    #[test]
    fn json_without_an_error_field_is_kept_raw() {
        let err = error_from_status(400, br#"{"oops":1}"#);
        assert!(matches!(&err, ClientError::BadInput { message } if message == r#"{"oops":1}"#));
    }

    #[test]
    fn empty_body_falls_back_to_the_reason_phrase() {
        let err = error_from_status(503, b"");
        assert!(
            matches!(&err, ClientError::Api { message, .. } if message == "Service Unavailable")
        );
        let err = error_from_status(599, b"");
        assert!(matches!(&err, ClientError::Api { message, .. } if message == "no message"));
    }

    #[test]
    fn a_huge_raw_body_is_shortened() {
        let body = "x".repeat(10_000);
        let ClientError::Api { message, .. } = error_from_status(500, body.as_bytes()) else {
            panic!("expected Api");
        };
        assert_eq!(message.chars().count(), MAX_RAW_ERROR_CHARS + 1);
        assert!(message.ends_with('…'));
    }

    #[test]
    fn unreachable_tells_how_to_start_a_node() {
        let err = ClientError::Unreachable {
            url: "http://127.0.0.1:7070".into(),
            reason: "connection refused".into(),
        };
        let text = err.to_string();
        assert!(
            text.contains("Is a node running at http://127.0.0.1:7070?"),
            "{text}"
        );
        assert!(text.contains("`cairn node`"), "{text}");
        assert!(text.contains("--node/CAIRN_NODE"), "{text}");
    }
}
