//! Which cores exist, and pinning a thread to one.

use std::fmt;

/// A core id that this machine does not have online.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoSuchCore {
    /// The core asked for.
    pub core: usize,
    /// The cores that are online.
    pub online: Vec<usize>,
}

impl fmt::Display for NoSuchCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "core {} does not exist; online cores are {:?}",
            self.core, self.online
        )
    }
}

impl std::error::Error for NoSuchCore {}

/// The cores online on this machine, in ascending order.
///
/// Read from `/sys/devices/system/cpu/online` rather than `core_affinity::get_core_ids()`, which
/// lists only the cores in the *calling thread's* affinity mask: a thread that was pinned first
/// would see one core and refuse to pin anything else.
pub fn online_cores() -> Vec<usize> {
    if let Ok(text) = std::fs::read_to_string("/sys/devices/system/cpu/online")
        && let Some(cores) = parse_cpu_list(&text)
        && !cores.is_empty()
    {
        return cores;
    }
    if let Some(ids) = core_affinity::get_core_ids()
        && !ids.is_empty()
    {
        let mut cores: Vec<usize> = ids.into_iter().map(|c| c.id).collect();
        cores.sort_unstable();
        return cores;
    }
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0..n).collect()
}

/// Parses the kernel's cpu-list format (`0-3,8,10-11`), as in `/sys/devices/system/cpu/online`.
/// Returns `None` for anything else.
pub fn parse_cpu_list(text: &str) -> Option<Vec<usize>> {
    let text = text.trim();
    let mut cores = Vec::new();
    if text.is_empty() {
        return Some(cores);
    }
    for part in text.split(',') {
        match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi): (usize, usize) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
                if lo > hi {
                    return None;
                }
                cores.extend(lo..=hi);
            }
            None => cores.push(part.trim().parse().ok()?),
        }
    }
    cores.sort_unstable();
    cores.dedup();
    Some(cores)
}

/// Pins the calling thread to `core`, after checking that the core is online.
pub fn pin_current_thread(core: usize) -> Result<(), NoSuchCore> {
    let online = online_cores();
    if !online.contains(&core) {
        return Err(NoSuchCore { core, online });
    }
    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        tracing::warn!(
            core,
            "could not pin thread (sched_setaffinity refused); running unpinned"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_cpu_lists() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(vec![0, 1]));
        assert_eq!(
            parse_cpu_list("0-3,8,10-11"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list("5"), Some(vec![5]));
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("a-b"), None);
        assert_eq!(parse_cpu_list("1,,2"), None);
    }

    #[test]
    fn online_cores_include_the_ones_we_run_on() {
        let cores = online_cores();
        assert!(!cores.is_empty());
        assert!(
            cores.windows(2).all(|w| w[0] < w[1]),
            "sorted and unique: {cores:?}"
        );
    }

    #[test]
    fn pinning_to_a_missing_core_names_it() {
        let err = pin_current_thread(usize::MAX).expect_err("no machine has that core");
        assert_eq!(err.core, usize::MAX);
        assert!(err.to_string().contains("does not exist"));
    }
}
