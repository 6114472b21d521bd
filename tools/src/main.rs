//! `sequent`: the command-line front door. Thin by design: parse, build the library's objects, run.
//!
//! Exit codes: 0 success; 1 a run failed (a handler panicked, a check did not hold, an input line
//! was malformed, a file could not be read); 2 bad usage.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod demo;
mod match_cmd;

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
    /// Run orders from a JSON-lines file through the throttle and the books, single-threaded;
    /// events as JSON lines on stdout (contract: docs/match-format.md).
    Match(match_cmd::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Match(args) => match_cmd::run(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sequent: {error:#}");
            ExitCode::from(1)
        }
    }
}
