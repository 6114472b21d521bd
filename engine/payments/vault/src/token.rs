//! Tokens: what the rest of the system holds instead of a PAN.

use std::fmt;

use crate::pan::{PAN_DIGITS_MAX, PAN_DIGITS_MIN, luhn_valid};

/// Prefix of a random vault token.
pub const RANDOM_TOKEN_PREFIX: &str = "tok_";
/// Random bytes in a random token id (128 bits, shown as 32 hex digits).
pub const RANDOM_TOKEN_ID_BYTES: usize = 16;

/// Which tokeniser made a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TokenKind {
    /// FF1 over the middle digits: same length, same BIN and last four, fails Luhn. Vaultless:
    /// the FF1 key alone turns it back.
    Ff1,
    /// `tok_` and 32 hex digits naming a record in the vault.
    Random,
}

/// Why a string is not a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Neither 13..=19 digits nor `tok_` + 32 lowercase hex digits.
    #[error("not a token: expected 13 to 19 digits or tok_ and 32 hex digits")]
    Shape,
    /// All digits and Luhn-valid: that is a card number, and a token never passes Luhn.
    #[error("digits pass the Luhn check: this looks like a card number, not a token")]
    LooksLikePan,
}

/// A token. Safe to log, journal and send anywhere: an FF1 token shows only the BIN and last four
/// of the card, and a random token shows nothing of it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token {
    kind: TokenKind,
    /// FF1: ASCII digits; random: `tok_` + 32 lowercase hex.
    text: String,
}

impl Token {
    /// Parses a token string. A Luhn-valid digit string is refused: tokens never pass Luhn, so a
    /// caller who passes a PAN where a token belongs is told so.
    pub fn parse(text: &str) -> Result<Token, TokenError> {
        let bytes = text.as_bytes();
        if (PAN_DIGITS_MIN..=PAN_DIGITS_MAX).contains(&bytes.len())
            && bytes.iter().all(u8::is_ascii_digit)
        {
            let values: Vec<u8> = bytes.iter().map(|b| b - b'0').collect();
            if luhn_valid(&values) {
                return Err(TokenError::LooksLikePan);
            }
            return Ok(Token {
                kind: TokenKind::Ff1,
                text: text.to_owned(),
            });
        }
        if let Some(hex) = text.strip_prefix(RANDOM_TOKEN_PREFIX)
            && hex.len() == 2 * RANDOM_TOKEN_ID_BYTES
            && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Ok(Token {
                kind: TokenKind::Random,
                text: text.to_owned(),
            });
        }
        Err(TokenError::Shape)
    }

    pub(crate) fn ff1(digit_values: &[u8]) -> Token {
        Token {
            kind: TokenKind::Ff1,
            text: digit_values.iter().map(|&d| char::from(b'0' + d)).collect(),
        }
    }

    pub(crate) fn random(id: &[u8; RANDOM_TOKEN_ID_BYTES]) -> Token {
        let mut text = String::from(RANDOM_TOKEN_PREFIX);
        for b in id {
            text.push_str(&format!("{b:02x}"));
        }
        Token {
            kind: TokenKind::Random,
            text,
        }
    }

    /// The random token's record id; `None` for FF1 tokens.
    pub(crate) fn random_id(&self) -> Option<[u8; RANDOM_TOKEN_ID_BYTES]> {
        if self.kind != TokenKind::Random {
            return None;
        }
        let hex = &self.text.as_bytes()[RANDOM_TOKEN_PREFIX.len()..];
        let mut id = [0u8; RANDOM_TOKEN_ID_BYTES];
        for (out, pair) in id.iter_mut().zip(hex.chunks_exact(2)) {
            let s = std::str::from_utf8(pair).ok()?;
            *out = u8::from_str_radix(s, 16).ok()?;
        }
        Some(id)
    }

    /// FF1 or random.
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The token as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({:?}, {})", self.kind, self.text)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_kinds_and_refuses_pans() {
        assert_eq!(
            Token::parse("4111111111111111"),
            Err(TokenError::LooksLikePan)
        );
        assert_eq!(
            Token::parse("4111111111111112").unwrap().kind(),
            TokenKind::Ff1
        );
        let random = Token::random(&[0xab; 16]);
        assert_eq!(Token::parse(random.as_str()).unwrap(), random);
        assert_eq!(random.random_id(), Some([0xab; 16]));
        assert_eq!(Token::parse("tok_ABAB"), Err(TokenError::Shape));
        assert_eq!(
            Token::parse(&format!("tok_{}", "AB".repeat(16))),
            Err(TokenError::Shape)
        );
    }
}
