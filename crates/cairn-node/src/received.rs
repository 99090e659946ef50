//! What replication moved to this node: the records (and their key and
//! value bytes, as the store counts them) that arrived in peers' `Store` and
//! `StoreMany` requests, and in answers to this node's own `Fetch` requests.
//! Shown in `GET /v1/node` as `received`, so that a benchmark can compare
//! what a newcomer was sent with what it must hold.
//!
//! Counted as they arrive, before the core looks at them: a record refused
//! or older than the stored one still counts (it was moved all the same).

use cairn_core::api::ReceivedTotals;
use cairn_core::record::Record;
use cairn_core::wire::{Request, Response};
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters since the node started; updated from any task without a lock.
#[derive(Debug, Default)]
pub struct ReceivedCounter {
    pushed_records: AtomicU64,
    pushed_bytes: AtomicU64,
    fetched_records: AtomicU64,
    fetched_bytes: AtomicU64,
}

impl ReceivedCounter {
    /// Counts the records a peer's request carries (`Store`, `StoreMany`;
    /// other requests carry none).
    pub fn count_request(&self, request: &Request) {
        let records: &[Record] = match request {
            Request::Store { record } => std::slice::from_ref(record.as_ref()),
            Request::StoreMany { records } => records,
            _ => return,
        };
        add(&self.pushed_records, &self.pushed_bytes, records);
    }

    /// Counts the record a peer answered to this node's `Fetch` (anti-entropy
    /// pulls, and the reads this node coordinates).
    pub fn count_response(&self, response: &Response) {
        if let Response::Record {
            record: Some(record),
        } = response
        {
            add(
                &self.fetched_records,
                &self.fetched_bytes,
                std::slice::from_ref(record.as_ref()),
            );
        }
    }

    /// The totals so far.
    pub fn totals(&self) -> ReceivedTotals {
        let pushed_records = self.pushed_records.load(Ordering::Relaxed);
        let pushed_bytes = self.pushed_bytes.load(Ordering::Relaxed);
        let fetched_records = self.fetched_records.load(Ordering::Relaxed);
        let fetched_bytes = self.fetched_bytes.load(Ordering::Relaxed);
        ReceivedTotals {
            records: pushed_records + fetched_records,
            bytes: pushed_bytes + fetched_bytes,
            fetched_records,
            fetched_bytes,
        }
    }
}

fn add(count: &AtomicU64, bytes: &AtomicU64, records: &[Record]) {
    let sum: u64 = records.iter().map(Record::stored_bytes).sum();
    count.fetch_add(records.len() as u64, Ordering::Relaxed);
    bytes.fetch_add(sum, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::id::{Id, KeyId, NodeId};
    use cairn_core::version::{HlcTimestamp, Version};

    fn version() -> Version {
        let timestamp = HlcTimestamp {
            physical_ms: 1,
            logical: 0,
        };
        Version::new(timestamp, NodeId(Id([7; 32])))
    }

    /// A record of `key` with a value of `len` bytes.
    fn record(key: &str, len: usize) -> Record {
        Record::value(key.as_bytes(), version(), vec![b'v'; len])
    }

    #[test]
    fn store_and_store_many_count_their_records_key_and_value_bytes() {
        let counter = ReceivedCounter::default();
        counter.count_request(&Request::Store {
            record: Box::new(record("k1", 64)),
        });
        counter.count_request(&Request::StoreMany {
            records: vec![record("key2", 10), record("k3", 0)],
        });
        let totals = counter.totals();
        assert_eq!(totals.records, 3);
        assert_eq!(totals.bytes, (2 + 64) + (4 + 10) + 2);
        assert_eq!((totals.fetched_records, totals.fetched_bytes), (0, 0));
    }

    #[test]
    fn a_tombstone_counts_as_a_record_of_its_key_bytes() {
        let counter = ReceivedCounter::default();
        counter.count_request(&Request::StoreMany {
            records: vec![Record::tombstone(b"gone", version())],
        });
        assert_eq!(counter.totals().records, 1);
        assert_eq!(counter.totals().bytes, 4);
    }

    #[test]
    fn fetched_records_count_in_the_totals_and_apart() {
        let counter = ReceivedCounter::default();
        counter.count_request(&Request::Store {
            record: Box::new(record("a", 1)),
        });
        counter.count_response(&Response::Record {
            record: Some(Box::new(record("bb", 8))),
        });
        counter.count_response(&Response::Record { record: None });
        let totals = counter.totals();
        assert_eq!((totals.records, totals.bytes), (2, 2 + 10));
        assert_eq!((totals.fetched_records, totals.fetched_bytes), (1, 10));
    }

    #[test]
    fn other_messages_count_nothing() {
        let counter = ReceivedCounter::default();
        counter.count_request(&Request::Ping);
        counter.count_request(&Request::Fetch {
            key_id: KeyId::of_key(b"k"),
        });
        counter.count_response(&Response::Stored { won: true });
        counter.count_response(&Response::Ack);
        assert_eq!(counter.totals(), ReceivedTotals::default());
    }
}
