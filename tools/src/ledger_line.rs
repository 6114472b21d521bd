//! The JSON-lines decoder of `sequent ledger` (contract: docs/ledger-format.md): one line to one
//! ledger input. It depends only on `serde_json` and `sequent-ledger`'s types, so the fuzz target
//! in `tools/fuzz` compiles this file alone (`#[path]`), without the CLI around it.

use sequent_ledger::{Account, AccountFlags, Transfer, TransferFlags};
use serde_json::{Map, Value};

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
