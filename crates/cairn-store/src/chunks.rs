//! Chunk files: `chunks/ab/<64 hex>`, named by the chunk id (BLAKE3 of the
//! bytes), so that a chunk verifies itself.
//!
//! Invariants:
//! - A file under a final name is complete: bytes go to a temporary file in
//!   the same directory (same filesystem), which is fsynced, renamed into
//!   place, and the directory fsynced. A crash leaves at worst a temporary
//!   file, which [`ChunkFiles::open`]'s sweep removes.
//! - Bytes are returned only after they hash to the id. A file that does not
//!   (or that is longer than [`MAX_CHUNK_LEN`], which is then not read into
//!   memory at all) is reported as corrupt, never returned; the store deletes
//!   it under the chunk's lock (see [`crate::disk`]).
//!
//! This module is the file half only; which chunks are held, their lengths
//! and last-referenced times live in the chunk index in redb
//! ([`crate::RedbStore`]), which is written after the file is durable.

use crate::fault::{FaultPlan, WriteFault, injected_error};
use crate::store::MAX_CHUNK_LEN;
use cairn_core::id::{ChunkId, Id};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The chunk directory's name in the data dir.
pub const CHUNKS_DIR: &str = "chunks";
const TEMP_MARK: &str = ".tmp-";

/// A read that found the chunk's file.
#[derive(Debug)]
pub(crate) enum ChunkRead {
    /// The bytes, checked against the id.
    Verified(Vec<u8>),
    /// The file did not match its id, or was longer than any chunk can be.
    Corrupt,
}

/// The chunk files of one data dir.
#[derive(Debug)]
pub(crate) struct ChunkFiles {
    root: PathBuf,
    faults: Option<Arc<FaultPlan>>,
    /// Makes temporary names unique among this process's concurrent writers.
    next_temp: AtomicU64,
}

/// An io error with the path it concerns.
pub(crate) type PathError = (PathBuf, io::Error);

impl ChunkFiles {
    /// Opens (creating) `data_dir/chunks` with its 256 fan-out directories,
    /// and removes temporary files left by a crash.
    pub(crate) fn open(
        data_dir: &Path,
        faults: Option<Arc<FaultPlan>>,
    ) -> Result<ChunkFiles, PathError> {
        let root = data_dir.join(CHUNKS_DIR);
        let with_path = |path: &Path| {
            let path = path.to_path_buf();
            move |error| (path, error)
        };
        let mut created_any = false;
        for byte in 0..=255u8 {
            let dir = root.join(format!("{byte:02x}"));
            if !dir.is_dir() {
                fs::create_dir_all(&dir).map_err(with_path(&dir))?;
                created_any = true;
            }
            for entry in fs::read_dir(&dir).map_err(with_path(&dir))? {
                let entry = entry.map_err(with_path(&dir))?;
                let name = entry.file_name();
                if name.to_string_lossy().contains(TEMP_MARK) {
                    fs::remove_file(entry.path()).map_err(with_path(&entry.path()))?;
                }
            }
        }
        if created_any {
            sync_dir(&root).map_err(with_path(&root))?;
            sync_dir(data_dir).map_err(with_path(data_dir))?;
        }
        Ok(ChunkFiles {
            root,
            faults,
            next_temp: AtomicU64::new(0),
        })
    }

    /// Where a chunk's file lives.
    pub(crate) fn path(&self, id: ChunkId) -> PathBuf {
        let hex = id.0.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }

    /// The length of the chunk's file, if there is one.
    pub(crate) fn file_len(&self, id: ChunkId) -> Result<Option<u64>, PathError> {
        let path = self.path(id);
        match fs::metadata(&path) {
            Ok(metadata) => Ok(Some(metadata.len())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err((path, error)),
        }
    }

    /// Writes a chunk durably under its final name: temporary file, fsync,
    /// rename, fsync of the directory.
    pub(crate) fn write(&self, id: ChunkId, bytes: &[u8]) -> Result<(), PathError> {
        let path = self.path(id);
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let temp = dir.join(format!(
            "{}{TEMP_MARK}{}-{}",
            id.0.to_hex(),
            std::process::id(),
            self.next_temp.fetch_add(1, Ordering::Relaxed)
        ));
        let written = self.write_temp(&temp, bytes);
        if let Err(error) = written {
            let _ = fs::remove_file(&temp);
            return Err((temp, error));
        }
        if let Err(error) = fs::rename(&temp, &path) {
            let _ = fs::remove_file(&temp);
            return Err((path, error));
        }
        self.sync_dir(&dir).map_err(|error| (dir, error))
    }

    fn write_temp(&self, temp: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut file = OpenOptions::new().write(true).create_new(true).open(temp)?;
        match self
            .faults
            .as_ref()
            .map_or(WriteFault::None, |f| f.on_write())
        {
            WriteFault::None => file.write_all(bytes)?,
            WriteFault::Fail => return Err(injected_error("write")),
            WriteFault::Tear => {
                file.write_all(&bytes[..bytes.len() / 2])?;
                return Err(injected_error("torn write"));
            }
        }
        if let Some(faults) = &self.faults {
            faults.on_sync()?;
        }
        file.sync_all()
    }

    /// Reads and checks a chunk: `None` if there is no file, `Corrupt` if it
    /// does not hash to its id or is longer than [`MAX_CHUNK_LEN`] (such a
    /// file is not read). The file is left in place either way.
    pub(crate) fn read(&self, id: ChunkId) -> Result<Option<ChunkRead>, PathError> {
        let path = self.path(id);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err((path, error)),
        };
        let len = file
            .metadata()
            .map_err(|error| (path.clone(), error))?
            .len();
        if len > MAX_CHUNK_LEN as u64 {
            return Ok(Some(ChunkRead::Corrupt));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        // take: a file that grows after the length check is still bounded.
        file.take(MAX_CHUNK_LEN as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|error| (path.clone(), error))?;
        if bytes.len() <= MAX_CHUNK_LEN && ChunkId::of_bytes(&bytes) == id {
            return Ok(Some(ChunkRead::Verified(bytes)));
        }
        Ok(Some(ChunkRead::Corrupt))
    }

    /// True if the chunk's file is there, `len` bytes long, and hashes to its id.
    pub(crate) fn holds(&self, id: ChunkId, len: u64) -> Result<bool, PathError> {
        if self.file_len(id)? != Some(len) {
            return Ok(false);
        }
        Ok(matches!(self.read(id)?, Some(ChunkRead::Verified(_))))
    }

    /// Deletes a chunk's file durably; false if there was none.
    pub(crate) fn remove(&self, id: ChunkId) -> Result<bool, PathError> {
        let path = self.path(id);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err((path, error)),
        }
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        self.sync_dir(&dir).map_err(|error| (dir, error))?;
        Ok(true)
    }

    /// Every chunk id with a file under its final name, in id order.
    pub(crate) fn list_files(&self) -> Result<Vec<ChunkId>, PathError> {
        let mut ids = Vec::new();
        for byte in 0..=255u8 {
            let dir = self.root.join(format!("{byte:02x}"));
            for entry in fs::read_dir(&dir).map_err(|error| (dir.clone(), error))? {
                let entry = entry.map_err(|error| (dir.clone(), error))?;
                if let Some(name) = entry.file_name().to_str()
                    && let Ok(id) = Id::from_hex(name)
                {
                    ids.push(ChunkId(id));
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if let Some(faults) = &self.faults {
            faults.on_sync()?;
        }
        sync_dir(dir)
    }
}

/// Fsyncs a directory, so that a rename or removal in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> (tempfile::TempDir, ChunkFiles) {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = ChunkFiles::open(dir.path(), None).expect("open");
        (dir, files)
    }

    #[test]
    fn a_written_chunk_reads_back_under_its_hex_name() {
        let (_dir, files) = files();
        let bytes = b"some chunk bytes".to_vec();
        let id = ChunkId::of_bytes(&bytes);
        files.write(id, &bytes).expect("write");
        let path = files.path(id);
        let hex = id.0.to_hex();
        assert!(path.ends_with(format!("{}/{}", &hex[..2], hex)));
        match files.read(id).expect("read") {
            Some(ChunkRead::Verified(back)) => assert_eq!(back, bytes),
            other => panic!("expected the bytes, got {other:?}"),
        }
        assert_eq!(files.list_files().expect("list"), vec![id]);
    }

    #[test]
    fn a_flipped_byte_is_detected() {
        let (_dir, files) = files();
        let bytes = vec![7u8; 4096];
        let id = ChunkId::of_bytes(&bytes);
        files.write(id, &bytes).expect("write");
        let mut damaged = fs::read(files.path(id)).expect("read file");
        damaged[1234] ^= 0x01;
        fs::write(files.path(id), &damaged).expect("damage");
        assert!(matches!(files.read(id), Ok(Some(ChunkRead::Corrupt))));
        assert!(!files.holds(id, 4096).expect("holds"));
        assert!(files.remove(id).expect("remove"));
        assert!(files.read(id).expect("read again").is_none());
    }

    #[test]
    fn a_file_longer_than_any_chunk_is_corrupt() {
        let (_dir, files) = files();
        let id = ChunkId::of_bytes(b"small");
        let file = File::create(files.path(id)).expect("create");
        // Sparse: a large file costs nothing on disk, and must cost nothing
        // in memory either.
        file.set_len(MAX_CHUNK_LEN as u64 + 1).expect("set_len");
        assert!(matches!(files.read(id), Ok(Some(ChunkRead::Corrupt))));
    }

    #[test]
    fn a_same_length_file_with_other_bytes_is_not_held() {
        let (_dir, files) = files();
        let bytes = vec![8u8; 1000];
        let id = ChunkId::of_bytes(&bytes);
        files.write(id, &bytes).expect("write");
        assert!(files.holds(id, 1000).expect("holds"));
        fs::write(files.path(id), vec![9u8; 1000]).expect("damage");
        assert!(!files.holds(id, 1000).expect("holds"));
    }

    #[test]
    fn temporary_files_are_swept_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = ChunkFiles::open(dir.path(), None).expect("open");
        let id = ChunkId::of_bytes(b"x");
        let temp = files
            .path(id)
            .with_file_name(format!("{}{TEMP_MARK}1-0", id.0.to_hex()));
        fs::write(&temp, b"half").expect("temp");
        drop(files);
        let files = ChunkFiles::open(dir.path(), None).expect("reopen");
        assert!(!temp.exists());
        assert!(files.list_files().expect("list").is_empty());
    }

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plan = FaultPlan::new();
        let files = ChunkFiles::open(dir.path(), Some(plan.clone())).expect("open");
        let bytes = vec![1u8; 1000];
        let id = ChunkId::of_bytes(&bytes);
        plan.fail_after_writes(0, true);
        assert!(files.write(id, &bytes).is_err());
        plan.clear();
        plan.fail_syncs(true);
        assert!(files.write(id, &bytes).is_err());
        assert!(files.read(id).expect("read").is_none());
        let left: Vec<_> = fs::read_dir(files.path(id).parent().expect("dir"))
            .expect("list")
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}
