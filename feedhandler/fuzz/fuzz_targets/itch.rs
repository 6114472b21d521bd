//! Arbitrary bytes as an ITCH 5.0 file: an error naming the offset, never a panic.
//! `cd feedhandler/fuzz && cargo +nightly fuzz run itch`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sequent_feed::book::Books;

fuzz_target!(|data: &[u8]| {
    let mut books = Books::new();
    let _ = sequent_feed::itch::replay(data, &mut books);
    books.check_invariants().unwrap();
});
