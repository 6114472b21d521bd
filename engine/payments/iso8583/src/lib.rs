//! ISO 8583:1987-style messages for the card acquiring edge: MTI, binary primary and secondary
//! bitmaps, a field table with fixed, LLVAR and LLLVAR encodings, field 48 sub-elements of our
//! own, and a 2-byte big-endian length framing for TCP. The wire contract is `docs/iso8583.md`.
//!
//! The codec ([`Message::encode`], [`Message::decode`], [`Deframer`]) does no I/O and never
//! panics on input: every malformed byte sequence gives an error naming the field and offset.
//! [`client::AcquirerClient`] is the one blocking socket wrapper, for the payments node's PSP
//! connector. This crate must not hold card data longer than a message lives: field 2 is a
//! [`PanField`] (masked `Debug`, wiped on drop) and track data (35, 45) never prints.

#![forbid(unsafe_code)]

pub mod client;
mod codes;
mod compose;
mod field;
mod frame;
mod message;
mod private;

pub use client::{AcquirerClient, ClientError};
pub use codes::{ResponseCode, network, processing};
pub use compose::{ECHOED_FIELDS, OriginalData};
pub use field::{Charset, FIELD_NUMBER_MAX, FIELDS, FieldSpec, Length, field_spec};
pub use frame::{Deframer, FRAME_HEADER_BYTES, FrameError, encode_frame};
pub use message::{
    DecodeError, EncodeError, FieldError, MESSAGE_BYTES_MAX, Message, Mti, PanField,
};
pub use private::{
    CAVV_BYTES_MAX, PAYMENT_ID_BYTES_MAX, PrivateData, PrivateDataError, TAG_CAVV, TAG_ECI,
    TAG_PAYMENT_ID,
};
