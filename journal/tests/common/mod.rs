//! Helpers shared by the journal's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use sequent_journal::{Config, Durability};

/// A fresh directory under the target's temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("sequent-journal-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Small segments (two pages of records) so tests cross many segment boundaries.
pub fn small_config(durability: Durability) -> Config {
    Config {
        segment_len: 4 * 4096,
        durability,
        journal_id: Some(*b"sequent-test-id!"),
    }
}

pub fn group_commit() -> Durability {
    Durability::GroupCommit {
        records: 8,
        interval: Duration::from_millis(1),
    }
}

/// The deterministic payload of record `sequence`: its length varies from 0 to 300 bytes.
pub fn payload(sequence: u64) -> Vec<u8> {
    let len = (sequence.wrapping_mul(2_654_435_761) % 301) as usize;
    (0..len)
        .map(|i| (sequence as u8).wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

pub fn kind(sequence: u64) -> u8 {
    1 + (sequence % 7) as u8
}
