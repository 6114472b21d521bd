//! Replay: a journal read from the start to the end against a `BufReader` over the plain file;
//! and resident memory while a multi-gigabyte journal is replayed.
//!
//! Both files are read right after they were written, so they come from the page cache: the
//! figures measure the readers (the journal checks every record's CRC32C), not the disk.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use sequent_journal::{Config, Durability, Reader, Writer};

use super::baseline::{FramedReader, FramedWriter};
use super::{
    BenchError, IMPL_JOURNAL, JournalConfig, KIND, Row, Section, fill_payload, payload_buffer,
    payload_digest, remove,
};

/// `impl` of the baseline row.
pub const IMPL_BUFREADER: &str = "bufreader";
/// Payload bytes of the replay section's records.
const PAYLOAD_LEN: usize = 64;
/// Payload bytes of the RSS section's records.
const RSS_PAYLOAD_LEN: usize = 1024;
/// Records between two resident-memory samples of the RSS section (~10 MB of 1 KiB records).
const RSS_SAMPLE_EVERY: u64 = 10_000;
/// The RSS section runs only with this many times its journal size free on the disk.
const RSS_FREE_FACTOR: u64 = 3;

/// Journal and baseline replay rows.
pub(super) fn run(config: &JournalConfig, dir: &Path) -> Result<Vec<Row>, BenchError> {
    let records = config.records;
    let journal_dir = dir.join("replay-journal");
    let (written_digest, _) = write_journal(
        &journal_dir,
        config.segment_len,
        records,
        PAYLOAD_LEN,
        |_| {},
    )?;
    let plain = dir.join("replay-plain");
    write_plain(&plain, records, PAYLOAD_LEN)?;

    let started = Instant::now();
    let (count, digest) = replay_journal(&journal_dir, |_| {})?;
    let elapsed = started.elapsed();
    check(IMPL_JOURNAL, records, written_digest, count, digest)?;
    remove(&journal_dir)?;
    let journal = Row::new(
        Section::Replay,
        IMPL_JOURNAL,
        "64 B".to_owned(),
        PAYLOAD_LEN,
        records,
    )
    .with_rate(elapsed)
    .with_note(format!(
        "Reader::open + next() to the end, CRC32C checked, page cache hot, {} MiB segments",
        config.segment_len >> 20
    ));

    let started = Instant::now();
    let (count, digest) = replay_plain(&plain)?;
    let elapsed = started.elapsed();
    check(IMPL_BUFREADER, records, written_digest, count, digest)?;
    remove(&plain)?;
    let baseline = Row::new(
        Section::Replay,
        IMPL_BUFREADER,
        "64 B".to_owned(),
        PAYLOAD_LEN,
        records,
    )
    .with_rate(elapsed)
    .with_note("64 KiB BufReader, read_exact header + payload, no checksum, page cache hot");
    Ok(vec![journal, baseline])
}

fn check(
    imp: &str,
    records: u64,
    written_digest: u64,
    count: u64,
    digest: u64,
) -> Result<(), BenchError> {
    if count != records || digest != written_digest {
        return Err(BenchError::check(
            Section::Replay,
            imp,
            format!(
                "replayed {count} of {records} records, payload digest {digest:#x}, written {written_digest:#x}"
            ),
        ));
    }
    Ok(())
}

/// Writes `records` records to a new journal (no sync while appending, synced at close); calls
/// `sample(sequence)` every [`RSS_SAMPLE_EVERY`] records. Returns the payload digest and the time
/// the appends took.
fn write_journal(
    dir: &Path,
    segment_len: u64,
    records: u64,
    payload_len: usize,
    mut sample: impl FnMut(u64),
) -> Result<(u64, std::time::Duration), BenchError> {
    let mut writer = Writer::open(
        dir,
        &Config {
            segment_len,
            durability: Durability::None,
            journal_id: None,
        },
    )?;
    let mut payload = payload_buffer(payload_len);
    let mut digest = 0u64;
    let started = Instant::now();
    for sequence in 1..=records {
        fill_payload(&mut payload, sequence);
        digest = digest.wrapping_add(payload_digest(&payload));
        writer.append(KIND, sequence, &payload)?;
        if sequence % RSS_SAMPLE_EVERY == 0 {
            sample(sequence);
        }
    }
    let elapsed = started.elapsed();
    writer.close()?;
    Ok((digest, elapsed))
}

fn write_plain(path: &Path, records: u64, payload_len: usize) -> Result<(), BenchError> {
    let mut writer = FramedWriter::create(path)?;
    let mut payload = payload_buffer(payload_len);
    for sequence in 1..=records {
        fill_payload(&mut payload, sequence);
        writer
            .append(KIND, sequence, sequence, &payload)
            .map_err(BenchError::io(path))?;
    }
    writer.finish().map_err(BenchError::io(path))?;
    Ok(())
}

/// Reads the journal in `dir` to its end, checking that sequences run 1, 2, 3, …; returns the
/// record count and the payload digest. Calls `sample(sequence)` every [`RSS_SAMPLE_EVERY`]
/// records.
fn replay_journal(dir: &Path, mut sample: impl FnMut(u64)) -> Result<(u64, u64), BenchError> {
    let mut reader = Reader::open(dir)?;
    let mut count = 0u64;
    let mut digest = 0u64;
    while let Some(record) = reader.next()? {
        count += 1;
        if record.sequence != count || record.kind != KIND {
            let what = format!(
                "record {count} has sequence {} and kind {}",
                record.sequence, record.kind
            );
            return Err(BenchError::check(Section::Replay, IMPL_JOURNAL, what));
        }
        digest = digest.wrapping_add(payload_digest(record.payload));
        if count % RSS_SAMPLE_EVERY == 0 {
            sample(count);
        }
    }
    Ok((count, digest))
}

fn replay_plain(path: &Path) -> Result<(u64, u64), BenchError> {
    let mut reader = FramedReader::open(path)?;
    let mut count = 0u64;
    let mut digest = 0u64;
    while let Some((header, payload)) = reader.next().map_err(BenchError::io(path))? {
        count += 1;
        if header.sequence != count || header.kind != KIND {
            let what = format!(
                "record {count} has sequence {} and kind {}",
                header.sequence, header.kind
            );
            return Err(BenchError::check(Section::Replay, IMPL_BUFREADER, what));
        }
        digest = digest.wrapping_add(payload_digest(payload));
    }
    Ok((count, digest))
}

/// Why the RSS section cannot run here, if it cannot: too little free disk.
pub(super) fn rss_skip_reason(config: &JournalConfig, dir: &Path) -> Option<String> {
    let needed = RSS_FREE_FACTOR * config.rss_bytes;
    match free_bytes(dir) {
        Ok(free) if free >= needed => None,
        Ok(free) => Some(format!(
            "{} free under {}, the section needs {} ({}x its journal)",
            format_bytes(free),
            dir.display(),
            format_bytes(needed),
            RSS_FREE_FACTOR
        )),
        Err(why) => Some(format!("could not read the free space: {why}")),
    }
}

/// Free bytes of the file system holding `dir`, from POSIX `df -Pk` (the crate forbids the
/// `unsafe` a direct `statvfs` call would need).
fn free_bytes(dir: &Path) -> Result<u64, String> {
    let out = Command::new("df")
        .arg("-Pk")
        .arg(dir)
        .output()
        .map_err(|err| format!("df: {err}"))?;
    if !out.status.success() {
        return Err(format!("df exited with {}", out.status));
    }
    parse_df_available_kib(&String::from_utf8_lossy(&out.stdout))
        .map(|kib| kib * 1024)
        .ok_or_else(|| "df printed no `Available` column".to_owned())
}

/// The `Available` column (KiB) of the data line of `df -Pk` output.
fn parse_df_available_kib(text: &str) -> Option<u64> {
    text.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()
}

/// `1.50 GB`, `320 MB` (10^6 units, as the section's `--rss-gb`).
fn format_bytes(bytes: u64) -> String {
    if bytes >= 1_000_000_000 {
        format!("{:.2} GB", bytes as f64 / 1e9)
    } else {
        format!("{:.0} MB", bytes as f64 / 1e6)
    }
}

/// Resident bytes of this process (`VmRSS` of /proc/self/status), 0 if unreadable.
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| parse_vm_rss_kib(&status))
        .map_or(0, |kib| kib * 1024)
}

fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Distinct files under `dir` this process has mapped (/proc/self/maps), 0 if unreadable.
fn mapped_files_under(dir: &Path) -> u64 {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return 0;
    };
    let prefix = dir.to_string_lossy();
    let mut paths: Vec<&str> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|path| path.starts_with(prefix.as_ref()))
        .collect();
    paths.sort_unstable();
    paths.dedup();
    paths.len() as u64
}

/// Writes `rss_bytes` of 1 KiB records with large segments, then replays them while sampling
/// this process's resident memory and mapped segments.
pub(super) fn run_rss(config: &JournalConfig, dir: &Path) -> Result<Row, BenchError> {
    let records = (config.rss_bytes / RSS_PAYLOAD_LEN as u64).max(1);
    let journal_dir = dir.join("rss-journal");
    let mut write_rss_max = 0u64;
    let (written_digest, write_elapsed) = write_journal(
        &journal_dir,
        config.rss_segment_len,
        records,
        RSS_PAYLOAD_LEN,
        |_| write_rss_max = write_rss_max.max(resident_bytes()),
    )?;

    let rss_start = resident_bytes();
    let mut rss_max = rss_start;
    let mut mapped_max = 0u64;
    let started = Instant::now();
    let (count, digest) = replay_journal(&journal_dir, |_| {
        rss_max = rss_max.max(resident_bytes());
        mapped_max = mapped_max.max(mapped_files_under(&journal_dir));
    })?;
    let elapsed = started.elapsed();
    let rss_end = resident_bytes();
    remove(&journal_dir)?;
    check(IMPL_JOURNAL, records, written_digest, count, digest).map_err(|err| match err {
        BenchError::Check { imp, what, .. } => BenchError::check(Section::Rss, &imp, what),
        other => other,
    })?;
    let mut row = Row::new(
        Section::Rss,
        IMPL_JOURNAL,
        format!("{} replay", format_bytes(records * RSS_PAYLOAD_LEN as u64)),
        RSS_PAYLOAD_LEN,
        records,
    )
    .with_rate(elapsed)
    .with_note(format!(
        "{} MiB segments; RSS every {RSS_SAMPLE_EVERY} records: start {}, max {}, end {}, \
         ≤{mapped_max} segments mapped; writing it: {:.0} MB/s, RSS max {}",
        config.rss_segment_len >> 20,
        format_bytes(rss_start),
        format_bytes(rss_max),
        format_bytes(rss_end),
        (records * RSS_PAYLOAD_LEN as u64) as f64 / write_elapsed.as_secs_f64().max(1e-9) / 1e6,
        format_bytes(write_rss_max),
    ));
    row.rss_start_bytes = Some(rss_start);
    row.rss_max_bytes = Some(rss_max);
    row.rss_end_bytes = Some(rss_end);
    row.mapped_segments_max = Some(mapped_max);
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_and_status_parse() {
        let df = "Filesystem     1024-blocks     Used Available Capacity Mounted on\n\
                  /dev/vda       263174212 18000000 77000000      19% /\n";
        assert_eq!(parse_df_available_kib(df), Some(77_000_000));
        assert_eq!(parse_df_available_kib("Filesystem\n"), None);
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    4512 kB\n";
        assert_eq!(parse_vm_rss_kib(status), Some(4512));
    }

    #[test]
    fn resident_memory_is_read() {
        assert!(resident_bytes() > 0);
    }
}
