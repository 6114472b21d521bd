//! The primary account number: validated once, masked everywhere, wiped on drop.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Shortest PAN we accept (ISO/IEC 7812-1 allows 8, but no card scheme we route issues fewer than 13).
pub const PAN_DIGITS_MIN: usize = 13;
/// Longest PAN (ISO/IEC 7812-1).
pub const PAN_DIGITS_MAX: usize = 19;
/// Digits kept in clear at the front of a masked PAN or FF1 token: the issuer identification number.
pub const BIN_DIGITS: usize = 6;
/// Digits kept in clear at the end (PCI DSS allows first six and last four).
pub const LAST_DIGITS: usize = 4;

const _: () = assert!(PAN_DIGITS_MIN > BIN_DIGITS + LAST_DIGITS);

/// Why a string is not a PAN. Carries lengths and offsets, never digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PanError {
    /// Not 13 to 19 characters.
    #[error("PAN has {len} characters, expected {PAN_DIGITS_MIN} to {PAN_DIGITS_MAX} digits")]
    Length {
        /// Characters given.
        len: usize,
    },
    /// A character that is not an ASCII digit.
    #[error("PAN has a non-digit at offset {offset}")]
    NonDigit {
        /// Zero-based offset of the first offending character.
        offset: usize,
    },
    /// The Luhn (ISO/IEC 7812-1 annex B) check digit is wrong.
    #[error("PAN fails the Luhn check")]
    Luhn,
}

/// True when `digits` (numeric values 0..=9, most significant first) pass the Luhn check.
///
/// ISO/IEC 7812-1 annex B: from the rightmost digit (the check digit) leftwards, every second
/// digit is doubled and 9 subtracted when the result exceeds 9; the sum must be divisible by 10.
pub fn luhn_valid(digits: &[u8]) -> bool {
    luhn_sum(digits) % 10 == 0
}

/// The Luhn sum of `digits`, with the last one in the check position.
pub(crate) fn luhn_sum(digits: &[u8]) -> u32 {
    digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            assert!(d <= 9, "luhn_sum takes digit values");
            let d = u32::from(d);
            if i % 2 == 1 {
                let dd = d * 2;
                if dd > 9 { dd - 9 } else { dd }
            } else {
                d
            }
        })
        .sum()
}

/// A validated card number. `Debug` and `Display` show `411111******1111`; the digits are
/// overwritten with zeros when the value is dropped. Nothing outside this crate can read the full
/// number back: the only way out is [`crate::Vault::detokenise`], which needs a
/// [`crate::DetokeniseGrant`].
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Pan {
    /// Digit values 0..=9 in `digits[..len]`; the rest is zero.
    digits: [u8; PAN_DIGITS_MAX],
    /// 13..=19.
    len: u8,
}

impl Pan {
    /// Parses and validates a PAN from ASCII digits (no spaces or separators).
    pub fn parse(text: &str) -> Result<Pan, PanError> {
        Pan::from_ascii(text.as_bytes())
    }

    /// As [`Pan::parse`], from bytes.
    pub fn from_ascii(bytes: &[u8]) -> Result<Pan, PanError> {
        if !(PAN_DIGITS_MIN..=PAN_DIGITS_MAX).contains(&bytes.len()) {
            return Err(PanError::Length { len: bytes.len() });
        }
        let mut pan = Pan {
            digits: [0; PAN_DIGITS_MAX],
            len: bytes.len() as u8,
        };
        for (offset, &b) in bytes.iter().enumerate() {
            if !b.is_ascii_digit() {
                return Err(PanError::NonDigit { offset });
            }
            pan.digits[offset] = b - b'0';
        }
        if !luhn_valid(pan.digit_values()) {
            return Err(PanError::Luhn);
        }
        Ok(pan)
    }

    /// Number of digits, 13..=19.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false: a PAN has at least 13 digits. Present because clippy pairs it with `len`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The first six digits (bank identification number) as ASCII.
    pub fn bin(&self) -> [u8; BIN_DIGITS] {
        let mut out = [0; BIN_DIGITS];
        for (o, d) in out.iter_mut().zip(&self.digits[..BIN_DIGITS]) {
            *o = b'0' + d;
        }
        out
    }

    /// The last four digits as ASCII.
    pub fn last4(&self) -> [u8; LAST_DIGITS] {
        let mut out = [0; LAST_DIGITS];
        let start = self.len() - LAST_DIGITS;
        for (o, d) in out.iter_mut().zip(&self.digits[start..self.len()]) {
            *o = b'0' + d;
        }
        out
    }

    /// `411111******1111`: BIN, one `*` per hidden digit, last four.
    pub fn masked(&self) -> String {
        mask_digits(self.digit_values())
    }

    /// Digit values (0..=9). Crate-private: the tokenisers need them, nobody else may.
    pub(crate) fn digit_values(&self) -> &[u8] {
        &self.digits[..self.len()]
    }

    /// Builds a PAN from digit values already known to be valid (the tokenisers' inverse paths).
    pub(crate) fn from_digit_values(values: &[u8]) -> Result<Pan, PanError> {
        if !(PAN_DIGITS_MIN..=PAN_DIGITS_MAX).contains(&values.len()) {
            return Err(PanError::Length { len: values.len() });
        }
        let mut pan = Pan {
            digits: [0; PAN_DIGITS_MAX],
            len: values.len() as u8,
        };
        for (offset, &v) in values.iter().enumerate() {
            if v > 9 {
                return Err(PanError::NonDigit { offset });
            }
            pan.digits[offset] = v;
        }
        if !luhn_valid(pan.digit_values()) {
            return Err(PanError::Luhn);
        }
        Ok(pan)
    }
}

impl PartialEq for Pan {
    fn eq(&self, other: &Pan) -> bool {
        self.digit_values() == other.digit_values()
    }
}

impl Eq for Pan {}

/// Masks digit values (0..=9) as BIN + `*`s + last four.
pub(crate) fn mask_digits(values: &[u8]) -> String {
    let len = values.len();
    values
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            if i < BIN_DIGITS || i >= len.saturating_sub(LAST_DIGITS) {
                char::from(b'0' + d)
            } else {
                '*'
            }
        })
        .collect()
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({})", self.masked())
    }
}

impl fmt::Display for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_known_numbers() {
        // Test card numbers published by the schemes.
        for good in [
            "4111111111111111",
            "5555555555554444",
            "378282246310005",
            "6011111111111117",
        ] {
            assert!(Pan::parse(good).is_ok(), "{good} should pass");
        }
        assert_eq!(Pan::parse("4111111111111112"), Err(PanError::Luhn));
        assert_eq!(
            Pan::parse("79927398713").unwrap_err(),
            PanError::Length { len: 11 }
        );
        assert!(luhn_valid(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 3]));
        assert!(!luhn_valid(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 4]));
    }

    #[test]
    fn rejects_bad_shapes() {
        assert_eq!(
            Pan::parse("41111111111a1111"),
            Err(PanError::NonDigit { offset: 11 })
        );
        assert_eq!(
            Pan::parse("41111111111111111111"),
            Err(PanError::Length { len: 20 })
        );
        assert_eq!(Pan::parse(""), Err(PanError::Length { len: 0 }));
    }

    #[test]
    fn masks_in_debug_and_display() {
        let pan = Pan::parse("4111111111111111").unwrap();
        assert_eq!(format!("{pan}"), "411111******1111");
        assert_eq!(format!("{pan:?}"), "Pan(411111******1111)");
        assert_eq!(&pan.bin(), b"411111");
        assert_eq!(&pan.last4(), b"1111");
    }

    #[test]
    fn zeroize_wipes_digits() {
        let mut pan = Pan::parse("4111111111111111").unwrap();
        pan.zeroize();
        assert!(pan.digits.iter().all(|&d| d == 0));
    }
}
