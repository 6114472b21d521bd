//! FF1 against NIST's published samples, and the vault's FF1 tokens against the primitive.
//!
//! Vectors: NIST, "FF1 samples" (FF1samples.pdf, Cryptographic Standards and Guidelines, examples
//! with intermediate values, SP 800-38G), samples 1–9: AES-128/192/256, radix 10 and radix 36.
//! https://csrc.nist.gov/CSRC/media/Projects/Cryptographic-Standards-and-Guidelines/documents/examples/FF1samples.pdf

use fpe::ff1::{FF1, FlexibleNumeralString};
use rand_core::SeedableRng;
use sequent_vault::{KeyMaterial, KeySet, Pan, Vault, luhn_valid};

const KEY_128: &str = "2B7E151628AED2A6ABF7158809CF4F3C";
const KEY_192: &str = "2B7E151628AED2A6ABF7158809CF4F3CEF4359D8D580AA4F";
const KEY_256: &str = "2B7E151628AED2A6ABF7158809CF4F3CEF4359D8D580AA4F7F036D6F04FC6A94";
const TWEAK_10: &str = "39383736353433323130";
const TWEAK_36: &str = "3737373770717273373737";

/// (sample, key hex, radix, tweak hex, plaintext, ciphertext) as printed in FF1samples.pdf.
const SAMPLES: [(u32, &str, u32, &str, &str, &str); 9] = [
    (1, KEY_128, 10, "", "0123456789", "2433477484"),
    (2, KEY_128, 10, TWEAK_10, "0123456789", "6124200773"),
    (
        3,
        KEY_128,
        36,
        TWEAK_36,
        "0123456789abcdefghi",
        "a9tv40mll9kdu509eum",
    ),
    (4, KEY_192, 10, "", "0123456789", "2830668132"),
    (5, KEY_192, 10, TWEAK_10, "0123456789", "2496655549"),
    (
        6,
        KEY_192,
        36,
        TWEAK_36,
        "0123456789abcdefghi",
        "xbj3kv35jrawxv32ysr",
    ),
    (7, KEY_256, 10, "", "0123456789", "6657667009"),
    (8, KEY_256, 10, TWEAK_10, "0123456789", "1001623463"),
    (
        9,
        KEY_256,
        36,
        TWEAK_36,
        "0123456789abcdefghi",
        "xs8a0azh2avyalyzuwd",
    ),
];

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn numerals(s: &str) -> FlexibleNumeralString {
    FlexibleNumeralString::from(
        s.chars()
            .map(|c| c.to_digit(36).unwrap() as u16)
            .collect::<Vec<_>>(),
    )
}

fn text(ns: FlexibleNumeralString) -> String {
    Vec::<u16>::from(ns)
        .into_iter()
        .map(|d| char::from_digit(u32::from(d), 36).unwrap())
        .collect()
}

fn run<C>(key: &[u8], radix: u32, tweak: &[u8], pt: &str) -> (String, String)
where
    C: aes::cipher::KeyInit + aes::cipher::BlockCipherEncrypt + Clone,
{
    let ff1 = FF1::<C>::new(key, radix).unwrap();
    let ct = text(ff1.encrypt(tweak, &numerals(pt)).unwrap());
    let back = text(ff1.decrypt(tweak, &numerals(&ct)).unwrap());
    (ct, back)
}

#[test]
fn nist_ff1_samples() {
    for (sample, key, radix, tweak, pt, ct) in SAMPLES {
        let (key, tweak) = (hex(key), hex(tweak));
        let (got, back) = match key.len() {
            16 => run::<aes::Aes128>(&key, radix, &tweak, pt),
            24 => run::<aes::Aes192>(&key, radix, &tweak, pt),
            32 => run::<aes::Aes256>(&key, radix, &tweak, pt),
            _ => unreachable!(),
        };
        assert_eq!(got, ct, "sample {sample} encrypt");
        assert_eq!(back, pt, "sample {sample} decrypt");
    }
}

#[test]
fn domain_below_a_million_is_refused_by_the_primitive() {
    // SP 800-38G Rev. 1: radix^minlen >= 1,000,000, so 5 decimal digits are too few.
    let ff1 = FF1::<aes::Aes256>::new(&hex(KEY_256), 10).unwrap();
    assert!(ff1.encrypt(&[], &numerals("12345")).is_err());
    assert!(ff1.encrypt(&[], &numerals("123456")).is_ok());
}

/// The vault's FF1 token at counter 0 is exactly FF1-AES-256 over the middle digits with the
/// documented tweak `[counter, length, BIN ASCII, last four ASCII]`.
#[test]
fn vault_token_is_ff1_over_the_middle_digits() {
    let key: [u8; 32] = hex(KEY_256).try_into().unwrap();
    let keys = KeySet::new(
        KeyMaterial::from_bytes(key),
        1,
        KeyMaterial::from_bytes([7; 32]),
    );
    let (vault, _grant) = Vault::in_memory(keys, rand_chacha::ChaCha20Rng::seed_from_u64(1));
    let ff1 = FF1::<aes::Aes256>::new(&key, 10).unwrap();
    let mut checked = 0;
    for pan in [
        "4111111111111111",
        "5555555555554444",
        "4000056655665556",
        "4242424242424242",
    ] {
        let tweak: Vec<u8> = [&[0u8, 16][..], &pan.as_bytes()[..6], &pan.as_bytes()[12..]].concat();
        let middle = text(ff1.encrypt(&tweak, &numerals(&pan[6..12])).unwrap());
        let direct = format!("{}{}{}", &pan[..6], middle, &pan[12..]);
        let digits: Vec<u8> = direct.bytes().map(|b| b - b'0').collect();
        let token = vault.tokenise_ff1(&Pan::parse(pan).unwrap()).unwrap();
        if !luhn_valid(&digits) {
            // Counter 0 fails Luhn, and with no smaller counter it is the token.
            assert_eq!(token.as_str(), direct, "{pan}");
            checked += 1;
        }
    }
    assert!(checked >= 2, "too few PANs exercised counter 0: {checked}");
}
