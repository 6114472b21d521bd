//! `sequent match`: orders from a JSON-lines file through the throttle and the books
//! (`sequent_matching::Venue`), single-threaded, events as JSON lines on stdout.
//!
//! The contract (input ops, output events, reasons, error messages) is `docs/match-format.md`.
//! This module only translates: names (symbols, account numbers) to the venue's dense indices and
//! back, JSON to `Command` and `Event` to JSON. Events are written as they happen, so a run that
//! stops at a malformed line has already printed the events of the lines before it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use sequent_matching::{
    Command, Event, Limits, NewOrder, Side, Stp, SymbolId, Tif, Venue, VenueConfig,
};
use serde_json::{Map, Value};

/// Arguments of `sequent match`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// JSON-lines file of commands (see docs/match-format.md).
    #[arg(long, required_unless_present = "from_journal")]
    input: Option<PathBuf>,
    /// Journal every well-formed input line to this directory (created if missing; appended to
    /// if it holds a journal) before applying it, and sync it at the end: the run's system of
    /// record. Invalid lines skipped with --skip-invalid are not journaled.
    #[arg(long, conflicts_with = "from_journal")]
    journal: Option<PathBuf>,
    /// Read the input lines from a journal written with --journal instead of a file: the same
    /// events come out.
    #[arg(long, conflicts_with = "input")]
    from_journal: Option<PathBuf>,
    /// After the run, one `book` line per symbol in name order.
    #[arg(long)]
    dump_book: bool,
    /// Report malformed lines on stderr and go on, instead of stopping at the first.
    #[arg(long)]
    skip_invalid: bool,
    /// Resting orders the venue can hold (all symbols).
    #[arg(long, default_value_t = 1 << 18)]
    orders_max: u32,
    /// Distinct order ids the run can accept.
    #[arg(long, default_value_t = 1 << 20)]
    ids_max: u32,
    /// Distinct symbols.
    #[arg(long, default_value_t = 256)]
    symbols_max: u16,
    /// Distinct account numbers.
    #[arg(long, default_value_t = 1 << 16)]
    accounts_max: u32,
}

/// What one line asks for, with names still as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    New {
        order: NewOrder,
        account: u64,
        symbol: String,
    },
    Cancel {
        id: u64,
    },
    Replace {
        id: u64,
        qty: u64,
        price: Option<i64>,
    },
    MassCancel {
        account: Option<u64>,
        symbol: Option<String>,
    },
    EndOfDay,
    Limits {
        account: Option<u64>,
        limits: Limits,
    },
    Kill {
        account: Option<u64>,
    },
    Resume {
        account: Option<u64>,
    },
    Reference {
        symbol: String,
        price: i64,
    },
}

/// A parsed line: sequenced time (if given) and the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub ts: Option<u64>,
    pub input: Input,
}

/// The fields of one JSON object, read once each; what is left over is an unknown field.
struct Fields {
    map: Map<String, Value>,
}

type FieldResult<T> = Result<T, String>;

fn field_error(name: &str, message: &str) -> String {
    format!("field \"{name}\": {message}")
}

impl Fields {
    fn take(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name).filter(|v| !v.is_null())
    }

    fn u64(&mut self, name: &str) -> FieldResult<Option<u64>> {
        self.take(name)
            .map(|v| {
                v.as_u64()
                    .ok_or_else(|| field_error(name, "expected a non-negative integer"))
            })
            .transpose()
    }

    fn u64_req(&mut self, name: &str) -> FieldResult<u64> {
        self.u64(name)?
            .ok_or_else(|| field_error(name, "missing (expected a non-negative integer)"))
    }

    fn bounded<T: TryFrom<u64>>(&mut self, name: &str, max: &str) -> FieldResult<Option<T>> {
        self.u64(name)?
            .map(|v| {
                T::try_from(v).map_err(|_| field_error(name, &format!("expected at most {max}")))
            })
            .transpose()
    }

    fn i64(&mut self, name: &str) -> FieldResult<Option<i64>> {
        self.take(name)
            .map(|v| {
                v.as_i64()
                    .ok_or_else(|| field_error(name, "expected an integer number of ticks"))
            })
            .transpose()
    }

    fn string(&mut self, name: &str) -> FieldResult<Option<String>> {
        self.take(name)
            .map(|v| match v {
                Value::String(s) if !s.is_empty() => Ok(s),
                _ => Err(field_error(name, "expected a non-empty string")),
            })
            .transpose()
    }

    fn word(&mut self, name: &str, words: &[&str]) -> FieldResult<Option<usize>> {
        self.take(name)
            .map(|v| {
                v.as_str()
                    .and_then(|s| words.iter().position(|w| *w == s))
                    .ok_or_else(|| {
                        field_error(name, &format!("expected one of {}", words.join("|")))
                    })
            })
            .transpose()
    }

    fn bool(&mut self, name: &str) -> FieldResult<Option<bool>> {
        self.take(name)
            .map(|v| {
                v.as_bool()
                    .ok_or_else(|| field_error(name, "expected true or false"))
            })
            .transpose()
    }

    fn finish(self, op: &str) -> FieldResult<()> {
        match self.map.keys().next() {
            Some(key) => Err(field_error(key, &format!("unknown field for op \"{op}\""))),
            None => Ok(()),
        }
    }
}

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
    let ts = f.u64("ts")?;
    let input = match op.as_str() {
        "new" => parse_new(&mut f)?,
        "cancel" => Input::Cancel {
            id: f.u64_req("id")?,
        },
        "replace" => Input::Replace {
            id: f.u64_req("id")?,
            qty: f.u64_req("qty")?,
            price: f.i64("price")?,
        },
        "mass_cancel" => Input::MassCancel {
            account: f.u64("account")?,
            symbol: f.string("symbol")?,
        },
        "end_of_day" => Input::EndOfDay,
        "limits" => Input::Limits {
            account: f.u64("account")?,
            limits: Limits {
                max_qty: f.u64("max_qty")?,
                max_notional: f.u64("max_notional")?.map(u128::from),
                collar_bps: f.bounded("collar_bps", "4294967295")?,
                max_open_orders: f.bounded("max_open_orders", "4294967295")?,
                credit_limit: f.u64("credit_limit")?.map(u128::from),
                orders_per_sec: f.bounded("rate", "4294967295")?,
                alert_pct: match f.bounded::<u8>("alert_pct", "100")? {
                    Some(pct) if pct > 100 => {
                        return Err(field_error("alert_pct", "expected at most 100"));
                    }
                    pct => pct,
                },
            },
        },
        "kill" => Input::Kill {
            account: f.u64("account")?,
        },
        "resume" => Input::Resume {
            account: f.u64("account")?,
        },
        "reference" => Input::Reference {
            symbol: f
                .string("symbol")?
                .ok_or_else(|| field_error("symbol", "missing"))?,
            price: f
                .i64("price")?
                .ok_or_else(|| field_error("price", "missing"))?,
        },
        _ => {
            return Err(field_error(
                "op",
                "expected one of new|cancel|replace|mass_cancel|end_of_day|limits|kill|resume|reference",
            ));
        }
    };
    f.finish(&op)?;
    Ok(Some(Line { ts, input }))
}

fn parse_new(f: &mut Fields) -> FieldResult<Input> {
    let id = f.u64_req("id")?;
    let account = f.u64_req("account")?;
    let symbol = f
        .string("symbol")?
        .ok_or_else(|| field_error("symbol", "missing"))?;
    let side = match f.word("side", &["buy", "sell"])? {
        Some(0) => Side::Buy,
        Some(_) => Side::Sell,
        None => return Err(field_error("side", "missing (expected buy|sell)")),
    };
    let is_market = f.word("type", &["limit", "market"])? == Some(1);
    let tif = match f.word("tif", &["gtc", "ioc", "fok", "day"])? {
        None | Some(0) => Tif::Gtc,
        Some(1) => Tif::Ioc,
        Some(2) => Tif::Fok,
        Some(_) => Tif::Day,
    };
    let price = f.i64("price")?;
    match (is_market, price) {
        (false, None) => return Err(field_error("price", "missing (required for a limit order)")),
        (true, Some(_)) => return Err(field_error("price", "must be absent for a market order")),
        _ => {}
    }
    let qty = f.u64_req("qty")?;
    let post_only = f.bool("post_only")?.unwrap_or(false);
    let stp = match f.word(
        "stp",
        &["off", "cancel_newest", "cancel_oldest", "cancel_both"],
    )? {
        None | Some(0) => Stp::Off,
        Some(1) => Stp::CancelNewest,
        Some(2) => Stp::CancelOldest,
        Some(_) => Stp::CancelBoth,
    };
    Ok(Input::New {
        order: NewOrder {
            id,
            account: 0,
            symbol: 0,
            side,
            price,
            qty,
            tif,
            post_only,
            stp,
        },
        account,
        symbol,
    })
}

/// The venue plus the name tables of one run.
struct Session {
    venue: Venue,
    accounts: BTreeMap<u64, u32>,
    account_numbers: Vec<u64>,
    symbols: BTreeMap<String, SymbolId>,
    symbol_names: Vec<String>,
    /// The JSON-escaped symbol names, ready to print.
    symbol_json: Vec<String>,
    now: u64,
    events: Vec<Event>,
}

impl Session {
    fn new(config: VenueConfig) -> Self {
        Self {
            venue: Venue::new(config),
            accounts: BTreeMap::new(),
            account_numbers: Vec::new(),
            symbols: BTreeMap::new(),
            symbol_names: Vec::new(),
            symbol_json: Vec::new(),
            now: 0,
            events: Vec::new(),
        }
    }

    fn account(&mut self, number: u64) -> Result<u32, String> {
        if let Some(&index) = self.accounts.get(&number) {
            return Ok(index);
        }
        let index = self.account_numbers.len() as u32;
        if index >= self.venue.config().accounts_max {
            return Err(field_error(
                "account",
                &format!("more than {index} distinct accounts (raise --accounts-max)"),
            ));
        }
        self.accounts.insert(number, index);
        self.account_numbers.push(number);
        Ok(index)
    }

    fn symbol(&mut self, name: &str) -> Result<SymbolId, String> {
        if let Some(&index) = self.symbols.get(name) {
            return Ok(index);
        }
        let index = self.symbol_names.len() as SymbolId;
        if index >= self.venue.config().symbols_max {
            return Err(field_error(
                "symbol",
                &format!("more than {index} distinct symbols (raise --symbols-max)"),
            ));
        }
        let json =
            serde_json::to_string(name).map_err(|e| field_error("symbol", &e.to_string()))?;
        self.symbols.insert(name.to_owned(), index);
        self.symbol_names.push(name.to_owned());
        self.symbol_json.push(json);
        Ok(index)
    }

    /// Translates a line into a command; `Ok(None)` when it can change nothing (a mass cancel
    /// naming an account or symbol never seen).
    fn command(&mut self, input: &Input) -> Result<Option<Command>, String> {
        let account = |s: &mut Self, a: Option<u64>| a.map(|a| s.account(a)).transpose();
        Ok(Some(match input {
            Input::New {
                order,
                account,
                symbol,
            } => Command::New(NewOrder {
                account: self.account(*account)?,
                symbol: self.symbol(symbol)?,
                ..*order
            }),
            Input::Cancel { id } => Command::Cancel { id: *id },
            Input::Replace { id, qty, price } => Command::Replace {
                id: *id,
                qty: *qty,
                price: *price,
            },
            Input::MassCancel { account, symbol } => {
                let account = match account {
                    Some(a) => match self.accounts.get(a) {
                        Some(&index) => Some(index),
                        None => return Ok(None),
                    },
                    None => None,
                };
                let symbol = match symbol {
                    Some(s) => match self.symbols.get(s) {
                        Some(&index) => Some(index),
                        None => return Ok(None),
                    },
                    None => None,
                };
                Command::MassCancel { account, symbol }
            }
            Input::EndOfDay => Command::EndOfDay,
            Input::Limits { account: a, limits } => Command::SetLimits {
                account: account(self, *a)?,
                limits: *limits,
            },
            Input::Kill { account: a } => Command::Kill {
                account: account(self, *a)?,
            },
            Input::Resume { account: a } => Command::Resume {
                account: account(self, *a)?,
            },
            Input::Reference { symbol, price } => Command::SetReference {
                symbol: self.symbol(symbol)?,
                price: *price,
            },
        }))
    }

    fn apply(&mut self, line: &Line, out: &mut impl Write) -> Result<(), ApplyError> {
        let Some(command) = self.command(&line.input).map_err(ApplyError::Input)? else {
            return Ok(());
        };
        // Sequenced time never goes backwards: an earlier `ts` counts as the latest one.
        self.now = self.now.max(line.ts.unwrap_or(0));
        self.events.clear();
        self.venue.apply(self.now, &command, &mut self.events);
        for event in &self.events {
            write_event(event, &self.symbol_json, &self.account_numbers, out)
                .map_err(ApplyError::Output)?;
        }
        Ok(())
    }

    fn dump_book(&self, out: &mut impl Write) -> std::io::Result<()> {
        for &symbol in self.symbols.values() {
            write!(
                out,
                "{{\"ev\":\"book\",\"symbol\":{}",
                self.symbol_json[usize::from(symbol)]
            )?;
            for (name, side) in [("bids", Side::Buy), ("asks", Side::Sell)] {
                write!(out, ",\"{name}\":[")?;
                for (i, order) in self.venue.resting(symbol, side).enumerate() {
                    let sep = if i == 0 { "" } else { "," };
                    write!(out, "{sep}[{},{},{}]", order.id, order.price, order.qty)?;
                }
                write!(out, "]")?;
            }
            writeln!(out, "}}")?;
        }
        Ok(())
    }
}

enum ApplyError {
    Input(String),
    Output(std::io::Error),
}

/// One event as one JSON line. Keys in the order `docs/match-format.md` gives.
pub fn write_event(
    event: &Event,
    symbol_json: &[String],
    account_numbers: &[u64],
    out: &mut impl Write,
) -> std::io::Result<()> {
    match *event {
        Event::Accepted { id } => writeln!(out, "{{\"ev\":\"accepted\",\"id\":{id}}}"),
        Event::Replaced { id, price, qty } => writeln!(
            out,
            "{{\"ev\":\"replaced\",\"id\":{id},\"price\":{price},\"qty\":{qty}}}"
        ),
        Event::Trade {
            symbol,
            taker,
            maker,
            price,
            qty,
            ..
        } => writeln!(
            out,
            "{{\"ev\":\"trade\",\"symbol\":{},\"taker\":{taker},\"maker\":{maker},\"price\":{price},\"qty\":{qty}}}",
            symbol_json[usize::from(symbol)]
        ),
        Event::Cancelled { id, qty, reason } => writeln!(
            out,
            "{{\"ev\":\"cancelled\",\"id\":{id},\"qty\":{qty},\"reason\":\"{}\"}}",
            reason.as_str()
        ),
        Event::Rejected { id, reason } => writeln!(
            out,
            "{{\"ev\":\"rejected\",\"id\":{id},\"reason\":\"{}\"}}",
            reason.as_str()
        ),
        Event::Alert(alert) => writeln!(
            out,
            "{{\"ev\":\"alert\",\"account\":{},\"limit\":\"{}\",\"used\":{},\"max\":{}}}",
            account_numbers[alert.account as usize],
            alert.kind.as_str(),
            alert.used,
            alert.limit
        ),
    }
}

/// The journal record kind of one `sequent match` input line (its JSON text, as read).
pub const JOURNAL_KIND_MATCH_LINE: u8 = 1;

/// Where the input lines come from.
enum Source {
    File(std::io::Lines<BufReader<File>>),
    Journal(sequent_journal::Reader),
}

impl Source {
    /// The next line and how to name it in an error ("line 12", "journal record 12").
    fn next_line(&mut self, index: usize) -> Option<anyhow::Result<(String, String)>> {
        match self {
            Self::File(lines) => lines.next().map(|text| {
                let label = format!("line {}", index + 1);
                text.with_context(|| format!("{label}: cannot read"))
                    .map(|text| (label, text))
            }),
            Self::Journal(reader) => loop {
                match reader.next() {
                    Ok(None) => return None,
                    Err(err) => return Some(Err(err).context("cannot read the journal")),
                    Ok(Some(record)) if record.kind != JOURNAL_KIND_MATCH_LINE => continue,
                    Ok(Some(record)) => {
                        let label = format!("journal record {}", record.sequence);
                        return Some(
                            String::from_utf8(record.payload.to_vec())
                                .with_context(|| format!("{label}: not UTF-8"))
                                .map(|text| (label, text)),
                        );
                    }
                }
            },
        }
    }
}

/// Runs `sequent match`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut source = match (&args.input, &args.from_journal) {
        (_, Some(dir)) => Source::Journal(
            sequent_journal::Reader::open(dir)
                .with_context(|| format!("cannot read the journal in {}", dir.display()))?,
        ),
        (Some(input), None) => Source::File(
            BufReader::new(
                File::open(input).with_context(|| format!("cannot open {}", input.display()))?,
            )
            .lines(),
        ),
        (None, None) => bail!("--input or --from-journal is required"),
    };
    let mut journal = match &args.journal {
        Some(dir) => {
            let writer = sequent_journal::Writer::open(dir, &sequent_journal::Config::default())
                .with_context(|| format!("cannot open the journal in {}", dir.display()))?;
            if let Some(truncation) = &writer.open_report().truncated {
                eprintln!("sequent match: journal: {truncation}");
            }
            Some(writer)
        }
        None => None,
    };
    let config = VenueConfig {
        orders_max: args.orders_max,
        levels_max: args.orders_max.clamp(1, 1 << 20),
        levels_per_side_max: args.orders_max.clamp(1, 1 << 16),
        symbols_max: args.symbols_max.max(1),
        accounts_max: args.accounts_max.max(1),
        ids_max: args.ids_max,
    };
    let mut session = Session::new(config);
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut journaled = 0u64;
    let mut index = 0;
    while let Some(next) = source.next_line(index) {
        index += 1;
        let (label, text) = next?;
        let result = parse_line(&text).and_then(|line| match line {
            Some(line) => {
                // The journal first: an input is on record before it has any effect.
                if let Some(writer) = journal.as_mut() {
                    writer
                        .append(
                            JOURNAL_KIND_MATCH_LINE,
                            line.ts.unwrap_or(0),
                            text.as_bytes(),
                        )
                        .map_err(|err| format!("cannot journal: {err}"))?;
                    journaled += 1;
                }
                match session.apply(&line, &mut out) {
                    Ok(()) => Ok(()),
                    Err(ApplyError::Input(message)) => Err(message),
                    Err(ApplyError::Output(err)) => Err(format!("cannot write output: {err}")),
                }
            }
            None => Ok(()),
        });
        if let Err(message) = result {
            let fatal =
                message.starts_with("cannot write output") || message.starts_with("cannot journal");
            if args.skip_invalid && !fatal {
                out.flush().context("cannot write output")?;
                eprintln!("sequent match: {label}: {message} (skipped)");
            } else {
                out.flush().ok();
                if let Some(writer) = journal.take() {
                    writer.close().context("cannot close the journal")?;
                }
                bail!("{label}: {message}");
            }
        }
    }
    if args.dump_book {
        session.dump_book(&mut out).context("cannot write output")?;
    }
    out.flush().context("cannot write output")?;
    if let Some(mut writer) = journal {
        let durable = writer.sync().context("cannot sync the journal")?;
        writer.close().context("cannot close the journal")?;
        eprintln!(
            "sequent match: journal: {journaled} lines appended, durable through sequence {durable}"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_contract_examples_parse() {
        let line = parse_line(r#"{"op":"new","id":1,"account":7,"symbol":"ABC","side":"buy","type":"limit","tif":"gtc","price":10050,"qty":100}"#)
            .unwrap()
            .unwrap();
        let Input::New {
            order,
            account,
            symbol,
        } = line.input
        else {
            panic!()
        };
        assert_eq!((order.id, account, symbol.as_str()), (1, 7, "ABC"));
        assert_eq!(
            (order.price, order.qty, order.tif),
            (Some(10_050), 100, Tif::Gtc)
        );
        assert_eq!(
            parse_line(r#"{"op":"replace","id":1,"qty":50,"price":10040}"#)
                .unwrap()
                .unwrap()
                .input,
            Input::Replace {
                id: 1,
                qty: 50,
                price: Some(10_040)
            }
        );
        assert_eq!(parse_line("   ").unwrap(), None);
    }

    #[test]
    fn errors_name_the_field() {
        for (text, want) in [
            (
                r#"{"op":"new","id":1,"account":7,"symbol":"A","side":"buy","price":1,"qty":-5}"#,
                r#"field "qty": expected a non-negative integer"#,
            ),
            (
                r#"{"op":"new","id":1,"account":7,"symbol":"A","side":"up","price":1,"qty":5}"#,
                r#"field "side": expected one of buy|sell"#,
            ),
            (
                r#"{"op":"new","id":1,"account":7,"symbol":"A","side":"buy","qty":5}"#,
                r#"field "price": missing (required for a limit order)"#,
            ),
            (
                r#"{"op":"new","id":1,"account":7,"symbol":"A","side":"buy","type":"market","price":3,"qty":5}"#,
                r#"field "price": must be absent for a market order"#,
            ),
            (
                r#"{"op":"cancel","id":1,"qtty":5}"#,
                r#"field "qtty": unknown field for op "cancel""#,
            ),
            (r#"{"op":"fly"}"#, r#"field "op": expected one of"#),
            (r#"{"id":1}"#, r#"field "op": missing"#),
            (r#"[1]"#, "expected a JSON object"),
            (r#"{"op":"new""#, "not JSON"),
        ] {
            let err = parse_line(text).unwrap_err();
            assert!(err.starts_with(want), "{text}: {err}");
        }
    }

    proptest! {
        /// Arbitrary bytes, and arbitrary edits of a valid line, give a line or an error, never a panic.
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_line(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn edited_lines_never_panic(cut in 0usize..120, insert in "[\\[\\]{}:,\"a-z0-9 -]{0,8}") {
            let line = r#"{"op":"new","id":1,"account":7,"symbol":"ABC","side":"buy","tif":"ioc","price":10050,"qty":100,"stp":"cancel_both"}"#;
            let cut = cut.min(line.len());
            let text = format!("{}{insert}{}", &line[..cut], &line[cut..]);
            let _ = parse_line(&text);
        }
    }
}
