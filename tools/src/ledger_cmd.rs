//! `sequent ledger`: the double-entry ledger (`sequent_ledger::Ledger`) over JSON lines.
//!
//! The contract (input ops, output events, reasons, error messages) is `docs/ledger-format.md`.
//! This module only translates JSON to the engine's inputs and outcomes to JSON, and groups the
//! lines of a linked chain into one batch (a chain's results are known only when it ends).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use sequent_ledger::{Account, AccountFlags, Config, Ledger, Outcome, Transfer, TransferFlags};
use serde_json::{Map, Value};

/// Journal record kind of one `sequent ledger apply` input line.
pub const JOURNAL_KIND_LEDGER_LINE: u8 = 2;

/// `sequent ledger` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Run accounts and transfers from a JSON-lines file through the ledger, single-threaded;
    /// one result line per input on stdout (contract: docs/ledger-format.md).
    Apply(ApplyArgs),
    /// Print the RFC 9162 inclusion proof of the journal record that carried transfer ID (the
    /// first `transfer` line with that id in a journal written by `apply --journal`), against
    /// its segment's Merkle root; `sequent journal check-proof` verifies the `--json` form.
    Prove(ProveArgs),
    /// Apply FILE, then reconcile the ledger's posted transfers with a settlement CSV (columns
    /// in docs/ledger-format.md): a readable report, or JSON; exit 0 only without breaks.
    Reconcile(ReconcileArgs),
}

/// Arguments of `sequent ledger reconcile`.
#[derive(clap::Args, Debug)]
pub struct ReconcileArgs {
    /// JSON-lines input, as for `apply`.
    #[arg(long)]
    input: PathBuf,
    /// The settlement file (CSV).
    #[arg(long)]
    settlement: PathBuf,
    /// Amounts within this many minor units match.
    #[arg(long, default_value_t = 0)]
    tolerance: u64,
    /// Value dates within this many days match.
    #[arg(long, default_value_t = 0)]
    date_tolerance_days: u32,
    /// One JSON object instead of the readable report.
    #[arg(long)]
    json: bool,
}

/// Arguments of `sequent ledger prove`.
#[derive(clap::Args, Debug)]
pub struct ProveArgs {
    /// The journal directory written by `sequent ledger apply --journal`.
    #[arg(long)]
    journal: PathBuf,
    /// The transfer id.
    id: u64,
    /// Print the proof as one JSON object (the input of `sequent journal check-proof`).
    #[arg(long)]
    json: bool,
}

/// Arguments of `sequent ledger apply`.
#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// JSON-lines file of accounts and transfers (see docs/ledger-format.md).
    #[arg(long)]
    input: PathBuf,
    /// After the run, one `balance` line per account in id order.
    #[arg(long)]
    dump_balances: bool,
    /// Journal every well-formed input line to this directory before applying it (created if
    /// missing, appended to if it holds a journal), synced at the end.
    #[arg(long)]
    journal: Option<PathBuf>,
    /// Accounts the ledger can hold.
    #[arg(long, default_value_t = 1 << 16)]
    accounts_max: u32,
    /// Transfer ids the ledger can hold (stored transfers plus remembered failures).
    #[arg(long, default_value_t = 1 << 20)]
    transfers_max: u32,
}

/// What one line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Account(Account),
    Transfer(Transfer),
    Close { id: u128 },
}

/// A parsed line: sequenced time (if given) and the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub ts: Option<u64>,
    pub input: Input,
}

fn field_error(name: &str, message: &str) -> String {
    format!("field \"{name}\": {message}")
}

/// The fields of one JSON object, read once each; what is left over is an unknown field.
struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    fn take(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name).filter(|v| !v.is_null())
    }

    fn u64(&mut self, name: &str) -> Result<u64, String> {
        self.take(name)
            .map(|v| {
                v.as_u64()
                    .ok_or_else(|| field_error(name, "expected a non-negative integer"))
            })
            .transpose()
            .map(|v| v.unwrap_or(0))
    }

    fn u64_opt(&mut self, name: &str) -> Result<Option<u64>, String> {
        self.take(name)
            .map(|v| {
                v.as_u64()
                    .ok_or_else(|| field_error(name, "expected a non-negative integer"))
            })
            .transpose()
    }

    fn bounded<T: TryFrom<u64>>(&mut self, name: &str, max: u64) -> Result<T, String> {
        T::try_from(self.u64(name)?)
            .map_err(|_| field_error(name, &format!("expected at most {max}")))
    }

    /// A list of flag names; each must be one of `words` (bit `1 << position`).
    fn flags(&mut self, name: &str, words: &[&str]) -> Result<u16, String> {
        let Some(value) = self.take(name) else {
            return Ok(0);
        };
        let expected = || field_error(name, &format!("expected a list of {}", words.join("|")));
        let Value::Array(items) = value else {
            return Err(expected());
        };
        let mut bits = 0u16;
        for item in items {
            let position = item
                .as_str()
                .and_then(|s| words.iter().position(|w| *w == s))
                .ok_or_else(expected)?;
            bits |= 1 << position;
        }
        Ok(bits)
    }

    fn finish(self, op: &str) -> Result<(), String> {
        match self.map.keys().next() {
            Some(key) => Err(field_error(key, &format!("unknown field for op \"{op}\""))),
            None => Ok(()),
        }
    }
}

/// Account flag names, in bit order.
pub const ACCOUNT_FLAGS: [&str; 4] = [
    "debits_must_not_exceed_credits",
    "credits_must_not_exceed_debits",
    "history",
    "closed",
];

/// Transfer flag names, in bit order.
pub const TRANSFER_FLAGS: [&str; 7] = [
    "linked",
    "pending",
    "post_pending",
    "void_pending",
    "balancing_debit",
    "balancing_credit",
    "reversal",
];

/// Parses one line. `Ok(None)` for a blank line. The error names the field and what was expected.
pub fn parse_line(text: &str) -> Result<Option<Line>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(map) = value else {
        return Err("expected a JSON object".to_owned());
    };
    let mut f = Fields { map };
    let op = match f.take("op") {
        Some(Value::String(op)) => op,
        Some(_) => return Err(field_error("op", "expected a string")),
        None => return Err(field_error("op", "missing")),
    };
    let ts = f.u64_opt("ts")?;
    let input = match op.as_str() {
        "account" => Input::Account(Account {
            id: u128::from(f.u64("id")?),
            ledger: f.bounded("ledger", u32::MAX.into())?,
            code: f.bounded("code", u16::MAX.into())?,
            flags: AccountFlags(f.flags("flags", &ACCOUNT_FLAGS)? as u8),
            parent: u128::from(f.u64("parent")?),
            user_data: u128::from(f.u64("user_data")?),
        }),
        "transfer" => Input::Transfer(Transfer {
            id: u128::from(f.u64("id")?),
            debit_account_id: u128::from(f.u64("debit")?),
            credit_account_id: u128::from(f.u64("credit")?),
            amount: u128::from(f.u64("amount")?),
            ledger: f.bounded("ledger", u32::MAX.into())?,
            code: f.bounded("code", u16::MAX.into())?,
            flags: TransferFlags(f.flags("flags", &TRANSFER_FLAGS)?),
            timeout_ns: f.u64("timeout_ns")?,
            pending_id: u128::from(f.u64("pending_id")?),
            user_data: u128::from(f.u64("user_data")?),
        }),
        "close" => Input::Close {
            id: u128::from(
                f.u64_opt("id")?
                    .ok_or_else(|| field_error("id", "missing"))?,
            ),
        },
        _ => return Err(field_error("op", "expected one of account|transfer|close")),
    };
    f.finish(&op)?;
    Ok(Some(Line { ts, input }))
}

/// The ledger plus the open chain of one run.
pub struct Session {
    ledger: Ledger,
    now: u64,
    chain: Vec<Transfer>,
    outcomes: Vec<Outcome>,
}

impl Session {
    pub fn new(config: Config) -> Self {
        Self {
            ledger: Ledger::new(config),
            now: 0,
            chain: Vec::new(),
            outcomes: Vec::new(),
        }
    }

    /// Applies one line; writes the result lines it completes.
    pub fn apply(&mut self, line: &Line, out: &mut impl Write) -> std::io::Result<()> {
        if let Some(ts) = line.ts {
            self.now = self.now.max(ts);
        }
        match &line.input {
            Input::Transfer(t) => {
                self.chain.push(*t);
                if !t.flags.contains(TransferFlags::LINKED) {
                    self.flush(out)?;
                }
            }
            Input::Account(a) => {
                self.flush(out)?;
                let outcome = self.ledger.create_account(self.now, a);
                write_outcome(out, a.id, outcome)?;
            }
            Input::Close { id } => {
                self.flush(out)?;
                let outcome = self.ledger.close_account(self.now, *id);
                write_outcome(out, *id, outcome)?;
            }
        }
        Ok(())
    }

    /// Applies the buffered transfers as one batch (a chain still open fails as open).
    pub fn flush(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if self.chain.is_empty() {
            return Ok(());
        }
        self.outcomes.clear();
        self.ledger
            .create_transfers(self.now, &self.chain, &mut self.outcomes);
        for (t, &outcome) in self.chain.iter().zip(&self.outcomes) {
            write_outcome(out, t.id, outcome)?;
        }
        self.chain.clear();
        Ok(())
    }

    /// One `balance` line per account, in id order.
    pub fn dump_balances(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut accounts: Vec<_> = self.ledger.accounts().iter().collect();
        accounts.sort_by_key(|a| a.account.id);
        for a in accounts {
            let b = a.balances;
            writeln!(
                out,
                r#"{{"ev":"balance","account":{},"debits_posted":{},"credits_posted":{},"debits_pending":{},"credits_pending":{}}}"#,
                a.account.id,
                b.debits_posted,
                b.credits_posted,
                b.debits_pending,
                b.credits_pending
            )?;
        }
        Ok(())
    }
}

fn write_outcome(out: &mut impl Write, id: u128, outcome: Outcome) -> std::io::Result<()> {
    match outcome {
        Outcome::Ok => writeln!(out, r#"{{"ev":"ok","id":{id}}}"#),
        Outcome::Exists => writeln!(out, r#"{{"ev":"exists","id":{id}}}"#),
        reason => writeln!(
            out,
            r#"{{"ev":"error","id":{id},"reason":"{}"}}"#,
            reason.name()
        ),
    }
}

/// Runs a `sequent ledger` subcommand.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Apply(args) => apply(&args).map(|()| ExitCode::SUCCESS),
        Command::Prove(args) => prove(&args),
        Command::Reconcile(args) => reconcile(&args),
    }
}

fn reconcile(args: &ReconcileArgs) -> anyhow::Result<ExitCode> {
    use sequent_ledger::reconcile::{self, Category, Tolerance, format_date};
    let input = BufReader::new(
        File::open(&args.input).with_context(|| format!("cannot open {}", args.input.display()))?,
    );
    let mut session = Session::new(Config::default());
    let mut sink = std::io::sink();
    for (index, text) in input.lines().enumerate() {
        let text = text.with_context(|| format!("cannot read {}", args.input.display()))?;
        match parse_line(&text) {
            Ok(Some(line)) => session.apply(&line, &mut sink)?,
            Ok(None) => {}
            Err(message) => bail!("line {}: {message}", index + 1),
        }
    }
    session.flush(&mut sink)?;
    let csv = std::fs::read_to_string(&args.settlement)
        .with_context(|| format!("cannot open {}", args.settlement.display()))?;
    let rows = reconcile::parse_settlement(&csv)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.settlement.display()))?;
    let report = reconcile::reconcile(
        &session.ledger,
        &rows,
        Tolerance {
            amount: u128::from(args.tolerance),
            days: args.date_tolerance_days,
        },
    );
    let day = |d: Option<i64>| d.map(format_date);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if args.json {
        let counts: Map<String, Value> = Category::ALL
            .iter()
            .map(|c| (c.name().to_owned(), Value::from(report.count(*c))))
            .collect();
        let items: Vec<Value> = report
            .items
            .iter()
            .map(|i| {
                serde_json::json!({
                    "category": i.category.name(),
                    "external_ref": i.external_ref,
                    "transfer_id": i.transfer_id.to_string(),
                    "ledger_amount": i.ledger_amount.map(|a| a.to_string()),
                    "file_amount": i.file_amount.map(|a| a.to_string()),
                    "ledger_date": day(i.ledger_day),
                    "file_date": day(i.file_day),
                })
            })
            .collect();
        let doc = serde_json::json!({
            "cut_seq": report.cut_seq,
            "breaks": report.breaks(),
            "counts": counts,
            "items": items,
        });
        writeln!(out, "{doc}")?;
    } else {
        writeln!(
            out,
            "reconciliation at cut sequence {}: {} rows, {} breaks",
            report.cut_seq,
            rows.len(),
            report.breaks()
        )?;
        for c in Category::ALL {
            writeln!(out, "  {:<18} {}", c.name(), report.count(c))?;
        }
        for i in report
            .items
            .iter()
            .filter(|i| i.category != Category::Matched)
        {
            let show = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
            writeln!(
                out,
                "{:<18} ref={} transfer={} ledger_amount={} file_amount={} ledger_date={} file_date={}",
                i.category.name(),
                if i.external_ref.is_empty() {
                    "-"
                } else {
                    &i.external_ref
                },
                i.transfer_id,
                show(i.ledger_amount.map(|a| a.to_string())),
                show(i.file_amount.map(|a| a.to_string())),
                show(day(i.ledger_day)),
                show(day(i.file_day)),
            )?;
        }
    }
    out.flush()?;
    Ok(if report.breaks() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Finds the first journaled `transfer` line with the id and proves its record.
fn prove(args: &ProveArgs) -> anyhow::Result<ExitCode> {
    let mut reader = sequent_journal::Reader::open(&args.journal)
        .with_context(|| format!("cannot read the journal in {}", args.journal.display()))?;
    let want = u128::from(args.id);
    let mut found = None;
    while let Some(record) = reader.next().context("cannot read the journal")? {
        if record.kind != JOURNAL_KIND_LEDGER_LINE {
            continue;
        }
        let Ok(text) = std::str::from_utf8(record.payload) else {
            continue;
        };
        if let Ok(Some(Line {
            input: Input::Transfer(t),
            ..
        })) = parse_line(text)
        {
            if t.id == want {
                found = Some(record.sequence);
                break;
            }
        }
    }
    let Some(sequence) = found else {
        eprintln!("sequent: no journaled transfer with id {}", args.id);
        return Ok(ExitCode::from(1));
    };
    eprintln!("sequent ledger: transfer {} is record {sequence}", args.id);
    crate::journal_cmd::proof::prove(&crate::journal_cmd::proof::ProveArgs::inclusion(
        args.journal.clone(),
        sequence,
        args.json,
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn apply(args: &ApplyArgs) -> anyhow::Result<()> {
    let input = BufReader::new(
        File::open(&args.input).with_context(|| format!("cannot open {}", args.input.display()))?,
    );
    let mut journal = match &args.journal {
        Some(dir) => {
            let writer = sequent_journal::Writer::open(dir, &sequent_journal::Config::default())
                .with_context(|| format!("cannot open the journal in {}", dir.display()))?;
            if let Some(truncation) = &writer.open_report().truncated {
                eprintln!("sequent ledger: journal: {truncation}");
            }
            Some(writer)
        }
        None => None,
    };
    let mut session = Session::new(Config {
        accounts_max: args.accounts_max.max(1),
        transfers_max: args.transfers_max.max(1),
    });
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut journaled = 0u64;
    for (index, text) in input.lines().enumerate() {
        let label = format!("line {}", index + 1);
        let text = text.with_context(|| format!("cannot read {}", args.input.display()))?;
        let line = match parse_line(&text) {
            Ok(Some(line)) => line,
            Ok(None) => continue,
            Err(message) => {
                out.flush().ok();
                if let Some(writer) = journal.take() {
                    writer.close().context("cannot close the journal")?;
                }
                bail!("{label}: {message}");
            }
        };
        // The journal first: an input is on record before it has any effect.
        if let Some(writer) = journal.as_mut() {
            writer
                .append(
                    JOURNAL_KIND_LEDGER_LINE,
                    line.ts.unwrap_or(0),
                    text.as_bytes(),
                )
                .context("cannot journal")?;
            journaled += 1;
        }
        session
            .apply(&line, &mut out)
            .context("cannot write output")?;
    }
    session.flush(&mut out).context("cannot write output")?;
    if args.dump_balances {
        session
            .dump_balances(&mut out)
            .context("cannot write output")?;
    }
    out.flush().context("cannot write output")?;
    if let Some(mut writer) = journal {
        let durable = writer.sync().context("cannot sync the journal")?;
        writer.close().context("cannot close the journal")?;
        eprintln!(
            "sequent ledger: journal: {journaled} lines appended, durable through sequence {durable}"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_examples_parse() {
        let line = parse_line(r#"{"op":"account","id":1,"ledger":1,"code":10,"flags":["debits_must_not_exceed_credits"],"parent":0}"#)
            .unwrap()
            .unwrap();
        let Input::Account(a) = line.input else {
            panic!()
        };
        assert_eq!((a.id, a.ledger, a.code), (1, 1, 10));
        assert_eq!(a.flags, AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS);
        let line = parse_line(r#"{"op":"transfer","id":100,"debit":1,"credit":2,"amount":500,"ledger":1,"code":1,"flags":["pending"],"timeout_ns":1000000000,"pending_id":0,"ts":123}"#)
            .unwrap()
            .unwrap();
        assert_eq!(line.ts, Some(123));
        let Input::Transfer(t) = line.input else {
            panic!()
        };
        assert_eq!(t.flags, TransferFlags::PENDING);
        assert_eq!((t.id, t.amount, t.timeout_ns), (100, 500, 1_000_000_000));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{"op":"transfer","amount":-1}"#, "field \"amount\""),
            (r#"{"op":"transfer","flags":["pendng"]}"#, "field \"flags\""),
            (
                r#"{"op":"account","ledger":4294967296}"#,
                "field \"ledger\"",
            ),
            (r#"{"op":"account","colour":1}"#, "field \"colour\""),
            (r#"{"op":"mint"}"#, "field \"op\""),
            (r#"{"op":"close"}"#, "field \"id\""),
        ];
        for (text, want) in cases {
            let err = parse_line(text).unwrap_err();
            assert!(err.starts_with(want), "{text}: {err}");
        }
    }
}
