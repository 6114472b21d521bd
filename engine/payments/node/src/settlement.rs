//! Settlement at the edge: fetch an acquirer's end-of-day clearing file (the simulator's
//! `clearing PATH` admin command), parse its CSV (`acquirer,rrn,payment_id,amount_minor,currency,
//! type,date`, RFC 4180; documented in `sequent-acquirer-sim`), and turn rows into the engine's
//! `ClearingRow`s: the payment and its attempt or refund number come from the RRN
//! ([`crate::edge::parse_rrn`]).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use sequent_payments::{ClearingKind, ClearingRow, PaymentId};

/// Why a clearing file could not be had or read.
#[derive(Debug, thiserror::Error)]
pub enum SettlementError {
    /// The admin port or the file.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The simulator refused the command.
    #[error("the acquirer's admin port answered: {0}")]
    Refused(String),
    /// A line of the file does not parse (line number, 1-based, and the column).
    #[error("clearing file line {line}: bad {column}")]
    Parse {
        /// Line number.
        line: usize,
        /// Column name.
        column: &'static str,
    },
}

/// Asks the simulator at `admin` to write its clearing file to `path`, then reads it.
pub fn fetch_clearing(admin: SocketAddr, path: &Path) -> Result<String, SettlementError> {
    let io = |what: &str| {
        let what = what.to_owned();
        move |source| SettlementError::Io { what, source }
    };
    let stream =
        TcpStream::connect_timeout(&admin, Duration::from_secs(5)).map_err(io("admin connect"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io("admin"))?;
    let mut writer = stream.try_clone().map_err(io("admin"))?;
    writeln!(writer, "clearing {}", path.display()).map_err(io("admin write"))?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(io("admin read"))?;
    if !line.starts_with("ok clearing") {
        return Err(SettlementError::Refused(line.trim().to_owned()));
    }
    std::fs::read_to_string(path).map_err(io("clearing file"))
}

/// Splits one CSV line (RFC 4180 quoting).
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Parses a clearing file into engine rows. A row whose RRN names nothing of ours becomes a row
/// for payment 0 (the engine reports it `Unexpected`); a malformed line is an error naming it.
pub fn parse_clearing(text: &str) -> Result<Vec<ClearingRow>, SettlementError> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if n == 1 || line.trim().is_empty() {
            continue; // header
        }
        let f = fields(line);
        let bad = |column| SettlementError::Parse { line: n, column };
        if f.len() != 7 {
            return Err(bad("column count"));
        }
        let kind = match f[5].as_str() {
            "auth" => ClearingKind::Auth,
            "capture" => ClearingKind::Capture,
            "refund" => ClearingKind::Refund,
            "reversal" => ClearingKind::Reversal,
            _ => return Err(bad("type")),
        };
        let amount: u64 = f[3].parse().map_err(|_| bad("amount_minor"))?;
        let currency: u16 = f[4].parse().map_err(|_| bad("currency"))?;
        let date: u32 = f[6].replace('-', "").parse().map_err(|_| bad("date"))?;
        let (payment, reference) = match crate::edge::parse_rrn(&f[1]) {
            Some((p, b'R', r)) if kind == ClearingKind::Refund => (p, r),
            Some((p, b'A', a)) if kind != ClearingKind::Refund => (p, a),
            _ => (PaymentId(0), 0),
        };
        rows.push(ClearingRow {
            payment_id: payment,
            reference,
            kind,
            amount,
            currency,
            date,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_map_by_rrn() {
        let text = "acquirer,rrn,payment_id,amount_minor,currency,type,date\n\
                    acq-a,000000007A01,7,1000,978,auth,2026-11-24\n\
                    acq-a,000000007A01,7,600,978,capture,2026-11-24\n\
                    acq-a,000000007R02,\"7\",100,978,refund,2026-11-24\n\
                    acq-a,XYZ,,5,978,capture,2026-11-24\n";
        let rows = parse_clearing(text).unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!((rows[1].payment_id, rows[1].reference), (PaymentId(7), 1));
        assert_eq!((rows[2].kind, rows[2].reference), (ClearingKind::Refund, 2));
        assert_eq!(rows[3].payment_id, PaymentId(0));
        assert_eq!(rows[0].date, 20_261_124);
        assert!(matches!(
            parse_clearing("h\nacq,1,2,x,978,auth,2026-01-01\n"),
            Err(SettlementError::Parse {
                line: 2,
                column: "amount_minor"
            })
        ));
    }
}
