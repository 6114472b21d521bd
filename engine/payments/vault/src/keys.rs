//! Key material and the key file.
//!
//! Key file format (text, UTF-8, one key per line; `#` starts a comment line; blank lines skipped):
//!
//! ```text
//! # sequent vault keys
//! ff1 <64 hex digits: the AES-256 key for format-preserving tokens>
//! kek <version: u32> <active|decrypt|retired> <64 hex digits: an AES-256 key-encryption key>
//! ```
//!
//! Exactly one `ff1` line and exactly one `active` KEK. `decrypt` KEKs unwrap data keys of old
//! records but wrap nothing new; `retired` KEKs are kept only so an attempt to use one is refused
//! with [`crate::VaultError::KekRetired`] rather than "unknown key". Errors name the line number,
//! never its text, so a typo in a key never reaches a log.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand_core::CryptoRng;
use zeroize::Zeroizing;

/// AES-256 keys throughout: FF1 key, KEKs and data keys.
pub const KEY_BYTES: usize = 32;

/// 32 bytes of secret key, wiped on drop; `Debug` shows no byte of it.
#[derive(Clone)]
pub struct KeyMaterial(Zeroizing<[u8; KEY_BYTES]>);

impl KeyMaterial {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> KeyMaterial {
        KeyMaterial(Zeroizing::new(bytes))
    }

    /// A fresh key from a cryptographic RNG.
    pub fn generate(rng: &mut impl CryptoRng) -> KeyMaterial {
        let mut key = Zeroizing::new([0u8; KEY_BYTES]);
        rng.fill_bytes(&mut key[..]);
        KeyMaterial(key)
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyMaterial(<redacted>)")
    }
}

/// What a KEK may still do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KekState {
    /// Wraps new data keys and unwraps old ones. Exactly one KEK is active.
    Active,
    /// Unwraps data keys wrapped under it; wraps nothing new (after a rotation, until retired).
    DecryptOnly,
    /// Refused for everything.
    Retired,
}

impl KekState {
    fn word(self) -> &'static str {
        match self {
            KekState::Active => "active",
            KekState::DecryptOnly => "decrypt",
            KekState::Retired => "retired",
        }
    }
}

/// One versioned key-encryption key.
#[derive(Debug, Clone)]
pub struct Kek {
    /// Stored with every wrapped data key, so a record names the KEK that opens it.
    pub version: u32,
    /// Active, decrypt-only or retired.
    pub state: KekState,
    pub(crate) key: KeyMaterial,
}

/// Why a key file or key set was refused. Names lines, never key text.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line that is not `ff1 HEX` or `kek VERSION STATE HEX`.
    #[error("key file line {line}: {what}")]
    Line {
        /// One-based line number.
        line: usize,
        /// What is wrong with it.
        what: &'static str,
    },
    /// The set as a whole is inconsistent.
    #[error("key set: {0}")]
    Set(&'static str),
}

/// The vault's keys: one FF1 key and the versioned KEKs.
#[derive(Debug, Clone)]
pub struct KeySet {
    pub(crate) ff1: KeyMaterial,
    /// By version; exactly one `Active`.
    pub(crate) keks: BTreeMap<u32, Kek>,
}

impl KeySet {
    /// A key set with an FF1 key and one active KEK.
    pub fn new(ff1: KeyMaterial, kek_version: u32, kek: KeyMaterial) -> KeySet {
        let mut keks = BTreeMap::new();
        keks.insert(
            kek_version,
            Kek {
                version: kek_version,
                state: KekState::Active,
                key: kek,
            },
        );
        KeySet { ff1, keks }
    }

    /// Fresh keys: FF1 key and KEK version 1.
    pub fn generate(rng: &mut impl CryptoRng) -> KeySet {
        let ff1 = KeyMaterial::generate(rng);
        let kek = KeyMaterial::generate(rng);
        KeySet::new(ff1, 1, kek)
    }

    /// The version that wraps new data keys.
    pub fn active_version(&self) -> u32 {
        self.keks
            .values()
            .find(|k| k.state == KekState::Active)
            .map(|k| k.version)
            .expect("a KeySet always has one active KEK")
    }

    /// Versions and states, oldest first (no key bytes).
    pub fn versions(&self) -> Vec<(u32, KekState)> {
        self.keks.values().map(|k| (k.version, k.state)).collect()
    }

    pub(crate) fn kek(&self, version: u32) -> Option<&Kek> {
        self.keks.get(&version)
    }

    /// Parses the key file text (see the module docs).
    pub fn parse(text: &str) -> Result<KeySet, KeyFileError> {
        let mut ff1 = None;
        let mut keks = BTreeMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let bad = |what| KeyFileError::Line { line, what };
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = trimmed.split_ascii_whitespace().collect();
            match words.as_slice() {
                ["ff1", hex] => {
                    if ff1.is_some() {
                        return Err(bad("second ff1 key"));
                    }
                    ff1 = Some(parse_key_hex(hex).ok_or(bad("key is not 64 hex digits"))?);
                }
                ["kek", version, state, hex] => {
                    let version: u32 = version.parse().map_err(|_| bad("version is not a u32"))?;
                    let state = match *state {
                        "active" => KekState::Active,
                        "decrypt" => KekState::DecryptOnly,
                        "retired" => KekState::Retired,
                        _ => return Err(bad("state is not active, decrypt or retired")),
                    };
                    let key = parse_key_hex(hex).ok_or(bad("key is not 64 hex digits"))?;
                    if keks
                        .insert(
                            version,
                            Kek {
                                version,
                                state,
                                key,
                            },
                        )
                        .is_some()
                    {
                        return Err(bad("KEK version repeated"));
                    }
                }
                _ => return Err(bad("expected `ff1 HEX` or `kek VERSION STATE HEX`")),
            }
        }
        let ff1 = ff1.ok_or(KeyFileError::Set("no ff1 key"))?;
        let active = keks
            .values()
            .filter(|k| k.state == KekState::Active)
            .count();
        if active != 1 {
            return Err(KeyFileError::Set("exactly one KEK must be active"));
        }
        Ok(KeySet { ff1, keks })
    }

    /// Loads a key file.
    pub fn load(path: &Path) -> Result<KeySet, KeyFileError> {
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| KeyFileError::Io {
                    path: path.to_owned(),
                    source,
                })?,
            );
        KeySet::parse(&text)
    }

    /// The key file text. The string holds secrets: it is wiped when dropped.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::from("# sequent vault keys\n"));
        out.push_str("ff1 ");
        push_hex(&mut out, self.ff1.bytes());
        out.push('\n');
        for kek in self.keks.values() {
            out.push_str(&format!("kek {} {} ", kek.version, kek.state.word()));
            push_hex(&mut out, kek.key.bytes());
            out.push('\n');
        }
        out
    }

    /// Writes the key file: mode 0600 on Unix, written beside it then renamed into place.
    pub fn save(&self, path: &Path) -> Result<(), KeyFileError> {
        let io = |source| KeyFileError::Io {
            path: path.to_owned(),
            source,
        };
        let tmp = path.with_extension("tmp");
        let mut options = std::fs::OpenOptions::new();
        // A fresh file, so the mode below applies (an old one could have kept wider permissions).
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(io)?;
        file.write_all(self.to_text().as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

fn parse_key_hex(hex: &str) -> Option<KeyMaterial> {
    let bytes = hex.as_bytes();
    if bytes.len() != 2 * KEY_BYTES {
        return None;
    }
    let mut key = Zeroizing::new([0u8; KEY_BYTES]);
    for (out, pair) in key.iter_mut().zip(bytes.chunks_exact(2)) {
        *out = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
    }
    Some(KeyMaterial(key))
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_redacts() {
        let text = format!(
            "# keys\nff1 {}\n\nkek 1 decrypt {}\nkek 2 active {}\n",
            "00".repeat(32),
            "11".repeat(32),
            "ab".repeat(32)
        );
        let keys = KeySet::parse(&text).unwrap();
        assert_eq!(keys.active_version(), 2);
        assert_eq!(
            keys.versions(),
            vec![(1, KekState::DecryptOnly), (2, KekState::Active)]
        );
        let again = KeySet::parse(&keys.to_text()).unwrap();
        assert_eq!(again.kek(2).unwrap().key.bytes(), &[0xab; 32]);
        assert!(!format!("{keys:?}").contains("ab, ") && !format!("{keys:?}").contains("171"));
    }

    #[test]
    fn errors_name_lines_not_keys() {
        let secret = "9".repeat(63);
        let err = KeySet::parse(&format!("ff1 {secret}\n")).unwrap_err();
        assert_eq!(err.to_string(), "key file line 1: key is not 64 hex digits");
        let two_active = format!(
            "ff1 {}\nkek 1 active {}\nkek 2 active {}\n",
            "00".repeat(32),
            "11".repeat(32),
            "22".repeat(32)
        );
        assert!(matches!(
            KeySet::parse(&two_active),
            Err(KeyFileError::Set(_))
        ));
        assert!(matches!(
            KeySet::parse("kek x active 00\n"),
            Err(KeyFileError::Line { line: 1, .. })
        ));
    }
}
