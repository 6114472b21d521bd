//! Arbitrary bytes as a settlement CSV (`sequent ledger reconcile --settlement`): parsing answers
//! rows or an error naming the line and column, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sequent_ledger::reconcile::parse_settlement;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_settlement(text);
    }
});
