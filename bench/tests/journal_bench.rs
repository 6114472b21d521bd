//! `sequent-bench journal` end to end on a tiny configuration, through the library entry point:
//! every section but the RSS one runs, passes its correctness check and reports sane figures,
//! and the scratch directory is gone afterwards. A correctness test of the harness, not a
//! performance test.

use std::time::Duration;

use sequent_bench::journal::{self, IMPL_JOURNAL, JournalConfig, Progress};
use sequent_bench::machine::Machine;

#[test]
fn a_tiny_run_passes_every_check_and_cleans_up() {
    let machine = Machine::detect();
    let parent =
        std::env::temp_dir().join(format!("sequent-bench-journal-test-{}", std::process::id()));
    std::fs::create_dir_all(&parent).unwrap();
    let mut config = JournalConfig::quick(parent.clone(), machine.cores, machine.core_ids);
    config.records = 5_000;
    config.append_bytes_max = 1 << 20;
    // Small segments, so appends and replays cross several segment rolls.
    config.segment_len = 64 << 10;
    config.durable_records = 1_000;
    config.group_records = vec![128];
    config.group_interval = Duration::from_micros(200);
    config.tail_records = 2_000;
    config.tail_rate_per_sec = 200_000;
    config.rss_bytes = 0;

    let mut skipped = Vec::new();
    let rows = journal::run(&config, |progress| {
        if let Progress::Skipped { section, .. } = progress {
            skipped.push(section.name());
        }
    })
    .expect("a tiny run passes every check");
    assert_eq!(skipped, ["rss"]);

    let sections: Vec<&str> = rows.iter().map(|r| r.section.as_str()).collect();
    for section in ["append", "durable", "replay", "tail"] {
        assert!(
            sections.contains(&section),
            "no {section} row in {sections:?}"
        );
    }
    // Three payload sizes × (journal, baseline); one group × (stream, wait, baseline); two
    // replay rows; two tail rows.
    assert_eq!(rows.len(), 6 + 3 + 2 + 2, "{rows:#?}");
    for row in &rows {
        assert!(row.records > 0 && row.records_per_sec > 0, "{row:?}");
        if row.imp == IMPL_JOURNAL {
            assert!(row.vs_baseline.is_some_and(|r| r > 0.0), "{row:?}");
        }
        if let (Some(p50), Some(max)) = (row.p50_ns, row.max_ns) {
            assert!(p50 <= max, "{row:?}");
        }
    }
    let replay = rows
        .iter()
        .find(|r| r.section == "replay" && r.imp == IMPL_JOURNAL)
        .unwrap();
    assert_eq!(replay.records, 5_000);
    let tail = rows
        .iter()
        .find(|r| r.section == "tail" && r.imp == IMPL_JOURNAL)
        .unwrap();
    assert_eq!(tail.latency.as_deref(), Some("append to visible"));

    let left: Vec<_> = std::fs::read_dir(&parent).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
    std::fs::remove_dir_all(&parent).unwrap();
}
