//! Limits on what clients may send, checked at the edge with errors that name
//! the limit (DESIGN.md, Limits and bad input).

/// A key is 1 to this many bytes of UTF-8.
pub const MAX_KEY_LEN: usize = 1024;

/// Why a key is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the key is empty: a key is 1 to {MAX_KEY_LEN} bytes of UTF-8")]
    Empty,
    #[error("the key is {0} bytes: a key is at most {MAX_KEY_LEN} bytes")]
    TooLong(usize),
    #[error("the keys \".\" and \"..\" are reserved: they cannot be one URL path segment")]
    Reserved,
}

/// Checks a user key against the limits.
pub fn check_key(key: &str) -> Result<(), KeyError> {
    match key {
        "" => Err(KeyError::Empty),
        "." | ".." => Err(KeyError::Reserved),
        _ if key.len() > MAX_KEY_LEN => Err(KeyError::TooLong(key.len())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_within_limits_pass() {
        assert_eq!(check_key("a"), Ok(()));
        assert_eq!(check_key(&"x".repeat(MAX_KEY_LEN)), Ok(()));
        assert_eq!(check_key("a/b c"), Ok(()));
    }

    #[test]
    fn empty_long_and_reserved_keys_fail() {
        assert_eq!(check_key(""), Err(KeyError::Empty));
        assert_eq!(
            check_key(&"x".repeat(MAX_KEY_LEN + 1)),
            Err(KeyError::TooLong(1025))
        );
        assert_eq!(check_key("."), Err(KeyError::Reserved));
        assert_eq!(check_key(".."), Err(KeyError::Reserved));
    }
}
