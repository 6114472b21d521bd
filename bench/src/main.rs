//! `sequent-bench`: a thin front end over the `sequent_bench` library.
//!
//! Exit codes: 0 success; 1 a run failed its correctness check, timed out, or the ring or the
//! journal failed (for `report`: a scenario failed); 2 bad command line (clap's own code, a
//! `--pin` outside the affinity mask, or a file `compare` cannot read).
//!
//! The binary's only `unsafe` is the counting global allocator below, which `matching` reads
//! to report allocations per operation.

#![deny(unsafe_code)]

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use sequent_bench::journal::{self, JournalConfig};
use sequent_bench::ledger;
use sequent_bench::machine::Machine;
use sequent_bench::matching;
use sequent_bench::report::{format_ns, format_rate, json_line, render_markdown, render_table};
use sequent_bench::ring::{Impl, Progress, RingConfig, Scenario, SuiteConfig, run_suite};
use sequent_bench::suite::Mode;

/// Counts allocations and live bytes for `sequent-bench matching`; forwards to the system allocator.
#[allow(unsafe_code)]
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

    pub static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
    pub static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);

    pub struct Counting;

    // SAFETY: every call forwards to `System` with the caller's arguments unchanged; the counters
    // are plain relaxed atomics and never touch the memory handed out.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
            // SAFETY: same contract as ours.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
            // SAFETY: same contract as ours.
            unsafe { System.dealloc(ptr, layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
            // SAFETY: same contract as ours.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    pub fn read() -> (u64, i64) {
        (
            ALLOCATIONS.load(Ordering::Relaxed),
            LIVE_BYTES.load(Ordering::Relaxed),
        )
    }
}

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

#[derive(Debug, Parser)]
#[command(name = "sequent-bench", version, about = "sequent's benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The sequent ring beside disruptor, crossbeam, rtrb and std mpsc.
    Ring(RingArgs),
    /// The sequent venue (throttle + book) beside the `lobster` order book on one seeded
    /// exchange-core-like stream: throughput and open-loop latency at fixed rates.
    Matching(MatchingArgs),
    /// The sequent journal beside buffered write(2), write+fdatasync, BufReader and rtrb.
    Journal(JournalArgs),
    /// sequent-engine over loopback TCP, open loop, beside an echo server baseline.
    Engine(EngineArgs),
    /// The hot standby: time from kill -9 of the primary to the first order acknowledged by the
    /// new primary (two sequent-engine processes), and the order-to-ack cost of waiting for the
    /// standby's acknowledgement (open loop, beside the journal-only baseline).
    Failover(FailoverArgs),
    /// Market data: ITCH decoding beside the `itchy` crate, the feed protocol, send and receive
    /// paths on loopback, one-way publish-to-book latency.
    Feed(FeedArgs),
    /// The double-entry ledger: transfers/s in batches in memory and with journal group commit,
    /// per-batch latency, memory per account and transfer, beside PostgreSQL in the same run.
    Ledger(LedgerArgs),
    /// Every scenario in one bounded run: JSON, .hgrm histograms, SVG/PNG charts, a generated
    /// Markdown page and the generated blocks of docs/BENCHMARKS.md.
    Report(ReportArgs),
    /// Two `report` runs side by side: B/A per percentile, and each run's own ratios.
    Compare(CompareArgs),
    /// The payments gateway: authorisations/s through the whole pipeline with two simulated
    /// acquirers (closed loop and sustained), open-loop merchant-API latency, vault tokenisation,
    /// beside `Payments::handle` in memory.
    Payments(PaymentsArgs),
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// Sizes: smoke (seconds, proves the pipeline), quick (a few minutes on 2 cores), full.
    #[arg(long, value_enum, default_value_t = Mode::Quick)]
    mode: Mode,
    /// Wall-time budget: a scenario whose estimate exceeds what is left is reported as skipped.
    #[arg(long, default_value_t = 600)]
    budget_secs: u64,
    /// Only these scenarios (comma list); the others are listed as skipped.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Where report.json, the .hgrm files and the charts go.
    #[arg(long, default_value = "docs/bench")]
    out: std::path::PathBuf,
    /// The generated Markdown page.
    #[arg(long, default_value = "docs/BENCHMARKS-report.md")]
    report_md: std::path::PathBuf,
    /// The hand-written page whose `<!-- sequent-bench report: summary begin/end -->` block is
    /// refreshed; `--doc ''` leaves every page alone.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    doc: std::path::PathBuf,
    /// Use this many cores (the first N of the affinity mask, or of --pin).
    #[arg(long)]
    cores: Option<usize>,
    /// Pin plan: core ids in the order threads get them (comma list), e.g. the cores of one
    /// socket, isolated from the OS, on a many-core machine.
    #[arg(long, value_delimiter = ',')]
    pin: Vec<usize>,
    /// Runs per step (default: smoke 2, quick 3, full 5).
    #[arg(long)]
    repeats: Option<usize>,
    /// Seed of every generated load and stream.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Scratch directory for journals (default: the system temp dir).
    #[arg(long)]
    scratch: Option<std::path::PathBuf>,
    /// The ITCH sample the feed scenario decodes.
    #[arg(
        long,
        default_value = "engine/matching/tests/data/itch/ex20101224.TEST_ITCH_50"
    )]
    itch: std::path::PathBuf,
}

#[derive(Debug, Args)]
struct CompareArgs {
    /// The first run's report.json (A).
    a: std::path::PathBuf,
    /// The second run's report.json (B); ratios are B/A.
    b: std::path::PathBuf,
    /// Also draw A's and B's percentile spectra on one chart per scenario (SVG and PNG) here.
    #[arg(long)]
    plot: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
struct PaymentsArgs {
    /// Shorter runs: well under a minute on 2 cores.
    #[arg(long)]
    quick: bool,
    /// Merchant connections of the closed loop and the sustained run.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Gateway HTTP worker threads.
    #[arg(long, default_value_t = 4)]
    http_threads: usize,
    /// Seconds per gateway run (default 5, --quick 1.5).
    #[arg(long)]
    seconds: Option<f64>,
    /// Offered `POST /payments`/s of the open loop.
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// JSON instead of Markdown.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct LedgerArgs {
    /// Accounts (one ledger, no limit flags).
    #[arg(long, default_value_t = 100_000)]
    accounts: u32,
    /// Transfers through sequent-ledger (each mode).
    #[arg(long, default_value_t = 2_000_000)]
    transfers: u32,
    /// Transfers per batch (one journal record and one fsync per batch when durable).
    #[arg(long, default_value_t = 8_190)]
    batch: usize,
    /// Scratch directory for the journal and the PostgreSQL cluster.
    #[arg(long, default_value = "/tmp/sequent-bench-ledger")]
    dir: std::path::PathBuf,
    /// Leave the ledger's stores unmapped until first written (no `Ledger::prefault` at
    /// start-up): the apply then also pays a page fault every 18 stored transfers.
    #[arg(long)]
    cold_stores: bool,
    /// Transfers through PostgreSQL (0 skips it).
    #[arg(long, default_value_t = 50_000)]
    pg_transfers: u32,
    /// The script that installs and starts PostgreSQL.
    #[arg(long, default_value = "tools/pg-bench-setup.sh")]
    pg_script: std::path::PathBuf,
}

#[derive(Debug, Args)]
struct FeedArgs {
    /// Smaller runs: the whole run stays well under a minute on 2 cores.
    #[arg(long)]
    quick: bool,
    /// One JSON object per line per row instead of the table.
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// The machine description and a GitHub table (for docs/BENCHMARKS.md).
    #[arg(long)]
    markdown: bool,
    /// The ITCH 5.0 file to decode (repeated in memory).
    #[arg(
        long,
        default_value = "engine/matching/tests/data/itch/ex20101224.TEST_ITCH_50"
    )]
    itch: std::path::PathBuf,
    /// Copies of the file in memory (default 200, --quick 40).
    #[arg(long)]
    repeat: Option<usize>,
    /// Messages per transport run (default 1M, --quick 200k).
    #[arg(long)]
    transport_messages: Option<u64>,
    /// Paced rate of the latency run, messages per second.
    #[arg(long, default_value_t = 20_000)]
    latency_rate: u64,
    /// Messages in the latency run (default 200k, --quick 40k).
    #[arg(long)]
    latency_messages: Option<u64>,
}

#[derive(Debug, Args)]
struct EngineArgs {
    /// Shorter runs (1 s per rate).
    #[arg(long)]
    quick: bool,
    /// Sessions (one connection each).
    #[arg(long, default_value_t = 4)]
    sessions: u32,
    /// Offered rates, orders/s in all (comma list).
    #[arg(long, value_delimiter = ',', default_values_t = [10_000u64, 40_000, 80_000])]
    rates: Vec<u64>,
    /// Seconds per (target, rate) (default 3, --quick 1).
    #[arg(long)]
    seconds: Option<f64>,
    /// JSON lines instead of the table.
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// A Markdown table with the machine line (for docs/BENCHMARKS.md).
    #[arg(long)]
    markdown: bool,
}

#[derive(Debug, Args)]
struct FailoverArgs {
    /// Fewer take-overs and a shorter load.
    #[arg(long)]
    quick: bool,
    /// Take-overs to measure (default 20, --quick 5).
    #[arg(long)]
    runs: Option<usize>,
    /// Offered orders/s of the acknowledgement-cost load.
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    /// Seconds of load per target (default 3, --quick 1).
    #[arg(long)]
    seconds: Option<f64>,
    /// JSON instead of Markdown.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct JournalArgs {
    /// Smaller runs: the whole run stays under a minute on 2 cores.
    #[arg(long)]
    quick: bool,
    /// One JSON object per line per row instead of the table.
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// The machine description and a GitHub table (for docs/BENCHMARKS.md).
    #[arg(long)]
    markdown: bool,
    /// Records per append run of 64 B and in the replay run (default 10M, --quick 2M); larger
    /// payloads get fewer records (at most 1 GiB, --quick 256 MiB, per append run).
    #[arg(long)]
    records: Option<u64>,
    /// Records per durable (group commit) run (default 200k, --quick 50k).
    #[arg(long)]
    durable_records: Option<u64>,
    /// Records per tail-latency run (default 400k, --quick 200k).
    #[arg(long)]
    tail_records: Option<u64>,
    /// Send rate of the tail-latency runs, records per second.
    #[arg(long, default_value_t = 200_000)]
    tail_rate: u64,
    /// Gigabytes (10^9 bytes) of 1 KiB records for the resident-memory replay; 0 leaves it out
    /// (default 2, --quick 0.25).
    #[arg(long)]
    rss_gb: Option<f64>,
    /// Segment length of the journal, MiB, except in the RSS section (256 MiB there).
    #[arg(long, default_value_t = 64)]
    segment_mib: u64,
    /// Where the run's scratch directory goes (default: the system temp dir).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
struct MatchingArgs {
    /// A short run (under a minute on 2 cores): 1M operations, 0.5 s per rate.
    #[arg(long)]
    quick: bool,
    /// One JSON object per line per (impl, scenario) instead of the table.
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// The machine description and a GitHub table (for docs/BENCHMARKS.md).
    #[arg(long)]
    markdown: bool,
    /// Implementations (comma list: sequent-matching, lobster); default both.
    #[arg(long = "impl", value_delimiter = ',')]
    impls: Vec<matching::Impl>,
    /// Operations in the stream (default 5M, --quick 1M).
    #[arg(long)]
    ops: Option<usize>,
    /// Open-loop rates, operations per second (comma list).
    #[arg(long, value_delimiter = ',', default_values_t = [125_000u64, 1_000_000, 3_000_000, 5_000_000])]
    rates: Vec<u64>,
    /// Seconds of stream per rate, capped by the stream (default 2, --quick 0.5).
    #[arg(long)]
    seconds: Option<f64>,
    /// Resting orders in the book (prefill, and the level the mix holds).
    #[arg(long, default_value_t = 4_000)]
    resting: usize,
    /// Accounts the orders come from.
    #[arg(long, default_value_t = 100)]
    accounts: u32,
    /// Seed of the stream.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Open-loop runs per (impl, rate); the median by p99 is reported (default 3).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
}

#[derive(Debug, Args)]
struct RingArgs {
    /// Fewer events and repeats: the whole run stays under two minutes on 2 cores.
    #[arg(long)]
    quick: bool,
    /// One JSON object per line per (impl, scenario) instead of the table.
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// The machine description and a GitHub table (for docs/BENCHMARKS.md).
    #[arg(long)]
    markdown: bool,
    /// Implementations to run (comma list); default all.
    #[arg(long = "impl", value_delimiter = ',')]
    impls: Vec<Impl>,
    /// Scenarios to run (comma list); default all.
    #[arg(long = "scenario", value_delimiter = ',')]
    scenarios: Vec<Scenario>,
    /// Events per throughput run (default 20M, --quick 3M).
    #[arg(long)]
    events: Option<u64>,
    /// Events in the latency run (default 2M, --quick 400k).
    #[arg(long)]
    latency_events: Option<u64>,
    /// Send rate of the latency run, events per second.
    #[arg(long, default_value_t = 1_000_000)]
    rate: u64,
    /// Runs per (impl, scenario); the median run is reported with the spread (default 5, --quick 3).
    #[arg(long)]
    repeats: Option<usize>,
    /// Slots per ring or queue (a power of two).
    #[arg(long, default_value_t = sequent_bench::ring::CAPACITY_DEFAULT)]
    capacity: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Ring(args) => ring(&args),
        Command::Matching(args) => matching_bench(&args),
        Command::Journal(args) => journal(&args),
        Command::Engine(args) => engine_bench(&args),
        Command::Failover(args) => failover_bench(&args),
        Command::Feed(args) => feed_bench(&args),
        Command::Ledger(args) => ledger_bench(&args),
        Command::Report(args) => report(&args),
        Command::Compare(args) => compare(&args),
        Command::Payments(args) => payments_bench(&args),
    }
}

fn report(args: &ReportArgs) -> ExitCode {
    use sequent_bench::suite::{ReportConfig, run};
    // Read before anything is pinned: get_core_ids lists only the calling thread's mask.
    let machine = Machine::detect();
    announce(&machine);
    let mut pin_plan = if args.pin.is_empty() {
        machine.core_ids.clone()
    } else {
        args.pin.clone()
    };
    if let Some(unknown) = pin_plan.iter().find(|id| !machine.core_ids.contains(id)) {
        eprintln!(
            "error: --pin names core {unknown}, which is not in this process's affinity mask {:?}",
            machine.core_ids
        );
        return ExitCode::from(2);
    }
    let cores = args
        .cores
        .unwrap_or(pin_plan.len().max(1))
        .clamp(1, machine.cores);
    pin_plan.truncate(cores);
    let config = ReportConfig {
        mode: args.mode,
        budget: std::time::Duration::from_secs(args.budget_secs),
        only: args.only.clone(),
        out_dir: args.out.clone(),
        report_md: Some(args.report_md.clone()).filter(|p| !p.as_os_str().is_empty()),
        doc: Some(args.doc.clone()).filter(|p| !p.as_os_str().is_empty()),
        cores,
        pin_plan,
        repeats: args.repeats,
        seed: args.seed,
        scratch: args.scratch.clone().unwrap_or_else(std::env::temp_dir),
        command: format!(
            "sequent-bench {}",
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        ),
        allocations: counting::read,
        live_bytes: || counting::read().1,
        itch: args.itch.clone(),
    };
    eprintln!(
        "report: {} mode, budget {} s, {} cores, pin plan {:?}, into {}",
        args.mode.name(),
        args.budget_secs,
        config.cores,
        config.pin_plan,
        config.out_dir.display()
    );
    let harness = sequent_bench::overhead::measure_harness_cost();
    eprintln!(
        "harness: Instant::now {:.1} ns, TSC read {:.1} ns, record {:.1} ns, timestamp+record {:.1} ns per sample",
        harness.instant_now_ns, harness.tsc_read_ns, harness.record_ns, harness.per_sample_ns
    );
    let started = Instant::now();
    let report = match run(&config, &machine, harness, &|line| eprintln!("{line}")) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("report done in {:.1} s", started.elapsed().as_secs_f64());
    if !report.warnings.is_empty() {
        eprintln!("\n{} WARNING(S):", report.warnings.len());
        for warning in &report.warnings {
            eprintln!("  - {warning}");
        }
    }
    let failed = report
        .scenarios
        .iter()
        .any(|s| matches!(s.status, sequent_bench::results::Status::Failed(_)));
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn compare(args: &CompareArgs) -> ExitCode {
    use sequent_bench::compare::{load, render};
    let (a, b) = match (load(&args.a), load(&args.b)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(dir) = &args.plot {
        let written = std::fs::create_dir_all(dir)
            .map_err(|e| e.to_string())
            .and_then(|()| sequent_bench::compare::plot(&a, &b, dir).map_err(|e| e.to_string()));
        match written {
            Ok(files) => eprintln!("{} chart files under {}", files.len(), dir.display()),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    write_stdout(&render(
        &a,
        &b,
        &args.a.display().to_string(),
        &args.b.display().to_string(),
    ))
}

fn matching_bench(args: &MatchingArgs) -> ExitCode {
    let machine = Machine::detect();
    announce(&machine);
    let ops = args
        .ops
        .unwrap_or(if args.quick { 1_000_000 } else { 5_000_000 });
    let config = matching::MatchingConfig {
        impls: if args.impls.is_empty() {
            matching::Impl::ALL.to_vec()
        } else {
            args.impls.clone()
        },
        rates: args.rates.clone(),
        seconds_per_rate: args.seconds.unwrap_or(if args.quick { 0.5 } else { 2.0 }),
        resting_target: args.resting,
        accounts: args.accounts.max(1),
        repeats: args.repeats,
        allocations: counting::read,
    };
    let started = Instant::now();
    let stream = matching::generate(args.seed, ops, config.resting_target, config.accounts);
    eprintln!(
        "stream: seed {}, {} ops ({} GTC, {} IOC, {} cancel, {} move), {} resting after prefill, {} at end; generated in {:.1} s; single thread, {} cores",
        args.seed,
        stream.ops.len(),
        stream.mix[0],
        stream.mix[1],
        stream.mix[2],
        stream.mix[3],
        stream.resting_after_prefill,
        stream.resting_at_end,
        started.elapsed().as_secs_f64(),
        machine.cores
    );
    let result = matching::run_suite(&stream, &config, machine.cores, |row| {
        eprintln!(
            "  {:<17} {:<18} {:>7} ops/s, p99 {}, {:.2} allocs/op",
            row.imp,
            row.scenario,
            format_rate(row.ops_per_sec),
            format_ns(row.p99_ns),
            row.allocs_per_op
        );
    });
    let (rows, memory) = match result {
        Ok(result) => result,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    let output = if args.json {
        rows.iter()
            .map(|row| serde_json::to_string(row).expect("a row serializes") + "\n")
            .chain(std::iter::once(
                serde_json::to_string(&memory).expect("memory serializes") + "\n",
            ))
            .collect()
    } else if args.markdown {
        let command: Vec<String> = std::env::args().skip(1).collect();
        matching::render_markdown(
            &machine,
            &format!(
                "cargo run --release -p sequent-bench -- {}",
                command.join(" ")
            ),
            &stream,
            &rows,
            &memory,
        )
    } else {
        matching::render_table(&rows, &memory)
    };
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn ring(args: &RingArgs) -> ExitCode {
    // Read before anything is pinned: get_core_ids lists only the calling thread's mask.
    let machine = Machine::detect();
    let mut ring = RingConfig::new(machine.cores, machine.core_ids.clone());
    ring.events = args
        .events
        .unwrap_or(if args.quick { 3_000_000 } else { 20_000_000 });
    ring.latency_events =
        args.latency_events
            .unwrap_or(if args.quick { 400_000 } else { 2_000_000 });
    ring.latency_rate_per_sec = args.rate;
    ring.capacity = args.capacity;
    let config = SuiteConfig {
        ring,
        impls: if args.impls.is_empty() {
            Impl::ALL.to_vec()
        } else {
            args.impls.clone()
        },
        scenarios: if args.scenarios.is_empty() {
            Scenario::ALL.to_vec()
        } else {
            args.scenarios.clone()
        },
        repeats: args.repeats.unwrap_or(if args.quick { 3 } else { 5 }),
    };
    announce(&machine);
    eprintln!(
        "events: {} per throughput run, {} at {}/s for latency; capacity {}; batch {}; {} repeats",
        config.ring.events,
        config.ring.latency_events,
        config.ring.latency_rate_per_sec,
        config.ring.capacity,
        config.ring.batch,
        config.repeats
    );
    let started = Instant::now();
    let result = run_suite(&config, |progress| match progress {
        Progress::Scenario {
            scenario,
            threads,
            cores,
            pinned,
        } => {
            if threads > cores {
                eprintln!(
                    "WARNING: {scenario} runs {threads} threads on {cores} cores: oversubscribed; \
                     every spinning wait backs off to yield, figures measure scheduling as much as the queue"
                );
            } else {
                eprintln!(
                    "{scenario}: {threads} threads on {cores} cores{}",
                    if pinned { ", pinned" } else { ", not pinned" }
                );
            }
        }
        Progress::Run { outcome, repeat } => eprintln!(
            "  {:<22} {:<21} run {repeat}: {:>7} ops/s, p99 {}",
            outcome.imp.name(),
            outcome.scenario.name(),
            format_rate(outcome.ops_per_sec().round() as u64),
            format_ns(outcome.latency_ns.value_at_quantile(0.99)),
        ),
    });
    let rows = match result {
        Ok(rows) => rows,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    let mut stdout = std::io::stdout().lock();
    let output = if args.json {
        rows.iter().map(|row| json_line(row) + "\n").collect()
    } else if args.markdown {
        let command: Vec<String> = std::env::args().skip(1).collect();
        render_markdown(
            &machine,
            &format!(
                "cargo run --release -p sequent-bench -- {}",
                command.join(" ")
            ),
            &rows,
        )
    } else {
        render_table(&rows)
    };
    if stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn journal(args: &JournalArgs) -> ExitCode {
    let machine = Machine::detect();
    let dir = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let mut config = if args.quick {
        JournalConfig::quick(dir, machine.cores, machine.core_ids.clone())
    } else {
        JournalConfig::new(dir, machine.cores, machine.core_ids.clone())
    };
    if let Some(records) = args.records {
        config.records = records;
    }
    if let Some(records) = args.durable_records {
        config.durable_records = records;
    }
    if let Some(records) = args.tail_records {
        config.tail_records = records;
    }
    config.tail_rate_per_sec = args.tail_rate;
    config.segment_len = args.segment_mib << 20;
    if let Some(gb) = args.rss_gb {
        if !(gb.is_finite() && gb >= 0.0) {
            eprintln!("error: --rss-gb must be a number of gigabytes, 0 or more");
            return ExitCode::from(2);
        }
        config.rss_bytes = (gb * 1e9) as u64;
    }
    let clock_ns = journal::append::clock_overhead_ns();
    announce(&machine);
    eprintln!(
        "records: {} (append, replay), {} durable, {} tail at {}/s; {} MiB segments; rss {:.2} GB; \
         timing one append costs {} (two TSC reads, median); files under {}",
        config.records,
        config.durable_records,
        config.tail_records,
        format_rate(config.tail_rate_per_sec),
        config.segment_len >> 20,
        config.rss_bytes as f64 / 1e9,
        format_ns(clock_ns),
        config.dir.display()
    );
    let started = Instant::now();
    let result = journal::run(&config, |progress| match progress {
        journal::Progress::Section {
            section,
            threads,
            cores,
            pinned,
        } => {
            if threads > cores {
                eprintln!(
                    "WARNING: {} runs {threads} threads on {cores} cores: oversubscribed, figures measure scheduling as much as the journal",
                    section.name()
                );
            } else {
                eprintln!(
                    "{}: {threads} thread(s) on {cores} cores{} (+ the journal's housekeeping thread); machine: {}",
                    section.name(),
                    if pinned { ", pinned" } else { ", not pinned" },
                    machine.summary()
                );
            }
        }
        journal::Progress::Row(row) => eprintln!(
            "  {:<8} {:<16} {:<16} {:>7} records/s{}",
            row.section,
            row.imp,
            row.case,
            format_rate(row.records_per_sec),
            row.p99_ns
                .map_or_else(String::new, |p99| format!(", p99 {}", format_ns(p99))),
        ),
        journal::Progress::Skipped { section, reason } => {
            eprintln!("{}: skipped: {reason}", section.name());
        }
    });
    let rows = match result {
        Ok(rows) => rows,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    let output = if args.json {
        rows.iter()
            .map(|row| journal::json_line(row) + "\n")
            .collect()
    } else if args.markdown {
        let command: Vec<String> = std::env::args().skip(1).collect();
        journal::render_markdown(
            &machine,
            &format!(
                "cargo run --release -p sequent-bench -- {}",
                command.join(" ")
            ),
            clock_ns,
            &rows,
        )
    } else {
        journal::render_table(&rows)
    };
    write_stdout(&output)
}

fn write_stdout(output: &str) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn engine_bench(args: &EngineArgs) -> ExitCode {
    use sequent_bench::engine::{EngineBenchConfig, render_markdown, run};
    let machine = Machine::detect();
    let threads = 2 * args.sessions as usize + 4;
    if threads > machine.cores {
        eprintln!(
            "WARNING: {threads} threads (2 per session + the engine's 4) on {} cores: oversubscribed; latency includes the scheduler",
            machine.cores
        );
    }
    announce(&machine);
    let config = EngineBenchConfig {
        sessions: args.sessions.max(1),
        rates: args.rates.clone(),
        seconds: args.seconds.unwrap_or(if args.quick { 1.0 } else { 3.0 }),
        dir: std::env::temp_dir(),
    };
    let rows = match run(&config, |row| {
        eprintln!(
            "  {:<15} offered {:>7}/s  acked {:>7}/s  p50 {:>9}  p99 {:>9}  max {:>9}",
            row.target,
            format_rate(row.offered),
            format_rate(row.acked_per_sec),
            format_ns(row.p50_ns),
            format_ns(row.p99_ns),
            format_ns(row.max_ns)
        );
    }) {
        Ok(rows) => rows,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let output = if args.json {
        rows.iter()
            .map(|row| serde_json::to_string(row).unwrap_or_default() + "\n")
            .collect()
    } else {
        let command: Vec<String> = std::env::args().skip(1).collect();
        render_markdown(
            &machine,
            &format!("sequent-bench {}", command.join(" ")),
            config.sessions,
            &rows,
        )
    };
    write_stdout(&output)
}

fn failover_bench(args: &FailoverArgs) -> ExitCode {
    use sequent_bench::failover::{FailoverBenchConfig, engine_binary, render_markdown, run};
    let machine = Machine::detect();
    announce(&machine);
    let engine_bin = match engine_binary() {
        Ok(path) => path,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    if machine.cores < 8 {
        eprintln!(
            "WARNING: two engines (4 threads each), a standby and the load share {} cores: oversubscribed; the take-over time includes the scheduler",
            machine.cores
        );
    }
    let config = FailoverBenchConfig {
        runs: args.runs.unwrap_or(if args.quick { 5 } else { 20 }).max(1),
        rate: args.rate.max(1),
        seconds: args.seconds.unwrap_or(if args.quick { 1.0 } else { 3.0 }),
        sessions: 2,
        engine_bin,
        dir: std::env::temp_dir(),
    };
    let report = match run(&config) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let output = if args.json {
        serde_json::to_string(&report).unwrap_or_default() + "\n"
    } else {
        let command: Vec<String> = std::env::args().skip(1).collect();
        render_markdown(
            &machine,
            &format!("sequent-bench {}", command.join(" ")),
            &report,
        )
    };
    write_stdout(&output)
}

fn ledger_bench(args: &LedgerArgs) -> ExitCode {
    let machine = Machine::detect();
    announce(&machine);
    let config = ledger::LedgerConfig {
        accounts: args.accounts.max(2),
        transfers: args.transfers.max(1),
        batch: args.batch.clamp(1, sequent_ledger::LINKED_CHAIN_MAX),
        journal_dir: args.dir.clone(),
        pg_transfers: args.pg_transfers,
        pg_script: args.pg_script.clone(),
        seed: 42,
        prefault: !args.cold_stores,
    };
    let report = match ledger::run(&config, || counting::read().1) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("sequent-bench: ledger: {error:#}");
            return ExitCode::from(1);
        }
    };
    let mut out = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(out, "machine: {}\n", machine.summary());
    let _ = writeln!(
        out,
        "| mode | transfers | seconds | transfers/s | batch p50 | p99 | p99.9 | max |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for m in &report.modes {
        let lat = m.batch_ns.map_or_else(
            || {
                [
                    "-".to_owned(),
                    "-".to_owned(),
                    "-".to_owned(),
                    "-".to_owned(),
                ]
            },
            |l| l.map(format_ns),
        );
        let _ = writeln!(
            out,
            "| {} | {} | {:.3} | {} | {} | {} | {} | {} |",
            m.name,
            m.transfers,
            m.seconds,
            format_rate(m.per_sec as u64),
            lat[0],
            lat[1],
            lat[2],
            lat[3]
        );
    }
    if let Some(why) = &report.pg_skipped {
        let _ = writeln!(out, "\nPostgreSQL skipped: {why}");
    }
    let durable = report.modes.get(1).map(|m| m.per_sec);
    let pipelined = report.modes.get(2).map(|m| m.per_sec);
    let pg = report.modes.get(3).map(|m| m.per_sec);
    if let (Some(durable), Some(pipelined), Some(pg)) = (durable, pipelined, pg) {
        let _ = writeln!(
            out,
            "\ndurable sequent-ledger / PostgreSQL: {:.0}x fsync per batch, {:.0}x pipelined (target >= 50x)",
            durable / pg,
            pipelined / pg
        );
    }
    let _ = writeln!(
        out,
        "\nmemory: {:.0} bytes per account slot, {:.0} bytes per transfer slot (all allocated at construction; {})",
        report.bytes_per_account,
        report.bytes_per_transfer,
        if args.cold_stores {
            "--cold-stores: mapped by the apply as it first writes them"
        } else {
            "mapped before the clock starts, Ledger::prefault"
        }
    );
    print!("{out}");
    let _ = std::io::stdout().flush();
    ExitCode::SUCCESS
}

fn feed_bench(args: &FeedArgs) -> ExitCode {
    use sequent_bench::feed;
    let machine = Machine::detect();
    announce(&machine);
    let itch = match std::fs::read(&args.itch) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("sequent-bench: reading {}: {e}", args.itch.display());
            return ExitCode::from(1);
        }
    };
    let config = feed::FeedConfig {
        itch,
        repeat: args.repeat.unwrap_or(if args.quick { 40 } else { 200 }),
        rounds: if args.quick { 3 } else { 5 },
        transport_messages: args.transport_messages.unwrap_or(if args.quick {
            200_000
        } else {
            1_000_000
        }),
        latency_rate: args.latency_rate,
        latency_messages: args.latency_messages.unwrap_or(if args.quick {
            40_000
        } else {
            200_000
        }),
    };
    let started = Instant::now();
    let mut rows = Vec::new();
    for (name, section) in [
        (
            "decode",
            feed::decode as fn(&feed::FeedConfig) -> anyhow::Result<Vec<feed::FeedRow>>,
        ),
        ("transport", feed::transport),
        ("af-xdp", feed::af_xdp),
        ("latency", feed::latency),
    ] {
        eprintln!("running {name}...");
        match section(&config) {
            Ok(mut r) => rows.append(&mut r),
            Err(e) => {
                eprintln!("sequent-bench: feed {name} failed: {e:#}");
                return ExitCode::from(1);
            }
        }
    }
    let targets = feed::targets(&rows);
    if args.json {
        for row in &rows {
            println!("{}", serde_json::to_string(row).expect("rows serialize"));
        }
    } else {
        if args.markdown {
            println!("{}\n", machine.summary());
        }
        print!("{}", feed::render_markdown(&rows));
        for t in &targets {
            println!("{t}");
        }
    }
    eprintln!("took {:.1} s", started.elapsed().as_secs_f64());
    let _ = std::io::stdout().flush();
    ExitCode::SUCCESS
}

/// Prints the machine line every subcommand starts with, and a warning when the cores were busy
/// before the run (other processes compete with the benchmark: the figures will be noisy).
fn announce(machine: &Machine) {
    eprintln!("machine: {}", machine.summary());
    if machine.is_busy() {
        eprintln!(
            "WARNING: the cores were {} busy before the run: other processes compete with the benchmark and the figures will be noisy",
            machine.busy_text()
        );
    }
}

fn payments_bench(args: &PaymentsArgs) -> ExitCode {
    use sequent_bench::payments::{PaymentsBenchConfig, render_markdown, run, threads};
    let machine = Machine::detect();
    announce(&machine);
    let config = PaymentsBenchConfig {
        clients: args.clients.max(1),
        http_threads: args.http_threads.max(1),
        seconds: args.seconds.unwrap_or(if args.quick { 1.5 } else { 5.0 }),
        open_rate: args.rate.max(1),
        memory_ops: if args.quick { 20_000 } else { 200_000 },
    };
    if threads(&config) > machine.cores {
        eprintln!(
            "WARNING: the gateway, two simulators and the clients run {} threads on {} cores: oversubscribed; they block rather than spin, but the figures include the scheduler",
            threads(&config),
            machine.cores
        );
    }
    let report = match run(&config) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let output = if args.json {
        serde_json::to_string(&report).unwrap_or_default() + "\n"
    } else {
        let command: Vec<String> = std::env::args().skip(1).collect();
        render_markdown(
            &machine.summary(),
            &format!("sequent-bench {}", command.join(" ")),
            &report,
        )
    };
    write_stdout(&output)
}
