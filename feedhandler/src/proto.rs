//! The wire protocol (contract: `docs/feed-protocol.md`, pinned by `tests/golden/`).
//!
//! A packet is a MoldUDP64-style header followed by `count` message blocks; a block is a 2-byte
//! little-endian length and the message (a type byte, then a fixed little-endian body). Every
//! body is a `zerocopy` struct of unaligned little-endian fields, so decoding is a bounds check
//! and a copy. No I/O, no clock: callers pass the send timestamp in.
//!
//! Decoding never panics on arbitrary bytes: every failure is a [`DecodeError`] naming the byte
//! offset, within the packet or stream, of the field that was wrong.

use zerocopy::little_endian::{I64, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Session names are 10 bytes, as in MoldUDP64.
pub const SESSION_LEN: usize = 10;
/// `count` of a heartbeat: no messages; `seq` is the next sequence the publisher will send.
pub const COUNT_HEARTBEAT: u16 = 0;
/// `count` of the end-of-session marker; `seq` is one past the last sequence of the session.
pub const COUNT_END_OF_SESSION: u16 = 0xFFFF;
/// The most messages one packet may carry (`0xFFFF` is the end-of-session marker).
pub const PACKET_MESSAGES_MAX: u16 = 0xFFFE;
/// The largest UDP payload the publisher builds by default: a 1500-byte Ethernet MTU less the
/// IPv4 (20) and UDP (8) headers, so packets never fragment.
pub const MTU_PAYLOAD_DEFAULT: usize = 1472;

/// Side of an order: `b'B'` buy or `b'S'` sell on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn to_byte(self) -> u8 {
        match self {
            Side::Buy => b'B',
            Side::Sell => b'S',
        }
    }

    pub fn from_byte(byte: u8) -> Option<Side> {
        match byte {
            b'B' => Some(Side::Buy),
            b'S' => Some(Side::Sell),
            _ => None,
        }
    }
}

/// The packet header: 36 bytes, little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, Unaligned)]
#[repr(C)]
pub struct PacketHeader {
    pub session: [u8; SESSION_LEN],
    /// Sequence of the first message in the packet (1-based; never resets within a session).
    pub seq: U64,
    /// Messages in the packet; [`COUNT_HEARTBEAT`] and [`COUNT_END_OF_SESSION`] are special.
    pub count: U16,
    /// Publisher's clock when the packet left, nanoseconds since the Unix epoch (0 = unknown).
    pub send_time_ns: U64,
    /// Flags: zero on the lines; [`FLAG_RETRANSMIT_UNAVAILABLE`] on a retransmission server's
    /// heartbeat-shaped answer for a range it no longer holds (`seq` is its oldest message).
    pub flags: U64,
}

/// Offset of `send_time_ns` in the header: transports stamp it just before the send.
pub const HEADER_SEND_TIME_OFFSET: usize = SESSION_LEN + 8 + 2;
pub const HEADER_LEN: usize = size_of::<PacketHeader>();
const _: () = assert!(HEADER_LEN == 36);

macro_rules! wire {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
        )]
        #[repr(C)]
        pub struct $name { $($(#[$fm])* pub $field: $ty),* }
    };
}

pub use structs::*;

/// The message bodies. zerocopy's derives emit helper items without `Debug` from inside the
/// `wire!` macro, which trips `missing_debug_implementations`; every struct here derives `Debug`.
#[allow(missing_debug_implementations)]
mod structs {
    use zerocopy::little_endian::{I64, U16, U32, U64};
    use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

    wire!(
        /// `S`: start or end of day, market open or close (`event` is the ITCH event code).
        SystemEvent { time_ns: U64, event: u8 }
    );
    wire!(
        /// `R`: a symbol's locate code and 8-byte, space-padded name.
        SymbolDirectory { time_ns: U64, locate: U16, symbol: [u8; 8] }
    );
    wire!(
        /// `A`: a resting order. Prices are signed ticks (ITCH: 1/10,000 of the currency unit).
        AddOrder { time_ns: U64, order_ref: U64, locate: U16, side: u8, shares: U32, price: I64 }
    );
    wire!(
        /// `E`: `shares` of a resting order executed at `price` (the resting price unless the
        /// venue says otherwise).
        OrderExecuted { time_ns: U64, order_ref: U64, locate: U16, shares: U32, match_no: U64, price: I64 }
    );
    wire!(
        /// `X`: `shares` cancelled from a resting order, which stays if shares remain.
        OrderCancelled { time_ns: U64, order_ref: U64, locate: U16, shares: U32 }
    );
    wire!(
        /// `D`: a resting order removed.
        OrderDeleted { time_ns: U64, order_ref: U64, locate: U16 }
    );
    wire!(
        /// `U`: a resting order replaced by a new reference, size and price (priority lost).
        OrderReplaced { time_ns: U64, orig_ref: U64, new_ref: U64, locate: U16, shares: U32, price: I64 }
    );
    wire!(
        /// `P`: a trade against a non-displayed order; it never touches the book.
        Trade { time_ns: U64, order_ref: U64, locate: U16, side: u8, shares: U32, price: I64, match_no: U64 }
    );
    wire!(
        /// `G`: a snapshot begins; it reflects every message up to and including `last_seq`.
        SnapshotBegin { last_seq: U64, symbols: U32, orders: U32 }
    );
    wire!(
        /// `L`: one resting order of a snapshot, in price-time order within its side and level
        /// (order by order, so that later executions and cancels by reference still apply).
        SnapshotLevel { order_ref: U64, locate: U16, side: u8, shares: U32, price: I64 }
    );
    wire!(
        /// `Z`: a snapshot ends; `last_seq` repeats the begin's.
        SnapshotEnd { last_seq: U64, orders: U32 }
    );
}

/// One decoded message, by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    SystemEvent(SystemEvent),
    SymbolDirectory(SymbolDirectory),
    AddOrder(AddOrder),
    OrderExecuted(OrderExecuted),
    OrderCancelled(OrderCancelled),
    OrderDeleted(OrderDeleted),
    OrderReplaced(OrderReplaced),
    Trade(Trade),
    SnapshotBegin(SnapshotBegin),
    SnapshotLevel(SnapshotLevel),
    SnapshotEnd(SnapshotEnd),
}

impl Message {
    pub fn kind(&self) -> u8 {
        match self {
            Message::SystemEvent(_) => b'S',
            Message::SymbolDirectory(_) => b'R',
            Message::AddOrder(_) => b'A',
            Message::OrderExecuted(_) => b'E',
            Message::OrderCancelled(_) => b'X',
            Message::OrderDeleted(_) => b'D',
            Message::OrderReplaced(_) => b'U',
            Message::Trade(_) => b'P',
            Message::SnapshotBegin(_) => b'G',
            Message::SnapshotLevel(_) => b'L',
            Message::SnapshotEnd(_) => b'Z',
        }
    }

    fn body(&self) -> &[u8] {
        match self {
            Message::SystemEvent(m) => m.as_bytes(),
            Message::SymbolDirectory(m) => m.as_bytes(),
            Message::AddOrder(m) => m.as_bytes(),
            Message::OrderExecuted(m) => m.as_bytes(),
            Message::OrderCancelled(m) => m.as_bytes(),
            Message::OrderDeleted(m) => m.as_bytes(),
            Message::OrderReplaced(m) => m.as_bytes(),
            Message::Trade(m) => m.as_bytes(),
            Message::SnapshotBegin(m) => m.as_bytes(),
            Message::SnapshotLevel(m) => m.as_bytes(),
            Message::SnapshotEnd(m) => m.as_bytes(),
        }
    }

    /// Bytes of the message block: 2 length bytes, the type byte, the body.
    pub fn block_len(&self) -> usize {
        2 + 1 + self.body().len()
    }

    /// Appends the message block (length, type, body) to `out`.
    pub fn encode_block(&self, out: &mut Vec<u8>) {
        let body = self.body();
        let len = u16::try_from(1 + body.len()).expect("bodies are a few dozen bytes");
        out.extend_from_slice(&len.to_le_bytes());
        out.push(self.kind());
        out.extend_from_slice(body);
    }

    /// Decodes one message (type byte and body, without the length). `offset` is where
    /// `bytes` starts in the caller's packet or stream, for the error.
    #[inline(always)]
    pub fn decode(bytes: &[u8], offset: usize) -> Result<Message, DecodeError> {
        MessageRef::decode(bytes, offset).map(MessageRef::to_message)
    }
}

/// One message viewed in place: each variant borrows its fixed-layout body from the packet, so
/// decoding checks the type, the length and the side byte and copies nothing; fields are read
/// (little-endian, unaligned) when the caller reads them. What the protocol's fixed layouts are
/// for; [`Message`] is the owned copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageRef<'a> {
    SystemEvent(&'a SystemEvent),
    SymbolDirectory(&'a SymbolDirectory),
    AddOrder(&'a AddOrder),
    OrderExecuted(&'a OrderExecuted),
    OrderCancelled(&'a OrderCancelled),
    OrderDeleted(&'a OrderDeleted),
    OrderReplaced(&'a OrderReplaced),
    Trade(&'a Trade),
    SnapshotBegin(&'a SnapshotBegin),
    SnapshotLevel(&'a SnapshotLevel),
    SnapshotEnd(&'a SnapshotEnd),
}

impl<'a> MessageRef<'a> {
    /// Views one message (type byte and body, without the length) in place. `offset` is where
    /// `bytes` starts in the caller's packet or stream, for the error.
    #[inline(always)]
    pub fn decode(bytes: &'a [u8], offset: usize) -> Result<MessageRef<'a>, DecodeError> {
        let (&kind, body) = bytes
            .split_first()
            .ok_or(DecodeError::Truncated { offset })?;
        #[inline(always)]
        fn view<T: FromBytes + KnownLayout + Immutable>(
            body: &[u8],
            kind: u8,
            offset: usize,
        ) -> Result<&T, DecodeError> {
            match T::ref_from_bytes(body) {
                Ok(t) => Ok(t),
                Err(_) => Err(bad_length(offset, kind, body.len() + 1, size_of::<T>() + 1)),
            }
        }
        Ok(match kind {
            b'S' => MessageRef::SystemEvent(view(body, kind, offset)?),
            b'R' => MessageRef::SymbolDirectory(view(body, kind, offset)?),
            b'A' => {
                let m: &AddOrder = view(body, kind, offset)?;
                check_side(m.side, offset + 1 + 18)?;
                MessageRef::AddOrder(m)
            }
            b'E' => MessageRef::OrderExecuted(view(body, kind, offset)?),
            b'X' => MessageRef::OrderCancelled(view(body, kind, offset)?),
            b'D' => MessageRef::OrderDeleted(view(body, kind, offset)?),
            b'U' => MessageRef::OrderReplaced(view(body, kind, offset)?),
            b'P' => {
                let m: &Trade = view(body, kind, offset)?;
                check_side(m.side, offset + 1 + 18)?;
                MessageRef::Trade(m)
            }
            b'G' => MessageRef::SnapshotBegin(view(body, kind, offset)?),
            b'L' => {
                let m: &SnapshotLevel = view(body, kind, offset)?;
                check_side(m.side, offset + 1 + 10)?;
                MessageRef::SnapshotLevel(m)
            }
            b'Z' => MessageRef::SnapshotEnd(view(body, kind, offset)?),
            _ => return Err(DecodeError::UnknownType { offset, kind }),
        })
    }

    /// The owned copy.
    #[inline(always)]
    pub fn to_message(self) -> Message {
        match self {
            MessageRef::SystemEvent(m) => Message::SystemEvent(*m),
            MessageRef::SymbolDirectory(m) => Message::SymbolDirectory(*m),
            MessageRef::AddOrder(m) => Message::AddOrder(*m),
            MessageRef::OrderExecuted(m) => Message::OrderExecuted(*m),
            MessageRef::OrderCancelled(m) => Message::OrderCancelled(*m),
            MessageRef::OrderDeleted(m) => Message::OrderDeleted(*m),
            MessageRef::OrderReplaced(m) => Message::OrderReplaced(*m),
            MessageRef::Trade(m) => Message::Trade(*m),
            MessageRef::SnapshotBegin(m) => Message::SnapshotBegin(*m),
            MessageRef::SnapshotLevel(m) => Message::SnapshotLevel(*m),
            MessageRef::SnapshotEnd(m) => Message::SnapshotEnd(*m),
        }
    }
}

#[inline(always)]
fn check_side(side: u8, offset: usize) -> Result<(), DecodeError> {
    if side == b'B' || side == b'S' {
        Ok(())
    } else {
        Err(bad_side(offset, side))
    }
}

// Errors are built out of line: the decode loop stays small (see `sequent-bench feed`).
#[cold]
#[inline(never)]
fn bad_side(offset: usize, side: u8) -> DecodeError {
    DecodeError::BadSide { offset, side }
}

#[cold]
#[inline(never)]
fn bad_length(offset: usize, kind: u8, len: usize, expected: usize) -> DecodeError {
    DecodeError::BadLength {
        offset,
        kind,
        len,
        expected,
    }
}

/// Why bytes did not decode; every variant names the offset of the offending field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated at offset {offset}")]
    Truncated { offset: usize },
    #[error("unknown message type 0x{kind:02x} at offset {offset}")]
    UnknownType { offset: usize, kind: u8 },
    #[error("message type {:?} at offset {offset} is {len} bytes, expected {expected}", *kind as char)]
    BadLength {
        offset: usize,
        kind: u8,
        len: usize,
        expected: usize,
    },
    #[error("side byte 0x{side:02x} at offset {offset} is neither B nor S")]
    BadSide { offset: usize, side: u8 },
    #[error("{extra} bytes after the last of the packet's messages, at offset {offset}")]
    TrailingBytes { offset: usize, extra: usize },
    #[error("heartbeat or end-of-session packet carries {extra} bytes at offset {offset}")]
    ControlWithBody { offset: usize, extra: usize },
}

/// What a packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// `count` messages from `seq` on.
    Messages,
    /// No messages; `seq` is the next sequence the publisher will send.
    Heartbeat,
    /// No messages; `seq` is one past the last sequence of the session.
    EndOfSession,
}

/// A validated packet: the header, and its message blocks, each checked to decode.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub header: PacketHeader,
    pub kind: PacketKind,
    blocks: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Validates the whole packet: header, every block's length and type, no trailing bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<Packet<'a>, DecodeError> {
        let (header, _) =
            PacketHeader::read_from_prefix(bytes).map_err(|_| DecodeError::Truncated {
                offset: bytes.len(),
            })?;
        let count = header.count.get();
        let kind = match count {
            COUNT_HEARTBEAT => PacketKind::Heartbeat,
            COUNT_END_OF_SESSION => PacketKind::EndOfSession,
            _ => PacketKind::Messages,
        };
        let blocks_start = HEADER_LEN;
        let blocks = &bytes[blocks_start..];
        if kind != PacketKind::Messages {
            if !blocks.is_empty() {
                return Err(DecodeError::ControlWithBody {
                    offset: blocks_start,
                    extra: blocks.len(),
                });
            }
            return Ok(Packet {
                header,
                kind,
                blocks,
            });
        }
        let packet = Packet {
            header,
            kind,
            blocks,
        };
        let mut end = 0;
        for item in packet.messages_at() {
            let (_, _, next) = item?;
            end = next;
        }
        if end != blocks.len() {
            return Err(DecodeError::TrailingBytes {
                offset: blocks_start + end,
                extra: blocks.len() - end,
            });
        }
        Ok(packet)
    }

    pub fn seq(&self) -> u64 {
        self.header.seq.get()
    }

    /// Messages in the packet (0 for heartbeats and end of session).
    pub fn count(&self) -> u64 {
        match self.kind {
            PacketKind::Messages => u64::from(self.header.count.get()),
            _ => 0,
        }
    }

    /// Each message with its sequence number. `parse` checked every block, so this yields
    /// exactly `count` messages.
    pub fn messages(&self) -> impl Iterator<Item = (u64, Message)> + 'a {
        let seq = self.seq();
        let count = self.count();
        let blocks = self.blocks;
        let mut at = 0usize;
        (0..count).map_while(move |i| {
            let (message, next) = decode_block(blocks, at, HEADER_LEN).ok()?;
            at = next;
            Some((seq.wrapping_add(i), message))
        })
    }

    fn messages_at(&self) -> impl Iterator<Item = Result<(u64, Message, usize), DecodeError>> + 'a {
        let seq = self.seq();
        let count = self.count();
        let blocks = self.blocks;
        let mut at = 0usize;
        let mut failed = false;
        (0..count).map_while(move |i| {
            if failed {
                return None;
            }
            match decode_block(blocks, at, HEADER_LEN) {
                Ok((message, next)) => {
                    at = next;
                    Some(Ok((seq.wrapping_add(i), message, next)))
                }
                Err(e) => {
                    failed = true;
                    Some(Err(e))
                }
            }
        })
    }
}

/// Decodes a whole packet in one pass, calling `each(seq, message)` for every message in order;
/// the same checks as [`Packet::parse`], but a message is handed out before a later block is
/// checked, so on an error the caller has seen a prefix (the hot receive path, where a bad
/// packet is dropped whole by the caller's own bookkeeping, and the bench).
pub fn for_each_message(
    bytes: &[u8],
    mut each: impl FnMut(u64, Message),
) -> Result<PacketHeader, DecodeError> {
    for_each_message_ref(bytes, |seq, message| each(seq, message.to_message()))
}

/// Like [`for_each_message`], with each message viewed in place ([`MessageRef`]): nothing is
/// copied out of the packet until the callback reads a field.
pub fn for_each_message_ref<'a>(
    bytes: &'a [u8],
    mut each: impl FnMut(u64, MessageRef<'a>),
) -> Result<PacketHeader, DecodeError> {
    let (header, _) =
        PacketHeader::read_from_prefix(bytes).map_err(|_| DecodeError::Truncated {
            offset: bytes.len(),
        })?;
    let blocks = &bytes[HEADER_LEN..];
    let count = header.count.get();
    if count == COUNT_HEARTBEAT || count == COUNT_END_OF_SESSION {
        if !blocks.is_empty() {
            return Err(DecodeError::ControlWithBody {
                offset: HEADER_LEN,
                extra: blocks.len(),
            });
        }
        return Ok(header);
    }
    let seq = header.seq.get();
    let mut at = 0;
    for i in 0..u64::from(count) {
        let (message, next) = view_block(blocks, at, HEADER_LEN)?;
        each(seq.wrapping_add(i), message);
        at = next;
    }
    if at != blocks.len() {
        return Err(DecodeError::TrailingBytes {
            offset: HEADER_LEN + at,
            extra: blocks.len() - at,
        });
    }
    Ok(header)
}

/// Decodes the block at `at` of `bytes`; returns the message and the offset after it. `base` is
/// added to offsets in errors (where `bytes` starts in the packet).
#[inline(always)]
pub fn decode_block(bytes: &[u8], at: usize, base: usize) -> Result<(Message, usize), DecodeError> {
    view_block(bytes, at, base).map(|(message, next)| (message.to_message(), next))
}

/// [`decode_block`], viewing the message in place.
// Always inlined: the decode loops are the hot path, and returning the 40-byte message through
// memory from an out-of-line call cost ~40% (perf, `sequent-bench feed`).
#[inline(always)]
pub fn view_block(
    bytes: &[u8],
    at: usize,
    base: usize,
) -> Result<(MessageRef<'_>, usize), DecodeError> {
    let len_bytes = bytes
        .get(at..at + 2)
        .ok_or(DecodeError::Truncated { offset: base + at })?;
    let len = usize::from(u16::from_le_bytes([len_bytes[0], len_bytes[1]]));
    let body = bytes
        .get(at + 2..at + 2 + len)
        .ok_or(DecodeError::Truncated {
            offset: base + at + 2,
        })?;
    let message = MessageRef::decode(body, base + at + 2)?;
    Ok((message, at + 2 + len))
}

/// Writes a packet header into `out` (cleared first).
pub fn encode_header(
    out: &mut Vec<u8>,
    session: [u8; SESSION_LEN],
    seq: u64,
    count: u16,
    send_time_ns: u64,
) {
    out.clear();
    let header = PacketHeader {
        session,
        seq: U64::new(seq),
        count: U16::new(count),
        send_time_ns: U64::new(send_time_ns),
        flags: U64::new(0),
    };
    out.extend_from_slice(header.as_bytes());
}

/// Flag of a retransmission answer: the range is gone from the history, ask for a snapshot.
pub const FLAG_RETRANSMIT_UNAVAILABLE: u64 = 1;
const HEADER_FLAGS_OFFSET: usize = HEADER_SEND_TIME_OFFSET + 8;

/// Sets the flags of a packet header.
pub fn set_flags(packet: &mut [u8], flags: u64) {
    if let Some(field) = packet.get_mut(HEADER_FLAGS_OFFSET..HEADER_FLAGS_OFFSET + 8) {
        field.copy_from_slice(&flags.to_le_bytes());
    }
}

/// Sets the count of a packet built in place by [`encode_header`] and [`Message::encode_block`].
pub fn set_count(packet: &mut [u8], count: u16) {
    packet[SESSION_LEN + 8..SESSION_LEN + 10].copy_from_slice(&count.to_le_bytes());
}

/// Stamps the send time into a packet's header just before it leaves.
pub fn stamp_send_time(packet: &mut [u8], send_time_ns: u64) {
    if let Some(field) = packet.get_mut(HEADER_SEND_TIME_OFFSET..HEADER_SEND_TIME_OFFSET + 8) {
        field.copy_from_slice(&send_time_ns.to_le_bytes());
    }
}

/// A session name from text: truncated or space-padded to 10 bytes.
pub fn session_name(name: &str) -> [u8; SESSION_LEN] {
    let mut out = [b' '; SESSION_LEN];
    for (slot, byte) in out.iter_mut().zip(name.bytes()) {
        *slot = byte;
    }
    out
}

/// Decodes a stream of message blocks (a snapshot): each block until the end of `bytes`.
pub fn decode_stream(bytes: &[u8]) -> impl Iterator<Item = Result<Message, DecodeError>> + '_ {
    let mut at = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || at >= bytes.len() {
            return None;
        }
        match decode_block(bytes, at, 0) {
            Ok((message, next)) => {
                at = next;
                Some(Ok(message))
            }
            Err(e) => {
                failed = true;
                Some(Err(e))
            }
        }
    })
}

/// Convenience constructors used by the tests, the publisher and the ITCH import.
pub mod build {
    use super::*;

    pub fn add(
        time_ns: u64,
        order_ref: u64,
        locate: u16,
        side: Side,
        shares: u32,
        price: i64,
    ) -> Message {
        Message::AddOrder(AddOrder {
            time_ns: U64::new(time_ns),
            order_ref: U64::new(order_ref),
            locate: U16::new(locate),
            side: side.to_byte(),
            shares: U32::new(shares),
            price: I64::new(price),
        })
    }

    pub fn executed(
        time_ns: u64,
        order_ref: u64,
        locate: u16,
        shares: u32,
        match_no: u64,
        price: i64,
    ) -> Message {
        Message::OrderExecuted(OrderExecuted {
            time_ns: U64::new(time_ns),
            order_ref: U64::new(order_ref),
            locate: U16::new(locate),
            shares: U32::new(shares),
            match_no: U64::new(match_no),
            price: I64::new(price),
        })
    }

    pub fn cancelled(time_ns: u64, order_ref: u64, locate: u16, shares: u32) -> Message {
        Message::OrderCancelled(OrderCancelled {
            time_ns: U64::new(time_ns),
            order_ref: U64::new(order_ref),
            locate: U16::new(locate),
            shares: U32::new(shares),
        })
    }

    pub fn deleted(time_ns: u64, order_ref: u64, locate: u16) -> Message {
        Message::OrderDeleted(OrderDeleted {
            time_ns: U64::new(time_ns),
            order_ref: U64::new(order_ref),
            locate: U16::new(locate),
        })
    }

    pub fn replaced(
        time_ns: u64,
        orig_ref: u64,
        new_ref: u64,
        locate: u16,
        shares: u32,
        price: i64,
    ) -> Message {
        Message::OrderReplaced(OrderReplaced {
            time_ns: U64::new(time_ns),
            orig_ref: U64::new(orig_ref),
            new_ref: U64::new(new_ref),
            locate: U16::new(locate),
            shares: U32::new(shares),
            price: I64::new(price),
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub fn trade(
        time_ns: u64,
        order_ref: u64,
        locate: u16,
        side: Side,
        shares: u32,
        price: i64,
        match_no: u64,
    ) -> Message {
        Message::Trade(Trade {
            time_ns: U64::new(time_ns),
            order_ref: U64::new(order_ref),
            locate: U16::new(locate),
            side: side.to_byte(),
            shares: U32::new(shares),
            price: I64::new(price),
            match_no: U64::new(match_no),
        })
    }

    pub fn symbol(time_ns: u64, locate: u16, name: &str) -> Message {
        let mut symbol = [b' '; 8];
        for (slot, byte) in symbol.iter_mut().zip(name.bytes()) {
            *slot = byte;
        }
        Message::SymbolDirectory(SymbolDirectory {
            time_ns: U64::new(time_ns),
            locate: U16::new(locate),
            symbol,
        })
    }

    pub fn system(time_ns: u64, event: u8) -> Message {
        Message::SystemEvent(SystemEvent {
            time_ns: U64::new(time_ns),
            event,
        })
    }
}
