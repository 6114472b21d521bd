//! NASDAQ TotalView-ITCH 5.0 decoding (specification: "NASDAQ TotalView-ITCH 5.0", 2020).
//!
//! A file is a sequence of 2-byte big-endian length prefixes, each followed by a message whose
//! first byte is its type. Some files (the project's sample among them) leave every prefix at
//! zero, so the reader frames by type and the specification's fixed size; a non-zero prefix must
//! equal that size. An unknown type, a wrong prefix or a truncated tail is an [`ItchError`]
//! naming the byte offset, never a panic.
//!
//! Book messages (A F E C X D U P), the system event and the stock directory are decoded field
//! by field; the other types are framed and returned as [`Itch::Other`] with their common header.

use crate::proto::{Message, Side, build};

/// ITCH 5.0 message length by type (type byte included, length prefix excluded).
pub fn message_len(kind: u8) -> Option<usize> {
    Some(match kind {
        b'S' | b'W' => 12,
        b'R' => 39,
        b'H' => 25,
        b'Y' => 20,
        b'L' => 26,
        b'V' | b'J' => 35,
        b'K' => 28,
        b'h' => 21,
        b'A' => 36,
        b'F' => 40,
        b'E' => 31,
        b'C' => 36,
        b'X' => 23,
        b'D' => 19,
        b'U' => 35,
        b'P' => 44,
        b'Q' => 40,
        b'B' => 19,
        b'I' => 50,
        b'N' => 20,
        b'O' => 48,
        _ => return None,
    })
}

/// Every type [`message_len`] knows, in a fixed order (for counts by type).
pub const KNOWN_TYPES: &[u8] = b"SRHYLVWKJhAFECXDUPQBINO";

/// One decoded ITCH message. `time_ns` is nanoseconds since midnight (48 bits on the wire);
/// prices are 1/10,000 of a dollar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Itch {
    SystemEvent {
        locate: u16,
        time_ns: u64,
        event: u8,
    },
    StockDirectory {
        locate: u16,
        time_ns: u64,
        stock: [u8; 8],
    },
    /// `A`, and `F` with its attribution.
    AddOrder {
        locate: u16,
        time_ns: u64,
        order_ref: u64,
        side: Side,
        shares: u32,
        stock: [u8; 8],
        price: u32,
        attribution: Option<[u8; 4]>,
    },
    /// `E` (at the resting price: `price` is `None`) and `C` (with its price).
    OrderExecuted {
        locate: u16,
        time_ns: u64,
        order_ref: u64,
        shares: u32,
        match_no: u64,
        price: Option<u32>,
        printable: bool,
    },
    OrderCancel {
        locate: u16,
        time_ns: u64,
        order_ref: u64,
        shares: u32,
    },
    OrderDelete {
        locate: u16,
        time_ns: u64,
        order_ref: u64,
    },
    OrderReplace {
        locate: u16,
        time_ns: u64,
        orig_ref: u64,
        new_ref: u64,
        shares: u32,
        price: u32,
    },
    Trade {
        locate: u16,
        time_ns: u64,
        order_ref: u64,
        side: Side,
        shares: u32,
        stock: [u8; 8],
        price: u32,
        match_no: u64,
    },
    /// Any other known type, framed but not decoded past the common header.
    Other { kind: u8, locate: u16, time_ns: u64 },
}

impl Itch {
    pub fn kind(&self) -> u8 {
        match self {
            Itch::SystemEvent { .. } => b'S',
            Itch::StockDirectory { .. } => b'R',
            Itch::AddOrder {
                attribution: None, ..
            } => b'A',
            Itch::AddOrder { .. } => b'F',
            Itch::OrderExecuted { price: None, .. } => b'E',
            Itch::OrderExecuted { .. } => b'C',
            Itch::OrderCancel { .. } => b'X',
            Itch::OrderDelete { .. } => b'D',
            Itch::OrderReplace { .. } => b'U',
            Itch::Trade { .. } => b'P',
            Itch::Other { kind, .. } => *kind,
        }
    }

    /// The message in sequent's feed protocol, if it has a counterpart. An `E` executes at the
    /// resting order's price, which ITCH leaves out: `resting_price` supplies it (0 if unknown).
    pub fn to_feed(&self, resting_price: impl Fn(u64) -> Option<i64>) -> Option<Message> {
        Some(match *self {
            Itch::SystemEvent { time_ns, event, .. } => build::system(time_ns, event),
            Itch::StockDirectory {
                locate,
                time_ns,
                stock,
            } => build::symbol(time_ns, locate, &String::from_utf8_lossy(&stock)),
            Itch::AddOrder {
                locate,
                time_ns,
                order_ref,
                side,
                shares,
                price,
                ..
            } => build::add(time_ns, order_ref, locate, side, shares, i64::from(price)),
            Itch::OrderExecuted {
                locate,
                time_ns,
                order_ref,
                shares,
                match_no,
                price,
                ..
            } => {
                let price = match price {
                    Some(p) => i64::from(p),
                    None => resting_price(order_ref).unwrap_or(0),
                };
                build::executed(time_ns, order_ref, locate, shares, match_no, price)
            }
            Itch::OrderCancel {
                locate,
                time_ns,
                order_ref,
                shares,
            } => build::cancelled(time_ns, order_ref, locate, shares),
            Itch::OrderDelete {
                locate,
                time_ns,
                order_ref,
            } => build::deleted(time_ns, order_ref, locate),
            Itch::OrderReplace {
                locate,
                time_ns,
                orig_ref,
                new_ref,
                shares,
                price,
            } => build::replaced(time_ns, orig_ref, new_ref, locate, shares, i64::from(price)),
            Itch::Trade {
                locate,
                time_ns,
                order_ref,
                side,
                shares,
                price,
                match_no,
                ..
            } => build::trade(
                time_ns,
                order_ref,
                locate,
                side,
                shares,
                i64::from(price),
                match_no,
            ),
            Itch::Other { .. } => return None,
        })
    }
}

/// Why an ITCH file did not decode; `offset` is the byte offset in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ItchError {
    #[error("unknown ITCH message type 0x{kind:02x} at offset {offset}")]
    UnknownType { offset: usize, kind: u8 },
    #[error("ITCH message type {:?} at offset {offset} has length prefix {prefix}, expected {expected}", *kind as char)]
    BadLength {
        offset: usize,
        kind: u8,
        prefix: u16,
        expected: usize,
    },
    #[error("truncated ITCH message at offset {offset}")]
    Truncated { offset: usize },
    #[error("side byte 0x{side:02x} at offset {offset} is neither B nor S")]
    BadSide { offset: usize, side: u8 },
}

/// Iterates over an ITCH file in memory: `(offset of the type byte, message)`. Stops after the
/// first error.
#[derive(Debug, Clone)]
pub struct ItchReader<'a> {
    data: &'a [u8],
    at: usize,
    failed: bool,
}

impl<'a> ItchReader<'a> {
    pub fn new(data: &'a [u8]) -> ItchReader<'a> {
        ItchReader {
            data,
            at: 0,
            failed: false,
        }
    }

    /// Byte offset of the next message's length prefix.
    pub fn offset(&self) -> usize {
        self.at
    }

    fn next_message(&mut self) -> Result<(usize, Itch), ItchError> {
        let at = self.at;
        let prefix = self
            .data
            .get(at..at + 3)
            .ok_or(ItchError::Truncated { offset: at })?;
        let declared = u16::from_be_bytes([prefix[0], prefix[1]]);
        let kind = prefix[2];
        let offset = at + 2;
        let len = message_len(kind).ok_or(ItchError::UnknownType { offset, kind })?;
        if declared != 0 && usize::from(declared) != len {
            return Err(ItchError::BadLength {
                offset: at,
                kind,
                prefix: declared,
                expected: len,
            });
        }
        let body = self
            .data
            .get(offset..offset + len)
            .ok_or(ItchError::Truncated { offset })?;
        let message = decode(body, offset)?;
        self.at = offset + len;
        Ok((offset, message))
    }
}

impl Iterator for ItchReader<'_> {
    type Item = Result<(usize, Itch), ItchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.at >= self.data.len() {
            return None;
        }
        let item = self.next_message();
        self.failed = item.is_err();
        Some(item)
    }
}

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
fn be48(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes([
        0,
        0,
        b[at],
        b[at + 1],
        b[at + 2],
        b[at + 3],
        b[at + 4],
        b[at + 5],
    ])
}

#[inline]
fn be64(b: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(bytes)
}

#[inline]
fn arr8(b: &[u8], at: usize) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&b[at..at + 8]);
    out
}

fn side(b: &[u8], at: usize, offset: usize) -> Result<Side, ItchError> {
    Side::from_byte(b[at]).ok_or(ItchError::BadSide {
        offset: offset + at,
        side: b[at],
    })
}

/// Decodes one message whose length `body.len()` already equals `message_len(body[0])`.
fn decode(b: &[u8], offset: usize) -> Result<Itch, ItchError> {
    let locate = be16(b, 1);
    let time_ns = be48(b, 5);
    Ok(match b[0] {
        b'S' => Itch::SystemEvent {
            locate,
            time_ns,
            event: b[11],
        },
        b'R' => Itch::StockDirectory {
            locate,
            time_ns,
            stock: arr8(b, 11),
        },
        kind @ (b'A' | b'F') => Itch::AddOrder {
            locate,
            time_ns,
            order_ref: be64(b, 11),
            side: side(b, 19, offset)?,
            shares: be32(b, 20),
            stock: arr8(b, 24),
            price: be32(b, 32),
            attribution: (kind == b'F').then(|| [b[36], b[37], b[38], b[39]]),
        },
        b'E' => Itch::OrderExecuted {
            locate,
            time_ns,
            order_ref: be64(b, 11),
            shares: be32(b, 19),
            match_no: be64(b, 23),
            price: None,
            printable: true,
        },
        b'C' => Itch::OrderExecuted {
            locate,
            time_ns,
            order_ref: be64(b, 11),
            shares: be32(b, 19),
            match_no: be64(b, 23),
            printable: b[31] == b'Y',
            price: Some(be32(b, 32)),
        },
        b'X' => Itch::OrderCancel {
            locate,
            time_ns,
            order_ref: be64(b, 11),
            shares: be32(b, 19),
        },
        b'D' => Itch::OrderDelete {
            locate,
            time_ns,
            order_ref: be64(b, 11),
        },
        b'U' => Itch::OrderReplace {
            locate,
            time_ns,
            orig_ref: be64(b, 11),
            new_ref: be64(b, 19),
            shares: be32(b, 27),
            price: be32(b, 31),
        },
        b'P' => Itch::Trade {
            locate,
            time_ns,
            order_ref: be64(b, 11),
            side: side(b, 19, offset)?,
            shares: be32(b, 20),
            stock: arr8(b, 24),
            price: be32(b, 32),
            match_no: be64(b, 36),
        },
        kind => Itch::Other {
            kind,
            locate,
            time_ns,
        },
    })
}

/// Counts by type, in [`KNOWN_TYPES`] order.
#[derive(Debug, Clone, Default)]
pub struct ItchCounts {
    pub by_type: std::collections::BTreeMap<char, u64>,
    pub total: u64,
}

/// Replays an ITCH file into a book builder; returns the counts by type.
pub fn replay(data: &[u8], books: &mut crate::book::Books) -> Result<ItchCounts, ItchError> {
    let mut counts = ItchCounts::default();
    for item in ItchReader::new(data) {
        let (_, itch) = item?;
        *counts.by_type.entry(itch.kind() as char).or_default() += 1;
        counts.total += 1;
        if let Some(message) = itch.to_feed(|r| books.order(r).map(|o| o.price)) {
            books.apply(&message);
        }
    }
    Ok(counts)
}
