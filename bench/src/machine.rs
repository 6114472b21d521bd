//! What a benchmark ran on: core count, CPU model, kernel and the git commit of the tree.
//!
//! Everything here is read once at start-up; a field that cannot be read says `unknown`
//! rather than failing the run, because a missing `/proc` must not stop a benchmark.

use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The machine description printed with every table and written into docs/BENCHMARKS.md.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Machine {
    /// `std::thread::available_parallelism()`: the cores this process may run on.
    pub cores: usize,
    /// Core ids in this process's affinity mask, read before any thread is pinned
    /// (`core_affinity::get_core_ids` only lists the calling thread's current mask).
    pub core_ids: Vec<usize>,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// /proc/sys/kernel/osrelease.
    pub kernel: String,
    /// `git rev-parse --short HEAD`, with `-dirty` when the tree has local changes.
    pub git_commit: String,
    /// The 1-minute load average when the run started (/proc/loadavg). It lags: it still
    /// counts a benchmark that ended a minute ago.
    pub load_avg_1m: Option<f64>,
    /// Share of all cores busy during the 250 ms before the run (/proc/stat): other work on
    /// the machine competes with the benchmark's spinning threads.
    pub busy_before_pct: Option<f64>,
}

const UNKNOWN: &str = "unknown";
/// How long `detect` watches /proc/stat for other work.
const BUSY_SAMPLE: Duration = Duration::from_millis(250);
/// Above this share of busy cores before the run, the binary warns that figures will be noisy.
const BUSY_WARN_PCT: f64 = 10.0;

impl Machine {
    /// Reads the machine description. Call it from the main thread before pinning anything.
    pub fn detect() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let core_ids = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|core| core.id)
            .collect();
        Self {
            cores,
            core_ids,
            cpu_model: read_cpu_model().unwrap_or_else(|| UNKNOWN.to_owned()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| UNKNOWN.to_owned()),
            git_commit: read_git_commit().unwrap_or_else(|| UNKNOWN.to_owned()),
            load_avg_1m: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok()),
            busy_before_pct: measure_busy_pct(BUSY_SAMPLE),
        }
    }

    /// One line for logs: `2 cores (pinnable [0, 1]), AMD EPYC, kernel 6.1, commit abc1234,
    /// load 0.10, 1% busy before the run`.
    pub fn summary(&self) -> String {
        format!(
            "{} cores (pinnable {:?}), {}, kernel {}, commit {}, load {}, {} busy before the run",
            self.cores,
            self.core_ids,
            self.cpu_model,
            self.kernel,
            self.git_commit,
            self.load_text(),
            self.busy_text()
        )
    }

    /// The busy share before the run as text, `unknown` if unreadable.
    pub fn busy_text(&self) -> String {
        self.busy_before_pct
            .map_or_else(|| UNKNOWN.to_owned(), |pct| format!("{pct:.0}%"))
    }

    /// The 1-minute load average as text, `unknown` if unreadable.
    pub fn load_text(&self) -> String {
        self.load_avg_1m
            .map_or_else(|| UNKNOWN.to_owned(), |load| format!("{load:.2}"))
    }

    /// True when other work kept more than 10 % of the cores busy just before the run.
    pub fn is_busy(&self) -> bool {
        self.busy_before_pct.is_some_and(|pct| pct > BUSY_WARN_PCT)
    }
}

/// (busy, total) jiffies of the aggregate `cpu` line of a /proc/stat text.
fn parse_cpu_jiffies(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

fn measure_busy_pct(window: Duration) -> Option<f64> {
    let read = || parse_cpu_jiffies(&std::fs::read_to_string("/proc/stat").ok()?);
    let (busy_0, total_0) = read()?;
    std::thread::sleep(window);
    let (busy_1, total_1) = read()?;
    let total = total_1.checked_sub(total_0).filter(|t| *t > 0)?;
    Some(busy_1.saturating_sub(busy_0) as f64 * 100.0 / total as f64)
}

fn read_cpu_model() -> Option<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    parse_cpu_model(&cpuinfo)
}

/// The first `model name` line of a /proc/cpuinfo text.
fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

fn read_git_commit() -> Option<String> {
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())?;
    let commit = String::from_utf8(head.stdout).ok()?.trim().to_owned();
    if commit.is_empty() {
        return None;
    }
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .is_some_and(|out| !out.stdout.is_empty());
    Some(if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_model_is_the_first_model_name_line() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9374F\n\
                       processor\t: 1\nmodel name\t: other\n";
        assert_eq!(parse_cpu_model(cpuinfo).as_deref(), Some("AMD EPYC 9374F"));
        assert_eq!(parse_cpu_model("processor\t: 0\n"), None);
    }

    #[test]
    fn busy_jiffies_leave_out_idle_and_iowait() {
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n";
        assert_eq!(parse_cpu_jiffies(stat), Some((150, 1000)));
        assert_eq!(parse_cpu_jiffies("intr 1 2 3\n"), None);
    }
}
