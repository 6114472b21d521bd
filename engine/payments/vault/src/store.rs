//! The append-only record file. Only ciphertext and ids are written; no plaintext PAN, data key
//! or KEK byte ever reaches it.
//!
//! Layout (little-endian):
//!
//! ```text
//! header   b"SQVAULT1"                                         8 bytes
//! frame    body_len: u32 | body                                repeated
//! body     kind: u8 = 1 (token record)
//!          token_id[16] | kek_version u32 | wrap_nonce[12] | wrapped_dek[48]
//!          | pan_nonce[12] | pan_ct_len u8 | pan_ct[pan_ct_len]   (PAN digits + 16-byte GCM tag)
//! body     kind: u8 = 2 (re-wrap: the record's data key now under another KEK)
//!          token_id[16] | kek_version u32 | wrap_nonce[12] | wrapped_dek[48]
//! ```
//!
//! Integrity of the contents is GCM's job (a flipped bit fails at detokenisation, naming the
//! token). The framing is checked on open: an unknown kind or impossible length stops the open
//! with the offset; a frame cut short at the end of the file (a crash mid-append) is truncated and
//! reported in [`crate::OpenReport`].

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::VaultError;
use crate::token::RANDOM_TOKEN_ID_BYTES;

pub(crate) const MAGIC: &[u8; 8] = b"SQVAULT1";
pub(crate) const NONCE_BYTES: usize = 12;
pub(crate) const TAG_BYTES: usize = 16;
pub(crate) const WRAPPED_DEK_BYTES: usize = crate::keys::KEY_BYTES + TAG_BYTES;
const KIND_TOKEN: u8 = 1;
const KIND_REWRAP: u8 = 2;
/// Largest body: a token record with a 19-digit PAN.
const BODY_BYTES_MAX: usize = 1
    + RANDOM_TOKEN_ID_BYTES
    + 4
    + NONCE_BYTES
    + WRAPPED_DEK_BYTES
    + NONCE_BYTES
    + 1
    + 19
    + TAG_BYTES;

/// A data key wrapped under one KEK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WrappedDek {
    pub kek_version: u32,
    pub nonce: [u8; NONCE_BYTES],
    pub ciphertext: [u8; WRAPPED_DEK_BYTES],
}

/// One random token's record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub dek: WrappedDek,
    pub pan_nonce: [u8; NONCE_BYTES],
    /// PAN ASCII digits encrypted under the data key, GCM tag last.
    pub pan_ciphertext: Vec<u8>,
}

/// What the file holds, in order.
#[derive(Debug)]
pub(crate) enum Entry {
    Token {
        id: [u8; RANDOM_TOKEN_ID_BYTES],
        record: Record,
    },
    Rewrap {
        id: [u8; RANDOM_TOKEN_ID_BYTES],
        dek: WrappedDek,
    },
}

#[derive(Debug)]
pub(crate) struct Store {
    path: PathBuf,
    file: File,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VaultError + '_ {
    move |source| VaultError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Store {
    /// Opens or creates the file; returns the entries and the count of torn-tail bytes dropped.
    pub fn open(path: &Path) -> Result<(Store, Vec<Entry>, u64), VaultError> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io(path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(path))?;
        if bytes.is_empty() {
            file.write_all(MAGIC).map_err(io(path))?;
            file.sync_all().map_err(io(path))?;
            return Ok((
                Store {
                    path: path.to_owned(),
                    file,
                },
                Vec::new(),
                0,
            ));
        }
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(VaultError::Corrupt {
                path: path.to_owned(),
                offset: 0,
                what: "bad header",
            });
        }
        let mut entries = Vec::new();
        let mut at = MAGIC.len();
        let mut torn = 0;
        while at < bytes.len() {
            let corrupt = |what| VaultError::Corrupt {
                path: path.to_owned(),
                offset: at as u64,
                what,
            };
            if bytes.len() - at < 4 {
                torn = (bytes.len() - at) as u64;
                break;
            }
            let mut len_bytes = [0u8; 4];
            len_bytes.copy_from_slice(&bytes[at..at + 4]);
            let len = u32::from_le_bytes(len_bytes) as usize;
            if len == 0 || len > BODY_BYTES_MAX {
                return Err(corrupt("impossible frame length"));
            }
            if bytes.len() - at - 4 < len {
                torn = (bytes.len() - at) as u64;
                break;
            }
            let body = &bytes[at + 4..at + 4 + len];
            entries.push(decode_body(body).ok_or_else(|| corrupt("malformed record"))?);
            at += 4 + len;
        }
        if torn > 0 {
            file.set_len(at as u64).map_err(io(path))?;
            file.sync_all().map_err(io(path))?;
        }
        Ok((
            Store {
                path: path.to_owned(),
                file,
            },
            entries,
            torn,
        ))
    }

    /// Appends entries and makes them durable before returning: a token is handed out only once
    /// its record would survive a crash.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), VaultError> {
        let mut buf = Vec::new();
        for entry in entries {
            let body = encode_body(entry);
            buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
            buf.extend_from_slice(&body);
        }
        self.file.write_all(&buf).map_err(io(&self.path))?;
        self.file.sync_data().map_err(io(&self.path))
    }
}

fn encode_dek(out: &mut Vec<u8>, dek: &WrappedDek) {
    out.extend_from_slice(&dek.kek_version.to_le_bytes());
    out.extend_from_slice(&dek.nonce);
    out.extend_from_slice(&dek.ciphertext);
}

fn encode_body(entry: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(BODY_BYTES_MAX);
    match entry {
        Entry::Token { id, record } => {
            out.push(KIND_TOKEN);
            out.extend_from_slice(id);
            encode_dek(&mut out, &record.dek);
            out.extend_from_slice(&record.pan_nonce);
            out.push(record.pan_ciphertext.len() as u8);
            out.extend_from_slice(&record.pan_ciphertext);
        }
        Entry::Rewrap { id, dek } => {
            out.push(KIND_REWRAP);
            out.extend_from_slice(id);
            encode_dek(&mut out, dek);
        }
    }
    assert!(out.len() <= BODY_BYTES_MAX);
    out
}

/// Reads fixed-size pieces off the front of a slice.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_at_checked(N)?;
        self.0 = rest;
        head.try_into().ok()
    }
}

fn decode_dek(c: &mut Cursor<'_>) -> Option<WrappedDek> {
    Some(WrappedDek {
        kek_version: u32::from_le_bytes(c.take()?),
        nonce: c.take()?,
        ciphertext: c.take()?,
    })
}

fn decode_body(body: &[u8]) -> Option<Entry> {
    let mut c = Cursor(body);
    let [kind] = c.take()?;
    let id = c.take()?;
    let dek = decode_dek(&mut c)?;
    let entry = match kind {
        KIND_TOKEN => {
            let pan_nonce = c.take()?;
            let [ct_len] = c.take()?;
            let ct_len = usize::from(ct_len);
            if !(crate::pan::PAN_DIGITS_MIN + TAG_BYTES..=crate::pan::PAN_DIGITS_MAX + TAG_BYTES)
                .contains(&ct_len)
                || c.0.len() != ct_len
            {
                return None;
            }
            let pan_ciphertext = c.0.to_vec();
            c.0 = &[];
            Entry::Token {
                id,
                record: Record {
                    dek,
                    pan_nonce,
                    pan_ciphertext,
                },
            }
        }
        KIND_REWRAP => Entry::Rewrap { id, dek },
        _ => return None,
    };
    c.0.is_empty().then_some(entry)
}
