//! The recorder every `sequent-bench report` scenario writes into: an HdrHistogram of
//! nanoseconds, open-loop recording from an intended time, coordinated-omission correction for the
//! loops that cannot be open, the percentile spectrum, and the `.hgrm` text form.
//!
//! Open loop is the rule (Gil Tene, "How NOT to measure latency"): a sample's latency runs from
//! the time it was *due* to be sent, so a stall is charged to every sample that should have gone
//! out during it. A closed loop (send, wait, send) cannot see those samples; for it,
//! [`Recorder::record_corrected`] adds the samples the stall hid (HdrHistogram's
//! `recordValueWithExpectedInterval`).

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Smallest latency the histograms hold, ns.
pub const LATENCY_NS_MIN: u64 = 1;
/// Largest latency the histograms hold, ns (one hour): larger values saturate to it.
pub const LATENCY_NS_MAX: u64 = 3_600 * 1_000_000_000;
/// Significant decimal digits: values within 0.1 %.
pub const SIGNIFICANT_DIGITS: u8 = 3;
/// `.hgrm` rows per halving of the remaining distance to 100 % (HdrHistogram's default).
pub const HGRM_TICKS_PER_HALF_DISTANCE: u32 = 5;
/// `.hgrm` values are written in microseconds (scaling ratio 1000 from ns), like HdrHistogram's
/// own examples; the plotter reads them as they are.
pub const HGRM_VALUE_SCALE: f64 = 1_000.0;

/// The percentiles every summary reports; the spectrum adds the `.hgrm` points.
pub const SUMMARY_PERCENTILES: [f64; 6] = [50.0, 90.0, 99.0, 99.9, 99.99, 99.999];

/// A fresh latency histogram with the recorder's bounds.
#[must_use]
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LATENCY_NS_MIN, LATENCY_NS_MAX, SIGNIFICANT_DIGITS)
        .expect("the bounds are valid")
}

/// Latencies of one run, in nanoseconds.
#[derive(Debug, Clone)]
pub struct Recorder {
    histogram: Histogram<u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    #[must_use]
    pub fn new() -> Self {
        Self {
            histogram: new_histogram(),
        }
    }

    /// Wraps a histogram another module recorded (its bounds may differ).
    #[must_use]
    pub fn from_histogram(histogram: Histogram<u64>) -> Self {
        Self { histogram }
    }

    /// One latency; out-of-range values saturate (a one-hour stall is still one hour).
    pub fn record(&mut self, latency_ns: u64) {
        self.histogram
            .saturating_record(latency_ns.max(LATENCY_NS_MIN));
    }

    /// Open loop: the sample was due at `intended_ns` and completed at `done_ns` (same clock).
    /// A sample that completed "before" it was due records the minimum: the clock said so, and
    /// hiding it would bias the low percentiles.
    pub fn record_open_loop(&mut self, intended_ns: u64, done_ns: u64) {
        self.record(done_ns.saturating_sub(intended_ns));
    }

    /// Closed loop with a known send interval: records `latency_ns` and, when it exceeds the
    /// interval, the samples a stall hid: `latency − interval`, `latency − 2·interval`, … down
    /// to `interval` (HdrHistogram `recordValueWithExpectedInterval`).
    pub fn record_corrected(&mut self, latency_ns: u64, expected_interval_ns: u64) {
        let latency_ns = latency_ns.clamp(LATENCY_NS_MIN, LATENCY_NS_MAX);
        self.histogram
            .record_correct(latency_ns, expected_interval_ns)
            .expect("clamped into the histogram's range");
    }

    /// Adds another recorder's samples (bounds permitting; else the larger values saturate).
    pub fn add(&mut self, other: &Histogram<u64>) {
        if self.histogram.add(other).is_err() {
            for v in other.iter_recorded() {
                self.histogram.saturating_record_n(
                    v.value_iterated_to().min(LATENCY_NS_MAX),
                    v.count_at_value(),
                );
            }
        }
    }

    #[must_use]
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }

    #[must_use]
    pub fn len(&self) -> u64 {
        self.histogram.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }

    /// The value at `percentile` (0..=100), 0 when empty.
    #[must_use]
    pub fn value_at_percentile(&self, percentile: f64) -> u64 {
        if self.histogram.is_empty() {
            0
        } else {
            self.histogram.value_at_percentile(percentile)
        }
    }

    /// Count, mean, max, the summary percentiles and the `.hgrm` spectrum.
    #[must_use]
    pub fn summary(&self) -> Summary {
        summarize(&self.histogram)
    }

    /// The `.hgrm` text (see [`write_hgrm`]).
    #[must_use]
    pub fn hgrm(&self) -> String {
        write_hgrm(&self.histogram)
    }
}

/// One point of a percentile spectrum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// 0..=100.
    pub percentile: f64,
    pub value_ns: u64,
}

/// What JSON keeps of a histogram: enough to plot the spectrum and compare two runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub mean_ns: f64,
    pub min_ns: u64,
    pub max_ns: u64,
    /// At [`SUMMARY_PERCENTILES`].
    pub percentiles: Vec<Point>,
    /// The `.hgrm` rows (value iterated to, percentile iterated to), ascending.
    pub spectrum: Vec<Point>,
}

impl Summary {
    /// The summary value at `percentile`, if it is one of [`SUMMARY_PERCENTILES`].
    #[must_use]
    pub fn at(&self, percentile: f64) -> Option<u64> {
        self.percentiles
            .iter()
            .find(|p| (p.percentile - percentile).abs() < 1e-9)
            .map(|p| p.value_ns)
    }

    /// A summary of figures another module reported (p50, p99, … and max): no histogram, so the
    /// spectrum is those points alone.
    #[must_use]
    pub fn from_points(count: u64, points: &[(f64, u64)], max_ns: u64) -> Self {
        let percentiles: Vec<Point> = points
            .iter()
            .map(|&(percentile, value_ns)| Point {
                percentile,
                value_ns,
            })
            .collect();
        Self {
            count,
            mean_ns: 0.0,
            min_ns: percentiles.first().map_or(0, |p| p.value_ns),
            max_ns,
            spectrum: percentiles.clone(),
            percentiles,
        }
    }
}

/// Summarizes any histogram of nanoseconds.
#[must_use]
pub fn summarize(histogram: &Histogram<u64>) -> Summary {
    if histogram.is_empty() {
        return Summary {
            count: 0,
            mean_ns: 0.0,
            min_ns: 0,
            max_ns: 0,
            percentiles: Vec::new(),
            spectrum: Vec::new(),
        };
    }
    Summary {
        count: histogram.len(),
        mean_ns: histogram.mean(),
        min_ns: histogram.min(),
        max_ns: histogram.max(),
        percentiles: SUMMARY_PERCENTILES
            .iter()
            .map(|&percentile| Point {
                percentile,
                value_ns: histogram.value_at_percentile(percentile),
            })
            .collect(),
        spectrum: histogram
            .iter_quantiles(HGRM_TICKS_PER_HALF_DISTANCE)
            .map(|v| Point {
                percentile: v.quantile_iterated_to() * 100.0,
                value_ns: v.value_iterated_to(),
            })
            .collect(),
    }
}

/// HdrHistogram's `outputPercentileDistribution(out, 5, 1000.0)` text: a header, one row per
/// percentile step (value in µs, percentile as a fraction, cumulative count, 1/(1−percentile)),
/// the 100 % row without the last column, then the `#[Mean …]`, `#[Max …]` and `#[Buckets …]`
/// footer lines. HdrHistogram's plotter (and `hdr-plot`) read this form.
#[must_use]
pub fn write_hgrm(histogram: &Histogram<u64>) -> String {
    use std::fmt::Write as _;
    let digits = usize::from(SIGNIFICANT_DIGITS);
    let mut out = String::new();
    let _ = write!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    if !histogram.is_empty() {
        for v in histogram.iter_quantiles(HGRM_TICKS_PER_HALF_DISTANCE) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / HGRM_VALUE_SCALE;
            let quantile = v.quantile_iterated_to();
            if quantile < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:>12.digits$} {quantile:>2.12} {total:>10} {:>14.2}",
                    1.0 / (1.0 - quantile)
                );
            } else {
                let _ = writeln!(out, "{value:>12.digits$} {quantile:>2.12} {total:>10}");
            }
        }
    }
    let scale = |ns: f64| ns / HGRM_VALUE_SCALE;
    let (mean, stdev) = if histogram.is_empty() {
        (0.0, 0.0)
    } else {
        (scale(histogram.mean()), scale(histogram.stdev()))
    };
    let _ = writeln!(
        out,
        "#[Mean    = {mean:>12.digits$}, StdDeviation   = {stdev:>12.digits$}]"
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.digits$}, Total count    = {:>12}]",
        scale(histogram.max() as f64),
        histogram.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        histogram.buckets(),
        sub_bucket_count(SIGNIFICANT_DIGITS)
    );
    out
}

/// HdrHistogram's sub-bucket count for `digits` significant digits: the power of two at or above
/// 2·10^digits.
fn sub_bucket_count(digits: u8) -> u64 {
    (2 * 10u64.pow(u32::from(digits))).next_power_of_two()
}

/// Parses the rows of an `.hgrm` text back into (value, percentile as a fraction, total count);
/// the footer and the header are skipped. For tests and for `compare` on foreign files.
#[must_use]
pub fn parse_hgrm_rows(text: &str) -> Vec<(f64, f64, u64)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let value = fields.next()?.parse().ok()?;
            let percentile = fields.next()?.parse().ok()?;
            let total = fields.next()?.parse().ok()?;
            Some((value, percentile, total))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within HdrHistogram's precision at 3 digits (0.1 %), plus one for rounding at small values.
    fn near(got: u64, want: u64) -> bool {
        got.abs_diff(want) <= want / 1000 + 1
    }

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut recorder = Recorder::new();
        for ns in 1..=100_000u64 {
            recorder.record(ns);
        }
        let summary = recorder.summary();
        assert_eq!(summary.count, 100_000);
        for (percentile, want) in [
            (50.0, 50_000),
            (90.0, 90_000),
            (99.0, 99_000),
            (99.9, 99_900),
            (99.99, 99_990),
        ] {
            let got = summary.at(percentile).unwrap();
            assert!(near(got, want), "p{percentile}: {got}, want {want}");
        }
        assert!(near(summary.max_ns, 100_000));
        assert!(
            (summary.mean_ns - 50_000.5).abs() < 50.0,
            "{}",
            summary.mean_ns
        );
    }

    #[test]
    fn percentiles_of_a_two_point_distribution() {
        // 99 % at 1 µs, 1 % at 1 ms: p99 is still 1 µs, p99.5 is 1 ms.
        let mut recorder = Recorder::new();
        for i in 0..10_000u64 {
            recorder.record(if i % 100 == 0 { 1_000_000 } else { 1_000 });
        }
        assert!(near(recorder.value_at_percentile(99.0), 1_000));
        assert!(near(recorder.value_at_percentile(99.5), 1_000_000));
        assert!(near(recorder.value_at_percentile(50.0), 1_000));
    }

    /// The open-loop truth, by brute force: a single server with a fixed service time, requests
    /// due every `interval`; one stall holds the server for `stall`. Latency = completion − due.
    fn open_loop_model(
        requests: u64,
        interval: u64,
        service: u64,
        stall_at: u64,
        stall: u64,
    ) -> Vec<u64> {
        let mut free_at = 0u64;
        (0..requests)
            .map(|i| {
                let due = i * interval;
                let start = due.max(free_at);
                let took = if i == stall_at { stall } else { service };
                free_at = start + took;
                free_at - due
            })
            .collect()
    }

    #[test]
    fn correction_recovers_the_samples_a_stall_hid() {
        // A closed loop at one request per 100 µs, 50 ns each, with one 100 ms stall. The naive
        // histogram sees one slow sample out of 10 000: its p99 is 50 ns. The open-loop model of
        // the same system charges the stall to the 1000 requests due during it. (The service time
        // is short so that the queue behind the stall drains within one interval: the correction
        // assumes it does.)
        let (interval, service, stall, requests) = (100_000u64, 50u64, 100_000_000u64, 10_000u64);
        let mut naive = Recorder::new();
        let mut corrected = Recorder::new();
        for i in 0..requests {
            let latency = if i == 5_000 { stall } else { service };
            naive.record(latency);
            corrected.record_corrected(latency, interval);
        }
        let mut truth = Recorder::new();
        for latency in open_loop_model(requests + stall / interval, interval, service, 5_000, stall)
        {
            truth.record(latency);
        }
        assert!(near(naive.value_at_percentile(99.0), service));
        // The correction added the 999 samples the stall hid: 100 ms − k·100 µs for k = 1..999.
        assert_eq!(corrected.len(), requests + stall / interval - 1);
        assert!(
            corrected.value_at_percentile(99.0) > 100 * naive.value_at_percentile(99.0),
            "corrected p99 {}",
            corrected.value_at_percentile(99.0)
        );
        // It matches the open-loop model within a request interval at every high percentile.
        for percentile in [95.0, 99.0, 99.9] {
            let (c, t) = (
                corrected.value_at_percentile(percentile),
                truth.value_at_percentile(percentile),
            );
            assert!(
                c.abs_diff(t) <= interval + t / 1000,
                "p{percentile}: corrected {c}, open-loop model {t}"
            );
        }
    }

    #[test]
    fn open_loop_charges_from_the_intended_time() {
        let mut recorder = Recorder::new();
        recorder.record_open_loop(1_000, 6_000);
        recorder.record_open_loop(9_000, 8_000); // done before due: the minimum, not dropped
        assert_eq!(recorder.len(), 2);
        assert!(near(recorder.histogram().max(), 5_000));
        assert_eq!(recorder.histogram().min(), LATENCY_NS_MIN);
    }

    #[test]
    fn hgrm_has_the_hdrhistogram_layout() {
        let mut recorder = Recorder::new();
        for ns in 1..=10_000u64 {
            recorder.record(ns * 100);
        }
        let text = recorder.hgrm();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines.next().unwrap(), "");
        let rows = parse_hgrm_rows(&text);
        assert!(rows.len() > 50, "{} rows", rows.len());
        // Rows ascend in value, percentile and count; the last is 100 % with every sample.
        for pair in rows.windows(2) {
            assert!(pair[0].0 <= pair[1].0 && pair[0].1 <= pair[1].1 && pair[0].2 <= pair[1].2);
        }
        let last = rows.last().unwrap();
        assert_eq!((last.1, last.2), (1.0, 10_000));
        // Each row's value is the histogram's value at that percentile, in µs.
        for &(value_us, fraction, _) in &rows {
            let want = recorder.value_at_percentile(fraction * 100.0) as f64 / 1000.0;
            assert!(
                (value_us - want).abs() <= want / 1000.0 + 0.001,
                "{value_us} vs {want}"
            );
        }
        let last_row = text.lines().find(|l| l.contains("1.000000000000")).unwrap();
        assert_eq!(last_row.split_whitespace().count(), 3, "{last_row}");
        let footer: Vec<&str> = text.lines().filter(|l| l.starts_with("#[")).collect();
        assert_eq!(footer.len(), 3);
        assert!(footer[0].starts_with("#[Mean    = "), "{}", footer[0]);
        assert!(
            footer[1].contains("Total count    =        10000]"),
            "{}",
            footer[1]
        );
        assert!(
            footer[2].ends_with("SubBuckets     =         2048]"),
            "{}",
            footer[2]
        );
        // Mean 500 050 ns = 500.050 µs.
        assert!(footer[0].contains("500.0"), "{}", footer[0]);
    }

    #[test]
    fn summary_spectrum_matches_the_hgrm_rows() {
        let mut recorder = Recorder::new();
        for ns in [5u64, 50, 500, 5_000, 50_000] {
            for _ in 0..200 {
                recorder.record(ns);
            }
        }
        let rows = parse_hgrm_rows(&recorder.hgrm());
        let spectrum = recorder.summary().spectrum;
        assert_eq!(rows.len(), spectrum.len());
        for (row, point) in rows.iter().zip(&spectrum) {
            assert!((row.1 * 100.0 - point.percentile).abs() < 1e-6);
        }
    }
}
