//! The binary order-entry protocol (`docs/order-entry.md`): fixed-layout little-endian frames,
//! encoded and decoded without allocation. The decoder never panics on arbitrary bytes; every
//! error names the field and its offset in the frame, and says whether the stream can still be
//! trusted (a frame with a bad field can be rejected and skipped; a frame with a bad length
//! cannot, so the session is disconnected).

use zerocopy::little_endian::{I64, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A login's `next_expected` that asks for no resend (what a client with no state sends).
pub const NO_RESEND: u32 = 0;
/// The protocol version every frame carries.
pub const VERSION: u8 = 1;
/// Length of the frame header.
pub const HEADER_LEN: usize = 8;
/// The longest frame of any kind; a length above it is never valid.
pub const FRAME_LEN_MAX: usize = 64;

/// The header of every frame.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct Header {
    /// Bytes of the whole frame, header included.
    pub length: U16,
    /// Message kind (an ASCII letter).
    pub kind: u8,
    /// [`VERSION`].
    pub version: u8,
    /// Client to engine: the session's message sequence for sequenced messages (new order,
    /// cancel, replace, mass cancel), starting at 1; 0 for the others. Engine to client: the
    /// session's outbound sequence for order replies, starting at 1; 0 for session messages.
    pub sequence: U32,
}

/// Login body (kind `L`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct LoginBody {
    /// The session (assigned to the firm out of band); `1..=SESSIONS_MAX`.
    pub session: U32,
    /// The next outbound (engine) sequence the client expects: the engine resends the replies
    /// from here to its last one before anything new; [`NO_RESEND`] asks for none.
    pub next_expected: U32,
    /// Bit 0: cancel the session's resting orders when it disconnects.
    pub flags: u8,
    /// Zero.
    pub reserved: [u8; 7],
}

/// New order body (kind `N`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct NewOrderBody {
    /// The client's order id, unique within the session.
    pub client_order_id: U32,
    /// The account.
    pub account: U32,
    /// Symbol, ASCII, left-aligned, padded with spaces or zeros.
    pub symbol: [u8; 8],
    /// `B` buy or `S` sell.
    pub side: u8,
    /// `L` limit or `M` market.
    pub order_type: u8,
    /// `G` GTC, `I` IOC, `F` FOK, `D` day.
    pub tif: u8,
    /// Bit 0 post-only; bits 1-2 self-trade prevention (0 off, 1 cancel newest, 2 cancel
    /// oldest, 3 cancel both).
    pub flags: u8,
    /// Zero.
    pub reserved: U32,
    /// Limit price in ticks (0 for a market order).
    pub price: I64,
    /// Quantity.
    pub qty: U64,
}

/// Cancel body (kind `X`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct CancelBody {
    /// The order.
    pub client_order_id: U32,
    /// Zero.
    pub reserved: U32,
}

/// Replace body (kind `R`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct ReplaceBody {
    /// The order.
    pub client_order_id: U32,
    /// Bit 0: `price` is a new price (otherwise the price is unchanged).
    pub flags: u8,
    /// Zero.
    pub reserved: [u8; 3],
    /// The new price, when flagged.
    pub price: I64,
    /// The new open quantity.
    pub qty: U64,
}

/// Mass cancel body (kind `M`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct MassCancelBody {
    /// Bit 0: only `account`; bit 1: only `symbol`. The session's own orders only, always.
    pub flags: u8,
    /// Zero.
    pub reserved: [u8; 3],
    /// The account, when flagged.
    pub account: U32,
    /// The symbol, when flagged.
    pub symbol: [u8; 8],
}

/// Login accepted body (kind `A`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct LoginAcceptedBody {
    /// The session.
    pub session: U32,
    /// The next client sequence the engine will apply: resend from here.
    pub next_expected: U32,
}

/// Order reply body for accepted (`a`) and rejected (`j`) orders.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct OrderReplyBody {
    /// The order.
    pub client_order_id: U32,
    /// Rejected: the reason code (`docs/order-entry.md`); accepted: 0.
    pub reason: U16,
    /// Zero.
    pub reserved: U16,
}

/// Fill body (kind `f`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct FillBody {
    /// The order that traded.
    pub client_order_id: U32,
    /// `A` added liquidity (the resting order), `R` removed it (the incoming order).
    pub liquidity: u8,
    /// Zero.
    pub reserved: [u8; 3],
    /// Trade price in ticks.
    pub price: I64,
    /// Quantity traded.
    pub qty: U64,
}

/// Cancelled body (kind `c`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct CancelledBody {
    /// The order.
    pub client_order_id: U32,
    /// The reason code (`docs/order-entry.md`).
    pub reason: u8,
    /// Zero.
    pub reserved: [u8; 3],
    /// Quantity cancelled.
    pub qty: U64,
}

/// Replaced body (kind `r`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct ReplacedBody {
    /// The order.
    pub client_order_id: U32,
    /// Zero.
    pub reserved: U32,
    /// Its price now.
    pub price: I64,
    /// Its open quantity now.
    pub qty: U64,
}

/// Resend gap body (kind `g`): the outbound sequences `from..=to` that a login asked to have
/// resent but the engine no longer holds. They will never be resent; the replies held after them
/// follow.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct ResendGapBody {
    /// The first sequence lost (the login's `next_expected`).
    pub from: U32,
    /// The last sequence lost (the one before the oldest the engine holds).
    pub to: U32,
}

/// Session reject body (kind `s`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct SessionRejectBody {
    /// The reason code.
    pub reason: U16,
    /// Zero.
    pub reserved: U16,
    /// The sequence of the offending frame (0 when it had none).
    pub ref_sequence: U32,
}

/// A message from a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMessage {
    /// `L`.
    Login(LoginBody),
    /// `N`.
    NewOrder(NewOrderBody),
    /// `X`.
    Cancel(CancelBody),
    /// `R`.
    Replace(ReplaceBody),
    /// `M`.
    MassCancel(MassCancelBody),
    /// `H`.
    Heartbeat,
    /// `O`.
    Logout,
}

/// A message from the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineMessage {
    /// `A`.
    LoginAccepted(LoginAcceptedBody),
    /// `a`.
    Accepted(OrderReplyBody),
    /// `j`.
    Rejected(OrderReplyBody),
    /// `f`.
    Fill(FillBody),
    /// `c`.
    Cancelled(CancelledBody),
    /// `r`.
    Replaced(ReplacedBody),
    /// `s`.
    SessionReject(SessionRejectBody),
    /// `h`.
    Heartbeat,
    /// `g`.
    ResendGap(ResendGapBody),
}

/// A decoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<M> {
    /// The header's sequence.
    pub sequence: u32,
    /// The message.
    pub message: M,
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The length field is below the header's size or above [`FRAME_LEN_MAX`]: the stream can
    /// no longer be framed.
    #[error("frame length {length} at offset 0 is outside {HEADER_LEN}..={FRAME_LEN_MAX}")]
    BadLength {
        /// The length field.
        length: u16,
    },
    /// A kind letter this protocol does not have (the frame is skipped by its length).
    #[error("unknown message kind {kind:#04x} at offset 2")]
    UnknownKind {
        /// The kind byte.
        kind: u8,
    },
    /// A version this build does not speak.
    #[error(
        "protocol version {version} at offset 3 is not supported (this build speaks {VERSION})"
    )]
    BadVersion {
        /// The version byte.
        version: u8,
    },
    /// The length does not match the kind's fixed size (the frame is skipped by its length).
    #[error("frame of kind {kind:?} has length {length}, expected {expected}")]
    WrongLength {
        /// The kind letter.
        kind: char,
        /// The length field.
        length: u16,
        /// The kind's size.
        expected: u16,
    },
    /// A field holds a value the protocol does not define.
    #[error("field {field} at offset {offset} holds {value:#x}, which is not valid")]
    BadField {
        /// The field's name.
        field: &'static str,
        /// Its offset in the frame.
        offset: usize,
        /// The value found.
        value: u64,
    },
}

impl DecodeError {
    /// True when the byte stream cannot be framed any more: the session must be disconnected.
    /// Otherwise the frame is rejected and skipped by its length, and the session goes on.
    #[must_use]
    pub const fn is_fatal(&self) -> bool {
        matches!(self, Self::BadLength { .. } | Self::BadVersion { .. })
    }

    /// The session-reject reason code for this error.
    #[must_use]
    pub const fn reason(&self) -> SessionRejectReason {
        match self {
            Self::BadLength { .. } => SessionRejectReason::BadLength,
            Self::UnknownKind { .. } => SessionRejectReason::UnknownKind,
            Self::BadVersion { .. } => SessionRejectReason::BadVersion,
            Self::WrongLength { .. } => SessionRejectReason::WrongLength,
            Self::BadField { .. } => SessionRejectReason::BadField,
        }
    }
}

/// Session-level reject reasons (`s` frames).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum SessionRejectReason {
    /// Frame length out of range (then disconnect).
    BadLength = 1,
    /// Unknown message kind.
    UnknownKind = 2,
    /// Unsupported protocol version (then disconnect).
    BadVersion = 3,
    /// Frame length wrong for its kind.
    WrongLength = 4,
    /// A field with an undefined value.
    BadField = 5,
    /// An order message before a successful login.
    NotLoggedIn = 6,
    /// A login on a session that is logged in, or a second login on a connection.
    AlreadyLoggedIn = 7,
    /// A session id outside the configured range.
    UnknownSession = 8,
    /// A sequence above the next expected one: messages are missing (then disconnect).
    SequenceGap = 9,
    /// A login's `next_expected` above the engine's next outbound sequence: the client claims
    /// replies the engine never sent. `ref_sequence` carries the engine's next outbound sequence
    /// (then disconnect; the session stays logged out).
    NextExpectedTooHigh = 10,
}

impl SessionRejectReason {
    /// The reason's name, for logs and tests.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadLength => "bad_length",
            Self::UnknownKind => "unknown_kind",
            Self::BadVersion => "bad_version",
            Self::WrongLength => "wrong_length",
            Self::BadField => "bad_field",
            Self::NotLoggedIn => "not_logged_in",
            Self::AlreadyLoggedIn => "already_logged_in",
            Self::UnknownSession => "unknown_session",
            Self::SequenceGap => "sequence_gap",
            Self::NextExpectedTooHigh => "next_expected_too_high",
        }
    }

    /// From the wire code.
    #[must_use]
    pub const fn from_code(code: u16) -> Option<Self> {
        Some(match code {
            1 => Self::BadLength,
            2 => Self::UnknownKind,
            3 => Self::BadVersion,
            4 => Self::WrongLength,
            5 => Self::BadField,
            6 => Self::NotLoggedIn,
            7 => Self::AlreadyLoggedIn,
            8 => Self::UnknownSession,
            9 => Self::SequenceGap,
            10 => Self::NextExpectedTooHigh,
            _ => return None,
        })
    }
}

const fn frame_len<T>() -> u16 {
    (HEADER_LEN + size_of::<T>()) as u16
}

const _: () = assert!(frame_len::<NewOrderBody>() as usize <= FRAME_LEN_MAX);
const _: () = assert!(size_of::<NewOrderBody>() == 40);
const _: () = assert!(size_of::<LoginBody>() == 16);
const _: () = assert!(size_of::<ReplaceBody>() == 24);
const _: () = assert!(size_of::<MassCancelBody>() == 16);
const _: () = assert!(size_of::<FillBody>() == 24);

/// The longest order reply (`f` and `r`): what one resent reply costs in a connection's write
/// buffer, and so what bounds a resend burst (`core::RESEND_HISTORY_MAX`).
pub const REPLY_FRAME_LEN_MAX: usize = 32;
const _: () = assert!(frame_len::<FillBody>() as usize == REPLY_FRAME_LEN_MAX);
const _: () = assert!(frame_len::<ReplacedBody>() as usize == REPLY_FRAME_LEN_MAX);
const _: () = assert!(frame_len::<CancelledBody>() as usize <= REPLY_FRAME_LEN_MAX);
const _: () = assert!(frame_len::<OrderReplyBody>() as usize <= REPLY_FRAME_LEN_MAX);

/// Length of a client frame of `kind`, if the kind exists.
#[must_use]
pub const fn client_frame_len(kind: u8) -> Option<u16> {
    Some(match kind {
        b'L' => frame_len::<LoginBody>(),
        b'N' => frame_len::<NewOrderBody>(),
        b'X' => frame_len::<CancelBody>(),
        b'R' => frame_len::<ReplaceBody>(),
        b'M' => frame_len::<MassCancelBody>(),
        b'H' | b'O' => HEADER_LEN as u16,
        _ => return None,
    })
}

/// Length of an engine frame of `kind`, if the kind exists.
#[must_use]
pub const fn engine_frame_len(kind: u8) -> Option<u16> {
    Some(match kind {
        b'A' => frame_len::<LoginAcceptedBody>(),
        b'a' | b'j' => frame_len::<OrderReplyBody>(),
        b'f' => frame_len::<FillBody>(),
        b'c' => frame_len::<CancelledBody>(),
        b'r' => frame_len::<ReplacedBody>(),
        b's' => frame_len::<SessionRejectBody>(),
        b'g' => frame_len::<ResendGapBody>(),
        b'h' => HEADER_LEN as u16,
        _ => return None,
    })
}

/// The outcome of looking at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<M> {
    /// A frame of `len` bytes.
    Frame(Frame<M>, usize),
    /// Not enough bytes yet for a whole frame.
    Incomplete,
    /// A bad frame; when the error is not fatal, skip `len` bytes and go on.
    Error(DecodeError, usize),
}

fn header(buf: &[u8]) -> Option<Header> {
    Header::read_from_prefix(buf).ok().map(|(header, _)| header)
}

/// Checks the header and returns (kind, length) of a whole frame at the start of `buf`.
fn frame_bounds<M>(
    buf: &[u8],
    len_of: fn(u8) -> Option<u16>,
) -> Result<(Header, usize), Decoded<M>> {
    let Some(header) = header(buf) else {
        return Err(Decoded::Incomplete);
    };
    let length = header.length.get();
    if (length as usize) < HEADER_LEN || length as usize > FRAME_LEN_MAX {
        return Err(Decoded::Error(DecodeError::BadLength { length }, 0));
    }
    let len = length as usize;
    if header.version != VERSION {
        return Err(Decoded::Error(
            DecodeError::BadVersion {
                version: header.version,
            },
            len,
        ));
    }
    if buf.len() < len {
        return Err(Decoded::Incomplete);
    }
    let Some(expected) = len_of(header.kind) else {
        return Err(Decoded::Error(
            DecodeError::UnknownKind { kind: header.kind },
            len,
        ));
    };
    if expected != length {
        return Err(Decoded::Error(
            DecodeError::WrongLength {
                kind: header.kind as char,
                length,
                expected,
            },
            len,
        ));
    }
    Ok((header, len))
}

fn bad(field: &'static str, offset: usize, value: u64) -> DecodeError {
    DecodeError::BadField {
        field,
        offset,
        value,
    }
}

/// Decodes the client frame at the start of `buf`.
#[must_use]
pub fn decode_client(buf: &[u8]) -> Decoded<ClientMessage> {
    let (header, len) = match frame_bounds(buf, client_frame_len) {
        Ok(bounds) => bounds,
        Err(outcome) => return outcome,
    };
    let body = &buf[HEADER_LEN..len];
    let message = match header.kind {
        b'L' => LoginBody::read_from_bytes(body)
            .map(ClientMessage::Login)
            .ok(),
        b'N' => NewOrderBody::read_from_bytes(body)
            .ok()
            .map(ClientMessage::NewOrder),
        b'X' => CancelBody::read_from_bytes(body)
            .ok()
            .map(ClientMessage::Cancel),
        b'R' => ReplaceBody::read_from_bytes(body)
            .ok()
            .map(ClientMessage::Replace),
        b'M' => MassCancelBody::read_from_bytes(body)
            .ok()
            .map(ClientMessage::MassCancel),
        b'H' => Some(ClientMessage::Heartbeat),
        b'O' => Some(ClientMessage::Logout),
        _ => None,
    };
    let Some(message) = message else {
        // Unreachable after frame_bounds (kind and length were checked); kept as an error,
        // never a panic.
        return Decoded::Error(DecodeError::UnknownKind { kind: header.kind }, len);
    };
    if let Err(error) = validate_client(&message) {
        return Decoded::Error(error, len);
    }
    Decoded::Frame(
        Frame {
            sequence: header.sequence.get(),
            message,
        },
        len,
    )
}

/// Field checks of client messages (offsets are in the frame).
fn validate_client(message: &ClientMessage) -> Result<(), DecodeError> {
    match message {
        ClientMessage::NewOrder(order) => {
            if !matches!(order.side, b'B' | b'S') {
                return Err(bad("side", 24, order.side.into()));
            }
            if !matches!(order.order_type, b'L' | b'M') {
                return Err(bad("order_type", 25, order.order_type.into()));
            }
            if !matches!(order.tif, b'G' | b'I' | b'F' | b'D') {
                return Err(bad("tif", 26, order.tif.into()));
            }
            if order.flags & !0b111 != 0 {
                return Err(bad("flags", 27, order.flags.into()));
            }
            Ok(())
        }
        ClientMessage::Replace(replace) if replace.flags & !1 != 0 => {
            Err(bad("flags", 12, replace.flags.into()))
        }
        ClientMessage::MassCancel(mass) if mass.flags & !0b11 != 0 => {
            Err(bad("flags", 8, mass.flags.into()))
        }
        ClientMessage::Login(login) if login.flags & !1 != 0 => {
            Err(bad("flags", 16, login.flags.into()))
        }
        _ => Ok(()),
    }
}

/// Decodes the engine frame at the start of `buf` (for clients and tests).
#[must_use]
pub fn decode_engine(buf: &[u8]) -> Decoded<EngineMessage> {
    let (header, len) = match frame_bounds(buf, engine_frame_len) {
        Ok(bounds) => bounds,
        Err(outcome) => return outcome,
    };
    let body = &buf[HEADER_LEN..len];
    let message = match header.kind {
        b'A' => LoginAcceptedBody::read_from_bytes(body)
            .ok()
            .map(EngineMessage::LoginAccepted),
        b'a' => OrderReplyBody::read_from_bytes(body)
            .ok()
            .map(EngineMessage::Accepted),
        b'j' => OrderReplyBody::read_from_bytes(body)
            .ok()
            .map(EngineMessage::Rejected),
        b'f' => FillBody::read_from_bytes(body)
            .ok()
            .map(EngineMessage::Fill),
        b'c' => CancelledBody::read_from_bytes(body)
            .ok()
            .map(EngineMessage::Cancelled),
        b'r' => ReplacedBody::read_from_bytes(body)
            .ok()
            .map(EngineMessage::Replaced),
        b's' => SessionRejectBody::read_from_bytes(body)
            .ok()
            .map(EngineMessage::SessionReject),
        b'h' => Some(EngineMessage::Heartbeat),
        b'g' => ResendGapBody::read_from_bytes(body)
            .ok()
            .map(EngineMessage::ResendGap),
        _ => None,
    };
    match message {
        Some(message) => Decoded::Frame(
            Frame {
                sequence: header.sequence.get(),
                message,
            },
            len,
        ),
        None => Decoded::Error(DecodeError::UnknownKind { kind: header.kind }, len),
    }
}

fn write_frame(out: &mut [u8], kind: u8, sequence: u32, body: &[u8]) -> usize {
    let len = HEADER_LEN + body.len();
    let header = Header {
        length: (len as u16).into(),
        kind,
        version: VERSION,
        sequence: sequence.into(),
    };
    out[..HEADER_LEN].copy_from_slice(header.as_bytes());
    out[HEADER_LEN..len].copy_from_slice(body);
    len
}

/// Encodes a client frame into `out` (at least [`FRAME_LEN_MAX`] bytes); returns its length.
pub fn encode_client(out: &mut [u8], sequence: u32, message: &ClientMessage) -> usize {
    match message {
        ClientMessage::Login(body) => write_frame(out, b'L', sequence, body.as_bytes()),
        ClientMessage::NewOrder(body) => write_frame(out, b'N', sequence, body.as_bytes()),
        ClientMessage::Cancel(body) => write_frame(out, b'X', sequence, body.as_bytes()),
        ClientMessage::Replace(body) => write_frame(out, b'R', sequence, body.as_bytes()),
        ClientMessage::MassCancel(body) => write_frame(out, b'M', sequence, body.as_bytes()),
        ClientMessage::Heartbeat => write_frame(out, b'H', sequence, &[]),
        ClientMessage::Logout => write_frame(out, b'O', sequence, &[]),
    }
}

/// Encodes an engine frame into `out` (at least [`FRAME_LEN_MAX`] bytes); returns its length.
pub fn encode_engine(out: &mut [u8], sequence: u32, message: &EngineMessage) -> usize {
    match message {
        EngineMessage::LoginAccepted(body) => write_frame(out, b'A', sequence, body.as_bytes()),
        EngineMessage::Accepted(body) => write_frame(out, b'a', sequence, body.as_bytes()),
        EngineMessage::Rejected(body) => write_frame(out, b'j', sequence, body.as_bytes()),
        EngineMessage::Fill(body) => write_frame(out, b'f', sequence, body.as_bytes()),
        EngineMessage::Cancelled(body) => write_frame(out, b'c', sequence, body.as_bytes()),
        EngineMessage::Replaced(body) => write_frame(out, b'r', sequence, body.as_bytes()),
        EngineMessage::SessionReject(body) => write_frame(out, b's', sequence, body.as_bytes()),
        EngineMessage::Heartbeat => write_frame(out, b'h', sequence, &[]),
        EngineMessage::ResendGap(body) => write_frame(out, b'g', sequence, body.as_bytes()),
    }
}

/// A symbol as 8 bytes: ASCII, left-aligned, zero-padded. `None` when longer than 8 bytes.
#[must_use]
pub fn symbol_bytes(symbol: &str) -> Option<[u8; 8]> {
    let bytes = symbol.as_bytes();
    if bytes.is_empty() || bytes.len() > 8 {
        return None;
    }
    let mut out = [0; 8];
    out[..bytes.len()].copy_from_slice(bytes);
    Some(out)
}

/// The symbol's text: up to the first zero or space.
#[must_use]
pub fn symbol_text(symbol: &[u8; 8]) -> &[u8] {
    let end = symbol
        .iter()
        .position(|&b| b == 0 || b == b' ')
        .unwrap_or(8);
    &symbol[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> NewOrderBody {
        NewOrderBody {
            client_order_id: 7.into(),
            account: 42.into(),
            symbol: symbol_bytes("ABC").unwrap(),
            side: b'B',
            order_type: b'L',
            tif: b'G',
            flags: 0,
            reserved: 0.into(),
            price: 10_050.into(),
            qty: 100.into(),
        }
    }

    #[test]
    fn frames_round_trip() {
        let mut buf = [0u8; FRAME_LEN_MAX];
        let message = ClientMessage::NewOrder(order());
        let len = encode_client(&mut buf, 3, &message);
        assert_eq!(len, 48);
        assert_eq!(
            decode_client(&buf[..len]),
            Decoded::Frame(
                Frame {
                    sequence: 3,
                    message
                },
                48
            )
        );
        // A prefix of a frame is incomplete, never an error.
        for cut in 0..len {
            assert_eq!(decode_client(&buf[..cut]), Decoded::Incomplete, "cut {cut}");
        }
    }

    #[test]
    fn bad_fields_are_named_with_their_offset() {
        let mut buf = [0u8; FRAME_LEN_MAX];
        let mut bad_side = order();
        bad_side.side = b'Q';
        let len = encode_client(&mut buf, 1, &ClientMessage::NewOrder(bad_side));
        let Decoded::Error(error, skip) = decode_client(&buf[..len]) else {
            panic!("accepted a bad side");
        };
        assert_eq!(skip, 48);
        assert!(!error.is_fatal());
        assert_eq!(buf[24], b'Q', "the documented offset of side");
        assert_eq!(
            error.to_string(),
            "field side at offset 24 holds 0x51, which is not valid"
        );
    }

    #[test]
    fn lengths_and_kinds_are_checked() {
        let mut buf = [0u8; FRAME_LEN_MAX];
        let len = encode_client(&mut buf, 0, &ClientMessage::Heartbeat);
        buf[2] = b'Z';
        assert!(matches!(
            decode_client(&buf[..len]),
            Decoded::Error(DecodeError::UnknownKind { kind: b'Z' }, 8)
        ));
        buf[0] = 3; // shorter than a header
        let Decoded::Error(error, _) = decode_client(&buf[..len]) else {
            panic!()
        };
        assert!(error.is_fatal());
        buf[0..2].copy_from_slice(&1000u16.to_le_bytes());
        let Decoded::Error(error, _) = decode_client(&buf) else {
            panic!()
        };
        assert!(matches!(error, DecodeError::BadLength { length: 1000 }));
        // A cancel frame with a new order's length.
        let len = encode_client(
            &mut buf,
            1,
            &ClientMessage::Cancel(CancelBody {
                client_order_id: 1.into(),
                reserved: 0.into(),
            }),
        );
        buf[0..2].copy_from_slice(&48u16.to_le_bytes());
        let mut long = [0u8; 48];
        long[..len].copy_from_slice(&buf[..len]);
        assert!(matches!(
            decode_client(&long),
            Decoded::Error(DecodeError::WrongLength { kind: 'X', .. }, 48)
        ));
    }

    #[test]
    fn symbols_pad_and_trim() {
        assert_eq!(symbol_text(&symbol_bytes("ABC").unwrap()), b"ABC");
        assert_eq!(symbol_text(b"ABCD    "), b"ABCD");
        assert_eq!(symbol_bytes("TOOLONGSYM"), None);
        assert_eq!(symbol_bytes(""), None);
    }
}
