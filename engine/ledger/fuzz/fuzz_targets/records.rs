//! Arbitrary bytes through the binary decoders of the ledger's journal path: a snapshot file as
//! `sequent ledger apply --journal` writes it (the journal's snapshot header, the input-line
//! count, the ledger's state) and a cross-shard coordinator record. Errors, never panics.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sequent_journal::snapshot::SnapshotStore;
use sequent_ledger::cross_shard::Record;
use sequent_ledger::{Config, Ledger};

fuzz_target!(|data: &[u8]| {
    let _ = Record::decode(data);
    if let Ok((_, state)) = SnapshotStore::parse(Path::new("fuzz.snap"), data) {
        if let Some((_, ledger)) = state.split_first_chunk::<8>() {
            let _ = Ledger::read_snapshot(
                Config {
                    accounts_max: 64,
                    transfers_max: 256,
                },
                ledger,
            );
        }
    }
});
