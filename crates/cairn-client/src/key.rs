//! User keys at the edge: the limits a key must meet, and how it travels as
//! exactly one URL path segment.
//!
//! Invariant: [`encode_key_segment`] leaves only RFC 3986 unreserved
//! characters (`A-Z a-z 0-9 - . _ ~`) unescaped, so the encoded key never
//! contains `/`, `%` (other than escapes), `?`, `#` or anything a URL parser
//! could reinterpret; with `.` and `..` rejected by [`validate_key`], the
//! node sees the same bytes the user typed.

use crate::ClientError;
use cairn_core::limits::check_key;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

pub use cairn_core::limits::MAX_KEY_LEN;

/// Everything but the unreserved characters of RFC 3986.
const KEY_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Checks a key against the limits the node enforces (the same check,
/// [`cairn_core::limits::check_key`]): 1 to [`MAX_KEY_LEN`] bytes, and
/// neither `.` nor `..`. Done before sending so a bad key fails fast.
pub fn validate_key(key: &str) -> Result<(), ClientError> {
    check_key(key).map_err(|err| ClientError::BadInput {
        message: err.to_string(),
    })
}

/// The key percent-encoded as one URL path segment (`"a/b c%"` becomes
/// `"a%2Fb%20c%25"`). Non-ASCII characters are encoded as their UTF-8 bytes.
pub fn encode_key_segment(key: &str) -> String {
    utf8_percent_encode(key, KEY_SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slash_space_and_percent_are_escaped() {
        assert_eq!(encode_key_segment("a/b c%"), "a%2Fb%20c%25");
    }

    #[test]
    fn query_and_fragment_characters_are_escaped() {
        assert_eq!(encode_key_segment("a?b#c&d=e+f"), "a%3Fb%23c%26d%3De%2Bf");
    }

    #[test]
    fn unreserved_characters_pass_through() {
        assert_eq!(encode_key_segment("Az09-._~"), "Az09-._~");
    }

    #[test]
    fn non_ascii_is_encoded_as_utf8_bytes() {
        assert_eq!(encode_key_segment("é"), "%C3%A9");
        assert_eq!(encode_key_segment("日"), "%E6%97%A5");
    }

    #[test]
    fn backslash_and_control_characters_are_escaped() {
        assert_eq!(encode_key_segment("a\\b\n\t"), "a%5Cb%0A%09");
    }

    #[test]
    fn a_key_of_the_limit_is_accepted_and_one_byte_more_is_not() {
        assert!(validate_key(&"k".repeat(MAX_KEY_LEN)).is_ok());
        let err = validate_key(&"k".repeat(MAX_KEY_LEN + 1)).expect_err("too long");
        assert!(matches!(err, ClientError::BadInput { .. }));
        assert!(err.to_string().contains("at most 1024 bytes"), "{err}");
        assert!(err.to_string().contains("is 1025 bytes"), "{err}");
    }

    #[test]
    fn the_limit_counts_bytes_not_characters() {
        // 512 two-byte characters are 1024 bytes; one more is over.
        assert!(validate_key(&"é".repeat(512)).is_ok());
        assert!(validate_key(&"é".repeat(513)).is_err());
    }

    #[test]
    fn empty_dot_and_dot_dot_are_rejected() {
        for key in ["", ".", ".."] {
            let err = validate_key(key).expect_err(key);
            assert!(
                matches!(err, ClientError::BadInput { .. }),
                "{key:?}: {err:?}"
            );
        }
        assert!(validate_key("...").is_ok());
        assert!(validate_key("./a").is_ok());
    }
}
