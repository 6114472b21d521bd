//! `prove` and `check-proof`: RFC 9162 proofs out of a journal, and their verification by
//! anyone who has the JSON and the documented algorithm (RFC 9162 §2.1.3.2 and §2.1.4.2), without
//! the journal.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use sequent_journal::format::RECORD_HEADER_LEN;
use sequent_journal::merkle::{self, Hash};

use super::{Usage, hex};

/// Most bytes `check-proof` reads from stdin: a proof is at most 65 hashes and one record of at
/// most 16 MiB, in hex.
const PROOF_JSON_BYTES_MAX: u64 = 40 << 20;
/// Bytes 8..16 of a framed record hold its sequence (little-endian): see `RecordHeader`.
const RECORD_SEQUENCE_OFFSET: usize = 8;

#[derive(clap::Args, Debug)]
pub struct ProveArgs {
    /// The journal directory.
    dir: PathBuf,
    /// The record's sequence.
    sequence: u64,
    /// Instead: a consistency proof between the first OLD and the first NEW records of the
    /// segment holding SEQ (0 < OLD <= NEW <= its record count).
    #[arg(long, num_args = 2, value_names = ["OLD", "NEW"])]
    consistency: Option<Vec<u64>>,
    /// Print the proof as one JSON object, the input `check-proof` takes.
    #[arg(long)]
    json: bool,
}

/// A proof as `prove --json` prints it and `check-proof` reads it. Hashes are 64 lowercase hex
/// digits; paths are bottom up.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ProofDoc {
    Inclusion {
        sequence: u64,
        segment: String,
        leaf_index: u64,
        tree_size: u64,
        /// `SHA-256(0x00 || record)`.
        leaf_hash: String,
        /// The framed record (header and payload): the leaf's input.
        record_hex: String,
        path: Vec<String>,
        root: String,
        /// The root is the one in the segment's seal (false: the active segment, so far).
        sealed: bool,
    },
    Consistency {
        sequence: u64,
        segment: String,
        old_size: u64,
        new_size: u64,
        old_root: String,
        new_root: String,
        path: Vec<String>,
    },
}

impl ProveArgs {
    /// An inclusion proof of the record at `sequence` (for `sequent ledger prove`).
    pub fn inclusion(dir: PathBuf, sequence: u64, json: bool) -> Self {
        Self {
            dir,
            sequence,
            consistency: None,
            json,
        }
    }
}

pub fn prove(args: &ProveArgs) -> Result<()> {
    let doc = match args.consistency.as_deref() {
        None => {
            let proof = sequent_journal::prove_inclusion(&args.dir, args.sequence)?;
            ProofDoc::Inclusion {
                sequence: proof.sequence,
                segment: proof.segment.display().to_string(),
                leaf_index: proof.leaf_index,
                tree_size: proof.tree_size,
                leaf_hash: merkle::to_hex(&proof.leaf_hash),
                record_hex: hex(&proof.record),
                path: proof.path.iter().map(merkle::to_hex).collect(),
                root: merkle::to_hex(&proof.root),
                sealed: proof.sealed,
            }
        }
        Some(&[old_size, new_size]) => {
            if old_size == 0 || old_size > new_size {
                return Err(Usage(format!(
                    "--consistency OLD NEW needs 0 < OLD <= NEW; got {old_size} {new_size}"
                ))
                .into());
            }
            let proof =
                sequent_journal::prove_consistency(&args.dir, args.sequence, old_size, new_size)
                    .map_err(|error| match error {
                        // Sizes beyond the segment's records are the caller's mistake.
                        sequent_journal::Error::Config(reason) => Usage(reason).into(),
                        other => anyhow::Error::from(other),
                    })?;
            ProofDoc::Consistency {
                sequence: args.sequence,
                segment: proof.segment.display().to_string(),
                old_size: proof.old_size,
                new_size: proof.new_size,
                old_root: merkle::to_hex(&proof.old_root),
                new_root: merkle::to_hex(&proof.new_root),
                path: proof.path.iter().map(merkle::to_hex).collect(),
            }
        }
        Some(_) => unreachable!("clap takes exactly two values for --consistency"),
    };
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        write_text(&mut out, &doc)?;
    }
    out.flush()?;
    Ok(())
}

fn write_text(out: &mut impl Write, doc: &ProofDoc) -> io::Result<()> {
    match doc {
        ProofDoc::Inclusion {
            sequence,
            segment,
            leaf_index,
            tree_size,
            leaf_hash,
            record_hex: _,
            path,
            root,
            sealed,
        } => {
            writeln!(out, "inclusion proof (RFC 9162 §2.1.3)")?;
            writeln!(out, "sequence: {sequence}")?;
            writeln!(out, "segment: {segment}")?;
            writeln!(out, "leaf index: {leaf_index}")?;
            writeln!(out, "tree size: {tree_size}")?;
            writeln!(out, "leaf hash: {leaf_hash}")?;
            writeln!(out, "audit path ({} hashes, bottom up):", path.len())?;
            for hash in path {
                writeln!(out, "  {hash}")?;
            }
            writeln!(out, "root: {root}")?;
            if *sealed {
                writeln!(
                    out,
                    "sealed: yes (the root is the one in the segment's seal)"
                )?;
            } else {
                writeln!(
                    out,
                    "sealed: no (the active segment: the root covers its records so far)"
                )?;
            }
        }
        ProofDoc::Consistency {
            sequence: _,
            segment,
            old_size,
            new_size,
            old_root,
            new_root,
            path,
        } => {
            writeln!(out, "consistency proof (RFC 9162 §2.1.4)")?;
            writeln!(out, "segment: {segment}")?;
            writeln!(out, "old size: {old_size}")?;
            writeln!(out, "new size: {new_size}")?;
            writeln!(out, "old root: {old_root}")?;
            writeln!(out, "new root: {new_root}")?;
            writeln!(out, "path ({} hashes):", path.len())?;
            for hash in path {
                writeln!(out, "  {hash}")?;
            }
        }
    }
    Ok(())
}

/// Reads a proof from stdin and verifies it: exit 0 and one `verified:` line, or exit 1 and one
/// `invalid:` line saying why.
pub fn check_proof() -> Result<ExitCode> {
    let mut text = String::new();
    io::stdin()
        .lock()
        .take(PROOF_JSON_BYTES_MAX)
        .read_to_string(&mut text)?;
    let verdict = serde_json::from_str::<ProofDoc>(&text)
        .map_err(|error| format!("not a proof: {error}"))
        .and_then(|doc| check(&doc));
    let mut out = io::stdout().lock();
    let code = match verdict {
        Ok(line) => {
            writeln!(out, "verified: {line}")?;
            ExitCode::SUCCESS
        }
        Err(reason) => {
            writeln!(out, "invalid: {reason}")?;
            ExitCode::from(1)
        }
    };
    out.flush()?;
    Ok(code)
}

fn decode_hash(text: &str, what: &str) -> Result<Hash, String> {
    merkle::from_hex(text).ok_or_else(|| format!("{what} is not 64 lowercase hex digits"))
}

fn decode_path(path: &[String]) -> Result<Vec<Hash>, String> {
    path.iter()
        .enumerate()
        .map(|(i, text)| decode_hash(text, &format!("path[{i}]")))
        .collect()
}

fn decode_bytes(text: &str, what: &str) -> Result<Vec<u8>, String> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    if text.len() % 2 != 0 {
        return Err(format!("{what} has an odd number of hex digits"));
    }
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some((digit(pair[0])? << 4) | digit(pair[1])?))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| format!("{what} is not lowercase hex"))
}

/// The verification an auditor runs: nothing from the journal but the documented hashing.
fn check(doc: &ProofDoc) -> Result<String, String> {
    match doc {
        ProofDoc::Inclusion {
            sequence,
            leaf_index,
            tree_size,
            leaf_hash,
            record_hex,
            path,
            root,
            ..
        } => {
            let leaf = decode_hash(leaf_hash, "leaf_hash")?;
            let root = decode_hash(root, "root")?;
            let path = decode_path(path)?;
            // The record binds the proof to its sequence: its hash must be the leaf, and its
            // header must carry the sequence the proof claims.
            let record = decode_bytes(record_hex, "record_hex")?;
            if (record.len() as u64) < RECORD_HEADER_LEN {
                return Err(format!(
                    "record_hex holds {} bytes, shorter than a record header",
                    record.len()
                ));
            }
            let mut sequence_bytes = [0; 8];
            sequence_bytes.copy_from_slice(&record[RECORD_SEQUENCE_OFFSET..][..8]);
            let record_sequence = u64::from_le_bytes(sequence_bytes);
            if record_sequence != *sequence {
                return Err(format!(
                    "the record is sequence {record_sequence}, the proof claims {sequence}"
                ));
            }
            if merkle::leaf_hash(&record) != leaf {
                return Err("leaf_hash is not SHA-256(0x00 || record)".into());
            }
            merkle::verify_inclusion(*leaf_index, *tree_size, &leaf, &path, &root)
                .map_err(|error| error.to_string())?;
            Ok(format!(
                "record {sequence} is leaf {leaf_index} of the tree of {tree_size} records with root {}",
                merkle::to_hex(&root)
            ))
        }
        ProofDoc::Consistency {
            old_size,
            new_size,
            old_root,
            new_root,
            path,
            ..
        } => {
            let old_root = decode_hash(old_root, "old_root")?;
            let new_root = decode_hash(new_root, "new_root")?;
            let path = decode_path(path)?;
            merkle::verify_consistency(*old_size, *new_size, &old_root, &new_root, &path)
                .map_err(|error| error.to_string())?;
            Ok(format!(
                "the tree of {new_size} records with root {} extends the tree of {old_size} with root {}",
                merkle::to_hex(&new_root),
                merkle::to_hex(&old_root)
            ))
        }
    }
}
