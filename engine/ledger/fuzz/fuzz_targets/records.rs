//! Arbitrary bytes through the binary decoders of the ledger's journal and wire paths: a
//! snapshot file as `sequent ledger apply --journal` writes it (the journal's snapshot header, the
//! input-line count, the ledger's state), a cross-shard coordinator record, a shard's journal
//! record and the TCP frames and messages of `sequent ledger shard|coordinator` (compiled from
//! `tools/src/ledger_wire.rs`). Errors, never panics; whatever decodes re-encodes to the same bytes.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sequent_journal::snapshot::SnapshotStore;
use sequent_ledger::cross_shard::Record;
use sequent_ledger::{Config, Ledger};

#[path = "../../../../tools/src/ledger_wire.rs"]
#[allow(dead_code)]
mod ledger_wire;

fuzz_target!(|data: &[u8]| {
    if let Some(record) = Record::decode(data) {
        assert_eq!(&record.encode()[..], data);
    }
    if let Some(message) = ledger_wire::decode_to_shard(data) {
        assert_eq!(&ledger_wire::encode_to_shard(&message)[..], data);
    }
    if let Some(message) = ledger_wire::decode_to_coordinator(data) {
        assert_eq!(&ledger_wire::encode_to_coordinator(&message)[..], data);
    }
    if let Some(input) = ledger_wire::decode_shard_input(data) {
        assert_eq!(&ledger_wire::encode_shard_input(&input)[..], data);
    }
    let mut frame = Vec::new();
    let mut stream = data;
    while let Ok(true) = ledger_wire::read_frame(&mut stream, &mut frame) {}
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
