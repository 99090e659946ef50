//! The node's identity: its ed25519 secret key, kept in `node.key` in the
//! data dir so that a node keeps its id across restarts and address changes.
//!
//! Invariant: an existing key file is never replaced. It is created once,
//! atomically (temp file with mode 0600 in the same directory, write, fsync,
//! move into place, fsync the directory), and afterwards only read. The move
//! is a hard link rather than a rename so that two processes starting on one
//! empty data dir cannot each install a key (rename would replace). A key file that
//! cannot be read or has the wrong size is an error, not a reason to make a
//! new identity.
//!
//! Format of `node.key`: exactly the 32 bytes of the ed25519 secret seed
//! (RFC 8032), nothing else. The public key and the node id are derived from
//! it.

use ed25519_dalek::SigningKey;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The name of the key file inside the data dir.
pub const NODE_KEY_FILE: &str = "node.key";
/// The size of the key file: one raw ed25519 secret seed.
pub const NODE_KEY_LEN: usize = 32;

/// Why the node key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot create the data dir {path}: {source}")]
    CreateDataDir { path: PathBuf, source: io::Error },
    #[error(
        "cannot read the node key {path}: {source} (check its permissions; the node will not make a new identity over an existing key)"
    )]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "the node key {path} is {len} bytes, expected exactly {expected} (a raw ed25519 secret seed); restore it from a backup, or move it away to start this node with a new id"
    )]
    WrongSize {
        path: PathBuf,
        len: u64,
        expected: usize,
    },
    #[error("cannot write the new node key {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot get random bytes for a new node key: {reason}")]
    Random { reason: String },
}

/// Loads the node's signing key from `data_dir/node.key`, creating the data
/// dir and a fresh random key on first start.
pub fn load_or_create_node_key(data_dir: &Path) -> Result<SigningKey, IdentityError> {
    fs::create_dir_all(data_dir).map_err(|source| IdentityError::CreateDataDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let path = data_dir.join(NODE_KEY_FILE);
    match File::open(&path) {
        Ok(file) => read_key(&path, file),
        Err(error) if error.kind() == io::ErrorKind::NotFound => create_key(data_dir, &path),
        Err(source) => Err(IdentityError::Read { path, source }),
    }
}

fn read_key(path: &Path, file: File) -> Result<SigningKey, IdentityError> {
    let read_error = |source| IdentityError::Read {
        path: path.to_path_buf(),
        source,
    };
    let len = file.metadata().map_err(read_error)?.len();
    if len != NODE_KEY_LEN as u64 {
        return Err(IdentityError::WrongSize {
            path: path.to_path_buf(),
            len,
            expected: NODE_KEY_LEN,
        });
    }
    let mut seed = [0u8; NODE_KEY_LEN];
    (&file).read_exact(&mut seed).map_err(read_error)?;
    Ok(SigningKey::from_bytes(&seed))
}

fn create_key(data_dir: &Path, path: &Path) -> Result<SigningKey, IdentityError> {
    let mut seed = [0u8; NODE_KEY_LEN];
    getrandom::fill(&mut seed).map_err(|error| IdentityError::Random {
        reason: error.to_string(),
    })?;
    let write_error = |source| IdentityError::Write {
        path: path.to_path_buf(),
        source,
    };
    let temp_path = data_dir.join(format!(".{NODE_KEY_FILE}.tmp"));
    // A leftover temp file from a crash mid-creation holds no identity anyone
    // knows (it was never renamed into place): start it over.
    let mut temp = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp_path)
        .map_err(write_error)?;
    let written = temp
        .write_all(&seed)
        .and_then(|()| temp.sync_all())
        .and_then(|()| {
            // A temp file left by an earlier crash keeps its old mode: set it.
            use std::os::unix::fs::PermissionsExt;
            temp.set_permissions(fs::Permissions::from_mode(0o600))
        });
    drop(temp);
    if let Err(source) = written {
        let _ = fs::remove_file(&temp_path);
        return Err(write_error(source));
    }
    // Two processes starting on the same empty data dir must not each install
    // a key: hard_link fails if node.key appeared meanwhile, where rename would
    // silently replace it.
    match fs::hard_link(&temp_path, path) {
        Ok(()) => {
            let _ = fs::remove_file(&temp_path);
        }
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            let _ = fs::remove_file(&temp_path);
            let file = File::open(path).map_err(|source| IdentityError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            return read_key(path, file);
        }
        Err(_) => {
            // Some filesystems have no hard links: fall back to rename.
            fs::rename(&temp_path, path).map_err(write_error)?;
        }
    }
    File::open(data_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(write_error)?;
    Ok(SigningKey::from_bytes(&seed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn second_start_loads_the_same_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let first = load_or_create_node_key(&data_dir).expect("create");
        let second = load_or_create_node_key(&data_dir).expect("load");
        assert_eq!(first.to_bytes(), second.to_bytes());
        let on_disk = fs::read(data_dir.join(NODE_KEY_FILE)).expect("read");
        assert_eq!(on_disk, first.to_bytes());
        assert!(!data_dir.join(".node.key.tmp").exists());
    }

    #[test]
    fn new_key_file_is_private_to_its_owner() {
        let dir = tempfile::tempdir().expect("tempdir");
        load_or_create_node_key(dir.path()).expect("create");
        let mode = fs::metadata(dir.path().join(NODE_KEY_FILE))
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn two_data_dirs_get_different_keys() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        let key_a = load_or_create_node_key(a.path()).expect("a");
        let key_b = load_or_create_node_key(b.path()).expect("b");
        assert_ne!(key_a.to_bytes(), key_b.to_bytes());
    }

    #[test]
    fn corrupt_key_file_is_an_error_and_left_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(NODE_KEY_FILE);
        let corrupt = b"not a key".to_vec();
        fs::write(&path, &corrupt).expect("write");
        let error = load_or_create_node_key(dir.path()).expect_err("must refuse");
        assert!(matches!(error, IdentityError::WrongSize { len: 9, .. }));
        assert!(error.to_string().contains(&path.display().to_string()));
        assert_eq!(fs::read(&path).expect("read"), corrupt);
    }

    #[test]
    fn empty_key_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(NODE_KEY_FILE);
        fs::write(&path, b"").expect("write");
        assert!(matches!(
            load_or_create_node_key(dir.path()),
            Err(IdentityError::WrongSize { len: 0, .. })
        ));
        assert_eq!(fs::read(&path).expect("read").len(), 0);
    }
}
