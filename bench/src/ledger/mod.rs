//! `sequent-bench ledger`: transfers/s through one `sequent_ledger::Ledger` on one pinned core,
//! in batches, in memory and with every batch made durable through the journal first (one
//! record per batch, then `sync`: group commit), with per-batch latency percentiles; and the
//! same workload against PostgreSQL with a conventional double-entry schema (accounts and
//! transfers tables, one transaction per batch, row locks taken by the balance `UPDATE`s),
//! driven through `psql` from a throwaway cluster that `tools/pg-bench-setup.sh` starts. A third
//! mode pipelines the durable path: the journal syncs batch N while batch N+1 applies.
//!
//! The workload is seeded: random debit and credit among `accounts` accounts of one ledger, no
//! limit flags, amounts 1..=1000, unique ids. Memory per account and per stored transfer is
//! measured by the caller's allocator around two ledger constructions of different sizes (every
//! store is allocated at construction). Each mode's ledger maps its stores before the clock
//! starts (`Ledger::prefault`, as a long-lived node does at start-up) unless `prefault` is off.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use hdrhistogram::Histogram;
use sequent_ledger::{Account, AccountFlags, Config, Ledger, Outcome, Transfer};

/// What one run measures.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    pub accounts: u32,
    pub transfers: u32,
    pub batch: usize,
    /// Where the journal goes (a fresh directory under it).
    pub journal_dir: PathBuf,
    /// Transfers for PostgreSQL (fewer: it is much slower); 0 skips it.
    pub pg_transfers: u32,
    /// `tools/pg-bench-setup.sh`.
    pub pg_script: PathBuf,
    pub seed: u64,
    /// Map the ledger's stores at start-up (`Ledger::prefault`), as a long-lived node does,
    /// rather than page by page as the apply first writes them.
    pub prefault: bool,
}

/// One measured mode.
#[derive(Debug, Clone)]
pub struct ModeResult {
    pub name: &'static str,
    pub transfers: u64,
    pub seconds: f64,
    pub per_sec: f64,
    /// Per-batch latency percentiles (p50, p99, p99.9, max) in ns; `None` where not measured.
    pub batch_ns: Option<[u64; 4]>,
}

/// A whole run.
#[derive(Debug, Clone)]
pub struct LedgerReport {
    pub modes: Vec<ModeResult>,
    /// Why PostgreSQL was skipped, if it was.
    pub pg_skipped: Option<String>,
    pub bytes_per_account: f64,
    pub bytes_per_transfer: f64,
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// The seeded workload.
pub fn workload(accounts: u32, transfers: u32, seed: u64) -> Vec<Transfer> {
    let mut s = seed | 1;
    (0..transfers)
        .map(|i| {
            let debit = 1 + xorshift(&mut s) % u64::from(accounts);
            let mut credit = 1 + xorshift(&mut s) % u64::from(accounts);
            if credit == debit {
                credit = debit % u64::from(accounts) + 1;
            }
            Transfer {
                id: u128::from(i) + 1,
                debit_account_id: u128::from(debit),
                credit_account_id: u128::from(credit),
                amount: u128::from(1 + xorshift(&mut s) % 1000),
                ledger: 1,
                code: 1,
                ..Transfer::default()
            }
        })
        .collect()
}

/// A ledger sized for `transfers`, with accounts 1..=`accounts` of ledger 1 created; its stores
/// mapped first with `prefault` (`Ledger::prefault`).
pub fn ledger_with_accounts(accounts: u32, transfers: u32, prefault: bool) -> Ledger {
    let mut ledger = Ledger::new(Config {
        accounts_max: accounts,
        transfers_max: transfers,
    });
    if prefault {
        ledger.prefault();
    }
    for id in 1..=accounts {
        let account = Account {
            id: u128::from(id),
            ledger: 1,
            code: 1,
            flags: AccountFlags::default(),
            parent: 0,
            user_data: 0,
        };
        assert_eq!(ledger.create_account(0, &account), Outcome::Ok);
    }
    ledger
}

/// Bytes of one transfer in a journal record.
const RECORD_TRANSFER_BYTES: usize = 128;

/// A batch as one journal record: 8 × 16-byte little-endian fields per transfer. Sized once and
/// written in place: a per-field `extend_from_slice` checked the capacity 8 times a transfer.
fn encode(batch: &[Transfer], out: &mut Vec<u8>) {
    out.clear();
    out.resize(batch.len() * RECORD_TRANSFER_BYTES, 0);
    for (t, record) in batch
        .iter()
        .zip(out.chunks_exact_mut(RECORD_TRANSFER_BYTES))
    {
        let fields = [
            t.id,
            t.debit_account_id,
            t.credit_account_id,
            t.amount,
            t.pending_id,
            t.user_data,
            u128::from(t.timeout_ns),
            u128::from(t.ledger) | u128::from(t.code) << 32 | u128::from(t.flags.0) << 48,
        ];
        for (v, field) in fields.iter().zip(record.chunks_exact_mut(16)) {
            field.copy_from_slice(&v.to_le_bytes());
        }
    }
}

/// Durable mode, pipelined: batch N is appended and applied while the journal's housekeeping
/// thread syncs earlier batches (`Durability::GroupCommit`); a batch counts as done (its latency
/// ends) when the durable sequence covers its record, and the run ends when the last one is
/// durable. Nothing is acknowledged before it is on disk; the apply and the fsync overlap.
fn run_pipelined(
    config: &LedgerConfig,
    work: &[Transfer],
    dir: &Path,
) -> anyhow::Result<ModeResult> {
    let mut ledger = ledger_with_accounts(config.accounts, config.transfers, config.prefault);
    let _ = std::fs::remove_dir_all(dir);
    let journal_config = sequent_journal::Config {
        durability: sequent_journal::Durability::GroupCommit {
            records: 1,
            interval: std::time::Duration::from_millis(1),
        },
        ..sequent_journal::Config::default()
    };
    let mut writer = sequent_journal::Writer::open(dir, &journal_config)?;
    let mut outcomes = Vec::with_capacity(config.batch);
    let mut bytes = Vec::with_capacity(config.batch * 128);
    let mut histogram = Histogram::<u64>::new(3)?;
    let mut waiting = std::collections::VecDeque::new();
    let started = Instant::now();
    for (i, batch) in work.chunks(config.batch).enumerate() {
        let t0 = Instant::now();
        encode(batch, &mut bytes);
        let seq = writer.append(3, i as u64, &bytes)?;
        waiting.push_back((seq, t0));
        outcomes.clear();
        ledger.create_transfers(i as u64, batch, &mut outcomes);
        assert!(outcomes.iter().all(|o| *o == Outcome::Ok));
        let durable = writer.durable_sequence();
        while waiting.front().is_some_and(|(s, _)| *s <= durable) {
            if let Some((_, t)) = waiting.pop_front() {
                histogram.record(t.elapsed().as_nanos() as u64)?;
            }
        }
    }
    let durable = writer.sync()?;
    for (s, t) in waiting.drain(..) {
        assert!(s <= durable);
        histogram.record(t.elapsed().as_nanos() as u64)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    writer.close()?;
    Ok(ModeResult {
        name: "sequent-ledger, journal group commit pipelined (fsync overlaps the next batch)",
        transfers: work.len() as u64,
        seconds,
        per_sec: work.len() as f64 / seconds,
        batch_ns: Some([
            histogram.value_at_quantile(0.5),
            histogram.value_at_quantile(0.99),
            histogram.value_at_quantile(0.999),
            histogram.max(),
        ]),
    })
}

fn run_engine(
    config: &LedgerConfig,
    work: &[Transfer],
    journal: Option<&Path>,
) -> anyhow::Result<ModeResult> {
    let mut ledger = ledger_with_accounts(config.accounts, config.transfers, config.prefault);
    let mut writer = match journal {
        Some(dir) => {
            let _ = std::fs::remove_dir_all(dir);
            Some(sequent_journal::Writer::open(
                dir,
                &sequent_journal::Config::default(),
            )?)
        }
        None => None,
    };
    let mut outcomes = Vec::with_capacity(config.batch);
    let mut bytes = Vec::with_capacity(config.batch * 128);
    let mut histogram = Histogram::<u64>::new(3)?;
    let started = Instant::now();
    for (i, batch) in work.chunks(config.batch).enumerate() {
        let t0 = Instant::now();
        if let Some(w) = writer.as_mut() {
            // Durable first: the batch is on disk before it has any effect.
            encode(batch, &mut bytes);
            w.append(3, i as u64, &bytes)?;
            w.sync()?;
        }
        outcomes.clear();
        ledger.create_transfers(i as u64, batch, &mut outcomes);
        histogram.record(t0.elapsed().as_nanos() as u64)?;
        assert!(outcomes.iter().all(|o| *o == Outcome::Ok));
    }
    let seconds = started.elapsed().as_secs_f64();
    if let Some(w) = writer {
        w.close()?;
    }
    Ok(ModeResult {
        name: if journal.is_some() {
            "sequent-ledger, journal group commit (fsync per batch)"
        } else {
            "sequent-ledger, in memory"
        },
        transfers: work.len() as u64,
        seconds,
        per_sec: work.len() as f64 / seconds,
        batch_ns: Some([
            histogram.value_at_quantile(0.5),
            histogram.value_at_quantile(0.99),
            histogram.value_at_quantile(0.999),
            histogram.max(),
        ]),
    })
}

/// Starts PostgreSQL with the script and runs the workload's first `pg_transfers` through it.
fn run_postgres(config: &LedgerConfig, work: &[Transfer]) -> Result<ModeResult, String> {
    let dir = config.journal_dir.join("pg");
    let _ = std::fs::remove_dir_all(&dir);
    let port = "55432";
    let setup = Command::new("bash")
        .arg(&config.pg_script)
        .arg("start")
        .arg(&dir)
        .arg(port)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", config.pg_script.display()))?;
    if !setup.status.success() {
        return Err(format!(
            "{} failed: {}",
            config.pg_script.display(),
            String::from_utf8_lossy(&setup.stderr).trim()
        ));
    }
    let result = pg_workload(config, work, port);
    let _ = Command::new("bash")
        .arg(&config.pg_script)
        .arg("stop")
        .arg(&dir)
        .output();
    result
}

fn psql(port: &str, sql: &str) -> Result<f64, String> {
    let started = Instant::now();
    let mut child = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-U",
            "bench",
            "-d",
            "postgres",
        ])
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(sql.as_bytes())
        .map_err(|e| format!("cannot write to psql: {e}"))?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "psql: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(started.elapsed().as_secs_f64())
}

fn pg_workload(config: &LedgerConfig, work: &[Transfer], port: &str) -> Result<ModeResult, String> {
    let schema = format!(
        "CREATE TABLE accounts (id bigint PRIMARY KEY, ledger int NOT NULL, code int NOT NULL,
           debits_posted numeric NOT NULL DEFAULT 0, credits_posted numeric NOT NULL DEFAULT 0,
           debits_pending numeric NOT NULL DEFAULT 0, credits_pending numeric NOT NULL DEFAULT 0);
         CREATE TABLE transfers (id bigint PRIMARY KEY, debit_account bigint NOT NULL REFERENCES accounts,
           credit_account bigint NOT NULL REFERENCES accounts, amount numeric NOT NULL CHECK (amount > 0),
           ledger int NOT NULL, code int NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
         INSERT INTO accounts (id, ledger, code) SELECT g, 1, 1 FROM generate_series(1, {}) g;",
        config.accounts
    );
    psql(port, &schema)?;
    let mut sql = String::with_capacity(work.len() * 220);
    for batch in work.chunks(config.batch) {
        sql.push_str("BEGIN;\n");
        for t in batch {
            use std::fmt::Write as _;
            let _ = write!(
                sql,
                "INSERT INTO transfers (id, debit_account, credit_account, amount, ledger, code) VALUES ({}, {}, {}, {}, 1, 1);\n\
                 UPDATE accounts SET debits_posted = debits_posted + {} WHERE id = {};\n\
                 UPDATE accounts SET credits_posted = credits_posted + {} WHERE id = {};\n",
                t.id,
                t.debit_account_id,
                t.credit_account_id,
                t.amount,
                t.amount,
                t.debit_account_id,
                t.amount,
                t.credit_account_id
            );
        }
        sql.push_str("COMMIT;\n");
    }
    let seconds = psql(port, &sql)?;
    Ok(ModeResult {
        name: "PostgreSQL 2-table schema via psql (one transaction per batch)",
        transfers: work.len() as u64,
        seconds,
        per_sec: work.len() as f64 / seconds,
        batch_ns: None,
    })
}

/// Runs every mode. `live_bytes` reads the allocator's live byte count.
pub fn run(config: &LedgerConfig, live_bytes: fn() -> i64) -> anyhow::Result<LedgerReport> {
    // Memory: every store is allocated at construction, so the difference between two sizes is
    // the cost per slot.
    let measure = |accounts: u32, transfers: u32| {
        let before = live_bytes();
        let ledger = Ledger::new(Config {
            accounts_max: accounts,
            transfers_max: transfers,
        });
        let bytes = live_bytes() - before;
        drop(ledger);
        bytes as f64
    };
    let base = measure(1 << 10, 1 << 10);
    let bytes_per_account =
        (measure(1 << 20, 1 << 10) - base) / f64::from((1u32 << 20) - (1 << 10));
    let bytes_per_transfer =
        (measure(1 << 10, 1 << 20) - base) / f64::from((1u32 << 20) - (1 << 10));

    let work = workload(config.accounts, config.transfers, config.seed);
    let _ = core_affinity::get_core_ids()
        .and_then(|ids| ids.last().copied())
        .map(core_affinity::set_for_current);
    let mut modes = vec![run_engine(config, &work, None)?];
    let journal = config.journal_dir.join("journal");
    modes.push(run_engine(config, &work, Some(&journal))?);
    modes.push(run_pipelined(config, &work, &journal)?);
    let _ = std::fs::remove_dir_all(&journal);
    let mut pg_skipped = None;
    if config.pg_transfers == 0 {
        pg_skipped = Some("--pg-transfers 0".to_owned());
    } else {
        let n = (config.pg_transfers as usize).min(work.len());
        match run_postgres(config, &work[..n]) {
            Ok(mode) => modes.push(mode),
            Err(why) => pg_skipped = Some(why),
        }
    }
    Ok(LedgerReport {
        modes,
        pg_skipped,
        bytes_per_account,
        bytes_per_transfer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record layout: 8 little-endian 16-byte fields a transfer, the last packing ledger,
    /// code and flags.
    #[test]
    fn encode_writes_128_bytes_a_transfer_in_field_order() {
        let t = Transfer {
            id: 1,
            debit_account_id: 2,
            credit_account_id: 3,
            amount: 4,
            pending_id: 5,
            user_data: 6,
            timeout_ns: 7,
            ledger: 8,
            code: 9,
            flags: sequent_ledger::TransferFlags(10),
        };
        let mut out = vec![0xff; 3];
        encode(&[t, t], &mut out);
        assert_eq!(out.len(), 2 * RECORD_TRANSFER_BYTES);
        let mut expected = Vec::new();
        for v in [1u128, 2, 3, 4, 5, 6, 7, 8 | 9 << 32 | 10 << 48] {
            expected.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(out[..128], expected[..]);
        assert_eq!(out[128..], expected[..]);
    }
}
