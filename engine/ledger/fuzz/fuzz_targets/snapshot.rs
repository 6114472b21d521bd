//! Arbitrary bytes as a ledger snapshot: `Ledger::read_snapshot` answers an error, never panics,
//! both for the bytes as given (the checksum stops almost all) and with the checksum recomputed
//! (so the structural checks behind it are what is fuzzed). Whatever it accepts re-encodes to the
//! same bytes, apart from the informational capacities (offsets 16..24) and the checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sequent_ledger::snapshot::{CHECKSUM_BYTES, reseal};
use sequent_ledger::{Config, Ledger};

const CONFIG: Config = Config {
    accounts_max: 64,
    transfers_max: 256,
};

fuzz_target!(|data: &[u8]| {
    let _ = Ledger::read_snapshot(CONFIG, data);
    let mut sealed = data.to_vec();
    reseal(&mut sealed);
    if let Ok(ledger) = Ledger::read_snapshot(CONFIG, &sealed) {
        let mut again = Vec::new();
        ledger.write_snapshot(&mut again);
        assert_eq!(again.len(), sealed.len());
        let body = again.len() - CHECKSUM_BYTES;
        for i in (0..body).filter(|i| !(16..24).contains(i)) {
            assert_eq!(again[i], sealed[i], "not canonical at {i}");
        }
    }
});
