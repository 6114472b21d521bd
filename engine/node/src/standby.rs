//! The hot standby (docs/replication.md): follows a primary's journal stream, writes every record
//! to its own journal, applies it to its own core, acknowledges what it has written, compares
//! digests at the checkpoints, and takes over when the primary dies (or on a hand-over, or on an
//! admin command).
//!
//! One thread does it all, in record order: read a frame, append, apply. A standby that starts
//! late or falls behind is served from the primary's journal files by the same stream (the
//! primary's tailing reader), so catching up and following live are one path with no seam.

use std::collections::VecDeque;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::config::EngineConfig;
use crate::engine::{Engine, Metrics, NodeState};
use crate::replication::{FrameReader, Received, RefuseReason, ToPrimary, ToStandby, VERSION};

/// A running standby.
#[derive(Debug)]
pub struct Standby {
    stop: Arc<AtomicBool>,
    promote: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    thread: Option<JoinHandle<anyhow::Result<Option<Engine>>>>,
    metrics_address: Option<SocketAddr>,
}

/// Why the standby took over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takeover {
    /// The primary handed over (a planned stop).
    HandOver,
    /// The primary's connection closed and it could not be reached again.
    PrimaryGone,
    /// No message within the heartbeat timeout.
    HeartbeatTimeout,
    /// The admin command.
    Admin,
}

impl Standby {
    /// Recovers the standby's own journal and starts following the primary whose replication
    /// endpoint is `primary`.
    pub fn start(config: &EngineConfig, primary: SocketAddr) -> anyhow::Result<Self> {
        config.check()?;
        let metrics = Arc::new(Metrics::default());
        let stop = Arc::new(AtomicBool::new(false));
        let promote = Arc::new(AtomicBool::new(false));
        let metrics_server = match config.metrics.listen {
            Some(address) => {
                let server = crate::metrics::Server::start(address, Arc::clone(&metrics))?;
                server.serve_admin(crate::metrics::Admin::Standby {
                    promote: Arc::clone(&promote),
                });
                Some(server)
            }
            None => None,
        };
        let metrics_address = metrics_server.as_ref().map(crate::metrics::Server::address);
        let node = NodeState::recover(config)?;
        metrics.role.store(0, Ordering::Relaxed);
        metrics.term.store(node.position.term, Ordering::Relaxed);
        let mut follower = Follower {
            config: config.clone(),
            primary,
            node: Some(node),
            metrics: Arc::clone(&metrics),
            metrics_server,
            stop: Arc::clone(&stop),
            promote: Arc::clone(&promote),
            checkpoints: VecDeque::with_capacity(256),
            digest_every: config.replication.digest_every,
            diverged: false,
            attached_once: false,
        };
        let thread = std::thread::Builder::new()
            .name("standby".into())
            .spawn(move || follower.run())?;
        Ok(Self {
            stop,
            promote,
            metrics,
            thread: Some(thread),
            metrics_address,
        })
    }

    /// Live counters (`standby_applied`, `standby_lag`, `digests_checked`, `divergences`).
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The metrics (and admin) address, when configured.
    #[must_use]
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_address
    }

    /// A flag that stops the standby when set (for signal handlers).
    #[must_use]
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Takes over now (what `POST /admin/promote` does).
    pub fn promote(&self) {
        self.promote.store(true, Ordering::Release);
    }

    /// Whether the standby's thread has finished (promoted, stopped or failed).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits until the standby has taken over (`Some(engine)`, now primary) or stopped (`None`).
    pub fn wait(mut self) -> anyhow::Result<Option<Engine>> {
        let Some(thread) = self.thread.take() else {
            return Ok(None);
        };
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("the standby thread panicked"))?
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Follower {
    config: EngineConfig,
    primary: SocketAddr,
    node: Option<NodeState>,
    metrics: Arc<Metrics>,
    metrics_server: Option<crate::metrics::Server>,
    stop: Arc<AtomicBool>,
    promote: Arc<AtomicBool>,
    /// This standby's digests at recent checkpoints, oldest first.
    checkpoints: VecDeque<(u64, u64)>,
    digest_every: u64,
    /// A checkpoint differed: this standby must not take over by itself.
    diverged: bool,
    /// Whether it has been attached to the primary in this run (a standby never takes over from
    /// a primary it has never seen).
    attached_once: bool,
}

/// How one session with the primary ended.
enum Ended {
    Stop,
    Takeover(Takeover),
    /// The connection went; try again.
    Lost,
    Refused(RefuseReason, u64),
}

impl Follower {
    fn run(&mut self) -> anyhow::Result<Option<Engine>> {
        let timeout = Duration::from_millis(self.config.replication.heartbeat_timeout_ms);
        let mut lost_since: Option<Instant> = None;
        loop {
            if self.stop.load(Ordering::Acquire) {
                return Ok(None);
            }
            if self.promote.load(Ordering::Acquire) {
                return self.take_over(Takeover::Admin).map(Some);
            }
            let ended = match TcpStream::connect_timeout(&self.primary, timeout) {
                Ok(stream) => {
                    lost_since = None;
                    self.session(stream)?
                }
                Err(error) => {
                    if self.attached_once && self.config.replication.auto_promote && !self.diverged
                    {
                        // The primary's endpoint is gone: it died (a process that lives answers).
                        tracing::warn!(
                            "standby: the primary at {} is unreachable ({error})",
                            self.primary
                        );
                        return self.take_over(Takeover::PrimaryGone).map(Some);
                    }
                    if lost_since.is_none() {
                        tracing::info!(
                            "standby: waiting for the primary at {} ({error})",
                            self.primary
                        );
                        lost_since = Some(Instant::now());
                    }
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            };
            match ended {
                Ended::Stop => return Ok(None),
                Ended::Takeover(why) => return self.take_over(why).map(Some),
                Ended::Lost => {}
                Ended::Refused(RefuseReason::Diverged, sequence) => {
                    self.archive_diverged(sequence)?;
                }
                Ended::Refused(reason, sequence) => bail!(
                    "the primary at {} refused this standby: {reason:?} at sequence {sequence}",
                    self.primary
                ),
            }
        }
    }

    /// One connection to the primary: Hello, then records until it ends.
    fn session(&mut self, stream: TcpStream) -> anyhow::Result<Ended> {
        let replication = self.config.replication;
        let timeout = Duration::from_millis(replication.heartbeat_timeout_ms);
        let tick = timeout.min(Duration::from_millis(10));
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(tick))?;
        let mut writer = stream.try_clone()?;
        let node = self.node.as_mut().context("no state")?;
        let mut out = Vec::with_capacity(64);
        ToPrimary::Hello {
            version: VERSION,
            position: node.position,
        }
        .encode(&mut out);
        writer.write_all(&out)?;
        let mut reader = FrameReader::new(stream);
        let mut last_message = Instant::now();
        let mut welcomed = false;
        // Room for a login's whole resend on top of a busy input, as in the core stage.
        let mut scratch = Vec::with_capacity(4096 + self.config.sessions.resend_history as usize);
        let mut acked = 0u64;
        loop {
            if self.stop.load(Ordering::Acquire) {
                return Ok(Ended::Stop);
            }
            if self.promote.load(Ordering::Acquire) {
                return Ok(Ended::Takeover(Takeover::Admin));
            }
            let body = match reader.next_frame() {
                Ok(Received::Frame(body)) => body,
                Ok(Received::Timeout) => {
                    if welcomed
                        && last_message.elapsed() >= timeout
                        && replication.auto_promote
                        && !self.diverged
                    {
                        tracing::warn!(
                            "standby: no word from the primary for {} ms",
                            replication.heartbeat_timeout_ms
                        );
                        return Ok(Ended::Takeover(Takeover::HeartbeatTimeout));
                    }
                    continue;
                }
                Ok(Received::Closed) | Err(_) => return Ok(Ended::Lost),
            };
            last_message = Instant::now();
            let node = self.node.as_mut().context("no state")?;
            match ToStandby::decode(body) {
                Ok(ToStandby::Welcome {
                    term,
                    first,
                    digest_every,
                }) => {
                    if first != node.position.next_sequence {
                        bail!(
                            "the primary starts its stream at {first}, this journal continues at {}",
                            node.position.next_sequence
                        );
                    }
                    welcomed = true;
                    self.attached_once = true;
                    self.digest_every = digest_every.max(1);
                    self.metrics.term.store(term, Ordering::Relaxed);
                    tracing::info!(
                        "standby: following the primary at {} (term {term}) from sequence {first}",
                        self.primary
                    );
                }
                Ok(ToStandby::Refuse { reason, sequence }) => {
                    return Ok(Ended::Refused(reason, sequence));
                }
                Ok(ToStandby::Record {
                    sequence,
                    timestamp_ns,
                    kind,
                    payload,
                }) => {
                    if !welcomed {
                        bail!("the primary sent record {sequence} before its welcome");
                    }
                    if sequence != node.position.next_sequence {
                        tracing::warn!(
                            "standby: record {sequence} arrived where {} was due; reconnecting",
                            node.position.next_sequence
                        );
                        return Ok(Ended::Lost);
                    }
                    node.apply_record(sequence, timestamp_ns, kind, payload, &mut scratch)?;
                    if let Some(term) = crate::record::restart_term(kind, payload) {
                        self.metrics.term.store(term, Ordering::Relaxed);
                    }
                    if sequence % self.digest_every == 0 {
                        if self.checkpoints.len() == 256 {
                            self.checkpoints.pop_front();
                        }
                        self.checkpoints
                            .push_back((sequence, node.core.state_digest()));
                    }
                    self.metrics
                        .standby_applied
                        .store(sequence, Ordering::Relaxed);
                }
                Ok(ToStandby::Heartbeat { written }) => {
                    self.metrics.standby_lag.store(
                        written.saturating_sub(node.position.next_sequence - 1),
                        Ordering::Relaxed,
                    );
                }
                Ok(ToStandby::Digest { sequence, digest }) => {
                    self.check_digest(sequence, digest, &mut writer);
                }
                Ok(ToStandby::HandOver { last }) => {
                    let applied = node.position.next_sequence - 1;
                    if applied == last {
                        out.clear();
                        ToPrimary::Ack { sequence: applied }.encode(&mut out);
                        let _ = writer.write_all(&out);
                        tracing::info!("standby: the primary handed over at {last}");
                        return Ok(Ended::Takeover(Takeover::HandOver));
                    }
                    bail!("the primary handed over at {last} but this standby applied {applied}");
                }
                Ok(ToStandby::Status { .. }) => {}
                Err(error) => {
                    tracing::warn!("standby: {error}; reconnecting");
                    return Ok(Ended::Lost);
                }
            }
            // Acknowledge once the frames that have arrived are all applied.
            let node = self.node.as_ref().context("no state")?;
            let applied = node.position.next_sequence - 1;
            if !reader.has_frame() && applied > acked && welcomed {
                out.clear();
                ToPrimary::Ack { sequence: applied }.encode(&mut out);
                if writer.write_all(&out).is_err() {
                    return Ok(Ended::Lost);
                }
                acked = applied;
            }
        }
    }

    fn check_digest(&mut self, sequence: u64, primary: u64, writer: &mut TcpStream) {
        let Some(&(_, standby)) = self.checkpoints.iter().find(|(s, _)| *s == sequence) else {
            return;
        };
        self.metrics.digests_checked.fetch_add(1, Ordering::Relaxed);
        if standby != primary {
            self.diverged = true;
            self.metrics.divergences.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                "ALARM standby: state differs from the primary's at sequence {sequence}: primary {primary:016x}, standby {standby:016x}; this standby will not take over by itself"
            );
            let mut out = Vec::new();
            ToPrimary::Diverged {
                sequence,
                primary,
                standby,
            }
            .encode(&mut out);
            let _ = writer.write_all(&out);
        }
    }

    /// The journal holds records the primary never had (an old primary coming back): move it
    /// aside, never merge it, and start again from an empty journal.
    fn archive_diverged(&mut self, sequence: u64) -> anyhow::Result<()> {
        let node = self.node.take().context("no state")?;
        let held = node.position.next_sequence - 1;
        drop(node);
        let dir = self.config.journal.dir.clone();
        let archive = archive_name(&dir);
        std::fs::rename(&dir, &archive)
            .with_context(|| format!("cannot move the diverged journal {} aside", dir.display()))?;
        tracing::warn!(
            "standby: this journal ({held} records) diverged from the primary's at sequence {sequence}; moved to {} and starting again from the primary's history",
            archive.display()
        );
        self.checkpoints.clear();
        self.node = Some(NodeState::recover(&self.config)?);
        Ok(())
    }

    fn take_over(&mut self, why: Takeover) -> anyhow::Result<Engine> {
        let node = self.node.take().context("no state")?;
        let term = node.position.term + 1;
        let applied = node.position.next_sequence - 1;
        let started = Instant::now();
        let engine = Engine::launch(
            &self.config,
            node,
            term,
            Arc::clone(&self.metrics),
            self.metrics_server.take(),
            true,
        )?;
        tracing::info!(
            "standby: took over ({why:?}) in term {term} after sequence {applied}; serving in {} µs",
            started.elapsed().as_micros()
        );
        Ok(engine)
    }
}

fn archive_name(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map_or_else(|| "journal".into(), |n| n.to_string_lossy().into_owned());
    let parent = dir.parent().unwrap_or_else(|| Path::new("."));
    (1..)
        .map(|n| parent.join(format!("{name}.diverged-{n}")))
        .find(|p| !p.exists())
        .expect("some name is free")
}
