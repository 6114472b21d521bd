//! The apply path alone, for profiling (`perf record`/`perf stat`): the `sequent-bench ledger`
//! workload (random plain transfers among `accounts` accounts of one ledger, amounts 1..=1000,
//! unique ids, batches of 8,190) through one `Ledger`, no journal. Prints transfers/s and the
//! state digest, so a change to the apply path can be checked against the baseline's digest.
//!
//! `cargo run --release -p sequent-bench --example ledger_apply -- [accounts] [transfers] [batch]`

use std::time::Instant;

use sequent_bench::ledger::{ledger_with_accounts, workload};
use sequent_ledger::Outcome;

/// The workload's seed (the bench's default is another).
const SEED: u64 = 0x5e9;

/// Nanoseconds this thread has run on a CPU (`/proc/thread-self/schedstat`, first field): on
/// a shared machine the wall clock also counts the time other processes held the core.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().expect("a number"));
    let accounts = args.next().unwrap_or(100_000);
    let transfers = args.next().unwrap_or(2_000_000);
    let batch = args.next().unwrap_or(8_190) as usize;
    let accounts = u32::try_from(accounts).expect("accounts fit u32");
    let transfers = u32::try_from(transfers).expect("transfers fit u32");
    let work = workload(accounts, transfers, SEED);
    // `APPLY_COLD=1`: leave the stores unmapped, so the apply pays the page faults.
    let mut ledger = ledger_with_accounts(
        accounts,
        transfers,
        std::env::var_os("APPLY_COLD").is_none(),
    );
    let mut outcomes = Vec::with_capacity(batch);
    // `perf record --control fifo:CTL,ACK -D -1` with `APPLY_PERF_CTL=CTL`: profile the apply
    // only, not the set-up or the digest.
    let perf_ctl = std::env::var_os("APPLY_PERF_CTL");
    let perf = |command: &str| {
        if let Some(path) = &perf_ctl {
            std::fs::write(path, command).expect("perf control fifo");
        }
    };
    perf("enable\n");
    let started = Instant::now();
    let cpu_started = cpu_ns();
    for (i, chunk) in work.chunks(batch).enumerate() {
        outcomes.clear();
        ledger.create_transfers(i as u64, chunk, &mut outcomes);
        assert!(outcomes.iter().all(|o| *o == Outcome::Ok));
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = (cpu_ns() - cpu_started) as f64 / 1e9;
    perf("disable\n");
    let digest: String = ledger
        .state_digest()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!(
        "{transfers} transfers in {seconds:.3} s wall, {cpu_seconds:.3} s on CPU: {:.2}M/s wall, \
         {:.2}M/s CPU ({:.0} ns CPU each); digest {digest}",
        transfers as f64 / seconds / 1e6,
        transfers as f64 / cpu_seconds / 1e6,
        cpu_seconds * 1e9 / transfers as f64
    );
}
