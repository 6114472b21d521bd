//! Field 48, our private data: the payment id and the 3-D Secure result.
//!
//! Layout: a sequence of sub-elements, each `tag` (2 ASCII digits) `length` (3 ASCII digits)
//! `value` (printable ASCII, `length` bytes), in ascending tag order, no separators:
//!
//! | tag | name | value |
//! |---|---|---|
//! | 01 | payment id | ans 1..=64, our id for the payment (echoed in responses and the clearing file) |
//! | 02 | ECI | n 2, electronic commerce indicator from 3-D Secure (`05`, `06`, `07`, …) |
//! | 03 | CAVV | ans 1..=40, the authentication value as the ACS gave it (base64 of 20 bytes is 28) |
//!
//! Unknown tags are refused on decode: both ends are ours, so a new tag is a version change.

/// Why field 48 does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PrivateDataError {
    /// Ends inside a tag, length or value.
    #[error("field 48: truncated at offset {offset}")]
    Truncated {
        /// Offset within field 48.
        offset: usize,
    },
    /// Tag or length not digits.
    #[error("field 48: tag or length not digits at offset {offset}")]
    NotDigits {
        /// Offset within field 48.
        offset: usize,
    },
    /// A tag we do not define, or out of order, or repeated.
    #[error("field 48: unknown, repeated or out-of-order tag {tag} at offset {offset}")]
    BadTag {
        /// The tag.
        tag: u8,
        /// Offset within field 48.
        offset: usize,
    },
    /// A value of the wrong length or characters.
    #[error("field 48: bad value for tag {tag} at offset {offset}")]
    BadValue {
        /// The tag.
        tag: u8,
        /// Offset within field 48.
        offset: usize,
    },
}

/// Sub-element tag: payment id.
pub const TAG_PAYMENT_ID: u8 = 1;
/// Sub-element tag: ECI.
pub const TAG_ECI: u8 = 2;
/// Sub-element tag: CAVV.
pub const TAG_CAVV: u8 = 3;
/// Longest payment id.
pub const PAYMENT_ID_BYTES_MAX: usize = 64;
/// Longest CAVV.
pub const CAVV_BYTES_MAX: usize = 40;

/// The decoded field 48.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrivateData {
    /// Tag 01.
    pub payment_id: Option<String>,
    /// Tag 02, two digits.
    pub eci: Option<String>,
    /// Tag 03.
    pub cavv: Option<String>,
}

fn valid(tag: u8, value: &str) -> bool {
    let printable = value.bytes().all(|b| (0x20..=0x7e).contains(&b));
    match tag {
        TAG_PAYMENT_ID => printable && (1..=PAYMENT_ID_BYTES_MAX).contains(&value.len()),
        TAG_ECI => value.len() == 2 && value.bytes().all(|b| b.is_ascii_digit()),
        TAG_CAVV => printable && (1..=CAVV_BYTES_MAX).contains(&value.len()),
        _ => false,
    }
}

impl PrivateData {
    /// Field 48's value, or `None` when every sub-element is absent. Values that break the
    /// layout's limits are refused with the tag.
    pub fn encode(&self) -> Result<Option<String>, PrivateDataError> {
        let mut out = String::new();
        for (tag, value) in [
            (TAG_PAYMENT_ID, &self.payment_id),
            (TAG_ECI, &self.eci),
            (TAG_CAVV, &self.cavv),
        ] {
            if let Some(value) = value {
                if !valid(tag, value) {
                    return Err(PrivateDataError::BadValue {
                        tag,
                        offset: out.len(),
                    });
                }
                out.push_str(&format!("{tag:02}{:03}{value}", value.len()));
            }
        }
        Ok((!out.is_empty()).then_some(out))
    }

    /// Parses field 48's value.
    pub fn decode(text: &str) -> Result<PrivateData, PrivateDataError> {
        let bytes = text.as_bytes();
        let mut out = PrivateData::default();
        let mut at = 0;
        let mut last_tag = 0;
        while at < bytes.len() {
            let digits = |from: usize, n: usize| -> Result<usize, PrivateDataError> {
                let part = bytes
                    .get(from..from + n)
                    .ok_or(PrivateDataError::Truncated { offset: from })?;
                if !part.iter().all(u8::is_ascii_digit) {
                    return Err(PrivateDataError::NotDigits { offset: from });
                }
                Ok(part
                    .iter()
                    .fold(0, |acc, d| acc * 10 + usize::from(d - b'0')))
            };
            let tag = digits(at, 2)? as u8;
            let len = digits(at + 2, 3)?;
            if tag <= last_tag || tag > TAG_CAVV {
                return Err(PrivateDataError::BadTag { tag, offset: at });
            }
            let value = text
                .get(at + 5..at + 5 + len)
                .ok_or(PrivateDataError::Truncated { offset: at + 5 })?;
            if !valid(tag, value) {
                return Err(PrivateDataError::BadValue { tag, offset: at });
            }
            let slot = match tag {
                TAG_PAYMENT_ID => &mut out.payment_id,
                TAG_ECI => &mut out.eci,
                _ => &mut out.cavv,
            };
            *slot = Some(value.to_owned());
            last_tag = tag;
            at += 5 + len;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_layout() {
        let data = PrivateData {
            payment_id: Some("pay-42".into()),
            eci: Some("05".into()),
            cavv: Some("AAABBEg0VhI0VniQEjRWAAAAAAA=".into()),
        };
        let text = data.encode().unwrap().unwrap();
        assert_eq!(text, "01006pay-42020020503028AAABBEg0VhI0VniQEjRWAAAAAAA=");
        assert_eq!(PrivateData::decode(&text).unwrap(), data);
        assert_eq!(PrivateData::default().encode().unwrap(), None);
    }

    #[test]
    fn refuses_bad_layouts() {
        assert_eq!(
            PrivateData::decode("0100"),
            Err(PrivateDataError::Truncated { offset: 2 })
        );
        assert_eq!(
            PrivateData::decode("01009ab"),
            Err(PrivateDataError::Truncated { offset: 5 })
        );
        assert_eq!(
            PrivateData::decode("020020"),
            Err(PrivateDataError::Truncated { offset: 5 })
        );
        assert_eq!(
            PrivateData::decode("020020501001a"),
            Err(PrivateDataError::BadTag { tag: 1, offset: 7 })
        );
        assert_eq!(
            PrivateData::decode("09001x"),
            Err(PrivateDataError::BadTag { tag: 9, offset: 0 })
        );
        assert_eq!(
            PrivateData::decode("020025x"),
            Err(PrivateDataError::BadValue { tag: 2, offset: 0 })
        );
        assert_eq!(
            PrivateData::decode("0x001a"),
            Err(PrivateDataError::NotDigits { offset: 0 })
        );
        // Multi-byte UTF-8 cut by a length never panics.
        assert!(PrivateData::decode("01001é").is_err());
    }
}
