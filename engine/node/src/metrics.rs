//! Prometheus text metrics on `GET /metrics` (any path answers the same), served by a thread of
//! its own that only reads the engine's atomic counters: nothing on the hot path waits for it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::Metrics;

/// The running endpoint.
#[derive(Debug)]
pub struct Server {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds and starts serving.
    pub fn start(address: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || serve(&listener, &metrics, &flag))?;
        Ok(Self {
            address,
            stop,
            thread: Some(thread),
        })
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

fn serve(listener: &TcpListener, metrics: &Metrics, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request);
                let body = render(metrics);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The metrics in Prometheus text format.
#[must_use]
pub fn render(metrics: &Metrics) -> String {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let written = load(&metrics.journal_written);
    let durable = load(&metrics.journal_durable);
    let rows: [(&str, &str, &str, u64); 13] = [
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
    out
}
