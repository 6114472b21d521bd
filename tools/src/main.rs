//! `sequent`: the command-line front door. Thin by design: parse, build the library's objects, run.
//!
//! Exit codes: 0 success; 1 a run failed (a handler panicked, a check did not hold, a journal is
//! not intact, a proof does not verify, an input line was malformed, a file could not be read);
//! 2 bad usage. Output cut short by a closed pipe (`sequent journal dump DIR | head`) is a
//! success: the reader asked for no more.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod demo;
mod demo_engine;
mod feed_cmd;
mod journal_cmd;
mod ledger_cmd;
mod ledger_line;
mod ledger_shard_ring;
mod ledger_shards;
mod ledger_wire;
mod match_cmd;
mod payments_cmd;

#[derive(Parser, Debug)]
#[command(
    name = "sequent",
    version,
    about = "sequent: deterministic financial cores on LMAX-style rings"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the main job on the embedded default: today a multi-stage ring pipeline on pinned
    /// threads, printing throughput and latency percentiles.
    Demo(demo::Args),
    /// Inspect, verify, prove, follow and load a journal directory.
    #[command(subcommand)]
    Journal(journal_cmd::Command),
    /// Run orders from a JSON-lines file through the throttle and the books, single-threaded;
    /// events as JSON lines on stdout (contract: docs/match-format.md).
    Match(match_cmd::Args),
    /// The double-entry ledger over JSON lines: apply accounts and transfers (contract:
    /// docs/ledger-format.md).
    #[command(subcommand)]
    Ledger(ledger_cmd::Command),
    /// Market data: replay an ITCH 5.0 file into the feed's book builder, optionally
    /// re-publishing it over multicast.
    #[command(subcommand)]
    Feed(feed_cmd::Command),
    /// Card acquiring: run a scenario end to end against the payments gateway and two acquirer
    /// simulator processes (`sequent payments scenario peak|outage|duplicates|partial|late|
    /// settlement-mismatch`).
    #[command(subcommand)]
    Payments(payments_cmd::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Demo(args) => demo::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Journal(command) => journal_cmd::run(command),
        Command::Match(args) => match_cmd::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Ledger(command) => ledger_cmd::run(command),
        Command::Feed(command) => feed_cmd::run(command).map(|()| ExitCode::SUCCESS),
        Command::Payments(command) => payments_cmd::run(command),
    };
    match outcome {
        Ok(code) => code,
        Err(error) if journal_cmd::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) if journal_cmd::is_usage(&error) => {
            eprintln!("sequent: {error:#}");
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("sequent: {error:#}");
            ExitCode::from(1)
        }
    }
}
