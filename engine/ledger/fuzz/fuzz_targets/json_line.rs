//! Arbitrary bytes as `sequent ledger` JSON lines: decoding never panics, and whatever decodes is
//! applied to a small ledger, which never panics either (it answers with outcomes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sequent_ledger::{Config, Ledger};

#[path = "../../../../tools/src/ledger_line.rs"]
#[allow(dead_code)]
mod ledger_line;

use ledger_line::{Input, parse_line};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut ledger = Ledger::new(Config {
        accounts_max: 8,
        transfers_max: 64,
    });
    let mut outcomes = Vec::new();
    for line in text.lines() {
        let Ok(Some(line)) = parse_line(line) else {
            continue;
        };
        let ts = line.ts.unwrap_or(0);
        match line.input {
            Input::Account(a) => {
                ledger.create_account(ts, &a);
            }
            Input::Transfer(t) => {
                outcomes.clear();
                ledger.create_transfers(ts, &[t], &mut outcomes);
                assert_eq!(outcomes.len(), 1);
            }
            Input::Close { id } => {
                ledger.close_account(ts, id);
            }
        }
    }
});
