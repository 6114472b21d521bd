//! Arbitrary bytes as a seal file and as a snapshot file: parsing never panics.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sequent_journal::Seal;
use sequent_journal::snapshot::SnapshotStore;

fuzz_target!(|data: &[u8]| {
    let _ = Seal::parse(Path::new("fuzz.seal"), data);
    let _ = SnapshotStore::parse(Path::new("fuzz.snap"), data);
});
