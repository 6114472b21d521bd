//! The edge's pure helpers: the vault's token ↔ the engine's 128-bit `Token`, request body
//! hashes, idempotency keys, RRNs, and the calendar fields ISO 8583 wants. No I/O.

use sequent_payments::{IdemKey, PaymentId, Token};
use sequent_vault::{Token as VaultToken, TokenKind};
use sha2::{Digest, Sha256};

/// Marks an FF1 token in the engine's `Token`: bit 127 set, the digit count in bits 64..72, the
/// digits' value in the low 64 bits (19 digits < 2^64). A random token is its 128-bit record id;
/// the node re-draws the rare random token whose id has this shape (see [`engine_token`]), so the
/// two never collide.
const FF1_MARK: u128 = 1 << 127;

/// The engine's token for a vault token; `None` for a random token whose id happens to look like
/// an FF1 encoding (probability about 2^-61: the caller draws another).
pub fn engine_token(token: &VaultToken) -> Option<Token> {
    let text = token.as_str();
    match token.kind() {
        TokenKind::Ff1 => {
            let value: u64 = text.parse().ok()?;
            Some(Token(
                FF1_MARK | ((text.len() as u128) << 64) | u128::from(value),
            ))
        }
        TokenKind::Random => {
            let hex = text.strip_prefix(sequent_vault::RANDOM_TOKEN_PREFIX)?;
            let id = u128::from_str_radix(hex, 16).ok()?;
            (!looks_ff1(id)).then_some(Token(id))
        }
    }
}

fn looks_ff1(v: u128) -> bool {
    let len = (v >> 64) & ((1 << 63) - 1);
    v & FF1_MARK != 0 && (13..=19).contains(&len)
}

/// The vault token behind an engine token (for the connector's detokenisation).
pub fn vault_token(token: Token) -> Option<VaultToken> {
    let text = if looks_ff1(token.0) {
        let len = ((token.0 >> 64) & 0xff) as usize;
        format!("{:0len$}", token.0 as u64)
    } else {
        format!("{}{:032x}", sequent_vault::RANDOM_TOKEN_PREFIX, token.0)
    };
    VaultToken::parse(&text).ok()
}

/// SHA-256 of a canonical JSON value (serde_json's maps are sorted, so the bytes are canonical).
pub fn body_hash(canonical: &serde_json::Value) -> [u8; 32] {
    Sha256::digest(canonical.to_string().as_bytes()).into()
}

/// The engine's 128-bit key for a merchant's `Idempotency-Key` header: the first 16 bytes of
/// its SHA-256 (keys are scoped per merchant by the engine).
pub fn idem_key(header: &str) -> IdemKey {
    let d = Sha256::digest(header.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    IdemKey(u128::from_be_bytes(b))
}

/// Retrieval reference number (field 37, an 12) of authorisation `attempt` of a payment:
/// 9 digits of payment id, `A`, 2 digits of attempt. Captures reuse it (the acquirer finds the
/// authorisation by RRN); refund `n` is `…R nn`. The clearing file's RRN column maps back with
/// [`parse_rrn`], so no table is needed, not even after a restart.
pub fn auth_rrn(payment: PaymentId, attempt: u8) -> String {
    format!("{:09}A{attempt:02}", payment.0 % 1_000_000_000)
}

/// RRN of refund `n` (1-based).
pub fn refund_rrn(payment: PaymentId, n: u8) -> String {
    format!("{:09}R{n:02}", payment.0 % 1_000_000_000)
}

/// What an RRN names: (payment, `A` or `R`, attempt or refund number).
pub fn parse_rrn(rrn: &str) -> Option<(PaymentId, u8, u8)> {
    if rrn.len() != 12 {
        return None;
    }
    let payment: u64 = rrn.get(..9)?.parse().ok()?;
    let kind = *rrn.as_bytes().get(9)?;
    let n: u8 = rrn.get(10..)?.parse().ok()?;
    matches!(kind, b'A' | b'R').then_some((PaymentId(payment), kind, n))
}

/// UTC civil date and time of `ts_ns`: (year, month, day, hour, minute, second).
pub fn civil(ts_ns: u64) -> (i64, u32, u32, u32, u32, u32) {
    let secs = ts_ns / 1_000_000_000;
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let sod = secs % 86_400;
    (
        year,
        month,
        day,
        (sod / 3600) as u32,
        (sod / 60 % 60) as u32,
        (sod % 60) as u32,
    )
}

/// Field 7, `MMDDhhmmss`.
pub fn transmission(ts_ns: u64) -> String {
    let (_, mo, d, h, mi, s) = civil(ts_ns);
    format!("{mo:02}{d:02}{h:02}{mi:02}{s:02}")
}

/// Standard base64 (RFC 4648 §4, padded): field 48's CAVV.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// True when `text` holds a run of 13–19 digits (a maximal run: not glued to other digits) that
/// passes Luhn: what the PAN scans look for. Tokens never pass Luhn, so they never match.
///
/// A run inside a hexadecimal token of [`HEX_TOKEN_MIN`] or more characters (a SHA-256 digest, a
/// key id) is not a card number: such a token is random, and a random 64-character digest holds
/// a Luhn-valid 13–19 digit run about once in 240 (simulated over 400k digests); the gateway
/// prints its state digest at recovery and stop, and one such line failed a PAN scan in CI.
pub fn contains_pan(text: &[u8]) -> bool {
    let mut i = 0;
    while i < text.len() {
        if !text[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < text.len() && text[i].is_ascii_digit() {
            i += 1;
        }
        let run: Vec<u8> = text[start..i].iter().map(|b| b - b'0').collect();
        if (13..=19).contains(&run.len())
            && sequent_vault::luhn_valid(&run)
            && !in_long_hex_token(text, start, i)
        {
            return true;
        }
    }
    false
}

/// Hexadecimal tokens at least this long are digests or ids, never card numbers.
pub const HEX_TOKEN_MIN: usize = 32;

/// Is `text[start..end]` part of a run of hex digits `HEX_TOKEN_MIN` or more long?
fn in_long_hex_token(text: &[u8], start: usize, end: usize) -> bool {
    let left = text[..start]
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_hexdigit())
        .count();
    let right = text[end..]
        .iter()
        .take_while(|b| b.is_ascii_hexdigit())
        .count();
    left + (end - start) + right >= HEX_TOKEN_MIN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let ff1 = VaultToken::parse("4111110000001112").unwrap();
        let t = engine_token(&ff1).unwrap();
        assert_eq!(vault_token(t).unwrap(), ff1);
        let random = VaultToken::parse(&format!("tok_{}", "0a".repeat(16))).unwrap();
        let t = engine_token(&random).unwrap();
        assert_eq!(vault_token(t).unwrap(), random);
    }

    #[test]
    fn rrns_name_payment_and_attempt() {
        assert_eq!(auth_rrn(PaymentId(42), 2), "000000042A02");
        assert_eq!(parse_rrn("000000042A02"), Some((PaymentId(42), b'A', 2)));
        assert_eq!(
            parse_rrn(&refund_rrn(PaymentId(7), 1)),
            Some((PaymentId(7), b'R', 1))
        );
        assert_eq!(parse_rrn("00000004202"), None);
    }

    #[test]
    fn calendar_and_base64() {
        // 2023-11-14 22:13:20 UTC.
        assert_eq!(transmission(1_700_000_000_000_000_000), "1114221320");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(&[0u8; 20]).len(), 28);
    }

    #[test]
    fn the_pan_scan_finds_pans_and_only_them() {
        assert!(contains_pan(b"card 4111111111111111 ok"));
        assert!(contains_pan(b"x5555555555554444\""));
        assert!(!contains_pan(b"4111111111111112"));
        assert!(!contains_pan(b"1_700_000_000_000"));
        // Inside a digest: not a card number; the same digits standing alone: one.
        let digest =
            b"digest 9f0c4111111111111111e2a7b3c5d6e8f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8";
        assert!(!contains_pan(digest));
        assert!(contains_pan(b"digest 9f0c 4111111111111111 e2a7"));
        // A short hex word glued to it does not hide it.
        assert!(contains_pan(b"id=ab4111111111111111cd"));
    }
}
