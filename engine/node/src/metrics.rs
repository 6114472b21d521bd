//! Prometheus text metrics on `GET /metrics` (any other GET answers the same), served by a thread
//! of its own that only reads the engine's atomic counters: nothing on the hot path waits for it.
//!
//! The same endpoint takes the admin commands of docs/replication.md: `POST /admin/handover` on a
//! primary (a planned hand-over to its standby, then stop), `POST /admin/promote` on a standby
//! (take over now), `GET /admin/status` on either (role, term, sequences). `GET /admin/ledger`
//! answers the posting ledger's digest, totals and moved balances as JSON (with `[ledger]`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::Metrics;

/// The running endpoint.
#[derive(Debug)]
pub struct Server {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    admin: Arc<Mutex<Option<Admin>>>,
}

/// What the admin commands act on: it changes when a standby is promoted.
#[derive(Debug, Clone)]
pub enum Admin {
    /// A primary: hand-over sets the replication's hand-over flag and stops the engine.
    Primary {
        /// The engine's stop flag.
        stop: Arc<AtomicBool>,
        /// Its replication state.
        replication: Arc<crate::replication::Shared>,
    },
    /// A standby: promote sets this flag.
    Standby {
        /// The standby's promote flag.
        promote: Arc<AtomicBool>,
    },
}

impl Server {
    /// Binds and starts serving.
    pub fn start(address: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let admin = Arc::new(Mutex::new(None));
        let commands = Arc::clone(&admin);
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || serve(&listener, &metrics, &flag, &commands))?;
        Ok(Self {
            address,
            stop,
            thread: Some(thread),
            admin,
        })
    }

    /// Routes the admin commands to `admin` from now on.
    pub fn serve_admin(&self, admin: Admin) {
        if let Ok(mut slot) = self.admin.lock() {
            *slot = Some(admin);
        }
    }

    /// The bound address.
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops the thread.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    listener: &TcpListener,
    metrics: &Metrics,
    stop: &AtomicBool,
    admin: &Mutex<Option<Admin>>,
) {
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
                let mut request = [0u8; 1024];
                let n = stream.read(&mut request).unwrap_or(0);
                let line = std::str::from_utf8(&request[..n])
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("");
                let admin = admin.lock().ok().and_then(|a| a.clone());
                let (status, body) = answer(line, metrics, admin.as_ref());
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The answer to one request line: (status, body).
fn answer(line: &str, metrics: &Metrics, admin: Option<&Admin>) -> (&'static str, String) {
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("");
    match (method, path, admin) {
        ("POST", "/admin/handover", Some(Admin::Primary { stop, .. })) => {
            // A graceful stop hands over to the attached standby.
            stop.store(true, Ordering::Release);
            (
                "200 OK",
                "handing over to the standby, then stopping\n".into(),
            )
        }
        ("POST", "/admin/snapshot", Some(Admin::Primary { .. })) => {
            metrics.snapshot_requested.store(true, Ordering::Release);
            (
                "200 OK",
                "a snapshot as of the last sequenced input is being taken\n".into(),
            )
        }
        ("POST", "/admin/promote", Some(Admin::Standby { promote })) => {
            promote.store(true, Ordering::Release);
            ("200 OK", "promoting\n".into())
        }
        ("POST", _, _) => (
            "409 Conflict",
            format!("{path} does not apply to this engine's role\n"),
        ),
        ("GET", "/admin/ledger", _) => match metrics.posting.get() {
            Some(shared) => ("200 OK", crate::posting::admin_json(shared)),
            None => (
                "404 Not Found",
                "no [ledger] section: posting is off\n".into(),
            ),
        },
        ("GET", "/admin/status", _) => {
            let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            let role = match load(&metrics.role) {
                0 => "standby",
                1 => "primary",
                _ => "fenced",
            };
            (
                "200 OK",
                format!(
                    "role {role}\nterm {}\njournal_written {}\nstandby_applied {}\ndivergences {}\n",
                    load(&metrics.term),
                    load(&metrics.journal_written),
                    load(&metrics.standby_applied),
                    load(&metrics.divergences),
                ),
            )
        }
        _ => ("200 OK", render(metrics)),
    }
}

/// Latency of one stage in power-of-two buckets of nanoseconds: one Relaxed add per event on the
/// stage's own thread (no histogram walk, no pause), rendered as a Prometheus histogram that
/// `histogram_quantile()` reads.
#[derive(Debug)]
pub struct StageLatency {
    /// `buckets[i]` counts values in `[2^(i-1), 2^i)` ns (`buckets[0]`: 0).
    buckets: [std::sync::atomic::AtomicU64; 40],
    sum: std::sync::atomic::AtomicU64,
}

impl Default for StageLatency {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| std::sync::atomic::AtomicU64::new(0)),
            sum: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl StageLatency {
    /// Counts one latency.
    pub fn record(&self, ns: u64) {
        let index = ((64 - ns.leading_zeros()) as usize).min(self.buckets.len() - 1);
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(ns, Ordering::Relaxed);
    }

    /// Samples counted.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Appends the Prometheus histogram series of `stage` (cumulative buckets, seconds).
    fn render(&self, stage: &str, out: &mut String) {
        let mut cumulative = 0u64;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            if i + 1 < self.buckets.len() {
                // Bucket i holds values below 2^i ns.
                let le = (1u64 << i) as f64 / 1e9;
                out.push_str(&format!(
                    "sequent_stage_latency_seconds_bucket{{stage=\"{stage}\",le=\"{le:e}\"}} {cumulative}\n"
                ));
            }
        }
        out.push_str(&format!(
            "sequent_stage_latency_seconds_bucket{{stage=\"{stage}\",le=\"+Inf\"}} {cumulative}\n\
             sequent_stage_latency_seconds_sum{{stage=\"{stage}\"}} {:e}\n\
             sequent_stage_latency_seconds_count{{stage=\"{stage}\"}} {cumulative}\n",
            self.sum.load(Ordering::Relaxed) as f64 / 1e9
        ));
    }
}

/// The metrics in Prometheus text format.
#[must_use]
pub fn render(metrics: &Metrics) -> String {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let written = load(&metrics.journal_written);
    let durable = load(&metrics.journal_durable);
    let replication = metrics.replication.get();
    let shared = |f: fn(&crate::replication::Shared) -> u64| replication.map_or(0, |r| f(r));
    let rows: [(&str, &str, &str, u64); 26] = [
        (
            "sequent_role",
            "gauge",
            "0 standby, 1 primary, 2 fenced",
            load(&metrics.role),
        ),
        (
            "sequent_term",
            "gauge",
            "the replication term this engine serves or follows",
            load(&metrics.term),
        ),
        (
            "sequent_standby_attached",
            "gauge",
            "1 while a standby is attached to this primary",
            shared(|r| u64::from(r.attached.load(Ordering::Relaxed))),
        ),
        (
            "sequent_standby_acked_sequence",
            "gauge",
            "last sequence the standby has written",
            shared(|r| r.standby_acked.load(Ordering::Relaxed)),
        ),
        (
            "sequent_replication_degraded",
            "gauge",
            "ALARM when 1: replies go out without the standby's acknowledgement",
            shared(|r| u64::from(r.degraded.load(Ordering::Relaxed) && r.standby_ack)),
        ),
        (
            "sequent_fenced",
            "gauge",
            "ALARM when 1: a later term replaced this engine",
            shared(|r| u64::from(r.fenced.load(Ordering::Relaxed))),
        ),
        (
            "sequent_replication_divergence_total",
            "counter",
            "ALARM when above 0: digest checkpoints where primary and standby differ",
            load(&metrics.divergences) + shared(|r| r.divergences.load(Ordering::Relaxed)),
        ),
        (
            "sequent_standby_applied_sequence",
            "gauge",
            "standby: last replicated sequence written and applied",
            load(&metrics.standby_applied),
        ),
        (
            "sequent_standby_lag",
            "gauge",
            "standby: records the primary has that this standby has not applied",
            load(&metrics.standby_lag),
        ),
        (
            "sequent_standby_digests_checked_total",
            "counter",
            "standby: digest checkpoints compared with the primary's",
            load(&metrics.digests_checked),
        ),
        (
            "sequent_replies_fenced_total",
            "counter",
            "replies dropped because this engine was fenced",
            load(&metrics.replies_fenced),
        ),
        (
            "sequent_inputs_total",
            "counter",
            "inputs sequenced by the gateway",
            load(&metrics.inputs),
        ),
        (
            "sequent_applied_total",
            "counter",
            "sequenced client messages applied",
            load(&metrics.applied),
        ),
        (
            "sequent_duplicates_total",
            "counter",
            "resent messages recognised and not applied again",
            load(&metrics.duplicates),
        ),
        (
            "sequent_session_rejects_total",
            "counter",
            "session rejects from the core",
            load(&metrics.session_rejects),
        ),
        (
            "sequent_replies_resent_total",
            "counter",
            "order replies resent on login",
            load(&metrics.replies_resent),
        ),
        (
            "sequent_resend_gaps_total",
            "counter",
            "resend requests that reached back past the history (answered with a gap)",
            load(&metrics.resend_gaps),
        ),
        (
            "sequent_bad_frames_total",
            "counter",
            "frames that failed to decode",
            load(&metrics.bad_frames),
        ),
        (
            "sequent_replies_total",
            "counter",
            "replies written to sessions",
            load(&metrics.replies),
        ),
        (
            "sequent_replies_dropped_total",
            "counter",
            "replies whose connection had gone",
            load(&metrics.replies_dropped),
        ),
        (
            "sequent_replies_held",
            "gauge",
            "replies waiting for their input to be durable",
            load(&metrics.replies_held),
        ),
        (
            "sequent_connections",
            "gauge",
            "open order-entry connections",
            load(&metrics.connections),
        ),
        (
            "sequent_connections_total",
            "counter",
            "connections accepted",
            load(&metrics.connections_total),
        ),
        (
            "sequent_journal_written_sequence",
            "gauge",
            "last journal sequence appended",
            written,
        ),
        (
            "sequent_journal_durable_sequence",
            "gauge",
            "last journal sequence on disk",
            durable,
        ),
        (
            "sequent_journal_durable_lag",
            "gauge",
            "records appended but not yet on disk",
            written.saturating_sub(durable),
        ),
    ];
    let mut out = String::new();
    let gauges: [(&str, &str, u64); 8] = [
        (
            "sequent_snapshots_written",
            "snapshots written since start",
            load(&metrics.snapshots_written),
        ),
        (
            "sequent_snapshot_sequence",
            "sequence of the last snapshot written",
            load(&metrics.snapshot_sequence),
        ),
        (
            "sequent_snapshot_pause_ns_last",
            "how long the core paused for the last snapshot, ns",
            load(&metrics.snapshot_pause_ns_last),
        ),
        (
            "sequent_snapshot_pause_ns_max",
            "the longest snapshot pause of the core, ns",
            load(&metrics.snapshot_pause_ns_max),
        ),
        (
            "sequent_input_ring_fill",
            "inputs waiting in the input ring (gateway → journal ∥ core)",
            load(&metrics.input_ring_fill),
        ),
        (
            "sequent_input_ring_fill_max",
            "most inputs ever waiting in the input ring",
            load(&metrics.input_ring_fill_max),
        ),
        (
            "sequent_output_ring_fill",
            "outputs waiting in the output ring (core → gateway)",
            load(&metrics.output_ring_fill),
        ),
        (
            "sequent_output_ring_fill_max",
            "most outputs ever waiting in the output ring",
            load(&metrics.output_ring_fill_max),
        ),
    ];
    for (name, help, value) in gauges {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
        ));
    }
    out.push_str(
        "# HELP sequent_stage_latency_seconds time from the sequencer's stamp to each stage: journal (appended), core (applied), release (reply handed to its connection, after the durability and standby holds)\n\
         # TYPE sequent_stage_latency_seconds histogram\n",
    );
    metrics.latency_journal.render("journal", &mut out);
    metrics.latency_core.render("core", &mut out);
    metrics.latency_release.render("release", &mut out);
    for (name, kind, help, value) in rows {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    }
    out.push_str(
        "# HELP sequent_market_messages_total market-data messages produced by the core\n\
         # TYPE sequent_market_messages_total counter\n",
    );
    out.push_str(&format!(
        "sequent_market_messages_total {}\n",
        load(&metrics.market_messages)
    ));
    out.push_str(
        "# HELP sequent_order_rejects_total orders rejected, by reason\n\
         # TYPE sequent_order_rejects_total counter\n",
    );
    for ((_, reason), count) in crate::core::REJECT_REASONS.iter().zip(&metrics.rejects) {
        out.push_str(&format!(
            "sequent_order_rejects_total{{reason=\"{reason}\"}} {}\n",
            load(count)
        ));
    }
    if let Some(posting) = metrics.posting.get() {
        crate::posting::render(posting, load(&metrics.output_published), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_latency_buckets_are_cumulative_powers_of_two() {
        let latency = StageLatency::default();
        for ns in [0, 1, 3, 1_000, 1_023, 1_024, 5_000_000] {
            latency.record(ns);
        }
        assert_eq!(latency.count(), 7);
        let mut out = String::new();
        latency.render("core", &mut out);
        let bucket = |le: &str| -> u64 {
            let prefix =
                format!("sequent_stage_latency_seconds_bucket{{stage=\"core\",le=\"{le}\"}} ");
            out.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("no bucket {le} in\n{out}"))
                .parse()
                .unwrap()
        };
        // le = 2^i ns in seconds: 1 ns holds {0}; 2 ns adds 1; 4 ns adds 3; 1024 ns adds 1000 and
        // 1023 but not 1024 (values below 2^i go in bucket i).
        assert_eq!(bucket("1e-9"), 1);
        assert_eq!(bucket("2e-9"), 2);
        assert_eq!(bucket("4e-9"), 3);
        assert_eq!(bucket("1.024e-6"), 5);
        assert_eq!(bucket("2.048e-6"), 6);
        assert_eq!(bucket("+Inf"), 7);
        assert!(out.contains("sequent_stage_latency_seconds_count{stage=\"core\"} 7"));
    }
}

#[cfg(test)]
mod dashboard {
    /// docs/grafana/sequent-engine.json queries only metrics the engine renders: a renamed metric
    /// cannot leave the dashboard silently empty.
    #[test]
    fn the_grafana_dashboard_queries_only_rendered_metrics() {
        let dashboard = include_str!("../../../docs/grafana/sequent-engine.json");
        let rendered = super::render(&crate::engine::Metrics::default());
        let mut names: Vec<&str> = Vec::new();
        let mut rest = dashboard;
        while let Some(at) = rest.find("sequent_") {
            let name: &str = rest[at..]
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
                .unwrap_or("");
            names.push(name);
            rest = &rest[at + name.len()..];
        }
        assert!(
            names.len() > 20,
            "the dashboard names too few metrics: {names:?}"
        );
        for name in names {
            assert!(
                rendered.lines().any(|l| {
                    l.strip_prefix(name)
                        .is_some_and(|tail| tail.starts_with(' ') || tail.starts_with('{'))
                }),
                "the dashboard queries {name}, which the engine does not render"
            );
        }
    }
}
