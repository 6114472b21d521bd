//! The journal rows as a terminal table, a GitHub Markdown table with the machine, or JSON lines.

use std::fmt::Write as _;

use super::Row;
use crate::machine::Machine;
use crate::report::{format_ns, format_rate};

const HEADERS: [&str; 13] = [
    "section",
    "impl",
    "case",
    "records",
    "records/s",
    "MB/s",
    "vs baseline",
    "mean",
    "p50",
    "p99",
    "p99.9",
    "max",
    "latency of / note",
];

/// Columns 3..=11 hold figures and align right.
fn is_figure_column(index: usize) -> bool {
    (3..=11).contains(&index)
}

fn cells(row: &Row) -> [String; 13] {
    let ns = |value: Option<u64>| value.map_or_else(|| "-".to_owned(), format_ns);
    let note = match &row.latency {
        Some(latency) => format!("{latency}; {}", row.note),
        None => row.note.clone(),
    };
    [
        row.section.clone(),
        row.imp.clone(),
        row.case.clone(),
        format_rate(row.records),
        format_rate(row.records_per_sec),
        format!("{:.0}", row.payload_mb_per_sec),
        row.vs_baseline
            .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x")),
        ns(row.mean_ns),
        ns(row.p50_ns),
        ns(row.p99_ns),
        ns(row.p999_ns),
        ns(row.max_ns),
        note,
    ]
}

/// A plain-text table with aligned columns (the note column last and unpadded).
pub fn render_table(rows: &[Row]) -> String {
    let body: Vec<[String; 13]> = rows.iter().map(cells).collect();
    let mut widths = HEADERS.map(str::len);
    for line in &body {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut write_line = |line: &[String]| {
        for (i, (cell, width)) in line.iter().zip(widths).enumerate() {
            let pad = " ".repeat(width - cell.chars().count());
            if i + 1 == line.len() {
                let _ = writeln!(out, "{cell}");
            } else if is_figure_column(i) {
                let _ = write!(out, "{pad}{cell}  ");
            } else {
                let _ = write!(out, "{cell}{pad}  ");
            }
        }
    };
    write_line(&HEADERS.map(str::to_owned));
    let mut previous: Option<&str> = None;
    for (row, line) in rows.iter().zip(&body) {
        if previous.is_some_and(|p| p != row.section) {
            write_line(&[String::new()]);
        }
        previous = Some(&row.section);
        write_line(line);
    }
    out.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The command, the machine and a GitHub table, as pasted into docs/BENCHMARKS.md.
pub fn render_markdown(machine: &Machine, command: &str, clock_ns: u64, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Command: `{command}`\n");
    let _ = writeln!(out, "| machine | |\n|---|---|");
    let _ = writeln!(out, "| cores (available_parallelism) | {} |", machine.cores);
    let _ = writeln!(out, "| pinnable core ids | {:?} |", machine.core_ids);
    let _ = writeln!(out, "| CPU | {} |", machine.cpu_model);
    let _ = writeln!(out, "| kernel | {} |", machine.kernel);
    let _ = writeln!(out, "| commit | {} |", machine.git_commit);
    let _ = writeln!(
        out,
        "| cores busy just before the run | {} |",
        machine.busy_text()
    );
    let _ = writeln!(
        out,
        "| 1-min load average at start | {} |",
        machine.load_text()
    );
    let _ = writeln!(
        out,
        "| cost of one timing (two TSC reads, median) | {} |\n",
        format_ns(clock_ns)
    );
    let _ = writeln!(out, "| {} |", HEADERS.join(" | "));
    let align: Vec<&str> = (0..HEADERS.len())
        .map(|i| if is_figure_column(i) { "---:" } else { "---" })
        .collect();
    let _ = writeln!(out, "|{}|", align.join("|"));
    for row in rows {
        let mut line = cells(row);
        if row.is_journal() {
            line[1] = format!("**{}**", line[1]);
        }
        let line = line.map(|cell| cell.replace('|', "\\|"));
        let _ = writeln!(out, "| {} |", line.join(" | "));
    }
    out
}

/// One JSON object (a line without the newline).
pub fn json_line(row: &Row) -> String {
    serde_json::to_string(row).expect("a Row always serializes")
}

#[cfg(test)]
mod tests {
    use super::super::{IMPL_JOURNAL, Section};
    use super::*;

    fn rows() -> Vec<Row> {
        let mut journal = Row::new(Section::Append, IMPL_JOURNAL, "64 B".to_owned(), 64, 1000)
            .with_rate(std::time::Duration::from_micros(100))
            .with_note("segments");
        journal.vs_baseline = Some(1.5);
        let tail = Row::new(Section::Tail, "rtrb", "64 B".to_owned(), 64, 10).with_latency(
            "append to visible",
            &{
                let mut hist = super::super::new_histogram();
                hist.record(250).unwrap();
                hist
            },
        );
        vec![journal, tail]
    }

    #[test]
    fn table_markdown_and_json_carry_the_figures() {
        let rows = rows();
        let table = render_table(&rows);
        assert_eq!(table.lines().count(), 4, "{table}"); // header, row, blank, row
        assert!(table.contains("10.0M"), "{table}");
        assert!(table.contains("1.50x"), "{table}");
        let machine = Machine {
            cores: 2,
            core_ids: vec![0, 1],
            cpu_model: "AMD EPYC".to_owned(),
            kernel: "6.1".to_owned(),
            git_commit: "abc1234".to_owned(),
            load_avg_1m: Some(0.05),
            busy_before_pct: Some(1.0),
        };
        let markdown = render_markdown(&machine, "sequent-bench journal", 12, &rows);
        assert!(
            markdown.contains("| **sequent-journal** | 64 B | 1.00k | 10.0M | 640 | 1.50x |"),
            "{markdown}"
        );
        assert!(markdown.contains("| tail | rtrb | 64 B |"), "{markdown}");
        let value: serde_json::Value = serde_json::from_str(&json_line(&rows[1])).unwrap();
        assert_eq!(value["impl"], "rtrb");
        assert_eq!(value["p50_ns"], 250);
        assert!(value.get("baseline_case").is_none());
    }
}
