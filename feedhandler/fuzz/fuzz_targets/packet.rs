//! Arbitrary bytes as a feed packet, a snapshot stream and a subscriber's input: an error or a
//! value, never a panic. `cd feedhandler/fuzz && cargo +nightly fuzz run packet`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sequent_feed::book::Books;
use sequent_feed::proto::{self, Packet};

fuzz_target!(|data: &[u8]| {
    let mut books = Books::new();
    if let Ok(packet) = Packet::parse(data) {
        assert_eq!(packet.messages().count() as u64, packet.count());
        for (_, message) in packet.messages() {
            books.apply(&message);
        }
        books.check_invariants().unwrap();
    }
    let messages: Vec<_> = proto::decode_stream(data).filter_map(Result::ok).collect();
    let _ = Books::apply_snapshot(&messages);
});
