//! Golden bytes: one frame of every kind with fixed values, as hex, one per line. Pins the wire
//! format of `docs/order-entry.md`; regenerate after a reviewed change with `SEQUENT_BLESS=1`.

use std::fmt::Write as _;
use std::path::Path;

use sequent_node::protocol::{
    CancelBody, CancelledBody, ClientMessage, Decoded, EngineMessage, FRAME_LEN_MAX, FillBody,
    LoginAcceptedBody, LoginBody, MassCancelBody, NewOrderBody, OrderReplyBody, ReplaceBody,
    ReplacedBody, ResendGapBody, SessionRejectBody, decode_client, decode_engine, encode_client,
    encode_engine, symbol_bytes,
};

fn client_frames() -> Vec<(u32, ClientMessage)> {
    vec![
        (
            0,
            ClientMessage::Login(LoginBody {
                session: 7.into(),
                next_expected: 1.into(),
                flags: 1,
                reserved: [0; 7],
            }),
        ),
        (
            1,
            ClientMessage::NewOrder(NewOrderBody {
                client_order_id: 1001.into(),
                account: 42.into(),
                symbol: symbol_bytes("ABC").unwrap(),
                side: b'B',
                order_type: b'L',
                tif: b'G',
                flags: 0b011,
                reserved: 0.into(),
                price: 10_050.into(),
                qty: 100.into(),
            }),
        ),
        (
            2,
            ClientMessage::Cancel(CancelBody {
                client_order_id: 1001.into(),
                reserved: 0.into(),
            }),
        ),
        (
            3,
            ClientMessage::Replace(ReplaceBody {
                client_order_id: 1001.into(),
                flags: 1,
                reserved: [0; 3],
                price: 10_040.into(),
                qty: 50.into(),
            }),
        ),
        (
            4,
            ClientMessage::MassCancel(MassCancelBody {
                flags: 3,
                reserved: [0; 3],
                account: 42.into(),
                symbol: symbol_bytes("ABC").unwrap(),
            }),
        ),
        (0, ClientMessage::Heartbeat),
        (0, ClientMessage::Logout),
    ]
}

fn engine_frames() -> Vec<(u32, EngineMessage)> {
    vec![
        (
            0,
            EngineMessage::LoginAccepted(LoginAcceptedBody {
                session: 7.into(),
                next_expected: 5.into(),
            }),
        ),
        (
            1,
            EngineMessage::Accepted(OrderReplyBody {
                client_order_id: 1001.into(),
                reason: 0.into(),
                reserved: 0.into(),
            }),
        ),
        (
            2,
            EngineMessage::Rejected(OrderReplyBody {
                client_order_id: 1002.into(),
                reason: 107.into(),
                reserved: 0.into(),
            }),
        ),
        (
            3,
            EngineMessage::Fill(FillBody {
                client_order_id: 1001.into(),
                liquidity: b'R',
                reserved: [0; 3],
                price: 10_050.into(),
                qty: 30.into(),
            }),
        ),
        (
            4,
            EngineMessage::Cancelled(CancelledBody {
                client_order_id: 1001.into(),
                reason: 1,
                reserved: [0; 3],
                qty: 70.into(),
            }),
        ),
        (
            5,
            EngineMessage::Replaced(ReplacedBody {
                client_order_id: 1001.into(),
                reserved: 0.into(),
                price: 10_040.into(),
                qty: 50.into(),
            }),
        ),
        (
            0,
            EngineMessage::SessionReject(SessionRejectBody {
                reason: 9.into(),
                reserved: 0.into(),
                ref_sequence: 12.into(),
            }),
        ),
        (0, EngineMessage::Heartbeat),
        (
            0,
            EngineMessage::ResendGap(ResendGapBody {
                from: 3.into(),
                to: 1_000.into(),
            }),
        ),
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[test]
fn frames_match_the_golden_file() {
    let mut text = String::new();
    let mut buf = [0u8; FRAME_LEN_MAX];
    for (sequence, message) in client_frames() {
        let len = encode_client(&mut buf, sequence, &message);
        assert!(
            matches!(decode_client(&buf[..len]), Decoded::Frame(f, l) if f.message == message && l == len)
        );
        writeln!(text, "client {} {}", buf[2] as char, hex(&buf[..len])).unwrap();
    }
    for (sequence, message) in engine_frames() {
        let len = encode_engine(&mut buf, sequence, &message);
        assert!(
            matches!(decode_engine(&buf[..len]), Decoded::Frame(f, l) if f.message == message && l == len)
        );
        writeln!(text, "engine {} {}", buf[2] as char, hex(&buf[..len])).unwrap();
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/frames.hex");
    if std::env::var("SEQUENT_BLESS").is_ok() {
        std::fs::write(&path, &text).unwrap();
    }
    let golden = std::fs::read_to_string(&path).unwrap();
    for (line, (got, want)) in text.lines().zip(golden.lines()).enumerate() {
        assert_eq!(got, want, "line {}", line + 1);
    }
    assert_eq!(text.lines().count(), golden.lines().count());
}
