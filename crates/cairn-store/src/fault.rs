//! Fault injection for crash tests: a [`FaultPlan`] shared by the test and
//! the store makes writes fail after a number of them, optionally tearing the
//! failing write (only its first half reaches the file), and makes fsyncs fail.
//!
//! The plan reaches both halves of the store: [`FaultyBackend`] wraps redb's
//! file backend (database page writes and syncs), and the chunk files consult
//! the same plan before each write and fsync. A store opened without a plan
//! pays one branch per write. A plan can also slow every fsync down (a slow
//! disk), to make group commit's batching deterministic in tests.

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};
use std::io;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// When writes and fsyncs fail. All switches can change while the store runs.
#[derive(Debug)]
pub struct FaultPlan {
    /// Writes still allowed before they fail; negative for no limit.
    writes_left: AtomicI64,
    /// Whether the failing write first writes half its bytes.
    tear: AtomicBool,
    /// Whether every fsync fails.
    fail_syncs: AtomicBool,
    /// Faults injected so far, for tests to check that one happened.
    injected: AtomicU64,
    /// Microseconds every fsync sleeps first.
    sync_delay_us: AtomicU64,
}

/// What to do with one write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteFault {
    /// Write it.
    None,
    /// Write nothing and fail.
    Fail,
    /// Write the first half and fail.
    Tear,
}

impl FaultPlan {
    /// A plan that injects nothing until told to.
    pub fn new() -> Arc<FaultPlan> {
        Arc::new(FaultPlan {
            writes_left: AtomicI64::new(-1),
            tear: AtomicBool::new(false),
            fail_syncs: AtomicBool::new(false),
            injected: AtomicU64::new(0),
            sync_delay_us: AtomicU64::new(0),
        })
    }

    /// Lets `writes` more writes through, then fails every later one; with
    /// `tear`, a failing write first writes half of its bytes.
    pub fn fail_after_writes(&self, writes: u64, tear: bool) {
        self.tear.store(tear, Ordering::SeqCst);
        self.writes_left
            .store(i64::try_from(writes).unwrap_or(i64::MAX), Ordering::SeqCst);
    }

    /// Makes every fsync fail (`true`) or succeed again (`false`).
    pub fn fail_syncs(&self, fail: bool) {
        self.fail_syncs.store(fail, Ordering::SeqCst);
    }

    /// Makes every fsync (that goes on to succeed or fail) take at least
    /// `delay` first, like a slow disk. Not a fault: [`FaultPlan::clear`]
    /// leaves it.
    pub fn delay_syncs(&self, delay: std::time::Duration) {
        self.sync_delay_us.store(
            u64::try_from(delay.as_micros()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }

    /// Stops injecting faults.
    pub fn clear(&self) {
        self.writes_left.store(-1, Ordering::SeqCst);
        self.fail_syncs.store(false, Ordering::SeqCst);
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    pub(crate) fn on_write(&self) -> WriteFault {
        let previous = self
            .writes_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                (left > 0).then(|| left - 1)
            });
        match previous {
            // Unlimited (negative) or still allowed.
            Ok(_) => WriteFault::None,
            Err(left) if left < 0 => WriteFault::None,
            Err(_) => {
                self.injected.fetch_add(1, Ordering::SeqCst);
                if self.tear.load(Ordering::SeqCst) {
                    WriteFault::Tear
                } else {
                    WriteFault::Fail
                }
            }
        }
    }

    pub(crate) fn on_sync(&self) -> io::Result<()> {
        let delay = self.sync_delay_us.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_micros(delay));
        }
        if self.fail_syncs.load(Ordering::SeqCst) {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Err(injected_error("fsync"));
        }
        Ok(())
    }
}

pub(crate) fn injected_error(what: &str) -> io::Error {
    io::Error::other(format!("injected {what} failure"))
}

/// redb's file backend with a [`FaultPlan`] in front of writes and syncs.
#[derive(Debug)]
pub(crate) struct FaultyBackend {
    inner: FileBackend,
    plan: Arc<FaultPlan>,
}

impl FaultyBackend {
    pub(crate) fn new(inner: FileBackend, plan: Arc<FaultPlan>) -> FaultyBackend {
        FaultyBackend { inner, plan }
    }
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.plan.on_sync()?;
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        match self.plan.on_write() {
            WriteFault::None => self.inner.write(offset, data),
            WriteFault::Fail => Err(injected_error("write")),
            WriteFault::Tear => {
                self.inner.write(offset, &data[..data.len() / 2])?;
                Err(injected_error("torn write"))
            }
        }
    }

    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

/// The value the crash test writes for a key at a version, derived from both
/// so that the checker can recompute what each acknowledgement promised
/// (shared by the crash-writer binary and its test).
pub fn crash_test_value(key: &str, physical: u64, len: usize) -> Vec<u8> {
    let mut hasher = blake3::Hasher::new();
    hasher.update(key.as_bytes());
    hasher.update(&physical.to_be_bytes());
    let mut out = vec![0u8; len];
    hasher.finalize_xof().fill(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_fail_after_the_allowance_and_syncs_on_demand() {
        let plan = FaultPlan::new();
        assert_eq!(plan.on_write(), WriteFault::None);
        plan.fail_after_writes(2, false);
        assert_eq!(plan.on_write(), WriteFault::None);
        assert_eq!(plan.on_write(), WriteFault::None);
        assert_eq!(plan.on_write(), WriteFault::Fail);
        plan.fail_after_writes(0, true);
        assert_eq!(plan.on_write(), WriteFault::Tear);
        assert!(plan.on_sync().is_ok());
        plan.fail_syncs(true);
        assert!(plan.on_sync().is_err());
        plan.clear();
        assert_eq!(plan.on_write(), WriteFault::None);
        assert!(plan.on_sync().is_ok());
        assert_eq!(plan.injected(), 3);
    }
}
