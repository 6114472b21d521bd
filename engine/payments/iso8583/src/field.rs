//! The field table: which data elements we carry and how each is encoded.

/// Which bytes a field may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// `n`: ASCII digits.
    Numeric,
    /// `an`: ASCII letters and digits.
    Alphanumeric,
    /// `ans`: printable ASCII, 0x20..=0x7E.
    Printable,
    /// `z`: track 2 — digits, `=` and `D` as separators.
    Track2,
    /// `b`: any byte; lengths count bytes.
    Binary,
}

impl Charset {
    /// True when `byte` may appear in a field of this charset.
    pub fn allows(self, byte: u8) -> bool {
        match self {
            Charset::Numeric => byte.is_ascii_digit(),
            Charset::Alphanumeric => byte.is_ascii_alphanumeric(),
            Charset::Printable => (0x20..=0x7e).contains(&byte),
            Charset::Track2 => byte.is_ascii_digit() || byte == b'=' || byte == b'D',
            Charset::Binary => true,
        }
    }
}

/// How a field's length is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// Exactly this many bytes.
    Fixed(usize),
    /// Two ASCII digits of length, then up to this many bytes.
    LlVar(usize),
    /// Three ASCII digits of length, then up to this many bytes.
    LllVar(usize),
}

impl Length {
    /// Largest value length.
    pub fn max(self) -> usize {
        match self {
            Length::Fixed(n) | Length::LlVar(n) | Length::LllVar(n) => n,
        }
    }
}

/// One row of the field table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// Data element number, 2..=128.
    pub number: u8,
    /// ISO 8583:1987 name.
    pub name: &'static str,
    /// Fixed, LLVAR or LLLVAR, with the maximum.
    pub length: Length,
    /// Allowed bytes.
    pub charset: Charset,
    /// Cardholder data: never shown in `Debug` (2 PAN, 35 track 2, 45 track 1, 55 EMV data).
    pub sensitive: bool,
}

const fn spec(number: u8, name: &'static str, length: Length, charset: Charset) -> FieldSpec {
    FieldSpec {
        number,
        name,
        length,
        charset,
        sensitive: false,
    }
}

const fn secret(number: u8, name: &'static str, length: Length, charset: Charset) -> FieldSpec {
    FieldSpec {
        number,
        name,
        length,
        charset,
        sensitive: true,
    }
}

use Charset::{Alphanumeric as AN, Binary as B, Numeric as N, Printable as ANS, Track2 as Z};
use Length::{Fixed, LlVar, LllVar};

/// Every field we encode or accept, by number. A field not here is refused by the decoder
/// (`UnknownField`) and by [`crate::Message::set`].
pub const FIELDS: &[FieldSpec] = &[
    secret(2, "primary account number", LlVar(19), N),
    spec(3, "processing code", Fixed(6), N),
    spec(4, "amount, transaction (minor units)", Fixed(12), N),
    spec(7, "transmission date and time MMDDhhmmss", Fixed(10), N),
    spec(11, "systems trace audit number", Fixed(6), N),
    spec(12, "time, local transaction hhmmss", Fixed(6), N),
    spec(13, "date, local transaction MMDD", Fixed(4), N),
    spec(14, "date, expiration YYMM", Fixed(4), N),
    spec(18, "merchant category code", Fixed(4), N),
    spec(22, "point of service entry mode", Fixed(3), N),
    spec(25, "point of service condition code", Fixed(2), N),
    spec(
        32,
        "acquiring institution identification code",
        LlVar(11),
        N,
    ),
    secret(35, "track 2 data", LlVar(37), Z),
    spec(37, "retrieval reference number", Fixed(12), AN),
    spec(38, "authorisation identification response", Fixed(6), AN),
    spec(39, "response code", Fixed(2), AN),
    spec(41, "card acceptor terminal identification", Fixed(8), ANS),
    spec(42, "card acceptor identification code", Fixed(15), ANS),
    spec(43, "card acceptor name/location", Fixed(40), ANS),
    secret(45, "track 1 data", LlVar(76), ANS),
    spec(
        48,
        "additional data, private (sequent sub-elements)",
        LllVar(999),
        ANS,
    ),
    spec(
        49,
        "currency code, transaction (ISO 4217 numeric)",
        Fixed(3),
        N,
    ),
    spec(54, "additional amounts", LllVar(120), ANS),
    // EMV data can carry the PAN (tag 5A) and track 2 equivalent (tag 57): redacted too.
    secret(55, "ICC data (EMV TLV)", LllVar(255), B),
    spec(70, "network management information code", Fixed(3), N),
    spec(90, "original data elements", Fixed(42), N),
];

/// Highest data element number a secondary bitmap can name.
pub const FIELD_NUMBER_MAX: u8 = 128;

/// The spec of field `number`, if we carry it.
pub fn field_spec(number: u8) -> Option<&'static FieldSpec> {
    FIELDS.iter().find(|s| s.number == number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_within_limits() {
        for pair in FIELDS.windows(2) {
            assert!(pair[0].number < pair[1].number);
        }
        for s in FIELDS {
            assert!((2..=FIELD_NUMBER_MAX).contains(&s.number) && s.number != 65);
            match s.length {
                Length::Fixed(n) => assert!(n > 0),
                Length::LlVar(n) => assert!((1..=99).contains(&n)),
                Length::LllVar(n) => assert!((1..=999).contains(&n)),
            }
        }
    }
}
