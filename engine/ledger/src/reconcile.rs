//! Batch reconciliation of the ledger's posted transfers against an external settlement file.
//!
//! The file is CSV with a header line and these columns, in this order:
//! `external_ref,transfer_id,value_date,amount,currency,debit_account,credit_account`
//! (`value_date` is `YYYY-MM-DD`; `amount` in minor units; `currency` is the ledger number).
//! The ledger side is every stored transfer that moved posted money (plain, balancing, reversal
//! and `post_pending`; not pending nor void), dated by its sequenced time (UTC day).
//!
//! Each file row is matched by `transfer_id` and gets the first category that applies, in this
//! order: `missing_in_ledger` (no posted transfer with that id), `duplicated` (a second or later
//! row for one id), `amount_mismatch` (the difference exceeds the amount tolerance),
//! `date_mismatch` (the days apart exceed the date tolerance), `account_mismatch` (debit, credit or currency differ), else `matched`.
//! Every posted transfer no row names is `missing_in_file`. Breaks are every category but
//! `matched`. The report is sorted by (category in [`Category::ALL`] order, external ref,
//! transfer id): deterministic.

use crate::{Ledger, TransferFlags};

/// One row of the settlement file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettlementRow {
    pub external_ref: String,
    pub transfer_id: u128,
    /// Days since 1970-01-01.
    pub value_day: i64,
    pub amount: u128,
    pub currency: u32,
    pub debit_account: u128,
    pub credit_account: u128,
}

/// Reconciliation categories, in report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    AmountMismatch,
    DateMismatch,
    AccountMismatch,
    Duplicated,
    MissingInFile,
    MissingInLedger,
    Matched,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Self::AmountMismatch,
        Self::DateMismatch,
        Self::AccountMismatch,
        Self::Duplicated,
        Self::MissingInFile,
        Self::MissingInLedger,
        Self::Matched,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::AmountMismatch => "amount_mismatch",
            Self::DateMismatch => "date_mismatch",
            Self::AccountMismatch => "account_mismatch",
            Self::Duplicated => "duplicated",
            Self::MissingInFile => "missing_in_file",
            Self::MissingInLedger => "missing_in_ledger",
            Self::Matched => "matched",
        }
    }
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Item {
    pub category: Category,
    /// Empty for `missing_in_file`.
    pub external_ref: String,
    pub transfer_id: u128,
    pub ledger_amount: Option<u128>,
    pub file_amount: Option<u128>,
    pub ledger_day: Option<i64>,
    pub file_day: Option<i64>,
}

/// Tolerances: an amount within `amount` minor units and a date within `days` days match.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tolerance {
    pub amount: u128,
    pub days: u32,
}

/// The report: the cut (the ledger's last sequence), the counts and the sorted items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub cut_seq: u64,
    pub items: Vec<Item>,
}

impl Report {
    pub fn count(&self, category: Category) -> usize {
        self.items.iter().filter(|i| i.category == category).count()
    }

    pub fn breaks(&self) -> usize {
        self.items.len() - self.count(Category::Matched)
    }
}

const NS_PER_DAY: u64 = 86_400_000_000_000;

/// Reconciles the ledger's posted transfers with the settlement rows.
pub fn reconcile(ledger: &Ledger, rows: &[SettlementRow], tolerance: Tolerance) -> Report {
    let mut items = Vec::new();
    let mut seen = std::collections::BTreeMap::new();
    for row in rows {
        let first = *seen
            .entry(row.transfer_id)
            .and_modify(|n| *n += 1)
            .or_insert(1u32)
            == 1;
        let stored = ledger
            .transfer(row.transfer_id)
            .filter(|t| posts(t.request.flags));
        let mut item = Item {
            category: Category::Matched,
            external_ref: row.external_ref.clone(),
            transfer_id: row.transfer_id,
            ledger_amount: stored.map(|t| t.amount),
            file_amount: Some(row.amount),
            ledger_day: stored.map(|t| (t.ts / NS_PER_DAY) as i64),
            file_day: Some(row.value_day),
        };
        item.category = match stored {
            None => Category::MissingInLedger,
            Some(_) if !first => Category::Duplicated,
            Some(t) => {
                let day = (t.ts / NS_PER_DAY) as i64;
                if t.amount.abs_diff(row.amount) > tolerance.amount {
                    Category::AmountMismatch
                } else if day.abs_diff(row.value_day) > u64::from(tolerance.days) {
                    Category::DateMismatch
                } else if t.debit_account_id != row.debit_account
                    || t.credit_account_id != row.credit_account
                    || t.ledger != row.currency
                {
                    Category::AccountMismatch
                } else {
                    Category::Matched
                }
            }
        };
        items.push(item);
    }
    for t in ledger.transfers() {
        if posts(t.request.flags) && !seen.contains_key(&t.request.id) {
            items.push(Item {
                category: Category::MissingInFile,
                external_ref: String::new(),
                transfer_id: t.request.id,
                ledger_amount: Some(t.amount),
                file_amount: None,
                ledger_day: Some((t.ts / NS_PER_DAY) as i64),
                file_day: None,
            });
        }
    }
    items.sort();
    Report {
        cut_seq: ledger.seq(),
        items,
    }
}

fn posts(flags: TransferFlags) -> bool {
    !flags.contains(TransferFlags::PENDING) && !flags.contains(TransferFlags::VOID_PENDING)
}

/// Why a settlement file does not parse: the line (1-based) and column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvError {
    pub line: usize,
    pub column: &'static str,
    pub message: String,
}

impl std::fmt::Display for CsvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}: column \"{}\": {}",
            self.line, self.column, self.message
        )
    }
}

/// The header the file must start with.
pub const CSV_HEADER: &str =
    "external_ref,transfer_id,value_date,amount,currency,debit_account,credit_account";

/// Parses a settlement file (no quoting: fields hold no commas). Blank lines are skipped.
pub fn parse_settlement(text: &str) -> Result<Vec<SettlementRow>, CsvError> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.trim() == CSV_HEADER => {}
        _ => {
            return Err(CsvError {
                line: 1,
                column: "header",
                message: format!("expected {CSV_HEADER}"),
            });
        }
    }
    let mut rows = Vec::new();
    for (index, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let number = index + 1;
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let err = |column: &'static str, message: &str| CsvError {
            line: number,
            column,
            message: message.to_owned(),
        };
        if fields.len() != 7 {
            return Err(err(
                "*",
                &format!("expected 7 columns, got {}", fields.len()),
            ));
        }
        let int = |i: usize, column: &'static str| {
            fields[i]
                .parse::<u128>()
                .map_err(|_| err(column, "expected a non-negative integer"))
        };
        rows.push(SettlementRow {
            external_ref: fields[0].to_owned(),
            transfer_id: int(1, "transfer_id")?,
            value_day: parse_date(fields[2])
                .ok_or_else(|| err("value_date", "expected YYYY-MM-DD"))?,
            amount: int(3, "amount")?,
            currency: u32::try_from(int(4, "currency")?)
                .map_err(|_| err("currency", "expected at most 4294967295"))?,
            debit_account: int(5, "debit_account")?,
            credit_account: int(6, "credit_account")?,
        });
    }
    Ok(rows)
}

/// `YYYY-MM-DD` to days since 1970-01-01 (proleptic Gregorian; H. Hinnant's `days_from_civil`).
pub fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    // Four-digit years only: the format says YYYY, and it keeps the arithmetic below far from
    // overflow (a fuzzed 19-digit year overflowed it).
    if parts.next().is_some()
        || !(0..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
    {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// Days since 1970-01-01 to `YYYY-MM-DD` (`civil_from_days`).
pub fn format_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2026-11-24"), Some(20_781));
        for day in [-1000, 0, 59, 60, 11_016, 20_781, 100_000] {
            assert_eq!(parse_date(&format_date(day)), Some(day));
        }
        assert_eq!(parse_date("2026-13-01"), None);
        assert_eq!(parse_date("1970000000000000000-01-02"), None);
        assert_eq!(parse_date("10000-01-01"), None);
        assert_eq!(parse_date("9999-12-31"), Some(2_932_896));
    }
}
