//! The node's base URL as the user gives it (`--node`, `CAIRN_NODE`), checked
//! once and normalised.
//!
//! Invariant: a [`NodeUrl`] is an absolute `http://` URL with a host, no
//! query, no fragment and no trailing `/`, so an API path (`/v1/...`) can be
//! appended to it as text.

use crate::ClientError;
use reqwest::Url;

/// A checked base URL of a node, e.g. `http://127.0.0.1:7070`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeUrl(String);

impl NodeUrl {
    /// Parses `text`. A missing scheme (`127.0.0.1:7070`, `localhost:7070`)
    /// means `http://`. Only plain HTTP is accepted: nodes do not serve TLS,
    /// and this client is built without it.
    pub fn parse(text: &str) -> Result<NodeUrl, ClientError> {
        let bad = |reason: &str| ClientError::BadUrl {
            url: text.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(bad("it is empty"));
        }
        // Without "://", "localhost:7070" would parse as scheme "localhost".
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_string()
        } else {
            format!("http://{trimmed}")
        };
        let url = Url::parse(&with_scheme).map_err(|err| bad(&err.to_string()))?;
        match url.scheme() {
            "http" => {}
            "https" => {
                return Err(bad(
                    "https is not supported: nodes serve plain HTTP, use http://",
                ));
            }
            other => {
                return Err(bad(&format!(
                    "the scheme {other:?} is not supported, use http://"
                )));
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("it has no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("it may not have a query (?...) or fragment (#...)"));
        }
        Ok(NodeUrl(url.as_str().trim_end_matches('/').to_string()))
    }

    /// The base URL as text, without a trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The full URL of an API path such as `/v1/node`. `path` must start with
    /// `/` and be already percent-encoded.
    pub fn endpoint(&self, path: &str) -> Result<Url, ClientError> {
        let text = format!("{}{path}", self.0);
        Url::parse(&text).map_err(|err| ClientError::BadUrl {
            url: text,
            reason: err.to_string(),
        })
    }
}

impl std::fmt::Display for NodeUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> String {
        match NodeUrl::parse(text) {
            Ok(url) => url.as_str().to_string(),
            Err(err) => panic!("{text:?} should parse: {err}"),
        }
    }

    fn rejected(text: &str) -> String {
        match NodeUrl::parse(text) {
            Ok(url) => panic!("{text:?} should be rejected, got {url}"),
            Err(err) => {
                assert!(matches!(err, ClientError::BadUrl { .. }), "{err:?}");
                err.to_string()
            }
        }
    }

    #[test]
    fn a_full_url_is_kept_without_the_trailing_slash() {
        assert_eq!(parsed("http://127.0.0.1:7070"), "http://127.0.0.1:7070");
        assert_eq!(parsed("http://127.0.0.1:7070/"), "http://127.0.0.1:7070");
        assert_eq!(parsed("  http://node-3.local:80/ "), "http://node-3.local");
    }

    #[test]
    fn a_missing_scheme_means_http() {
        assert_eq!(parsed("127.0.0.1:7070"), "http://127.0.0.1:7070");
        assert_eq!(parsed("localhost:7070"), "http://localhost:7070");
        assert_eq!(parsed("[::1]:7070"), "http://[::1]:7070");
    }

    #[test]
    fn a_path_prefix_is_kept_for_reverse_proxies() {
        assert_eq!(
            parsed("http://example.org/cairn/"),
            "http://example.org/cairn"
        );
        let url = NodeUrl::parse("http://example.org/cairn").expect("parses");
        assert_eq!(
            url.endpoint("/v1/node").expect("endpoint").as_str(),
            "http://example.org/cairn/v1/node"
        );
    }

    #[test]
    fn garbage_is_rejected_with_a_reason() {
        assert!(rejected("").contains("empty"));
        assert!(rejected("   ").contains("empty"));
        rejected("not a url");
        rejected("http://");
        rejected("127.0.0.1:99999");
        assert!(rejected("ftp://127.0.0.1:7070").contains("\"ftp\""));
        assert!(rejected("https://127.0.0.1:7070").contains("plain HTTP"));
        assert!(rejected("http://127.0.0.1:7070/?x=1").contains("query"));
        assert!(rejected("http://127.0.0.1:7070/#top").contains("fragment"));
    }

    #[test]
    fn the_message_names_the_bad_url_and_an_example() {
        let text = rejected("ftp://x");
        assert!(text.contains("\"ftp://x\""), "{text}");
        assert!(text.contains("http://127.0.0.1:7070"), "{text}");
    }

    #[test]
    fn endpoints_keep_percent_escapes_as_they_are() {
        let url = NodeUrl::parse("127.0.0.1:7070").expect("parses");
        let endpoint = url.endpoint("/v1/lookup/a%2Fb%20c%25").expect("endpoint");
        assert_eq!(endpoint.path(), "/v1/lookup/a%2Fb%20c%25");
    }
}
