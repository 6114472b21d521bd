//! Arbitrary bytes through every decoder of the crate: a message body, the deframer (as a TCP
//! stream, split at the first byte's value), field 48 and field 90. Errors are fine; a panic is
//! a bug. Run with `cd engine/payments/iso8583/fuzz && cargo +nightly fuzz run decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sequent_iso8583::{Deframer, FrameError, Message, OriginalData, PrivateData};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::decode(data) {
        // Whatever decodes must encode back to the same bytes (the encoding is canonical).
        assert_eq!(message.to_bytes().expect("decoded message encodes"), data);
    }
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut deframer = Deframer::new();
    deframer.handle_bytes(&data[..split]);
    deframer.handle_bytes(&data[split..]);
    while let Some(Ok(_)) | Some(Err(FrameError::Message { .. })) = deframer.poll_message() {}
    let text = String::from_utf8_lossy(data);
    let _ = PrivateData::decode(&text);
    let _ = OriginalData::decode(&text);
});
