//! The vault end to end: tokens both ways, rotation, tamper, persistence, and no PAN in any
//! Debug output or byte of the file.

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sequent_vault::{
    KekState, KeyMaterial, KeySet, Pan, Token, TokenKind, Vault, VaultError, luhn_valid,
};

const PANS: [&str; 5] = [
    "4111111111111111",
    "5555555555554444",
    "4000056655665556",
    "6011111111111117",
    "3530111333300000",
];

fn keys(seed: u64) -> KeySet {
    KeySet::generate(&mut ChaCha20Rng::seed_from_u64(seed))
}

fn vault(seed: u64) -> (Vault<ChaCha20Rng>, sequent_vault::DetokeniseGrant) {
    Vault::in_memory(keys(seed), ChaCha20Rng::seed_from_u64(seed + 1000))
}

/// Appends the Luhn check digit to `body`.
fn with_check_digit(body: &[u8]) -> String {
    let mut digits: Vec<u8> = body.to_vec();
    digits.push(0);
    let check = (0..10).find(|&c| {
        *digits.last_mut().unwrap() = c;
        luhn_valid(&digits)
    });
    *digits.last_mut().unwrap() = check.unwrap();
    digits.iter().map(|d| char::from(b'0' + d)).collect()
}

#[test]
fn ff1_tokens_keep_bin_and_last4_and_fail_luhn() {
    let (vault, grant) = vault(1);
    for pan_text in PANS {
        let pan = Pan::parse(pan_text).unwrap();
        let token = vault.tokenise_ff1(&pan).unwrap();
        assert_eq!(token.kind(), TokenKind::Ff1);
        let t = token.as_str();
        assert_eq!(t.len(), pan_text.len());
        assert_eq!(&t[..6], &pan_text[..6]);
        assert_eq!(&t[12..], &pan_text[12..]);
        assert_ne!(t, pan_text);
        let digits: Vec<u8> = t.bytes().map(|b| b - b'0').collect();
        assert!(!luhn_valid(&digits), "token {t} passes Luhn");
        assert_eq!(vault.tokenise_ff1(&pan).unwrap(), token, "deterministic");
        assert_eq!(*vault.detokenise(&grant, &token).unwrap(), pan_text);
        // A token survives a round trip through its text.
        assert_eq!(Token::parse(t).unwrap(), token);
    }
}

#[test]
fn ff1_refuses_short_pans() {
    let (vault, grant) = vault(2);
    let amex = Pan::parse("378282246310005").unwrap();
    assert!(matches!(
        vault.tokenise_ff1(&amex),
        Err(VaultError::Ff1DomainTooSmall { digits: 5 })
    ));
    let mut v = vault;
    let token = v.tokenise_random(&amex).unwrap();
    assert_eq!(*v.detokenise(&grant, &token).unwrap(), "378282246310005");
}

#[test]
fn ff1_token_from_another_key_is_refused_or_differs() {
    let (a, _) = vault(3);
    let (b, grant_b) = vault(4);
    let pan = Pan::parse("4111111111111111").unwrap();
    let token = a.tokenise_ff1(&pan).unwrap();
    match b.detokenise(&grant_b, &token) {
        Ok(other) => assert_ne!(*other, "4111111111111111"),
        Err(e) => assert!(matches!(e, VaultError::Ff1NotAToken(_))),
    }
}

#[test]
fn random_tokens_round_trip_and_are_fresh() {
    let (mut vault, grant) = vault(5);
    let pan = Pan::parse("4111111111111111").unwrap();
    let t1 = vault.tokenise_random(&pan).unwrap();
    let t2 = vault.tokenise_random(&pan).unwrap();
    assert_ne!(t1, t2);
    assert!(t1.as_str().starts_with("tok_") && t1.as_str().len() == 36);
    assert_eq!(*vault.detokenise(&grant, &t1).unwrap(), "4111111111111111");
    let unknown = Token::parse(&format!("tok_{}", "0".repeat(32))).unwrap();
    assert!(matches!(
        vault.detokenise(&grant, &unknown),
        Err(VaultError::UnknownToken(_))
    ));
}

#[test]
fn seeded_vaults_are_reproducible() {
    let pan = Pan::parse("5555555555554444").unwrap();
    let (mut a, _) = vault(6);
    let (mut b, _) = vault(6);
    assert_eq!(
        a.tokenise_random(&pan).unwrap(),
        b.tokenise_random(&pan).unwrap()
    );
}

#[test]
fn grant_of_another_vault_is_refused() {
    let (mut a, _grant_a) = vault(7);
    let (_b, grant_b) = vault(8);
    let token = a
        .tokenise_random(&Pan::parse("4111111111111111").unwrap())
        .unwrap();
    assert!(matches!(
        a.detokenise(&grant_b, &token),
        Err(VaultError::ForeignGrant)
    ));
}

#[test]
fn rotation_rewraps_and_retirement_refuses() {
    let (mut vault, grant) = vault(9);
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    let pan = Pan::parse("4111111111111111").unwrap();
    let before = vault.tokenise_random(&pan).unwrap();
    let ff1_before = vault.tokenise_ff1(&pan).unwrap();

    vault
        .rotate_kek(2, KeyMaterial::generate(&mut rng))
        .unwrap();
    assert_eq!(
        vault.keys().versions(),
        vec![(1, KekState::DecryptOnly), (2, KekState::Active)]
    );
    assert!(matches!(
        vault.rotate_kek(2, KeyMaterial::generate(&mut rng)),
        Err(VaultError::KekExists(2))
    ));
    // Decrypt-only KEK still opens old records.
    assert_eq!(
        *vault.detokenise(&grant, &before).unwrap(),
        "4111111111111111"
    );
    let after = vault.tokenise_random(&pan).unwrap();
    assert_eq!(vault.records_under(1), 1);
    assert_eq!(vault.records_under(2), 1);

    // Rotation without re-wrap, then retirement: the old record is refused, clearly.
    let (mut unwrapped, g2) = Vault::in_memory(keys(10), ChaCha20Rng::seed_from_u64(10));
    let old = unwrapped.tokenise_random(&pan).unwrap();
    unwrapped
        .rotate_kek(2, KeyMaterial::generate(&mut rng))
        .unwrap();
    assert!(matches!(
        unwrapped.retire_kek(2),
        Err(VaultError::CannotRetire(2))
    ));
    unwrapped.retire_kek(1).unwrap();
    let err = unwrapped.detokenise(&g2, &old).unwrap_err();
    assert!(
        matches!(err, VaultError::KekRetired { version: 1, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("KEK version 1 is retired"),
        "{err}"
    );

    // With re-wrap first, retirement costs nothing.
    assert_eq!(vault.rewrap().unwrap(), 1);
    assert_eq!(vault.records_under(1), 0);
    assert_eq!(vault.rewrap().unwrap(), 0);
    vault.retire_kek(1).unwrap();
    assert_eq!(
        *vault.detokenise(&grant, &before).unwrap(),
        "4111111111111111"
    );
    assert_eq!(
        *vault.detokenise(&grant, &after).unwrap(),
        "4111111111111111"
    );
    // FF1 tokens do not depend on KEKs.
    assert_eq!(
        *vault.detokenise(&grant, &ff1_before).unwrap(),
        "4111111111111111"
    );
}

#[test]
fn nothing_debug_prints_the_pan() {
    let (mut vault, grant) = vault(11);
    // Middle digits that appear nowhere in the BIN or last four, so a leak of them is visible.
    let pans: Vec<String> = [
        &b"411111987654321"[..],
        b"555544024681357",
        b"4000057931864203",
    ]
    .iter()
    .map(|body| with_check_digit(&body.iter().map(|b| b - b'0').collect::<Vec<_>>()))
    .collect();
    for pan_text in pans.iter().map(String::as_str) {
        let pan = Pan::parse(pan_text).unwrap();
        let t_ff1 = vault.tokenise_ff1(&pan).unwrap();
        let t_rand = vault.tokenise_random(&pan).unwrap();
        let errors = [
            format!("{:?}", Pan::parse(&pan_text[..15])),
            format!(
                "{:?}",
                vault.detokenise(
                    &grant,
                    &Token::parse(&format!("tok_{}", "a".repeat(32))).unwrap()
                )
            ),
        ];
        let outputs = [
            format!("{pan:?}"),
            format!("{pan}"),
            format!("{t_ff1:?}"),
            format!("{t_rand:?}"),
            format!("{vault:?}"),
            format!("{grant:?}"),
            format!("{:?}", vault.keys()),
            format!("{:?}", Token::parse(pan_text)),
        ];
        for out in outputs.iter().chain(&errors) {
            assert!(!out.contains(pan_text), "{out} shows the PAN");
            assert!(
                !out.contains(&pan_text[6..12]),
                "{out} shows the middle digits"
            );
        }
    }
}

#[test]
fn persistence_survives_restart_and_holds_no_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("vault.keys");
    let data_path = dir.path().join("vault.dat");
    keys(12).save(&key_path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let mut tokens = Vec::new();
    {
        let (mut vault, _grant, report) = Vault::open(
            &data_path,
            KeySet::load(&key_path).unwrap(),
            ChaCha20Rng::seed_from_u64(1),
        )
        .unwrap();
        assert_eq!(report.records, 0);
        for pan in PANS {
            tokens.push((
                pan,
                vault.tokenise_random(&Pan::parse(pan).unwrap()).unwrap(),
            ));
        }
        vault
            .rotate_kek(2, KeyMaterial::generate(&mut ChaCha20Rng::seed_from_u64(2)))
            .unwrap();
        assert_eq!(vault.rewrap().unwrap(), PANS.len());
        vault.retire_kek(1).unwrap();
        vault.keys().save(&key_path).unwrap();
    }
    let bytes = std::fs::read(&data_path).unwrap();
    for pan in PANS {
        let ascii = pan.as_bytes();
        assert!(
            !bytes.windows(ascii.len()).any(|w| w == ascii),
            "plaintext PAN in file"
        );
        assert!(
            !bytes.windows(8).any(|w| w == &ascii[4..12]),
            "PAN fragment in file"
        );
        let packed: Vec<u8> = ascii
            .chunks(2)
            .map(|p| ((p[0] - b'0') << 4) | (p[1] - b'0'))
            .collect();
        assert!(
            !bytes.windows(packed.len()).any(|w| w == packed.as_slice()),
            "BCD PAN in file"
        );
    }
    let key_text = std::fs::read_to_string(&key_path).unwrap();
    let loaded = KeySet::load(&key_path).unwrap();
    assert_eq!(
        loaded.versions(),
        vec![(1, KekState::Retired), (2, KekState::Active)]
    );
    let (vault, grant, report) =
        Vault::open(&data_path, loaded, ChaCha20Rng::seed_from_u64(3)).unwrap();
    assert_eq!(report.records, PANS.len());
    assert_eq!(report.torn_tail_bytes, 0);
    for (pan, token) in &tokens {
        assert_eq!(*vault.detokenise(&grant, token).unwrap(), *pan);
    }
    // No key bytes in the data file: check each KEK's hex against the file's hex.
    let file_hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    for line in key_text.lines().filter(|l| !l.starts_with('#')) {
        let key_hex = line.split_whitespace().last().unwrap();
        assert!(
            !file_hex.contains(&key_hex[..32]),
            "key material in the data file"
        );
    }
}

#[test]
fn tampered_records_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.dat");
    let keys = keys(13);
    let token = {
        let (mut vault, _, _) =
            Vault::open(&path, keys.clone(), ChaCha20Rng::seed_from_u64(1)).unwrap();
        vault
            .tokenise_random(&Pan::parse("4111111111111111").unwrap())
            .unwrap()
    };
    let clean = std::fs::read(&path).unwrap();
    // Header 8, length 4, kind 1, id 16, version 4, wrap nonce 12, wrapped DEK 48, pan nonce 12,
    // ct length 1, then the PAN ciphertext: flip one bit in the DEK and one in the PAN ciphertext.
    for offset in [
        8 + 4 + 1 + 16 + 4 + 12 + 5,
        clean.len() - 20,
        clean.len() - 1,
    ] {
        let mut bytes = clean.clone();
        bytes[offset] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let (vault, grant, _) =
            Vault::open(&path, keys.clone(), ChaCha20Rng::seed_from_u64(2)).unwrap();
        let err = vault.detokenise(&grant, &token).unwrap_err();
        assert!(
            matches!(err, VaultError::Tampered(_)),
            "offset {offset}: {err}"
        );
    }
    // A torn last frame is cut off and reported; the records before it stay.
    let mut torn = clean.clone();
    torn.extend_from_slice(&[50, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&path, &torn).unwrap();
    let (vault, grant, report) =
        Vault::open(&path, keys.clone(), ChaCha20Rng::seed_from_u64(3)).unwrap();
    assert_eq!(report.torn_tail_bytes, 7);
    assert_eq!(
        *vault.detokenise(&grant, &token).unwrap(),
        "4111111111111111"
    );
    assert_eq!(std::fs::read(&path).unwrap(), clean);
    // A bad frame in the middle stops the open with its offset.
    let mut bad = clean.clone();
    bad[12] = 9; // the kind byte of the first frame
    std::fs::write(&path, &bad).unwrap();
    let err = Vault::open(&path, keys, ChaCha20Rng::seed_from_u64(4)).unwrap_err();
    assert!(
        matches!(err, VaultError::Corrupt { offset: 8, .. }),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed_0ff1), ..ProptestConfig::default() })]

    /// Every valid 16..=19-digit PAN: FF1 token keeps BIN/last four, fails Luhn, comes back.
    #[test]
    fn ff1_round_trip(body in proptest::collection::vec(0u8..10, 15..=18)) {
        let pan_text = with_check_digit(&body);
        let pan = Pan::parse(&pan_text).unwrap();
        let (vault, grant) = vault(20);
        match vault.tokenise_ff1(&pan) {
            Ok(token) => {
                let digits: Vec<u8> = token.as_str().bytes().map(|b| b - b'0').collect();
                prop_assert!(!luhn_valid(&digits));
                prop_assert_eq!(&token.as_str()[..6], &pan_text[..6]);
                prop_assert_eq!(&*vault.detokenise(&grant, &token).unwrap(), &pan_text);
            }
            Err(VaultError::Ff1NoCounter) => {} // documented: about one in a million
            Err(e) => prop_assert!(false, "{e}"),
        }
    }

    /// Any valid PAN of 13..=19 digits round-trips through a random token.
    #[test]
    fn random_round_trip(body in proptest::collection::vec(0u8..10, 12..=18), seed in any::<u64>()) {
        let pan_text = with_check_digit(&body);
        let (mut vault, grant) = Vault::in_memory(keys(21), ChaCha20Rng::seed_from_u64(seed));
        let token = vault.tokenise_random(&Pan::parse(&pan_text).unwrap()).unwrap();
        prop_assert_eq!(&*vault.detokenise(&grant, &token).unwrap(), &pan_text);
    }
}
