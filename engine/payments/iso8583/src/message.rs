//! Messages: MTI, bitmaps and fields, encoded and decoded without I/O.

use std::collections::BTreeMap;
use std::fmt;

use zeroize::Zeroizing;

use crate::field::{Charset, FIELD_NUMBER_MAX, FieldSpec, Length, field_spec};

/// Largest encoded message (MTI + bitmaps + fields): what the 2-byte frame length can carry.
pub const MESSAGE_BYTES_MAX: usize = u16::MAX as usize;
const MTI_BYTES: usize = 4;
const PAN_SPEC: FieldSpec = crate::field::FIELDS[0];
const _: () = assert!(PAN_SPEC.number == 2);
const BITMAP_BYTES: usize = 8;

/// Message type indicator: version 0 (ISO 8583:1987), class, function, origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mti {
    /// 0100 authorisation request.
    AuthorisationRequest,
    /// 0110 authorisation response.
    AuthorisationResponse,
    /// 0200 financial request (authorisation and capture in one).
    FinancialRequest,
    /// 0210 financial response.
    FinancialResponse,
    /// 0400 reversal request.
    ReversalRequest,
    /// 0410 reversal response.
    ReversalResponse,
    /// 0800 network management request (sign-on, echo, sign-off by field 70).
    NetworkRequest,
    /// 0810 network management response.
    NetworkResponse,
}

impl Mti {
    /// Every MTI we speak.
    pub const ALL: [Mti; 8] = [
        Mti::AuthorisationRequest,
        Mti::AuthorisationResponse,
        Mti::FinancialRequest,
        Mti::FinancialResponse,
        Mti::ReversalRequest,
        Mti::ReversalResponse,
        Mti::NetworkRequest,
        Mti::NetworkResponse,
    ];

    /// The four ASCII digits.
    pub fn digits(self) -> &'static [u8; 4] {
        match self {
            Mti::AuthorisationRequest => b"0100",
            Mti::AuthorisationResponse => b"0110",
            Mti::FinancialRequest => b"0200",
            Mti::FinancialResponse => b"0210",
            Mti::ReversalRequest => b"0400",
            Mti::ReversalResponse => b"0410",
            Mti::NetworkRequest => b"0800",
            Mti::NetworkResponse => b"0810",
        }
    }

    /// Parses four ASCII digits.
    pub fn from_digits(digits: &[u8]) -> Option<Mti> {
        Mti::ALL.into_iter().find(|m| m.digits() == digits)
    }

    /// The response MTI for a request (0100 → 0110); `None` for a response.
    pub fn response(self) -> Option<Mti> {
        match self {
            Mti::AuthorisationRequest => Some(Mti::AuthorisationResponse),
            Mti::FinancialRequest => Some(Mti::FinancialResponse),
            Mti::ReversalRequest => Some(Mti::ReversalResponse),
            Mti::NetworkRequest => Some(Mti::NetworkResponse),
            _ => None,
        }
    }
}

impl fmt::Display for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = *self.digits();
        write!(
            f,
            "{}{}{}{}",
            char::from(a),
            char::from(b),
            char::from(c),
            char::from(d)
        )
    }
}

/// Field 2 as carried on the wire: digits, wiped on drop, `Debug` masked to BIN and last four.
/// The codec does not check Luhn (the vault did, before the PAN reached the connector).
#[derive(Clone, PartialEq, Eq)]
pub struct PanField(Zeroizing<String>);

impl PanField {
    /// Digits, 1..=19 (LLVAR n..19).
    pub fn new(digits: &str) -> Result<PanField, FieldError> {
        check_value(&PAN_SPEC, digits.as_bytes())?;
        Ok(PanField(Zeroizing::new(digits.to_owned())))
    }

    /// The digits in clear: for the connector that writes them to the acquirer, nobody else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `411111******1111`; all `*` when shorter than 13 digits.
    pub fn masked(&self) -> String {
        let len = self.0.len();
        self.0
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if len >= 13 && (i < 6 || i >= len - 4) {
                    c
                } else {
                    '*'
                }
            })
            .collect()
    }
}

impl fmt::Debug for PanField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PanField({})", self.masked())
    }
}

/// Why a value does not fit its field (on set or encode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// Not in the field table.
    #[error("field {0} is not in the field table")]
    Unknown(u8),
    /// Wrong length: fixed fields must be exact, variable ones within 1..=max.
    #[error("field {field}: length {len}, allowed {min}..={max}")]
    Length {
        /// Field number.
        field: u8,
        /// Length given.
        len: usize,
        /// Shortest allowed.
        min: usize,
        /// Longest allowed.
        max: usize,
    },
    /// A byte outside the field's charset, at this offset within the value.
    #[error("field {field}: byte at value offset {offset} is not allowed in {charset:?}")]
    Charset {
        /// Field number.
        field: u8,
        /// Offset within the value.
        offset: usize,
        /// The field's charset.
        charset: Charset,
    },
    /// Field 1 (the secondary bitmap) and 65 are managed by the codec.
    #[error("field {0} is a bitmap, set by the encoder")]
    Bitmap(u8),
}

/// Why bytes are not a message. Every variant names the byte offset in the message body (after
/// the frame length) and, where one is involved, the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ends before the MTI, a bitmap, a length prefix or a value is complete.
    #[error("truncated at offset {offset}: {what} needs {needed} more bytes{}", field_suffix(*field))]
    Truncated {
        /// Field being read, if any.
        field: Option<u8>,
        /// Where the missing part starts.
        offset: usize,
        /// What was being read.
        what: &'static str,
        /// Bytes missing.
        needed: usize,
    },
    /// The MTI is not one we speak.
    #[error("unknown MTI at offset 0")]
    UnknownMti,
    /// A bitmap that cannot be right (secondary indicator with an empty secondary, bit 65).
    #[error("bad bitmap at offset {offset}: {what}")]
    BadBitmap {
        /// Offset of the bitmap.
        offset: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// The bitmap names a field not in our table.
    #[error("field {field} present at offset {offset} but not in the field table")]
    UnknownField {
        /// Field number.
        field: u8,
        /// Where its value would start.
        offset: usize,
    },
    /// A length prefix with a non-digit.
    #[error("field {field}: length prefix at offset {offset} is not digits")]
    BadLengthPrefix {
        /// Field number.
        field: u8,
        /// Offset of the prefix.
        offset: usize,
    },
    /// A variable field longer than its maximum (or empty).
    #[error("field {field}: length {len} at offset {offset}, allowed 1..={max}")]
    TooLong {
        /// Field number.
        field: u8,
        /// Offset of the length prefix.
        offset: usize,
        /// Length declared.
        len: usize,
        /// Maximum.
        max: usize,
    },
    /// A non-digit in a numeric field.
    #[error("field {field}: non-numeric byte at offset {offset}")]
    NonNumeric {
        /// Field number.
        field: u8,
        /// Offset of the byte.
        offset: usize,
    },
    /// A byte outside the field's charset (other than numeric).
    #[error("field {field}: byte at offset {offset} not allowed in {charset:?}")]
    BadCharacter {
        /// Field number.
        field: u8,
        /// Offset of the byte.
        offset: usize,
        /// The field's charset.
        charset: Charset,
    },
    /// Bytes left after the last field the bitmap names.
    #[error("{len} trailing bytes at offset {offset}")]
    TrailingBytes {
        /// Offset of the first extra byte.
        offset: usize,
        /// How many.
        len: usize,
    },
    /// Larger than [`MESSAGE_BYTES_MAX`].
    #[error("message of {len} bytes exceeds {MESSAGE_BYTES_MAX}")]
    TooLarge {
        /// Bytes given.
        len: usize,
    },
}

fn field_suffix(field: Option<u8>) -> String {
    field.map(|f| format!(" (field {f})")).unwrap_or_default()
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The encoded message would exceed [`MESSAGE_BYTES_MAX`].
    #[error("encoded message of {len} bytes exceeds {MESSAGE_BYTES_MAX}")]
    TooLarge {
        /// Bytes it would take.
        len: usize,
    },
}

/// An ISO 8583 message: an MTI and the fields present. Values are checked against the field
/// table when set, so every `Message` encodes. `Debug` masks field 2 and hides 35 and 45.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    mti: Mti,
    /// Field 2, kept apart so its type masks it.
    pan: Option<PanField>,
    /// Every other field by number; values satisfy their [`FieldSpec`]. Track data (35, 45)
    /// is wiped on drop.
    fields: BTreeMap<u8, Zeroizing<Vec<u8>>>,
}

fn check_value(spec: &FieldSpec, value: &[u8]) -> Result<(), FieldError> {
    let (min, max) = match spec.length {
        Length::Fixed(n) => (n, n),
        Length::LlVar(n) | Length::LllVar(n) => (1, n),
    };
    if !(min..=max).contains(&value.len()) {
        return Err(FieldError::Length {
            field: spec.number,
            len: value.len(),
            min,
            max,
        });
    }
    if let Some(offset) = value.iter().position(|&b| !spec.charset.allows(b)) {
        return Err(FieldError::Charset {
            field: spec.number,
            offset,
            charset: spec.charset,
        });
    }
    Ok(())
}

impl Message {
    /// An empty message of type `mti`.
    pub fn new(mti: Mti) -> Message {
        Message {
            mti,
            pan: None,
            fields: BTreeMap::new(),
        }
    }

    /// The MTI.
    pub fn mti(&self) -> Mti {
        self.mti
    }

    /// Changes the MTI (a response built from its request).
    pub fn set_mti(&mut self, mti: Mti) {
        self.mti = mti;
    }

    /// Sets field `number` after checking it against the field table. Field 2 may be set here
    /// too (it lands in a [`PanField`]).
    pub fn set(&mut self, number: u8, value: impl AsRef<[u8]>) -> Result<&mut Message, FieldError> {
        let value = value.as_ref();
        if number == 1 || number == 65 {
            return Err(FieldError::Bitmap(number));
        }
        let spec = field_spec(number).ok_or(FieldError::Unknown(number))?;
        check_value(spec, value)?;
        self.insert_checked(number, value);
        Ok(self)
    }

    /// Stores a value already checked against its spec.
    fn insert_checked(&mut self, number: u8, value: &[u8]) {
        if number == 2 {
            // Numeric, so ASCII, so one char per byte.
            let digits: String = value.iter().map(|&b| char::from(b)).collect();
            self.pan = Some(PanField(Zeroizing::new(digits)));
        } else {
            self.fields.insert(number, Zeroizing::new(value.to_vec()));
        }
    }

    /// Sets field 2.
    pub fn set_pan(&mut self, pan: PanField) -> &mut Message {
        self.pan = Some(pan);
        self
    }

    /// Field 2.
    pub fn pan(&self) -> Option<&PanField> {
        self.pan.as_ref()
    }

    /// Removes a field; returns whether it was present.
    pub fn remove(&mut self, number: u8) -> bool {
        if number == 2 {
            return self.pan.take().is_some();
        }
        self.fields.remove(&number).is_some()
    }

    /// The value of field `number` (not 2: use [`Message::pan`]).
    pub fn get(&self, number: u8) -> Option<&[u8]> {
        self.fields.get(&number).map(|v| v.as_slice())
    }

    /// The value as text. Every charset but binary is ASCII, so this is `None` only for an
    /// absent field or binary bytes that are not UTF-8.
    pub fn get_str(&self, number: u8) -> Option<&str> {
        std::str::from_utf8(self.get(number)?).ok()
    }

    /// Field numbers present, ascending (2 included when set).
    pub fn field_numbers(&self) -> Vec<u8> {
        self.pan
            .iter()
            .map(|_| 2)
            .chain(self.fields.keys().copied())
            .collect()
    }

    fn value(&self, number: u8) -> Option<&[u8]> {
        if number == 2 {
            return self.pan.as_ref().map(|p| p.0.as_bytes());
        }
        self.get(number)
    }

    /// Appends the encoded message (MTI, bitmaps, fields; no frame length) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        let numbers = self.field_numbers();
        let secondary = numbers.iter().any(|&n| n > 64);
        let mut bitmap = [0u8; 2 * BITMAP_BYTES];
        if secondary {
            bitmap[0] |= 0x80;
        }
        for &n in &numbers {
            let bit = usize::from(n - 1);
            bitmap[bit / 8] |= 0x80 >> (bit % 8);
        }
        out.extend_from_slice(self.mti.digits());
        out.extend_from_slice(
            &bitmap[..if secondary {
                2 * BITMAP_BYTES
            } else {
                BITMAP_BYTES
            }],
        );
        for n in numbers {
            // Every stored field came through `set` or the decoder, both of which check the table.
            let (Some(spec), Some(value)) = (field_spec(n), self.value(n)) else {
                unreachable!("field {n} stored without a table entry");
            };
            match spec.length {
                Length::Fixed(_) => {}
                Length::LlVar(_) => out.extend_from_slice(format!("{:02}", value.len()).as_bytes()),
                Length::LllVar(_) => {
                    out.extend_from_slice(format!("{:03}", value.len()).as_bytes())
                }
            }
            out.extend_from_slice(value);
        }
        let len = out.len() - start;
        if len > MESSAGE_BYTES_MAX {
            out.truncate(start);
            return Err(EncodeError::TooLarge { len });
        }
        Ok(())
    }

    /// The encoded message as a new vector.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }

    /// Decodes one message body (no frame length). Never panics: every malformed input gives a
    /// [`DecodeError`] with the offset.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        if bytes.len() > MESSAGE_BYTES_MAX {
            return Err(DecodeError::TooLarge { len: bytes.len() });
        }
        let mut r = Reader { bytes, at: 0 };
        let mti = r.take(MTI_BYTES, None, "MTI")?;
        let mti = Mti::from_digits(mti).ok_or(DecodeError::UnknownMti)?;
        let mut bitmap = [0u8; 2 * BITMAP_BYTES];
        bitmap[..BITMAP_BYTES].copy_from_slice(r.take(BITMAP_BYTES, None, "primary bitmap")?);
        let secondary = bitmap[0] & 0x80 != 0;
        if secondary {
            let at = r.at;
            bitmap[BITMAP_BYTES..].copy_from_slice(r.take(
                BITMAP_BYTES,
                None,
                "secondary bitmap",
            )?);
            if bitmap[BITMAP_BYTES..].iter().all(|&b| b == 0) {
                return Err(DecodeError::BadBitmap {
                    offset: at,
                    what: "secondary bitmap indicated but empty",
                });
            }
            if bitmap[BITMAP_BYTES] & 0x80 != 0 {
                return Err(DecodeError::BadBitmap {
                    offset: at,
                    what: "bit 65 (tertiary bitmap) set",
                });
            }
        }
        let mut message = Message::new(mti);
        let last = if secondary { FIELD_NUMBER_MAX } else { 64 };
        for n in 2..=last {
            let bit = usize::from(n - 1);
            if bitmap[bit / 8] & (0x80 >> (bit % 8)) == 0 {
                continue;
            }
            let spec = field_spec(n).ok_or(DecodeError::UnknownField {
                field: n,
                offset: r.at,
            })?;
            let len = match spec.length {
                Length::Fixed(len) => len,
                Length::LlVar(max) => r.length_prefix(n, 2, max)?,
                Length::LllVar(max) => r.length_prefix(n, 3, max)?,
            };
            let at = r.at;
            let value = r.take(len, Some(n), "field value")?;
            if let Some(i) = value.iter().position(|&b| !spec.charset.allows(b)) {
                let offset = at + i;
                return Err(if spec.charset == Charset::Numeric {
                    DecodeError::NonNumeric { field: n, offset }
                } else {
                    DecodeError::BadCharacter {
                        field: n,
                        offset,
                        charset: spec.charset,
                    }
                });
            }
            message.insert_checked(n, value);
        }
        if r.at != bytes.len() {
            return Err(DecodeError::TrailingBytes {
                offset: r.at,
                len: bytes.len() - r.at,
            });
        }
        Ok(message)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(
        &mut self,
        len: usize,
        field: Option<u8>,
        what: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        let rest = self.bytes.len() - self.at;
        if rest < len {
            return Err(DecodeError::Truncated {
                field,
                offset: self.at,
                what,
                needed: len - rest,
            });
        }
        let out = &self.bytes[self.at..self.at + len];
        self.at += len;
        Ok(out)
    }

    fn length_prefix(
        &mut self,
        field: u8,
        digits: usize,
        max: usize,
    ) -> Result<usize, DecodeError> {
        let offset = self.at;
        let prefix = self.take(digits, Some(field), "length prefix")?;
        if !prefix.iter().all(u8::is_ascii_digit) {
            return Err(DecodeError::BadLengthPrefix { field, offset });
        }
        let len = prefix
            .iter()
            .fold(0usize, |acc, d| acc * 10 + usize::from(d - b'0'));
        if len == 0 || len > max {
            return Err(DecodeError::TooLong {
                field,
                offset,
                len,
                max,
            });
        }
        Ok(len)
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        map.entry(&"mti", &format_args!("{}", self.mti));
        if let Some(pan) = &self.pan {
            map.entry(&2u8, &format_args!("{}", pan.masked()));
        }
        for (n, value) in &self.fields {
            let sensitive = field_spec(*n).is_none_or(|s| s.sensitive);
            let binary = field_spec(*n).is_some_and(|s| s.charset == Charset::Binary);
            if sensitive {
                map.entry(n, &format_args!("<{} bytes redacted>", value.len()));
            } else if binary {
                let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
                map.entry(n, &format_args!("0x{hex}"));
            } else {
                map.entry(n, &String::from_utf8_lossy(value));
            }
        }
        map.finish()
    }
}
