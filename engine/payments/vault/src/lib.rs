//! The card token vault: the only place a card number (PAN) enters, and the only place it can be
//! turned back from a token. Everything else in sequent holds a [`Token`].
//!
//! This crate owns PAN validation and masking ([`Pan`]), the two tokenisers, the keys that protect
//! them ([`KeySet`], loaded from a key file) and the vault's own append-only record file. It must
//! not log, print or write a PAN, a data key or a KEK in clear; its errors name records, lines and
//! offsets, never digits. It is the PCI scope: it depends on no other sequent crate, and no other
//! crate sees its keys.
//!
//! **Token kinds.**
//! - [`Vault::tokenise_ff1`]: FF1 (NIST SP 800-38G, via the `fpe` crate over AES-256) encrypts the
//!   middle digits (between the 6-digit BIN and the last four), the tweak binding them to the BIN,
//!   last four, length and a counter. Same length, same BIN and last four, and the token always
//!   **fails Luhn**, so it can never be mistaken for a card number. Rule: the token uses the
//!   smallest counter `c` (0..=[`FF1_COUNTER_MAX`]) for which (a) the token fails Luhn and (b) no
//!   smaller counter decrypts the token to a Luhn-valid number; detokenisation takes the smallest
//!   counter that decrypts to a Luhn-valid number. (b) makes detokenisation the exact inverse; it
//!   is deterministic, so one PAN always gives one token. SP 800-38G Rev. 1 requires
//!   radix^minlen ≥ 1,000,000, so FF1 needs at least 6 middle digits: PANs of 13 to 15 digits are
//!   refused ([`VaultError::Ff1DomainTooSmall`]) and take random tokens. About one PAN in a
//!   million finds no counter ([`VaultError::Ff1NoCounter`]) and takes a random token too.
//! - [`Vault::tokenise_random`]: `tok_` + 128 random bits. The PAN is encrypted with AES-256-GCM
//!   under a fresh data key per record (AAD = the token id); the data key is wrapped with
//!   AES-256-GCM under the active KEK (AAD = token id and KEK version). Each call makes a new
//!   token, even for a PAN seen before.
//!
//! **Rotation.** [`Vault::rotate_kek`] adds a KEK and makes it active (the old one becomes
//! decrypt-only); [`Vault::rewrap`] re-wraps every data key not under the active KEK — it unwraps
//! data keys, never PANs; [`Vault::retire_kek`] refuses the old version from then on
//! ([`VaultError::KekRetired`]). Save the new key set with [`KeySet::save`].
//!
//! **Detokenisation** needs a [`DetokeniseGrant`], handed out once when the vault is built and not
//! clonable: the payments node gives it to the PSP connector and to nothing else.

#![forbid(unsafe_code)]

mod keys;
mod pan;
mod store;
mod token;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use fpe::ff1::{FF1, FlexibleNumeralString};
use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

pub use keys::{KEY_BYTES, Kek, KekState, KeyFileError, KeyMaterial, KeySet};
pub use pan::{BIN_DIGITS, LAST_DIGITS, PAN_DIGITS_MAX, PAN_DIGITS_MIN, Pan, PanError, luhn_valid};
pub use token::{RANDOM_TOKEN_ID_BYTES, RANDOM_TOKEN_PREFIX, Token, TokenError, TokenKind};

use store::{Entry, NONCE_BYTES, Record, Store, WRAPPED_DEK_BYTES, WrappedDek};

/// Highest FF1 tweak counter tried before giving up on a PAN (see the crate docs).
pub const FF1_COUNTER_MAX: u8 = 255;
/// SP 800-38G Rev. 1: radix^minlen must be at least this.
pub const FF1_DOMAIN_MIN: u64 = 1_000_000;
/// Middle digits FF1 needs in radix 10 to meet [`FF1_DOMAIN_MIN`].
pub const FF1_MIDDLE_DIGITS_MIN: usize = 6;
const _: () = assert!(10u64.pow(FF1_MIDDLE_DIGITS_MIN as u32) >= FF1_DOMAIN_MIN);
const _: () = assert!(10u64.pow(FF1_MIDDLE_DIGITS_MIN as u32 - 1) < FF1_DOMAIN_MIN);

const AAD_PAN: &[u8] = b"sequent-vault pan v1";
const AAD_DEK: &[u8] = b"sequent-vault dek v1";

/// Everything the vault refuses. No variant carries PAN digits or key bytes.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The PAN is too short for FF1 (SP 800-38G minimum domain); use a random token.
    #[error("FF1 needs at least {FF1_MIDDLE_DIGITS_MIN} middle digits, this PAN has {digits}")]
    Ff1DomainTooSmall {
        /// Middle digits the PAN has.
        digits: usize,
    },
    /// No FF1 tweak counter gave a token that fails Luhn and decrypts uniquely; use a random token.
    #[error("no FF1 counter up to {FF1_COUNTER_MAX} gives a unique Luhn-failing token")]
    Ff1NoCounter,
    /// The token is not one this vault can have made (FF1 key mismatch or a made-up token).
    #[error("token {0} does not detokenise under this vault's FF1 key")]
    Ff1NotAToken(Token),
    /// No record for this random token.
    #[error("no record for token {0}")]
    UnknownToken(Token),
    /// The record's data key is wrapped under a KEK version the key set does not have.
    #[error("token {token}: KEK version {version} is not in the key set")]
    UnknownKek {
        /// The token.
        token: Token,
        /// The KEK version its record names.
        version: u32,
    },
    /// The record's data key is wrapped under a retired KEK.
    #[error("token {token}: KEK version {version} is retired")]
    KekRetired {
        /// The token.
        token: Token,
        /// The retired version.
        version: u32,
    },
    /// GCM authentication failed: the record was altered or the KEK is wrong.
    #[error("token {0}: record fails authentication (tampered, or wrong key)")]
    Tampered(Token),
    /// The grant was issued by another vault instance.
    #[error("the detokenise grant belongs to another vault")]
    ForeignGrant,
    /// Rotation asked for a version already present.
    #[error("KEK version {0} already exists")]
    KekExists(u32),
    /// Retirement asked for the active KEK or a version not present.
    #[error("KEK version {0} cannot be retired (active or unknown)")]
    CannotRetire(u32),
    /// The record file could not be read or written.
    #[error("vault file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The record file's framing is broken away from its tail.
    #[error("vault file {path}: {what} at offset {offset}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the bad frame.
        offset: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// A re-wrap entry in the file names a token with no record.
    #[error("vault file {path}: re-wrap of a token with no record")]
    OrphanRewrap {
        /// The file.
        path: PathBuf,
    },
}

/// The right to turn tokens back into PANs. One per vault, handed out by the constructor, not
/// `Clone`: whoever holds it is in PCI scope (the PSP connector, which must put the PAN into
/// ISO 8583 field 2). Everyone else gets `&Vault` and can only tokenise.
pub struct DetokeniseGrant {
    vault_id: u64,
}

impl fmt::Debug for DetokeniseGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DetokeniseGrant")
    }
}

/// What opening a vault file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenReport {
    /// Random-token records loaded.
    pub records: usize,
    /// Bytes of a half-written last frame that were cut off (a crash mid-append).
    pub torn_tail_bytes: u64,
}

/// The vault. `R` is the randomness for token ids, data keys and nonces: seeded in tests,
/// [`OsRng`] in production ([`Vault::open_with_os_rng`]).
pub struct Vault<R> {
    /// Random per instance; ties the grant to this vault.
    id: u64,
    keys: KeySet,
    ff1: FF1<aes::Aes256>,
    /// Random-token records by token id. A BTreeMap so re-wrap walks them in a fixed order.
    records: BTreeMap<[u8; RANDOM_TOKEN_ID_BYTES], Record>,
    store: Option<Store>,
    rng: R,
}

/// The operating system's RNG as an infallible [`RngCore`].
pub type OsRng = rand_core::UnwrapErr<rand_core::OsRng>;

impl<R> fmt::Debug for Vault<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("keks", &self.keys.versions())
            .field("records", &self.records.len())
            .field("persistent", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

impl Vault<OsRng> {
    /// The production constructor: [`Vault::open`] with the operating system's RNG.
    pub fn open_with_os_rng(
        path: &Path,
        keys: KeySet,
    ) -> Result<(Vault<OsRng>, DetokeniseGrant, OpenReport), VaultError> {
        Vault::open(path, keys, rand_core::UnwrapErr(rand_core::OsRng))
    }
}

impl<R: RngCore + CryptoRng> Vault<R> {
    /// A vault that keeps random-token records in memory only (tests, benchmarks).
    pub fn in_memory(keys: KeySet, mut rng: R) -> (Vault<R>, DetokeniseGrant) {
        let id = rng.next_u64();
        let ff1 = FF1::<aes::Aes256>::new(keys.ff1.bytes(), 10).expect("radix 10 is valid for FF1");
        let vault = Vault {
            id,
            keys,
            ff1,
            records: BTreeMap::new(),
            store: None,
            rng,
        };
        (vault, DetokeniseGrant { vault_id: id })
    }

    /// Opens (or creates) the record file at `path` and loads its records, so tokens made before a
    /// restart detokenise after it.
    pub fn open(
        path: &Path,
        keys: KeySet,
        rng: R,
    ) -> Result<(Vault<R>, DetokeniseGrant, OpenReport), VaultError> {
        let (store, entries, torn_tail_bytes) = Store::open(path)?;
        let (mut vault, grant) = Vault::in_memory(keys, rng);
        for entry in entries {
            match entry {
                Entry::Token { id, record } => {
                    vault.records.insert(id, record);
                }
                Entry::Rewrap { id, dek } => {
                    let record =
                        vault
                            .records
                            .get_mut(&id)
                            .ok_or_else(|| VaultError::OrphanRewrap {
                                path: path.to_owned(),
                            })?;
                    record.dek = dek;
                }
            }
        }
        vault.store = Some(store);
        let report = OpenReport {
            records: vault.records.len(),
            torn_tail_bytes,
        };
        Ok((vault, grant, report))
    }

    /// The key set (to save after a rotation).
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// Random-token records held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when no random token has been made.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Records whose data key is wrapped under KEK `version` (0 before it is safe to retire it).
    pub fn records_under(&self, version: u32) -> usize {
        self.records
            .values()
            .filter(|r| r.dek.kek_version == version)
            .count()
    }

    /// A format-preserving token (see the crate docs for the rule). Needs no storage.
    pub fn tokenise_ff1(&self, pan: &Pan) -> Result<Token, VaultError> {
        let digits = pan.digit_values();
        let middle_len = digits.len() - BIN_DIGITS - LAST_DIGITS;
        if middle_len < FF1_MIDDLE_DIGITS_MIN {
            return Err(VaultError::Ff1DomainTooSmall { digits: middle_len });
        }
        let mut candidate = Zeroizing::new(digits.to_vec());
        for counter in 0..=FF1_COUNTER_MAX {
            let middle = self.ff1_apply(
                true,
                counter,
                digits,
                &digits[BIN_DIGITS..digits.len() - LAST_DIGITS],
            );
            candidate[BIN_DIGITS..digits.len() - LAST_DIGITS].copy_from_slice(&middle);
            if luhn_valid(&candidate) {
                continue;
            }
            if self.ff1_first_valid_counter(&candidate, counter).is_some() {
                continue;
            }
            return Ok(Token::ff1(&candidate));
        }
        Err(VaultError::Ff1NoCounter)
    }

    /// A random token; the PAN is sealed in a new record (and appended to the file, durably,
    /// before the token is returned).
    pub fn tokenise_random(&mut self, pan: &Pan) -> Result<Token, VaultError> {
        let mut id = [0u8; RANDOM_TOKEN_ID_BYTES];
        loop {
            self.rng.fill_bytes(&mut id);
            if !self.records.contains_key(&id) {
                break;
            }
        }
        let token = Token::random(&id);
        let dek = KeyMaterial::generate(&mut self.rng);
        let mut pan_nonce = [0u8; NONCE_BYTES];
        self.rng.fill_bytes(&mut pan_nonce);
        let ascii: Zeroizing<Vec<u8>> =
            Zeroizing::new(pan.digit_values().iter().map(|d| b'0' + d).collect());
        let pan_ciphertext = seal(dek.bytes(), &pan_nonce, &pan_aad(&id), &ascii);
        let wrapped = self.wrap(&id, &dek);
        let record = Record {
            dek: wrapped,
            pan_nonce,
            pan_ciphertext,
        };
        if let Some(store) = &mut self.store {
            store.append(&[Entry::Token {
                id,
                record: record.clone(),
            }])?;
        }
        self.records.insert(id, record);
        Ok(token)
    }

    /// The PAN behind a token, as ASCII digits in a string wiped on drop. The only call that
    /// gives a PAN out.
    pub fn detokenise(
        &self,
        grant: &DetokeniseGrant,
        token: &Token,
    ) -> Result<Zeroizing<String>, VaultError> {
        if grant.vault_id != self.id {
            return Err(VaultError::ForeignGrant);
        }
        let pan = match token.kind() {
            TokenKind::Ff1 => self.detokenise_ff1(token)?,
            TokenKind::Random => self.detokenise_random(token)?,
        };
        Ok(Zeroizing::new(
            pan.digit_values()
                .iter()
                .map(|&d| char::from(b'0' + d))
                .collect(),
        ))
    }

    /// Adds KEK `version` and makes it the active one; the previous active KEK becomes
    /// decrypt-only. Existing records keep their wrapping until [`Vault::rewrap`].
    pub fn rotate_kek(&mut self, version: u32, key: KeyMaterial) -> Result<(), VaultError> {
        if self.keys.keks.contains_key(&version) {
            return Err(VaultError::KekExists(version));
        }
        for kek in self.keys.keks.values_mut() {
            if kek.state == KekState::Active {
                kek.state = KekState::DecryptOnly;
            }
        }
        self.keys.keks.insert(
            version,
            Kek {
                version,
                state: KekState::Active,
                key,
            },
        );
        Ok(())
    }

    /// Re-wraps every data key that is not under the active KEK, in token-id order, and appends
    /// the new wrappings to the file in one durable write. PAN ciphertexts are not touched: only
    /// data keys are unwrapped. Returns how many were re-wrapped.
    pub fn rewrap(&mut self) -> Result<usize, VaultError> {
        let active = self.keys.active_version();
        let mut entries = Vec::new();
        for (id, record) in &self.records {
            if record.dek.kek_version == active {
                continue;
            }
            let dek = self.unwrap(id, &record.dek)?;
            let mut nonce = [0u8; NONCE_BYTES];
            self.rng.fill_bytes(&mut nonce);
            let kek = self.keys.kek(active).expect("active KEK present");
            let ciphertext = seal_dek(kek, id, &nonce, &dek);
            entries.push(Entry::Rewrap {
                id: *id,
                dek: WrappedDek {
                    kek_version: active,
                    nonce,
                    ciphertext,
                },
            });
        }
        if let Some(store) = &mut self.store {
            store.append(&entries)?;
        }
        for entry in &entries {
            if let Entry::Rewrap { id, dek } = entry {
                self.records.get_mut(id).expect("record present").dek = dek.clone();
            }
        }
        Ok(entries.len())
    }

    /// Retires a decrypt-only KEK: records still wrapped under it are refused from now on with
    /// [`VaultError::KekRetired`]. Call [`Vault::rewrap`] first unless that is what you want.
    pub fn retire_kek(&mut self, version: u32) -> Result<(), VaultError> {
        match self.keys.keks.get_mut(&version) {
            Some(kek) if kek.state != KekState::Active => {
                kek.state = KekState::Retired;
                Ok(())
            }
            _ => Err(VaultError::CannotRetire(version)),
        }
    }

    fn detokenise_ff1(&self, token: &Token) -> Result<Pan, VaultError> {
        let digits: Zeroizing<Vec<u8>> =
            Zeroizing::new(token.as_str().bytes().map(|b| b - b'0').collect());
        let not_ours = || VaultError::Ff1NotAToken(token.clone());
        if digits.len() - BIN_DIGITS - LAST_DIGITS < FF1_MIDDLE_DIGITS_MIN {
            return Err(not_ours());
        }
        (0..=FF1_COUNTER_MAX)
            .find_map(|c| self.ff1_decrypt_at(c, &digits))
            .ok_or_else(not_ours)
    }

    /// The smallest counter below `limit` under which `token_digits` decrypts to a Luhn-valid PAN.
    fn ff1_first_valid_counter(&self, token_digits: &[u8], limit: u8) -> Option<u8> {
        (0..limit).find(|&c| self.ff1_decrypt_at(c, token_digits).is_some())
    }

    /// The PAN `token_digits` decrypts to under `counter`, when it passes Luhn.
    fn ff1_decrypt_at(&self, counter: u8, token_digits: &[u8]) -> Option<Pan> {
        let end = token_digits.len() - LAST_DIGITS;
        let middle = self.ff1_apply(false, counter, token_digits, &token_digits[BIN_DIGITS..end]);
        let mut candidate = Zeroizing::new(token_digits.to_vec());
        candidate[BIN_DIGITS..end].copy_from_slice(&middle);
        Pan::from_digit_values(&candidate).ok()
    }

    /// FF1 over `middle` with the tweak `counter | length | BIN | last four` (ASCII), so a token's
    /// middle is bound to the digits shown beside it.
    fn ff1_apply(
        &self,
        encrypt: bool,
        counter: u8,
        whole: &[u8],
        middle: &[u8],
    ) -> Zeroizing<Vec<u8>> {
        let mut tweak = Vec::with_capacity(2 + BIN_DIGITS + LAST_DIGITS);
        tweak.push(counter);
        tweak.push(whole.len() as u8);
        tweak.extend(whole[..BIN_DIGITS].iter().map(|d| b'0' + d));
        tweak.extend(whole[whole.len() - LAST_DIGITS..].iter().map(|d| b'0' + d));
        let numerals =
            FlexibleNumeralString::from(middle.iter().map(|&d| u16::from(d)).collect::<Vec<u16>>());
        let out = if encrypt {
            self.ff1.encrypt(&tweak, &numerals)
        } else {
            self.ff1.decrypt(&tweak, &numerals)
        }
        .expect("radix-10 numerals of 6..=9 digits are within FF1's limits");
        // Both numeral strings hold PAN digits on one side or the other: wipe them.
        let mut input: Vec<u16> = numerals.into();
        input.zeroize();
        let mut values: Vec<u16> = out.into();
        let result = Zeroizing::new(values.iter().map(|&d| d as u8).collect());
        values.zeroize();
        result
    }

    fn detokenise_random(&self, token: &Token) -> Result<Pan, VaultError> {
        let id = token.random_id().expect("random token has an id");
        let record = self
            .records
            .get(&id)
            .ok_or_else(|| VaultError::UnknownToken(token.clone()))?;
        let dek = self.unwrap(&id, &record.dek)?;
        let ascii = Zeroizing::new(
            open(
                dek.bytes(),
                &record.pan_nonce,
                &pan_aad(&id),
                &record.pan_ciphertext,
            )
            .ok_or_else(|| VaultError::Tampered(token.clone()))?,
        );
        // An authentic record always holds a valid PAN; anything else is tampering with a key.
        Pan::from_ascii(&ascii).map_err(|_| VaultError::Tampered(token.clone()))
    }

    fn wrap(&mut self, id: &[u8; RANDOM_TOKEN_ID_BYTES], dek: &KeyMaterial) -> WrappedDek {
        let active = self.keys.active_version();
        let mut nonce = [0u8; NONCE_BYTES];
        self.rng.fill_bytes(&mut nonce);
        let kek = self.keys.kek(active).expect("active KEK present");
        WrappedDek {
            kek_version: active,
            nonce,
            ciphertext: seal_dek(kek, id, &nonce, dek),
        }
    }

    fn unwrap(
        &self,
        id: &[u8; RANDOM_TOKEN_ID_BYTES],
        wrapped: &WrappedDek,
    ) -> Result<KeyMaterial, VaultError> {
        let token = Token::random(id);
        let version = wrapped.kek_version;
        let kek = self.keys.kek(version).ok_or(VaultError::UnknownKek {
            token: token.clone(),
            version,
        })?;
        if kek.state == KekState::Retired {
            return Err(VaultError::KekRetired { token, version });
        }
        let plain = Zeroizing::new(
            open(
                kek.key.bytes(),
                &wrapped.nonce,
                &dek_aad(id, version),
                &wrapped.ciphertext,
            )
            .ok_or_else(|| VaultError::Tampered(token.clone()))?,
        );
        let bytes: [u8; KEY_BYTES] = plain
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::Tampered(token))?;
        Ok(KeyMaterial::from_bytes(bytes))
    }
}

fn pan_aad(id: &[u8; RANDOM_TOKEN_ID_BYTES]) -> Vec<u8> {
    [AAD_PAN, id.as_slice()].concat()
}

fn dek_aad(id: &[u8; RANDOM_TOKEN_ID_BYTES], version: u32) -> Vec<u8> {
    [AAD_DEK, id.as_slice(), &version.to_le_bytes()].concat()
}

fn seal_dek(
    kek: &Kek,
    id: &[u8; RANDOM_TOKEN_ID_BYTES],
    nonce: &[u8; NONCE_BYTES],
    dek: &KeyMaterial,
) -> [u8; WRAPPED_DEK_BYTES] {
    seal(
        kek.key.bytes(),
        nonce,
        &dek_aad(id, kek.version),
        dek.bytes(),
    )
    .try_into()
    .expect("GCM of a 32-byte key is 48 bytes")
}

fn seal(key: &[u8; KEY_BYTES], nonce: &[u8; NONCE_BYTES], aad: &[u8], msg: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new_from_slice(key).expect("32-byte key");
    cipher
        .encrypt(&(*nonce).into(), Payload { msg, aad })
        .expect("AES-GCM encrypts messages this short")
}

fn open(
    key: &[u8; KEY_BYTES],
    nonce: &[u8; NONCE_BYTES],
    aad: &[u8],
    ciphertext: &[u8],
) -> Option<Vec<u8>> {
    let cipher = Aes256Gcm::new_from_slice(key).expect("32-byte key");
    cipher
        .decrypt(
            &(*nonce).into(),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
}
