//! The running engine: recovery by replay, the two rings, the journal and core stages, and the
//! gateway thread.
//!
//! ```text
//! gateway (mio, sequencer) → input ring → ┬ journal writer          (appends every input)
//!                                         └ core (sessions, throttle, matching) → output ring
//! output ring → gateway (held until the journal's durable sequence passes the input, by config)
//!             → replies written to the sessions' sockets
//! ```
//!
//! Every input gets its journal sequence and timestamp exactly once, in the gateway, which is the
//! input ring's only producer. Recovery replays the journal into a fresh core before the gateway
//! opens, then journals a restart marker so that sessions logged in before the restart are logged
//! out in every later replay too.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use sequent_journal::{DurableWatch, Reader, Writer};
use sequent_matching::VenueConfig;
use sequent_ring::{
    EventHandler, EventPoller, PollState, Producer, SingleProducer, TryPublishError,
    build_single_producer,
};

use crate::config::EngineConfig;
use crate::core::{ConnectionId, Core, CoreConfig, Input, Output};
use crate::protocol::{
    Decoded, EngineMessage, FRAME_LEN_MAX, HEADER_LEN, SessionRejectBody, decode_client,
    encode_engine,
};
use crate::record::{self, PAYLOAD_LEN_MAX};

/// Counters the metrics endpoint reads. Written with Relaxed stores by the stage that owns each.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Inputs sequenced by the gateway.
    pub inputs: AtomicU64,
    /// Replies written to sockets.
    pub replies: AtomicU64,
    /// Replies dropped because their connection had gone.
    pub replies_dropped: AtomicU64,
    /// Frames that failed to decode.
    pub bad_frames: AtomicU64,
    /// Connections open.
    pub connections: AtomicU64,
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// Sequenced messages applied by the core.
    pub applied: AtomicU64,
    /// Resends recognised and ignored.
    pub duplicates: AtomicU64,
    /// Session rejects from the core.
    pub session_rejects: AtomicU64,
    /// Order replies resent on login.
    pub replies_resent: AtomicU64,
    /// Resend requests answered with a gap (they reached back past the history).
    pub resend_gaps: AtomicU64,
    /// Last journal sequence appended.
    pub journal_written: AtomicU64,
    /// Last journal sequence durable.
    pub journal_durable: AtomicU64,
    /// Replies waiting for durability.
    pub replies_held: AtomicU64,
    /// Market-data messages produced by the core.
    pub market_messages: AtomicU64,
    /// Order rejects by reason (`core::REJECT_REASONS`).
    pub rejects: [AtomicU64; crate::core::REJECT_REASONS.len()],
    /// The core's `state_digest()` when its stage stopped (0 while running).
    pub final_digest: AtomicU64,
    /// 0 standby, 1 primary, 2 fenced.
    pub role: AtomicU64,
    /// The term served (primary) or followed (standby).
    pub term: AtomicU64,
    /// Replies dropped because the engine was fenced.
    pub replies_fenced: AtomicU64,
    /// Standby: the last replicated sequence written and applied.
    pub standby_applied: AtomicU64,
    /// Standby: records the primary has that the standby has not applied.
    pub standby_lag: AtomicU64,
    /// Standby: digest checkpoints compared.
    pub digests_checked: AtomicU64,
    /// Standby: digest checkpoints that differed (an alarm).
    pub divergences: AtomicU64,
    /// The primary's replication state, once it serves.
    pub replication: std::sync::OnceLock<Arc<crate::replication::Shared>>,
    /// Sequencer stamp → appended to the journal.
    pub latency_journal: crate::metrics::StageLatency,
    /// Sequencer stamp → applied by the core.
    pub latency_core: crate::metrics::StageLatency,
    /// Sequencer stamp → reply released to its connection (after the durability and standby
    /// holds).
    pub latency_release: crate::metrics::StageLatency,
    /// Inputs waiting in the input ring, seen by the gateway (and the most seen).
    pub input_ring_fill: AtomicU64,
    /// The most inputs ever waiting in the input ring.
    pub input_ring_fill_max: AtomicU64,
    /// Outputs waiting in the output ring, seen by the core (and the most seen).
    pub output_ring_fill: AtomicU64,
    /// The most outputs ever waiting in the output ring.
    pub output_ring_fill_max: AtomicU64,
    /// Snapshots written.
    pub snapshots_written: AtomicU64,
    /// The sequence of the last snapshot written.
    pub snapshot_sequence: AtomicU64,
    /// How long the core stage paused for the last snapshot (serialising it), ns.
    pub snapshot_pause_ns_last: AtomicU64,
    /// The longest such pause, ns.
    pub snapshot_pause_ns_max: AtomicU64,
    /// Asks the gateway for a snapshot at the next turn of its loop (the admin command).
    pub snapshot_requested: AtomicBool,
    /// Output-ring slots the core has published (the posting stage's lag is measured from it).
    pub output_published: AtomicU64,
    /// The ledger posting hook's counters and ledger, when `[ledger]` is configured.
    pub posting: std::sync::OnceLock<Arc<crate::posting::Shared>>,
}

/// A slot of the input ring.
#[derive(Debug, Clone, Copy)]
struct InputSlot {
    journal_sequence: u64,
    ts: u64,
    input: Input,
    /// The gateway's last input: not journaled, tells the core to close the output ring.
    last: bool,
    /// A control slot, not journaled and not applied: the core snapshots its state as of
    /// `journal_sequence` (every input up to it is applied, by ring order).
    snapshot: bool,
}

impl Default for InputSlot {
    fn default() -> Self {
        Self {
            journal_sequence: 0,
            ts: 0,
            input: Input::EndOfDay,
            last: false,
            snapshot: false,
        }
    }
}

/// A slot of the output ring.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutputSlot {
    pub(crate) input_sequence: u64,
    /// The sequencer's timestamp of the input that caused it.
    pub(crate) input_ts: u64,
    pub(crate) output: Output,
    pub(crate) last: bool,
}

impl Default for OutputSlot {
    fn default() -> Self {
        Self {
            input_sequence: 0,
            input_ts: 0,
            output: Output::Disconnect { connection: 0 },
            last: false,
        }
    }
}

/// What recovery found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Journal records replayed.
    pub replayed: u64,
    /// The last journal sequence applied (0 for a new journal).
    pub sequence: u64,
    /// The core's digest after replay.
    pub digest: u64,
    /// The sequence of the snapshot recovery started from (0: none, the whole journal replayed).
    pub snapshot: u64,
    /// Market-data messages the recovered state has produced (the feed resumes after them).
    pub feed_messages: u64,
    /// `Books::digest()` of the feed's books in the recovered state.
    pub books_digest: [u8; 32],
}

/// A running engine.
#[derive(Debug)]
pub struct Engine {
    address: SocketAddr,
    recovered: Recovered,
    stop: Arc<AtomicBool>,
    gateway: Option<JoinHandle<anyhow::Result<u64>>>,
    metrics: Arc<Metrics>,
    metrics_server: Option<crate::metrics::Server>,
    feed_addresses: Option<(SocketAddr, SocketAddr)>,
    replication: Arc<crate::replication::Shared>,
    replication_server: Option<crate::replication::Server>,
    term: u64,
    snapshot_writer: Option<JoinHandle<()>>,
}

impl Engine {
    /// Recovers from the journal, starts the stages and opens the gateway. With
    /// `[replication] peer` set, first asks the peer whether it has taken over: an engine whose
    /// peer is primary refuses to start (it must come back as a standby).
    pub fn start(config: &EngineConfig) -> anyhow::Result<Self> {
        config.check()?;
        if let Some(peer) = config.replication.peer {
            let timeout = Duration::from_millis(config.replication.heartbeat_timeout_ms);
            if let Some((role, term, next)) = crate::replication::probe(peer, timeout) {
                if role == crate::replication::Role::Primary {
                    bail!(
                        "fenced: the peer {peer} is primary in term {term} at sequence {next}; \
                         start this engine with --standby --primary {peer}"
                    );
                }
            }
        }
        let node = NodeState::recover(config)?;
        let term = node.position.term + 1;
        Self::launch(
            config,
            node,
            term,
            Arc::new(Metrics::default()),
            None,
            false,
        )
    }

    /// Starts a recovered (or promoted) node in `term`: journals the restart marker, opens the
    /// feed, the rings, the gateway and the replication endpoint.
    pub(crate) fn launch(
        config: &EngineConfig,
        node: NodeState,
        term: u64,
        metrics: Arc<Metrics>,
        metrics_server: Option<crate::metrics::Server>,
        promoted: bool,
    ) -> anyhow::Result<Self> {
        let NodeState {
            mut core,
            mut writer,
            feed: feed_state,
            recovered,
            position: _,
            posting,
        } = node;
        // The restart marker: sessions logged in before are logged out, now and in every replay.
        let mut scratch = Vec::new();
        let restart_ts = now_ns().max(last_ts(&config.journal.dir, recovered.sequence));
        let mut payload = [0u8; PAYLOAD_LEN_MAX];
        let (kind, len) = record::encode_restart(term, &mut payload);
        let restart_sequence = writer.append(kind, restart_ts, &payload[..len])?;
        core.apply(restart_ts, &Input::Restart, &mut scratch);
        let epoch = restart_sequence; // unique per start: connection ids never repeat
        let feed_messages = feed_state.messages
            + scratch
                .iter()
                .filter(|o| matches!(o, Output::Market(_)))
                .count() as u64;
        let journal_id = writer.journal_id();
        if promoted {
            wait_for_addresses(config);
        }
        let replication = Arc::new(crate::replication::Shared::new(
            term,
            config.replication.standby_ack,
            promoted,
        ));
        replication
            .written
            .store(restart_sequence, Ordering::Release);
        let _ = metrics.replication.set(Arc::clone(&replication));
        metrics.term.store(term, Ordering::Relaxed);
        metrics.role.store(1, Ordering::Relaxed);
        let feed = match &config.feed {
            None => None,
            Some(section) => {
                // The sequence continues from the last run's: subscribers see no reset.
                let publisher = sequent_feed::publisher::Publisher::resume(
                    sequent_feed::publisher::PublisherConfig {
                        history_packets_max: section.history_packets,
                        ..sequent_feed::publisher::PublisherConfig::default()
                    },
                    feed_state.messages + 1,
                    feed_state.books,
                );
                let (mut net, path) = sequent_feed::net::NetPublisher::open(
                    publisher,
                    &sequent_feed::net::PublisherNetConfig {
                        line_a: sequent_feed::net::LineAddr {
                            addr: section.line_a,
                            iface: section.interface,
                        },
                        line_b: section.line_b.map(|addr| sequent_feed::net::LineAddr {
                            addr,
                            iface: section.interface,
                        }),
                        ttl: section.ttl,
                        send: match section.send {
                            crate::config::SendName::Send => sequent_feed::net::SendKind::Send,
                            crate::config::SendName::Sendmmsg => {
                                sequent_feed::net::SendKind::SendMmsg
                            }
                            crate::config::SendName::IoUring => {
                                sequent_feed::net::SendKind::IoUring
                            }
                        },
                        retransmit_addr: section.retransmit,
                        snapshot_addr: section.snapshot,
                        loss_a: sequent_feed::loss::LossConfig::default(),
                        loss_b: sequent_feed::loss::LossConfig::default(),
                    },
                )
                .context("cannot open the market-data sockets")?;
                tracing::info!("feed: {path}");
                // The restart's own messages (the symbol directory) come first.
                for output in &scratch {
                    if let Output::Market(message) = output {
                        net.core.handle_message(message);
                    }
                }
                net.core.flush();
                net.pump().context("cannot send market data")?;
                Some(net)
            }
        };
        let feed_addresses = feed
            .as_ref()
            .map(|net| Ok::<_, io::Error>((net.retransmit_addr()?, net.snapshot_addr()?)))
            .transpose()?;

        let durable = writer.durable_watch();
        let (mut output_builder, output_poller) = build_single_producer(
            config.rings.output_slots,
            OutputSlot::default,
            config.wait.core.strategy(),
        )
        .event_poller();
        if let Some(mut posting) = posting {
            // Beside the gateway's poller, in the same stage: fan-out, neither waits for the other.
            posting.flush();
            let _ = metrics.posting.set(Arc::clone(posting.shared()));
            if let Some(cpu) = config.cores.posting {
                output_builder = output_builder.pin_at_core(cpu);
            }
            output_builder = output_builder
                .wait_strategy(config.wait.posting.strategy())
                .thread_name("posting")
                .handle_events_with(crate::posting::PostingStage {
                    posting: Some(posting),
                    gate: if config.journal.durability == crate::config::DurabilityName::None {
                        crate::posting::Gate::Appended(Arc::clone(&metrics))
                    } else {
                        crate::posting::Gate::Durable(durable.clone())
                    },
                    passed: 0,
                });
        }
        let output_producer = output_builder.build()?;
        let mut input_builder = build_single_producer(
            config.rings.input_slots,
            InputSlot::default,
            config.wait.core.strategy(),
        );
        if let Some(cpu) = config.cores.journal {
            input_builder = input_builder.pin_at_core(cpu);
        }
        input_builder = input_builder
            .wait_strategy(config.wait.journal.strategy())
            .thread_name("journal")
            .handle_events_with(JournalStage {
                writer: Some(writer),
                payload: [0; PAYLOAD_LEN_MAX],
                metrics: Arc::clone(&metrics),
                durable: durable.clone(),
                replication: Arc::clone(&replication),
            });
        if let Some(cpu) = config.cores.core {
            input_builder = input_builder.pin_at_core(cpu);
        }
        let store = sequent_journal::snapshot::SnapshotStore::open(&config.snapshot_dir())
            .with_context(|| {
                format!(
                    "cannot open the snapshot directory {}",
                    config.snapshot_dir().display()
                )
            })?;
        let (jobs, job_queue) = std::sync::mpsc::sync_channel::<(u64, Vec<u8>)>(1);
        let (spare_back, spare) = std::sync::mpsc::sync_channel::<Vec<u8>>(1);
        let keep = config.snapshots.keep;
        let writer_metrics = Arc::clone(&metrics);
        let snapshot_writer =
            std::thread::Builder::new()
                .name("snapshots".into())
                .spawn(move || {
                    run_snapshot_writer(
                        &store,
                        journal_id,
                        keep,
                        &job_queue,
                        &spare_back,
                        &writer_metrics,
                    );
                })?;
        let input_producer = input_builder
            .wait_strategy(config.wait.core.strategy())
            .thread_name("core")
            .handle_events_with(CoreStage {
                core,
                out: Some(output_producer),
                // Room for the largest resend burst on top of a busy input's outputs: the
                // steady state never grows it.
                scratch: Vec::with_capacity(4096 + config.sessions.resend_history as usize),
                metrics: Arc::clone(&metrics),
                replication: Arc::clone(&replication),
                digest_every: config.replication.digest_every,
                snapshots: SnapshotTaker {
                    every: config.snapshots.every_records,
                    term,
                    term_start: restart_sequence,
                    feed_messages,
                    buffer: None,
                    jobs: Some(jobs),
                    spare,
                },
            })
            .build()?;

        let listener = TcpListener::bind(config.gateway.listen)
            .with_context(|| format!("cannot listen on {}", config.gateway.listen))?;
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let gateway = Gateway::new(
            config,
            listener,
            input_producer,
            output_poller,
            durable,
            restart_sequence + 1,
            restart_ts,
            epoch,
            Arc::clone(&metrics),
            Arc::clone(&stop),
            feed,
            Arc::clone(&replication),
        )?;
        let replication_server = match config.replication.listen {
            Some(listen) => Some(
                crate::replication::Server::start(
                    &config.journal.dir,
                    config.replication,
                    listen,
                    Arc::clone(&replication),
                    Some(Arc::clone(&gateway.waker)),
                )
                .with_context(|| format!("cannot serve replication on {listen}"))?,
            ),
            None => None,
        };
        let pin = config.cores.gateway;
        let gateway = std::thread::Builder::new()
            .name("gateway".into())
            .spawn(move || {
                if let Some(cpu) = pin {
                    sequent_ring::pin_current_thread(cpu).map_err(|e| {
                        anyhow::anyhow!("cannot pin the gateway to core {cpu}: {e}")
                    })?;
                }
                gateway.run()
            })?;
        let metrics_server = match (metrics_server, config.metrics.listen) {
            (Some(server), _) => {
                server.serve_admin(crate::metrics::Admin::Primary {
                    stop: Arc::clone(&stop),
                    replication: Arc::clone(&replication),
                });
                Some(server)
            }
            (None, Some(address)) => {
                let server = crate::metrics::Server::start(address, Arc::clone(&metrics))?;
                server.serve_admin(crate::metrics::Admin::Primary {
                    stop: Arc::clone(&stop),
                    replication: Arc::clone(&replication),
                });
                Some(server)
            }
            (None, None) => None,
        };
        Ok(Self {
            address,
            recovered,
            stop,
            gateway: Some(gateway),
            metrics,
            metrics_server,
            feed_addresses,
            replication,
            replication_server,
            term,
            snapshot_writer: Some(snapshot_writer),
        })
    }

    /// The feed's retransmission (UDP) and snapshot (TCP) server addresses, when it publishes.
    #[must_use]
    pub fn feed_addresses(&self) -> Option<(SocketAddr, SocketAddr)> {
        self.feed_addresses
    }

    /// The order-entry address (useful with port 0).
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The metrics address, when there is an endpoint.
    #[must_use]
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_server
            .as_ref()
            .map(crate::metrics::Server::address)
    }

    /// What recovery found.
    #[must_use]
    pub fn recovered(&self) -> Recovered {
        self.recovered
    }

    /// Live counters.
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// A flag that stops the engine when set (for signal handlers).
    #[must_use]
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Graceful stop: no new input, the rings drain, replies are written, the journal is synced.
    /// Returns the number of frames sequenced in this run.
    pub fn shutdown(self) -> anyhow::Result<u64> {
        self.shutdown_with_digest().map(|(inputs, _)| inputs)
    }

    /// Like [`Engine::shutdown`], and also returns the core's final `state_digest()` (which a
    /// restart on the same journal recovers to).
    pub fn shutdown_with_digest(mut self) -> anyhow::Result<(u64, u64)> {
        self.stop.store(true, Ordering::Release);
        let inputs = self.join()?;
        Ok((inputs, self.metrics.final_digest.load(Ordering::Acquire)))
    }

    /// Waits for the gateway to stop (after the stop flag is set by someone).
    pub fn join(&mut self) -> anyhow::Result<u64> {
        let Some(gateway) = self.gateway.take() else {
            return Ok(0);
        };
        let result = gateway
            .join()
            .map_err(|_| anyhow::anyhow!("the gateway thread panicked"));
        if let Some(writer) = self.snapshot_writer.take() {
            // The core stage has stopped and dropped its sender: the writer finishes the last one.
            let _ = writer.join();
        }
        let fenced = self.replication.fenced.load(Ordering::Acquire);
        if let Some(server) = self.replication_server.take() {
            // A planned stop hands over to the attached standby (nothing to hand when fenced).
            server.finish(if fenced {
                0
            } else {
                self.replication.written.load(Ordering::Acquire)
            });
        }
        if let Some(server) = self.metrics_server.take() {
            server.stop();
        }
        if fenced {
            bail!(
                "fenced: a primary of a later term replaced this engine (term {}); nothing it held was released",
                self.term
            );
        }
        result?
    }

    /// This engine's term (docs/replication.md).
    #[must_use]
    pub fn term(&self) -> u64 {
        self.term
    }

    /// The replication endpoint's address, when it serves one.
    #[must_use]
    pub fn replication_address(&self) -> Option<SocketAddr> {
        self.replication_server
            .as_ref()
            .map(crate::replication::Server::address)
    }

    /// The replication state (standby attached, acknowledged sequence, fence).
    #[must_use]
    pub fn replication(&self) -> &crate::replication::Shared {
        &self.replication
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.join();
    }
}

/// The core's configuration for an engine configured by `config` (what `Engine::start` and
/// recovery build the core with; tests replaying a journal use it too).
#[must_use]
pub fn core_config(config: &EngineConfig) -> CoreConfig {
    CoreConfig {
        sessions_max: config.sessions_max,
        symbols: config.symbols.clone(),
        venue: VenueConfig {
            orders_max: config.venue.orders_max,
            levels_max: config.venue.levels_max,
            levels_per_side_max: config.venue.levels_per_side_max,
            symbols_max: 1,
            accounts_max: config.venue.accounts_max,
            ids_max: config.venue.ids_max,
        },
        resend_history: config.sessions.resend_history,
    }
}

/// The feed's state rebuilt by replay: how many messages the core has published and the book
/// they describe, so the publisher resumes its sequence where the last run stopped.
pub(crate) struct FeedState {
    pub(crate) messages: u64,
    pub(crate) books: sequent_feed::book::Books,
}

/// An engine's state rebuilt from its journal, before it serves (as primary) or follows (as
/// standby): the core, the open journal, the feed's position and where the history stands.
pub(crate) struct NodeState {
    pub(crate) core: Core,
    pub(crate) writer: Writer,
    pub(crate) feed: FeedState,
    pub(crate) recovered: Recovered,
    pub(crate) position: crate::replication::Position,
    /// The ledger posting hook, rebuilt from its journal and fed the replayed trades after it.
    pub(crate) posting: Option<crate::posting::Posting>,
}

impl NodeState {
    /// Opens the journal (repairing a torn tail) and replays it into a fresh core.
    pub(crate) fn recover(config: &EngineConfig) -> anyhow::Result<Self> {
        let mut core = Core::new(&core_config(config));
        let writer = Writer::open(&config.journal.dir, &config.journal.journal_config())
            .with_context(|| {
                format!(
                    "cannot open the journal in {}",
                    config.journal.dir.display()
                )
            })?;
        if let Some(truncation) = &writer.open_report().truncated {
            tracing::info!("journal: {truncation}");
        }
        let mut feed = FeedState {
            messages: 0,
            books: sequent_feed::book::Books::new(),
        };
        let mut position = crate::replication::Position {
            next_sequence: writer.next_sequence(),
            ..crate::replication::Position::default()
        };
        let mut posting = crate::posting::Posting::open(config)?;
        if let Some(posting) = &posting
            && posting.last_input_sequence() >= writer.next_sequence()
        {
            bail!(
                "the ledger journal has trades of input {} but the engine journal ends before \
                 {}: it belongs to another engine journal",
                posting.last_input_sequence(),
                writer.next_sequence()
            );
        }
        let mut from = 1;
        if writer.next_sequence() > 1 {
            if let Some(restored) = restore_snapshot(config)? {
                // The snapshot's trades must all be in the ledger: the replay after it re-derives
                // only later ones.
                let ledger_behind = posting
                    .as_ref()
                    .filter(|p| restored.core.match_number() > p.last_match());
                if let Some(p) = ledger_behind {
                    tracing::warn!(
                        "snapshot at sequence {} has trades up to {}, the ledger only to {}: \
                         replaying the whole journal",
                        restored.sequence,
                        restored.core.match_number(),
                        p.last_match()
                    );
                } else {
                    from = restored.sequence + 1;
                    core = restored.core;
                    feed = restored.feed;
                    position = restored.position;
                }
            }
        }
        let recovered = replay(
            &config.journal.dir,
            from,
            writer.next_sequence(),
            &mut core,
            &mut feed,
            &mut position,
            posting.as_mut(),
        )?;
        if let Some(posting) = posting.as_mut() {
            posting.sync()?;
        }
        Ok(Self {
            core,
            writer,
            feed,
            recovered,
            position,
            posting,
        })
    }

    /// Appends one replicated record to the journal and applies it; keeps the position.
    pub(crate) fn apply_record(
        &mut self,
        sequence: u64,
        timestamp_ns: u64,
        kind: u8,
        payload: &[u8],
        scratch: &mut Vec<Output>,
    ) -> anyhow::Result<()> {
        let input = record::decode(kind, payload).map_err(|reason| {
            anyhow::anyhow!("replicated record {sequence} is not an engine input: {reason}")
        })?;
        let appended = self.writer.append(kind, timestamp_ns, payload)?;
        if appended != sequence {
            bail!("replicated record {sequence} would be written as {appended}");
        }
        scratch.clear();
        self.core.apply(timestamp_ns, &input, scratch);
        self.feed.take(scratch);
        if let Some(posting) = self.posting.as_mut() {
            // The standby's ledger follows its journal, so that a promotion starts current.
            posting.take(timestamp_ns, sequence, scratch)?;
            posting.flush();
        }
        self.recovered.replayed += 1;
        self.recovered.sequence = sequence;
        self.position.track(sequence, timestamp_ns, kind, payload);
        Ok(())
    }
}

impl FeedState {
    fn take(&mut self, outputs: &[Output]) {
        for output in outputs {
            if let Output::Market(message) = output {
                self.messages += 1;
                self.books.apply(message);
            }
        }
    }
}

/// Replays every journaled input into `core`.
fn replay(
    dir: &Path,
    from: u64,
    next_sequence: u64,
    core: &mut Core,
    feed: &mut FeedState,
    position: &mut crate::replication::Position,
    posting: Option<&mut crate::posting::Posting>,
) -> anyhow::Result<Recovered> {
    let mut recovered = Recovered {
        replayed: 0,
        sequence: from - 1,
        digest: core.state_digest(),
        snapshot: from - 1,
        feed_messages: feed.messages,
        books_digest: [0; 32],
    };
    if next_sequence == from {
        recovered.books_digest = feed.books.digest();
        return Ok(recovered);
    }
    recovered.replayed = apply_journal(dir, from, None, core, feed, position, posting)?;
    recovered.sequence = position.next_sequence - 1;
    if recovered.sequence + 1 != next_sequence {
        bail!(
            "replay ended at sequence {} but the journal continues at {next_sequence}",
            recovered.sequence
        );
    }
    recovered.digest = core.state_digest();
    recovered.feed_messages = feed.messages;
    recovered.books_digest = feed.books.digest();
    Ok(recovered)
}

/// Applies the journal's records from `from` (to `until`, inclusive, or the end) to `core`,
/// counting the feed's messages, handing the trades to `posting` and moving `position`; returns
/// how many it applied.
fn apply_journal(
    dir: &Path,
    from: u64,
    until: Option<u64>,
    core: &mut Core,
    feed: &mut FeedState,
    position: &mut crate::replication::Position,
    mut posting: Option<&mut crate::posting::Posting>,
) -> anyhow::Result<u64> {
    let mut reader = Reader::from_sequence(dir, from)?;
    let mut scratch = Vec::with_capacity(4096);
    let mut records = 0;
    while let Some(entry) = reader.next()? {
        if until.is_some_and(|until| entry.sequence > until) {
            break;
        }
        let input = record::decode(entry.kind, entry.payload).map_err(|reason| {
            anyhow::anyhow!(
                "journal record {} is not an engine input: {reason}",
                entry.sequence
            )
        })?;
        scratch.clear();
        core.apply(entry.timestamp_ns, &input, &mut scratch);
        feed.take(&scratch);
        if let Some(posting) = posting.as_deref_mut() {
            posting.take(entry.timestamp_ns, entry.sequence, &scratch)?;
        }
        position.track(
            entry.sequence,
            entry.timestamp_ns,
            entry.kind,
            entry.payload,
        );
        records += 1;
    }
    Ok(records)
}

/// What [`replay_journal`] found.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// Records applied.
    pub records: u64,
    /// The last sequence applied.
    pub sequence: u64,
    /// The core's `state_digest()` after it.
    pub digest: u64,
    /// The highest term seen in a restart marker.
    pub term: u64,
    /// Market-data messages the core produced (the feed's last sequence).
    pub feed_messages: u64,
    /// The books those messages describe.
    pub books: sequent_feed::book::Books,
}

/// Replays the engine journal in `dir` through a fresh core sized by `config`, up to `until`
/// (inclusive; `None`: to the end), without writing anything: what `sequent journal replay` and
/// the failover tests use to check an engine's digest against its journal.
pub fn replay_journal(
    config: &EngineConfig,
    dir: &Path,
    until: Option<u64>,
) -> anyhow::Result<Replayed> {
    let mut core = Core::new(&core_config(config));
    let mut feed = FeedState {
        messages: 0,
        books: sequent_feed::book::Books::new(),
    };
    let mut position = crate::replication::Position::default();
    let records = apply_journal(dir, 1, until, &mut core, &mut feed, &mut position, None)?;
    Ok(Replayed {
        records,
        sequence: position.next_sequence.saturating_sub(1),
        digest: core.state_digest(),
        term: position.term,
        feed_messages: feed.messages,
        books: feed.books,
    })
}

/// Snapshot files of this engine (`sequent_journal::snapshot`): the tag "SENG", state version 2.
/// Version 2 files hold a core snapshot of format 2 (with the resend history), so that a build
/// that reads only version 1 passes them over and replays its journal instead of refusing to
/// start; this build reads both (the core snapshot says its own format).
pub const SNAPSHOT_ENGINE: sequent_journal::snapshot::EngineId =
    sequent_journal::snapshot::EngineId {
        tag: u32::from_le_bytes(*b"SENG"),
        version_max: 2,
    };

/// The head of the engine's snapshot state (docs/engine-snapshot.md): magic, version, then the
/// term and its start, the feed's message count, and the core's own snapshot.
const NODE_SNAPSHOT_MAGIC: [u8; 8] = *b"SQNODE\0\0";

/// Appends the engine's snapshot state: the node header, then `Core::write_snapshot`.
fn write_node_snapshot(
    core: &Core,
    term: u64,
    term_start: u64,
    feed_messages: u64,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(&NODE_SNAPSHOT_MAGIC);
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&term.to_le_bytes());
    out.extend_from_slice(&term_start.to_le_bytes());
    out.extend_from_slice(&feed_messages.to_le_bytes());
    core.write_snapshot(out);
}

/// What a snapshot restores.
struct Restored {
    sequence: u64,
    core: Core,
    feed: FeedState,
    position: crate::replication::Position,
}

/// The newest usable snapshot of this engine's journal, decoded; `None` when there is none (the
/// journal is replayed from its start). Unusable snapshots are passed over with a log line saying
/// why; a snapshot that passes the file checks but does not decode is an error (it names what and
/// where), because the file's checksum says those are the bytes that were written.
fn restore_snapshot(config: &EngineConfig) -> anyhow::Result<Option<Restored>> {
    let dir = config.snapshot_dir();
    if !dir.exists() {
        return Ok(None);
    }
    let store = sequent_journal::snapshot::SnapshotStore::open(&dir)?;
    let recovery = sequent_journal::recover(&config.journal.dir, &store, SNAPSHOT_ENGINE)?;
    for rejected in &recovery.rejected {
        tracing::warn!(
            "snapshot {} passed over: {}",
            rejected.path.display(),
            rejected.reason
        );
    }
    let Some(snapshot) = recovery.snapshot else {
        return Ok(None);
    };
    let state = &snapshot.state;
    let field = |at: usize| -> anyhow::Result<u64> {
        state
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .with_context(|| {
                format!(
                    "snapshot {}: truncated at offset {at}",
                    snapshot.path.display()
                )
            })
    };
    if state.get(..8) != Some(&NODE_SNAPSHOT_MAGIC[..]) {
        bail!(
            "snapshot {}: offset 0: not an engine snapshot",
            snapshot.path.display()
        );
    }
    let version = state
        .get(8..12)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .unwrap_or(0);
    if version != 1 {
        bail!(
            "snapshot {}: offset 8: engine snapshot version {version}, this build reads 1",
            snapshot.path.display()
        );
    }
    let (term, term_start, feed_messages) = (field(12)?, field(20)?, field(28)?);
    let core = Core::read_snapshot(&core_config(config), &state[36..])
        .map_err(|e| anyhow::anyhow!("snapshot {}: {e}", snapshot.path.display()))?;
    let sequence = snapshot.sequence;
    // The last record's hash, for a standby's Hello: read back from the journal when it still
    // holds that record.
    let last_hash = Reader::from_sequence(&config.journal.dir, sequence)
        .ok()
        .and_then(|mut reader| {
            reader.next().ok().flatten().map(|r| {
                crate::replication::record_hash(r.sequence, r.timestamp_ns, r.kind, r.payload)
            })
        })
        .unwrap_or(0);
    let books = books_of(&core, &config.symbols);
    tracing::info!(
        "snapshot {}: state at sequence {sequence} restored",
        snapshot.path.display()
    );
    Ok(Some(Restored {
        sequence,
        core,
        feed: FeedState {
            messages: feed_messages,
            books,
        },
        position: crate::replication::Position {
            term,
            term_start,
            next_sequence: sequence + 1,
            last_hash,
        },
    }))
}

/// The feed's books as the core's venue holds them: what the subscribers' books are after every
/// market-data message the core has produced (the core emits them so that this holds; the
/// property tests check it).
fn books_of(core: &Core, symbols: &[String]) -> sequent_feed::book::Books {
    use sequent_feed::book::{Books, Order};
    let mut books = Books::new();
    for (index, name) in symbols.iter().enumerate() {
        let symbol = index as sequent_matching::SymbolId;
        let locate = crate::core::locate(symbol);
        books.apply(&sequent_feed::proto::build::symbol(0, locate, name));
        for (side, feed_side) in [
            (sequent_matching::Side::Buy, sequent_feed::proto::Side::Buy),
            (
                sequent_matching::Side::Sell,
                sequent_feed::proto::Side::Sell,
            ),
        ] {
            for resting in core.venue().resting(symbol, side) {
                books.add(
                    resting.id,
                    Order {
                        locate,
                        side: feed_side,
                        price: resting.price,
                        shares: resting.qty.min(u64::from(u32::MAX)),
                    },
                );
            }
        }
    }
    books
}

/// Writes the snapshots the core stage hands over, off the core's thread, and keeps the newest
/// `keep` files.
fn run_snapshot_writer(
    store: &sequent_journal::snapshot::SnapshotStore,
    journal_id: [u8; 16],
    keep: usize,
    jobs: &std::sync::mpsc::Receiver<(u64, Vec<u8>)>,
    spare: &std::sync::mpsc::SyncSender<Vec<u8>>,
    metrics: &Metrics,
) {
    while let Ok((sequence, state)) = jobs.recv() {
        match store.write(journal_id, SNAPSHOT_ENGINE, sequence, &state) {
            Ok(path) => {
                metrics.snapshots_written.fetch_add(1, Ordering::Relaxed);
                metrics.snapshot_sequence.store(sequence, Ordering::Relaxed);
                tracing::info!(
                    "snapshot at sequence {sequence}: {} ({} bytes)",
                    path.display(),
                    state.len()
                );
                let _ = store.prune(keep);
            }
            Err(error) => tracing::warn!("snapshot at sequence {sequence} failed: {error}"),
        }
        let _ = spare.try_send(state);
    }
}

/// A standby that takes over from a primary that is dying may find the primary's sockets still
/// open for a moment (the kernel closes a killed process's descriptors one by one, and the
/// replication endpoint may go first): wait, at most a second, until the addresses it must bind
/// are free.
fn wait_for_addresses(config: &EngineConfig) {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    let free = || {
        let gateway = config.gateway.listen.port() == 0
            || std::net::TcpListener::bind(config.gateway.listen).is_ok();
        let feed = config.feed.as_ref().is_none_or(|feed| {
            (feed.retransmit.port() == 0 || std::net::UdpSocket::bind(feed.retransmit).is_ok())
                && (feed.snapshot.port() == 0 || std::net::TcpListener::bind(feed.snapshot).is_ok())
        });
        gateway && feed
    };
    while !free() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn last_ts(dir: &Path, sequence: u64) -> u64 {
    if sequence == 0 {
        return 0;
    }
    Reader::from_sequence(dir, sequence)
        .ok()
        .and_then(|mut r| r.next().ok().flatten().map(|e| e.timestamp_ns))
        .unwrap_or(0)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The journal stage: appends every input; fails the engine (panics the stage, which halts the
/// ring) when the journal cannot take it, because an input that is not on record must not be
/// acknowledged.
struct JournalStage {
    writer: Option<Writer>,
    payload: [u8; PAYLOAD_LEN_MAX],
    metrics: Arc<Metrics>,
    durable: DurableWatch,
    replication: Arc<crate::replication::Shared>,
}

impl EventHandler<InputSlot> for JournalStage {
    fn on_event(&mut self, slot: &InputSlot, _sequence: i64, end_of_batch: bool) {
        if slot.last || slot.snapshot {
            return;
        }
        let Some(writer) = self.writer.as_mut() else {
            return;
        };
        let (kind, len) = record::encode(&slot.input, &mut self.payload);
        let appended = writer
            .append(kind, slot.ts, &self.payload[..len])
            .unwrap_or_else(|error| panic!("journal append failed: {error}"));
        assert_eq!(
            appended, slot.journal_sequence,
            "the journal's sequence and the gateway's disagree"
        );
        self.metrics
            .journal_written
            .store(appended, Ordering::Relaxed);
        self.metrics
            .latency_journal
            .record(now_ns().saturating_sub(slot.ts));
        if end_of_batch {
            // Wakes the replication sender (one atomic swap when it is not parked).
            self.replication.appended(appended);
            self.metrics
                .journal_durable
                .store(self.durable.durable_sequence(), Ordering::Relaxed);
        }
    }

    fn on_shutdown(&mut self) {
        if let Some(mut writer) = self.writer.take() {
            if let Err(error) = writer.sync() {
                tracing::warn!("journal sync at shutdown failed: {error}");
            }
            if let Err(error) = writer.close() {
                tracing::warn!("journal close failed: {error}");
            }
        }
    }
}

/// The core stage: sessions, throttle and matching; outputs to the output ring.
struct CoreStage {
    core: Core,
    out: Option<SingleProducer<OutputSlot>>,
    scratch: Vec<Output>,
    metrics: Arc<Metrics>,
    replication: Arc<crate::replication::Shared>,
    digest_every: u64,
    snapshots: SnapshotTaker,
}

/// The core stage's side of snapshots: when to take one, the buffer it is written into (handed
/// to the writer thread and back, so a steady stream of snapshots reuses two buffers), and what
/// the state header needs.
struct SnapshotTaker {
    every: u64,
    term: u64,
    term_start: u64,
    /// Market-data messages the core has produced (the feed's sequence).
    feed_messages: u64,
    buffer: Option<Vec<u8>>,
    jobs: Option<std::sync::mpsc::SyncSender<(u64, Vec<u8>)>>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl CoreStage {
    /// Serialises the core as of `sequence` and hands it to the writer; the pause is measured.
    fn snapshot(&mut self, sequence: u64) {
        let started = std::time::Instant::now();
        let taker = &mut self.snapshots;
        let Some(jobs) = taker.jobs.as_ref() else {
            return;
        };
        let mut buffer = taker
            .buffer
            .take()
            .or_else(|| taker.spare.try_recv().ok())
            .unwrap_or_default();
        buffer.clear();
        write_node_snapshot(
            &self.core,
            taker.term,
            taker.term_start,
            taker.feed_messages,
            &mut buffer,
        );
        match jobs.try_send((sequence, buffer)) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full((_, buffer))) => {
                tracing::warn!(
                    "snapshot at sequence {sequence} skipped: the previous one is still being written"
                );
                taker.buffer = Some(buffer);
            }
            Err(std::sync::mpsc::TrySendError::Disconnected((_, buffer))) => {
                taker.buffer = Some(buffer);
            }
        }
        let pause = started.elapsed().as_nanos() as u64;
        self.metrics
            .snapshot_pause_ns_last
            .store(pause, Ordering::Relaxed);
        self.metrics
            .snapshot_pause_ns_max
            .fetch_max(pause, Ordering::Relaxed);
    }
}

impl EventHandler<InputSlot> for CoreStage {
    fn on_event(&mut self, slot: &InputSlot, _sequence: i64, end_of_batch: bool) {
        if slot.snapshot {
            self.snapshot(slot.journal_sequence);
            return;
        }
        let Some(out) = self.out.as_mut() else {
            return;
        };
        if slot.last {
            let _ = out.publish(|o| {
                o.last = true;
                o.input_sequence = slot.journal_sequence;
            });
            return;
        }
        self.scratch.clear();
        self.core.apply(slot.ts, &slot.input, &mut self.scratch);
        self.metrics
            .latency_core
            .record(now_ns().saturating_sub(slot.ts));
        if slot.journal_sequence % self.digest_every == 0 {
            // A checkpoint the standby compares with its own (docs/replication.md).
            self.replication
                .push_digest(slot.journal_sequence, self.core.state_digest());
        }
        for output in &self.scratch {
            if let Output::Market(_) = output {
                self.snapshots.feed_messages += 1;
            }
            // Blocks while the gateway (or the posting stage) is behind: backpressure, never loss.
            let _ = out.publish(|o| {
                o.input_sequence = slot.journal_sequence;
                o.input_ts = slot.ts;
                o.output = *output;
                o.last = false;
            });
        }
        self.metrics
            .output_published
            .fetch_add(self.scratch.len() as u64, Ordering::Relaxed);
        let counters = self.core.counters();
        self.metrics
            .applied
            .store(counters.applied, Ordering::Relaxed);
        self.metrics
            .duplicates
            .store(counters.duplicates, Ordering::Relaxed);
        self.metrics
            .session_rejects
            .store(counters.session_rejects, Ordering::Relaxed);
        self.metrics
            .replies_resent
            .store(counters.resent, Ordering::Relaxed);
        self.metrics
            .resend_gaps
            .store(counters.resend_gaps, Ordering::Relaxed);
        for (gauge, value) in self.metrics.rejects.iter().zip(counters.rejects) {
            gauge.store(value, Ordering::Relaxed);
        }
        if self.snapshots.every > 0 && slot.journal_sequence % self.snapshots.every == 0 {
            self.snapshot(slot.journal_sequence);
        }
        if end_of_batch {
            if let Some(out) = self.out.as_ref() {
                let fill = (out.capacity() - out.free_slots()) as u64;
                self.metrics.output_ring_fill.store(fill, Ordering::Relaxed);
                self.metrics
                    .output_ring_fill_max
                    .fetch_max(fill, Ordering::Relaxed);
            }
        }
    }

    fn on_shutdown(&mut self) {
        // The writer thread ends once it has written what it was handed.
        self.snapshots.jobs = None;
        self.metrics
            .final_digest
            .store(self.core.state_digest(), Ordering::Release);
        if let Some(out) = self.out.take() {
            let _ = out.shutdown();
        }
    }
}

const LISTENER: Token = Token(usize::MAX);
const WAKER: Token = Token(usize::MAX - 1);
const READ_BUFFER: usize = 16 * 1024;
const WRITE_BUFFER: usize = 256 * 1024;
// A login's whole resend burst is written before the connection is flushed: it must leave room.
const _: () = assert!(
    crate::core::RESEND_HISTORY_MAX as usize * crate::protocol::REPLY_FRAME_LEN_MAX
        <= WRITE_BUFFER / 2
);

/// One client connection's slot; every buffer is allocated at start.
struct Connection {
    stream: Option<TcpStream>,
    id: ConnectionId,
    generation: u64,
    read: Box<[u8]>,
    read_len: usize,
    write: Vec<u8>,
    /// Close once `write` is flushed.
    closing: bool,
}

/// The gateway: the network thread and the sequencer.
struct Gateway {
    poll: Poll,
    listener: TcpListener,
    connections: Vec<Connection>,
    free: Vec<usize>,
    input: Option<SingleProducer<InputSlot>>,
    output: EventPoller<OutputSlot>,
    durable: DurableWatch,
    hold: bool,
    held: VecDeque<OutputSlot>,
    held_max: usize,
    next_sequence: u64,
    last_ts: u64,
    epoch: u64,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    frame: [u8; FRAME_LEN_MAX],
    /// The market-data publisher with its sockets, when configured.
    feed: Option<sequent_feed::net::NetPublisher>,
    /// Since when the feed has sent nothing (a heartbeat goes out after a second).
    feed_idle_since: std::time::Instant,
    /// Replication: the standby's acknowledgements bound what may go out; the fence stops all.
    replication: Arc<crate::replication::Shared>,
    /// Wakes the poll when the standby acknowledges or the fence drops.
    waker: Arc<mio::Waker>,
    /// `[snapshots] on_stop`.
    snapshot_on_stop: bool,
    /// True while an input is being published (see `sequence_input`).
    sequencing: bool,
    /// Connections to close once the input being sequenced is published (capacity: all).
    deferred_closes: Vec<usize>,
}

impl Gateway {
    #[allow(clippy::too_many_arguments)]
    fn new(
        config: &EngineConfig,
        mut listener: TcpListener,
        input: SingleProducer<InputSlot>,
        output: EventPoller<OutputSlot>,
        durable: DurableWatch,
        next_sequence: u64,
        last_ts: u64,
        epoch: u64,
        metrics: Arc<Metrics>,
        stop: Arc<AtomicBool>,
        feed: Option<sequent_feed::net::NetPublisher>,
        replication: Arc<crate::replication::Shared>,
    ) -> anyhow::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let slots = config.gateway.connections_max;
        let connections = (0..slots)
            .map(|_| Connection {
                stream: None,
                id: 0,
                generation: 0,
                read: vec![0u8; READ_BUFFER].into_boxed_slice(),
                read_len: 0,
                write: Vec::with_capacity(WRITE_BUFFER),
                closing: false,
            })
            .collect();
        Ok(Self {
            poll,
            listener,
            connections,
            free: (0..slots).rev().collect(),
            input: Some(input),
            output,
            durable,
            hold: config.journal.hold_replies_until_durable,
            held: VecDeque::with_capacity(config.rings.output_slots),
            held_max: config.rings.output_slots,
            next_sequence,
            last_ts,
            epoch,
            metrics,
            stop,
            frame: [0; FRAME_LEN_MAX],
            feed,
            feed_idle_since: std::time::Instant::now(),
            replication,
            waker,
            snapshot_on_stop: config.snapshots.on_stop,
            sequencing: false,
            deferred_closes: Vec::with_capacity(slots),
        })
    }

    fn connection_id(&self, index: usize, generation: u64) -> ConnectionId {
        (self.epoch << 40) | (generation << 20) | index as u64
    }

    fn run(mut self) -> anyhow::Result<u64> {
        let mut events = Events::with_capacity(1024);
        let mut sequenced = 0u64;
        loop {
            if self.stop.load(Ordering::Acquire) {
                break;
            }
            if self.replication.fenced.load(Ordering::Acquire) {
                // Replaced by a later term: drop every connection, release nothing.
                self.metrics.role.store(2, Ordering::Relaxed);
                for index in 0..self.connections.len() {
                    if let Some(mut stream) = self.connections[index].stream.take() {
                        let _ = self.poll.registry().deregister(&mut stream);
                        self.free.push(index);
                    }
                }
                let _ = self.poll.registry().deregister(&mut self.listener);
                self.stop.store(true, Ordering::Release);
                break;
            }
            if self
                .metrics
                .snapshot_requested
                .swap(false, Ordering::AcqRel)
            {
                self.request_snapshot()?;
            }
            let busy = self.pump_outputs();
            self.close_deferred()?;
            let timeout = if busy || !self.held.is_empty() {
                Duration::from_micros(200)
            } else {
                Duration::from_millis(2)
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error.into()),
            }
            for event in &events {
                if event.token() == LISTENER {
                    self.accept()?;
                    continue;
                }
                if event.token() == WAKER {
                    continue;
                }
                let index = event.token().0;
                if event.is_readable() || event.is_read_closed() {
                    sequenced += self.read(index)?;
                }
                if event.is_writable() {
                    self.flush(index)?;
                }
                self.close_deferred()?;
            }
        }
        self.shut_down()?;
        Ok(sequenced)
    }

    /// Stops reading, drains the rings while writing the replies they still produce (after the
    /// journal's last sync when replies are held), then closes every connection. The closes are not
    /// sequenced: the restart marker of the next start logs those sessions out.
    fn shut_down(&mut self) -> anyhow::Result<()> {
        let _ = self.poll.registry().deregister(&mut self.listener);
        let ts = self.clock();
        let Some(mut input) = self.input.take() else {
            return Ok(());
        };
        let journal_sequence = self.next_sequence;
        if self.snapshot_on_stop {
            // The state as of the last input, written before the stages stop.
            input.publish(|slot| {
                slot.last = false;
                slot.snapshot = true;
                slot.journal_sequence = journal_sequence - 1;
                slot.ts = ts;
            })?;
        }
        input.publish(|slot| {
            slot.last = true;
            slot.snapshot = false;
            slot.journal_sequence = journal_sequence;
            slot.ts = ts;
        })?;
        // The rings drain on another thread while this one keeps emptying the output ring, which
        // the core may otherwise fill and block on.
        let drain = std::thread::spawn(move || input.shutdown());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (_, closed) = self.pump();
            // Replies waiting for a standby that is gone will not be released: they were never
            // acknowledged, and the clients resend them wherever they log in next.
            let replication = &self.replication;
            let stuck = replication.standby_ack
                && !replication.attached.load(Ordering::Acquire)
                && !replication.degraded.load(Ordering::Acquire);
            let delivered = stuck || self.held.iter().all(|slot| slot.last);
            if closed && delivered {
                break;
            }
            if std::time::Instant::now() > deadline {
                tracing::info!(
                    "shutdown: {} replies still held after 30 s, dropped",
                    self.held.len()
                );
                break;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        drain
            .join()
            .map_err(|_| anyhow::anyhow!("the ring drain panicked"))??;
        if let Some(feed) = self.feed.as_mut() {
            feed.core.end_session();
            let _ = feed.pump();
        }
        for index in 0..self.connections.len() {
            let end = std::time::Instant::now() + Duration::from_secs(1);
            while !self.connections[index].write.is_empty()
                && self.connections[index].stream.is_some()
                && std::time::Instant::now() < end
            {
                self.flush(index)?;
                std::thread::yield_now();
            }
            if let Some(mut stream) = self.connections[index].stream.take() {
                let _ = self.poll.registry().deregister(&mut stream);
            }
        }
        Ok(())
    }

    fn clock(&mut self) -> u64 {
        self.last_ts = now_ns().max(self.last_ts);
        self.last_ts
    }

    fn sequence_input(&mut self, input: Input) -> anyhow::Result<()> {
        let ts = self.clock();
        let journal_sequence = self.next_sequence;
        // While this input waits for ring space the gateway empties the output ring, which may
        // cut a connection off; that close (and the disconnection it sequences) waits until this
        // input is published: a nested sequencing would reuse `journal_sequence`, and a nested
        // close would clear the read buffer a caller is decoding.
        self.sequencing = true;
        let published = self.publish_slot(|slot| {
            slot.journal_sequence = journal_sequence;
            slot.ts = ts;
            slot.input = input;
            slot.last = false;
            slot.snapshot = false;
        });
        self.sequencing = false;
        published?;
        self.next_sequence += 1;
        self.metrics.inputs.fetch_add(1, Ordering::Relaxed);
        if let Some(producer) = self.input.as_ref() {
            let fill = (producer.capacity() - producer.free_slots()) as u64;
            self.metrics.input_ring_fill.store(fill, Ordering::Relaxed);
            self.metrics
                .input_ring_fill_max
                .fetch_max(fill, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Closes the connections cut off while an input was being sequenced.
    fn close_deferred(&mut self) -> anyhow::Result<()> {
        while let Some(index) = self.deferred_closes.pop() {
            self.close(index)?;
        }
        Ok(())
    }

    /// Publishes one input-ring slot, filled by `fill`. While the ring is full it empties the
    /// output ring (the core may be waiting for room there, and only this thread empties it), so
    /// it never blocks.
    fn publish_slot(&mut self, fill: impl Fn(&mut InputSlot)) -> anyhow::Result<()> {
        loop {
            let Some(producer) = self.input.as_mut() else {
                bail!("the input ring is closed");
            };
            match producer.try_publish(&fill) {
                Ok(_) => return Ok(()),
                Err(TryPublishError::Full) => {
                    self.pump_outputs();
                    std::thread::yield_now();
                }
                Err(TryPublishError::Halted(halted)) => {
                    bail!("the pipeline stopped: {halted:?}")
                }
            }
        }
    }

    /// Asks the core stage for a snapshot as of the last sequenced input (a control slot: not
    /// journaled, not applied).
    fn request_snapshot(&mut self) -> anyhow::Result<()> {
        self.sequencing = true;
        let journal_sequence = self.next_sequence - 1;
        let published = self.publish_slot(|slot| {
            slot.journal_sequence = journal_sequence;
            slot.last = false;
            slot.snapshot = true;
        });
        self.sequencing = false;
        published?;
        self.close_deferred()
    }

    fn accept(&mut self) -> anyhow::Result<()> {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let Some(index) = self.free.pop() else {
                        // Full: refuse by closing at once; nothing was sequenced for it.
                        drop(stream);
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    self.poll.registry().register(
                        &mut stream,
                        Token(index),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    let generation = self.connections[index].generation + 1;
                    let id = self.connection_id(index, generation);
                    let connection = &mut self.connections[index];
                    connection.stream = Some(stream);
                    connection.generation = generation;
                    connection.id = id;
                    connection.read_len = 0;
                    connection.write.clear();
                    connection.closing = false;
                    self.metrics.connections.fetch_add(1, Ordering::Relaxed);
                    self.metrics
                        .connections_total
                        .fetch_add(1, Ordering::Relaxed);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    tracing::warn!("accept failed: {error}");
                    return Ok(());
                }
            }
        }
    }

    /// Reads what the socket has, sequences every whole frame; returns how many.
    fn read(&mut self, index: usize) -> anyhow::Result<u64> {
        let mut sequenced = 0;
        loop {
            let connection = &mut self.connections[index];
            let Some(stream) = connection.stream.as_mut() else {
                return Ok(sequenced);
            };
            if connection.closing {
                return Ok(sequenced);
            }
            let len = connection.read_len;
            match stream.read(&mut connection.read[len..]) {
                Ok(0) => {
                    self.close(index)?;
                    return Ok(sequenced);
                }
                Ok(n) => {
                    connection.read_len += n;
                    sequenced += self.decode(index)?;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(sequenced),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.close(index)?;
                    return Ok(sequenced);
                }
            }
        }
    }

    /// Decodes the whole frames in a connection's read buffer.
    fn decode(&mut self, index: usize) -> anyhow::Result<u64> {
        let mut at = 0;
        let mut sequenced = 0;
        let id = self.connections[index].id;
        loop {
            let connection = &self.connections[index];
            let available = &connection.read[at..connection.read_len];
            match decode_client(available) {
                Decoded::Frame(frame, len) => {
                    at += len;
                    self.sequence_input(Input::Frame {
                        connection: id,
                        sequence: frame.sequence,
                        message: frame.message,
                    })?;
                    sequenced += 1;
                }
                Decoded::Incomplete => break,
                Decoded::Error(error, len) => {
                    self.metrics.bad_frames.fetch_add(1, Ordering::Relaxed);
                    let ref_sequence = if available.len() >= HEADER_LEN {
                        u32::from_le_bytes([available[4], available[5], available[6], available[7]])
                    } else {
                        0
                    };
                    self.send(
                        index,
                        0,
                        &EngineMessage::SessionReject(SessionRejectBody {
                            reason: (error.reason() as u16).into(),
                            reserved: 0.into(),
                            ref_sequence: ref_sequence.into(),
                        }),
                    );
                    if error.is_fatal() {
                        // The stream cannot be framed any more: this session only goes.
                        self.connections[index].closing = true;
                        self.connections[index].read_len = 0;
                        self.flush(index)?;
                        return Ok(sequenced);
                    }
                    at += len;
                }
            }
        }
        let connection = &mut self.connections[index];
        connection.read.copy_within(at..connection.read_len, 0);
        connection.read_len -= at;
        Ok(sequenced)
    }

    /// Queues a frame for a connection.
    fn send(&mut self, index: usize, sequence: u32, message: &EngineMessage) {
        let len = encode_engine(&mut self.frame, sequence, message);
        let connection = &mut self.connections[index];
        if connection.write.len() + len > connection.write.capacity() {
            // A client that does not read its replies is cut off rather than grow the buffer.
            connection.closing = true;
            connection.write.clear();
            return;
        }
        connection.write.extend_from_slice(&self.frame[..len]);
    }

    fn flush(&mut self, index: usize) -> anyhow::Result<()> {
        let connection = &mut self.connections[index];
        let Some(stream) = connection.stream.as_mut() else {
            return Ok(());
        };
        let mut written = 0;
        let mut failed = false;
        while written < connection.write.len() {
            match stream.write(&connection.write[written..]) {
                Ok(0) => {
                    failed = true;
                    break;
                }
                Ok(n) => written += n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        connection.write.drain(..written);
        if failed || (connection.closing && connection.write.is_empty()) {
            self.close(index)?;
        }
        Ok(())
    }

    /// Closes a connection and sequences its disconnection (later, when an input is being
    /// sequenced right now: see `sequence_input`).
    fn close(&mut self, index: usize) -> anyhow::Result<()> {
        if self.sequencing {
            self.connections[index].closing = true;
            if !self.deferred_closes.contains(&index) {
                self.deferred_closes.push(index);
            }
            return Ok(());
        }
        let connection = &mut self.connections[index];
        let Some(mut stream) = connection.stream.take() else {
            return Ok(());
        };
        let _ = self.poll.registry().deregister(&mut stream);
        let _ = stream.flush();
        drop(stream);
        let id = connection.id;
        connection.write.clear();
        connection.read_len = 0;
        connection.closing = false;
        self.free.push(index);
        self.metrics.connections.fetch_sub(1, Ordering::Relaxed);
        if self.input.is_none() {
            // Shutting down: the next start's restart marker logs the session out.
            return Ok(());
        }
        self.sequence_input(Input::Disconnected { connection: id })
    }

    fn pump_outputs(&mut self) -> bool {
        self.pump().0
    }

    /// Takes outputs from the ring, holds them until durable if asked, writes what may go.
    /// Returns (anything happened, the output ring is closed and read to its end).
    fn pump(&mut self) -> (bool, bool) {
        let room = self.held_max - self.held.len();
        let mut taken = 0;
        let mut closed = false;
        if room > 0 {
            let held = &mut self.held;
            match self.output.poll_limit(room, |slot, _, _| {
                held.push_back(*slot);
            }) {
                PollState::Processed(n) => taken = n,
                PollState::Closed => closed = true,
                PollState::Idle => {}
            }
        }
        let durable = if self.hold {
            self.durable.durable_sequence()
        } else {
            u64::MAX
        }
        .min(self.replication.release_bound());
        if self.replication.fenced.load(Ordering::Acquire) {
            // Nothing held by a fenced engine was acknowledged by its standby: it never goes out.
            self.metrics.replies_fenced.fetch_add(
                self.held.iter().filter(|s| !s.last).count() as u64,
                Ordering::Relaxed,
            );
            self.held.retain(|slot| slot.last);
        }
        let mut touched = false;
        while let Some(slot) = self.held.front() {
            if slot.input_sequence > durable || slot.last {
                break;
            }
            let slot = self.held.pop_front().expect("front exists");
            touched = true;
            match slot.output {
                Output::Send {
                    connection,
                    sequence,
                    message,
                } => match self.index_of(connection) {
                    Some(index) => {
                        self.send(index, sequence, &message);
                        self.metrics.replies.fetch_add(1, Ordering::Relaxed);
                        self.metrics
                            .latency_release
                            .record(now_ns().saturating_sub(slot.input_ts));
                    }
                    None => {
                        self.metrics.replies_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                },
                Output::Disconnect { connection } => {
                    if let Some(index) = self.index_of(connection) {
                        self.connections[index].closing = true;
                    }
                }
                Output::Market(message) => {
                    self.metrics.market_messages.fetch_add(1, Ordering::Relaxed);
                    if let Some(feed) = self.feed.as_mut() {
                        feed.core.handle_message(&message);
                    }
                }
                // For the ledger posting stage.
                Output::Trade(_) => {}
            }
        }
        self.metrics
            .replies_held
            .store(self.held.len() as u64, Ordering::Relaxed);
        if let Some(feed) = self.feed.as_mut() {
            if touched {
                feed.core.flush();
            }
            if feed.core.next_seq() > 0 && self.feed_idle_since.elapsed() > Duration::from_secs(1) {
                feed.core.heartbeat();
                self.feed_idle_since = std::time::Instant::now();
            }
            // A send failure (no route, a full buffer) loses packets the subscribers recover by
            // retransmission; it never stops the engine.
            if feed.pump().is_ok() && touched {
                self.feed_idle_since = std::time::Instant::now();
            }
            let _ = feed.serve();
        }
        if touched {
            for index in 0..self.connections.len() {
                let connection = &self.connections[index];
                if connection.stream.is_some()
                    && (!connection.write.is_empty() || connection.closing)
                {
                    // Errors close that connection only.
                    let _ = self.flush(index);
                }
            }
        }
        (taken > 0 || touched, closed)
    }

    fn index_of(&self, connection: ConnectionId) -> Option<usize> {
        let index = (connection & 0xF_FFFF) as usize;
        let slot = self.connections.get(index)?;
        (slot.stream.is_some() && slot.id == connection).then_some(index)
    }
}
