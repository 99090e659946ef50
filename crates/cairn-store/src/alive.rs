//! When this node was last alive, kept in the data dir (`alive`: the wall
//! clock in ms since the UNIX epoch, as decimal text), so that a node that
//! comes back after longer than the tombstone grace knows it.

use std::path::Path;

/// The file's name in the data dir.
pub const ALIVE_FILE: &str = "alive";

/// The last time written, if the file is there and readable.
pub fn last_alive_ms(dir: &Path) -> Option<u64> {
    std::fs::read_to_string(dir.join(ALIVE_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Writes `wall_ms` (through a temporary file and a rename: never half a number).
pub fn mark_alive(dir: &Path, wall_ms: u64) -> std::io::Result<()> {
    let temporary = dir.join(format!("{ALIVE_FILE}.tmp"));
    std::fs::write(&temporary, wall_ms.to_string())?;
    std::fs::rename(&temporary, dir.join(ALIVE_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_reads_back_and_a_missing_or_bad_file_reads_as_none() {
        let dir = tempfile::tempdir().expect("dir");
        assert_eq!(last_alive_ms(dir.path()), None);
        mark_alive(dir.path(), 1_234).expect("write");
        assert_eq!(last_alive_ms(dir.path()), Some(1_234));
        std::fs::write(dir.path().join(ALIVE_FILE), "garbage").expect("write");
        assert_eq!(last_alive_ms(dir.path()), None);
    }
}
