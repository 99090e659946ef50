//! The cluster key and the hello proof built from it.
//!
//! With a cluster key, each side of a connection proves that it holds the key
//! by a MAC over keying material exported from this very TLS session, keyed
//! with the cluster key and bound to its role. A proof therefore cannot be
//! replayed on another connection, nor reflected back by the other side.
//! Without a cluster key no proof is sent, and a peer that sends one is
//! refused just as one that omits a required proof.

use super::TransportError;
use std::fmt;
use std::path::Path;

/// The context string of the key derivation from the secret file.
const KEY_CONTEXT: &str = "cairn cluster key v1";
/// The TLS exporter label of the keying material that the proof covers.
pub(crate) const EXPORTER_LABEL: &[u8] = b"cairn cluster proof v1";

/// A shared cluster secret, derived from a secret file; only nodes holding the
/// same secret talk to each other.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey([u8; 32]);

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

impl ClusterKey {
    /// The least number of secret bytes accepted.
    pub const MIN_SECRET_LEN: usize = 32;

    /// Reads the secret from a file that holds it as raw bytes (at least
    /// [`Self::MIN_SECRET_LEN`]; make one with `head -c 32 /dev/urandom > cluster.key`).
    pub fn from_file(path: &Path) -> Result<ClusterKey, TransportError> {
        let secret = std::fs::read(path).map_err(|error| {
            TransportError::ClusterKey(format!(
                "cannot read the cluster key file {}: {error}",
                path.display()
            ))
        })?;
        ClusterKey::from_secret(&secret).map_err(|error| match error {
            TransportError::ClusterKey(reason) => {
                TransportError::ClusterKey(format!("{}: {reason}", path.display()))
            }
            other => other,
        })
    }

    /// Derives the key from secret bytes (at least [`Self::MIN_SECRET_LEN`]).
    pub fn from_secret(secret: &[u8]) -> Result<ClusterKey, TransportError> {
        if secret.len() < Self::MIN_SECRET_LEN {
            return Err(TransportError::ClusterKey(format!(
                "the secret is {} bytes; it must be at least {} (make one with `head -c 32 /dev/urandom > cluster.key`)",
                secret.len(),
                Self::MIN_SECRET_LEN
            )));
        }
        Ok(ClusterKey(blake3::derive_key(KEY_CONTEXT, secret)))
    }

    /// The proof that the side in `role` holds this key on the session whose
    /// exported keying material is `session`.
    pub(crate) fn proof(&self, session: &[u8; 32], role: Role) -> [u8; 32] {
        let mut input = [0u8; 40];
        input[..32].copy_from_slice(session);
        let role = role.label();
        input[32..32 + role.len()].copy_from_slice(role);
        *blake3::keyed_hash(&self.0, &input[..32 + role.len()]).as_bytes()
    }
}

/// Which side of a connection a proof speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Dialer,
    Acceptor,
}

impl Role {
    fn label(self) -> &'static [u8] {
        match self {
            Role::Dialer => b"dialer",
            Role::Acceptor => b"acceptor",
        }
    }
}

/// Checks the proof that the peer (acting as `peer_role`) sent against this
/// node's key; the error is the reason to give and log.
pub(crate) fn check_proof(
    ours: Option<&ClusterKey>,
    session: &[u8; 32],
    peer_role: Role,
    theirs: Option<[u8; 32]>,
) -> Result<(), String> {
    match (ours, theirs) {
        (None, None) => Ok(()),
        (None, Some(_)) => {
            Err("cluster key mismatch: the peer proves a cluster key but this node has none".into())
        }
        (Some(_), None) => Err(
            "cluster key mismatch: this node requires a cluster key and the peer sent no proof"
                .into(),
        ),
        (Some(key), Some(theirs)) => {
            // blake3::Hash compares in constant time.
            let expected = blake3::Hash::from(key.proof(session, peer_role));
            if expected == blake3::Hash::from(theirs) {
                Ok(())
            } else {
                Err(
                    "cluster key mismatch: the peer's proof does not match this node's cluster key"
                        .into(),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> ClusterKey {
        ClusterKey::from_secret(&[byte; 32]).expect("key")
    }

    #[test]
    fn a_short_secret_is_refused_naming_the_limit() {
        let error = ClusterKey::from_secret(&[1; 31]).expect_err("too short");
        assert!(error.to_string().contains("at least 32"), "{error}");
    }

    #[test]
    fn a_key_file_is_read_as_raw_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cluster.key");
        std::fs::write(&path, [5u8; 40]).expect("write");
        assert_eq!(
            ClusterKey::from_file(&path).expect("key"),
            ClusterKey::from_secret(&[5; 40]).expect("key")
        );
        std::fs::write(&path, b"short").expect("write");
        let error = ClusterKey::from_file(&path).expect_err("short");
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{error}"
        );
        let missing = ClusterKey::from_file(&dir.path().join("missing")).expect_err("missing");
        assert!(missing.to_string().contains("cannot read"), "{missing}");
    }

    #[test]
    fn the_same_key_accepts_the_peers_proof() {
        let session = [3; 32];
        let proof = key(1).proof(&session, Role::Dialer);
        assert!(check_proof(Some(&key(1)), &session, Role::Dialer, Some(proof)).is_ok());
    }

    #[test]
    fn a_proof_cannot_be_reflected_or_replayed() {
        let session = [3; 32];
        let dialer_proof = key(1).proof(&session, Role::Dialer);
        assert!(check_proof(Some(&key(1)), &session, Role::Acceptor, Some(dialer_proof)).is_err());
        assert!(check_proof(Some(&key(1)), &[4; 32], Role::Dialer, Some(dialer_proof)).is_err());
    }

    #[test]
    fn a_different_or_missing_key_is_a_mismatch() {
        let session = [3; 32];
        let proof = key(2).proof(&session, Role::Dialer);
        for result in [
            check_proof(Some(&key(1)), &session, Role::Dialer, Some(proof)),
            check_proof(Some(&key(1)), &session, Role::Dialer, None),
            check_proof(None, &session, Role::Dialer, Some(proof)),
        ] {
            let reason = result.expect_err("mismatch");
            assert!(reason.contains("cluster key mismatch"), "{reason}");
        }
        assert!(check_proof(None, &session, Role::Dialer, None).is_ok());
    }

    #[test]
    fn the_key_is_not_shown_in_debug_output() {
        assert_eq!(format!("{:?}", key(1)), "ClusterKey(..)");
    }
}
