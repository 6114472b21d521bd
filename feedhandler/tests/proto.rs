//! The wire format: golden byte files pin every message type and the control packets (a format
//! change shows up as a diff: bless with `SEQUENT_BLESS=1 cargo test -p sequent-feed --test
//! proto`), decode(encode(x)) == x for arbitrary messages, and arbitrary bytes never panic the
//! decoder, which names the offset of what it refused.

use proptest::prelude::*;
use sequent_feed::proto::{
    self, COUNT_END_OF_SESSION, COUNT_HEARTBEAT, DecodeError, Message, Packet, PacketKind, Side,
    build, encode_header, session_name,
};

fn golden_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// One packet holding one of each message type, with fixed, recognisable values.
fn every_type() -> Vec<Message> {
    use sequent_feed::book::Books;
    let mut snapshot = Vec::new();
    let mut books = Books::new();
    books.apply(&build::symbol(1, 7, "SEQ"));
    books.apply(&build::add(
        2,
        0x0102_0304_0506_0708,
        7,
        Side::Sell,
        300,
        1_234_500,
    ));
    books.snapshot(41, &mut snapshot);
    let mut out = vec![
        build::system(0x1122_3344_5566, b'O'),
        build::symbol(0x10, 7, "SEQ"),
        build::add(0x11, 0x0102_0304_0506_0708, 7, Side::Buy, 100, 1_234_500),
        build::executed(0x12, 0x0102_0304_0506_0708, 7, 40, 99, 1_234_500),
        build::cancelled(0x13, 0x0102_0304_0506_0708, 7, 10),
        build::replaced(0x14, 0x0102_0304_0506_0708, 0x0a0b, 7, 25, -5),
        build::deleted(0x15, 0x0a0b, 7),
        build::trade(0x16, 0, 7, Side::Sell, 5, 1_234_600, 100),
    ];
    out.extend(snapshot);
    out
}

fn packet(seq: u64, messages: &[Message]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_header(
        &mut out,
        session_name("GOLDEN"),
        seq,
        u16::try_from(messages.len()).unwrap(),
        0x1700_0000_0000_0001,
    );
    for m in messages {
        m.encode_block(&mut out);
    }
    out
}

fn golden_files() -> Vec<(&'static str, Vec<u8>)> {
    let mut heartbeat = Vec::new();
    encode_header(
        &mut heartbeat,
        session_name("GOLDEN"),
        42,
        COUNT_HEARTBEAT,
        7,
    );
    let mut end = Vec::new();
    encode_header(
        &mut end,
        session_name("GOLDEN"),
        42,
        COUNT_END_OF_SESSION,
        8,
    );
    vec![
        ("every_type.bin", packet(1, &every_type())),
        ("heartbeat.bin", heartbeat),
        ("end_of_session.bin", end),
    ]
}

#[test]
fn the_wire_format_matches_the_golden_files() {
    if std::env::var("SEQUENT_BLESS").is_ok() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        for (name, bytes) in golden_files() {
            std::fs::write(golden_dir().join(name), bytes).unwrap();
        }
    }
    for (name, bytes) in golden_files() {
        let expected = std::fs::read(golden_dir().join(name)).unwrap();
        if let Some(at) = bytes.iter().zip(&expected).position(|(a, b)| a != b) {
            panic!("{name}: first difference at byte {at}");
        }
        assert_eq!(bytes.len(), expected.len(), "{name}: length");
    }
    // The golden bytes decode back to the values that made them.
    let bytes = std::fs::read(golden_dir().join("every_type.bin")).unwrap();
    let packet = Packet::parse(&bytes).unwrap();
    assert_eq!(packet.kind, PacketKind::Messages);
    let decoded: Vec<(u64, Message)> = packet.messages().collect();
    let expected: Vec<(u64, Message)> = (1..).zip(every_type()).collect();
    assert_eq!(decoded, expected);
    let kinds: String = decoded.iter().map(|(_, m)| m.kind() as char).collect();
    assert_eq!(kinds, "SRAEXUDPGRLZ");
    let heartbeat = std::fs::read(golden_dir().join("heartbeat.bin")).unwrap();
    let heartbeat = Packet::parse(&heartbeat).unwrap();
    assert_eq!(
        (heartbeat.kind, heartbeat.seq(), heartbeat.count()),
        (PacketKind::Heartbeat, 42, 0)
    );
    let end = std::fs::read(golden_dir().join("end_of_session.bin")).unwrap();
    let end = Packet::parse(&end).unwrap();
    assert_eq!((end.kind, end.seq()), (PacketKind::EndOfSession, 42));
}

#[test]
fn bad_bytes_are_errors_that_name_the_offset() {
    let good = packet(
        5,
        &[
            build::deleted(1, 2, 3),
            build::add(1, 2, 3, Side::Buy, 4, 5),
        ],
    );
    // The add's type byte: header 36, the delete block 2 + 1 + 18, the add's length 2.
    let add_type = 36 + 21 + 2;
    let mut unknown = good.clone();
    unknown[add_type] = b'?';
    assert_eq!(
        Packet::parse(&unknown).unwrap_err(),
        DecodeError::UnknownType {
            offset: add_type,
            kind: b'?'
        }
    );
    let mut side = good.clone();
    side[add_type + 1 + 18] = b'Q';
    assert_eq!(
        Packet::parse(&side).unwrap_err(),
        DecodeError::BadSide {
            offset: add_type + 19,
            side: b'Q'
        }
    );
    let truncated = &good[..good.len() - 1];
    assert_eq!(
        Packet::parse(truncated).unwrap_err(),
        DecodeError::Truncated {
            offset: add_type - 2 + 2
        }
    );
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(
        Packet::parse(&trailing).unwrap_err(),
        DecodeError::TrailingBytes {
            offset: good.len(),
            extra: 1
        }
    );
    let mut short = good.clone();
    short[add_type - 2] -= 1;
    assert!(matches!(
        Packet::parse(&short).unwrap_err(),
        DecodeError::BadLength { offset, kind: b'A', .. } if offset == add_type
    ));
    assert_eq!(
        Packet::parse(&good[..10]).unwrap_err(),
        DecodeError::Truncated { offset: 10 }
    );
}

fn expected_again(seq: u64, messages: &[Message]) -> Vec<(u64, Message)> {
    (seq..).zip(messages.iter().copied()).collect()
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u64>(), any::<u8>()).prop_map(|(t, e)| build::system(t, e)),
        (any::<u64>(), any::<u16>(), "[A-Z]{1,8}").prop_map(|(t, l, s)| build::symbol(t, l, &s)),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u16>(),
            side(),
            any::<u32>(),
            any::<i64>()
        )
            .prop_map(|(t, r, l, s, q, p)| build::add(t, r, l, s, q, p)),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u16>(),
            any::<u32>(),
            any::<u64>(),
            any::<i64>()
        )
            .prop_map(|(t, r, l, q, m, p)| build::executed(t, r, l, q, m, p)),
        (any::<u64>(), any::<u64>(), any::<u16>(), any::<u32>())
            .prop_map(|(t, r, l, q)| build::cancelled(t, r, l, q)),
        (any::<u64>(), any::<u64>(), any::<u16>()).prop_map(|(t, r, l)| build::deleted(t, r, l)),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u16>(),
            any::<u32>(),
            any::<i64>()
        )
            .prop_map(|(t, o, n, l, q, p)| build::replaced(t, o, n, l, q, p)),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u16>(),
            side(),
            any::<u32>(),
            any::<i64>(),
            any::<u64>()
        )
            .prop_map(|(t, r, l, s, q, p, m)| build::trade(t, r, l, s, q, p, m)),
    ]
}

proptest! {
    #[test]
    fn decode_of_encode_is_identity(seq in 1u64..u64::MAX / 2, messages in prop::collection::vec(message(), 1..40)) {
        let bytes = packet(seq, &messages);
        let packet = Packet::parse(&bytes).unwrap();
        let decoded: Vec<(u64, Message)> = packet.messages().collect();
        let expected: Vec<(u64, Message)> = (seq..).zip(messages.iter().copied()).collect();
        prop_assert_eq!(decoded, expected);
        let mut one_pass = Vec::new();
        let header = proto::for_each_message(&bytes, |seq, m| one_pass.push((seq, m))).unwrap();
        prop_assert_eq!(header.seq.get(), seq);
        prop_assert_eq!(one_pass, expected_again(seq, &messages));
        // The in-place views: the same messages, each borrowed from inside the packet.
        let mut views = Vec::new();
        let range = bytes.as_ptr_range();
        let mut inside = true;
        proto::for_each_message_ref(&bytes, |seq, m| {
            let at = match m {
                proto::MessageRef::AddOrder(a) => std::ptr::from_ref(a).cast::<u8>(),
                proto::MessageRef::OrderDeleted(d) => std::ptr::from_ref(d).cast::<u8>(),
                _ => bytes.as_ptr(),
            };
            inside &= range.contains(&at);
            views.push((seq, m.to_message()));
        })
        .unwrap();
        prop_assert!(inside, "a view points outside the packet");
        prop_assert_eq!(views, expected_again(seq, &messages));
        let mut stream = Vec::new();
        for m in &messages {
            m.encode_block(&mut stream);
        }
        let back: Vec<Message> = proto::decode_stream(&stream).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(back, messages);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let parsed = Packet::parse(&bytes);
        if let Ok(packet) = &parsed {
            prop_assert_eq!(packet.messages().count() as u64, packet.count());
        }
        // The one-pass decoder agrees with parse on what is valid.
        prop_assert_eq!(proto::for_each_message(&bytes, |_, _| {}).is_ok(), parsed.is_ok());
        prop_assert_eq!(
            proto::for_each_message_ref(&bytes, |_, _| {}).err(),
            proto::for_each_message(&bytes, |_, _| {}).err()
        );
        for item in proto::decode_stream(&bytes) {
            if let Err(e) = item {
                let offset = match e {
                    DecodeError::Truncated { offset }
                    | DecodeError::UnknownType { offset, .. }
                    | DecodeError::BadLength { offset, .. }
                    | DecodeError::BadSide { offset, .. }
                    | DecodeError::TrailingBytes { offset, .. }
                    | DecodeError::ControlWithBody { offset, .. } => offset,
                };
                prop_assert!(offset <= bytes.len());
            }
        }
    }

    #[test]
    fn mutated_packets_never_panic(messages in prop::collection::vec(message(), 1..10), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut bytes = packet(1, &messages);
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if let Ok(packet) = Packet::parse(&bytes) {
            prop_assert_eq!(packet.messages().count() as u64, packet.count());
        }
    }
}

/// The body sizes in docs/feed-protocol.md's table.
#[test]
fn body_sizes_match_the_protocol_document() {
    let sizes: Vec<(char, usize)> = every_type()
        .iter()
        .map(|m| (m.kind() as char, m.block_len() - 3))
        .collect();
    let expected = [
        ('S', 9),
        ('R', 18),
        ('A', 31),
        ('E', 38),
        ('X', 22),
        ('U', 38),
        ('D', 18),
        ('P', 39),
        ('G', 16),
        ('R', 18),
        ('L', 23),
        ('Z', 12),
    ];
    assert_eq!(sizes, expected);
    assert_eq!(proto::HEADER_LEN, 36);
}
