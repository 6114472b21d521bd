//! Starting and stopping the node: recovery by replay, the rings and their stages, the
//! connectors, the timer, the re-entry feeder, and the HTTP server (opened last).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use sequent_journal::{Config as JournalOptions, Reader, Writer};
use sequent_payments::sim::acs::{AcsRules, AcsSim};
use sequent_payments::{AcquirerRequest, Config, Input, Output, Payments};
use sequent_ring::{WaitStrategy, build_single_producer};
use sequent_vault::{KeySet, Vault};

use crate::config::NodeConfig;
use crate::connector::{Connector, Detokeniser, Job};
use crate::http::{self, HttpContext};
use crate::pipeline::{
    CoreStage, Dispatcher, JournalStage, Metrics, OutputSlot, RECORD_KIND_INPUT, Sequencer, Views,
    lock, run_reentry, run_timer,
};

/// Replayed reversals younger than this (sequenced time, before the last record) are sent
/// again after a restart: whether their 0410 came is not journaled, and a repeat is harmless.
pub const REVERSAL_REPLAY_WINDOW_NS: u64 = 86_400 * 1_000_000_000;

/// What recovery found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Records replayed.
    pub replayed: u64,
    /// Last sequence (0: new journal).
    pub sequence: u64,
    /// Its sequenced time.
    pub last_ts: u64,
    /// The engine's digest after replay.
    pub digest: [u8; 32],
}

/// Hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Replays the journal in `dir` into a fresh engine; `each` sees every output with its input's
/// sequenced time.
pub fn replay(
    dir: &Path,
    config: Config,
    mut each: impl FnMut(u64, &Output),
) -> anyhow::Result<(Payments, Recovered)> {
    let mut engine = Payments::new(config);
    let mut recovered = Recovered {
        replayed: 0,
        sequence: 0,
        last_ts: 0,
        digest: [0; 32],
    };
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        let mut reader = Reader::open(dir)?;
        let mut out = Vec::new();
        while let Some(entry) = reader.next()? {
            if entry.kind != RECORD_KIND_INPUT {
                continue;
            }
            let input = Input::decode(entry.payload).map_err(|e| {
                anyhow::anyhow!(
                    "journal record {} is not a payments input: {e}",
                    entry.sequence
                )
            })?;
            out.clear();
            engine.handle(entry.sequence, entry.timestamp_ns, &input, &mut out);
            for o in &out {
                each(entry.timestamp_ns, o);
            }
            recovered.replayed += 1;
            recovered.sequence = entry.sequence;
            recovered.last_ts = entry.timestamp_ns;
        }
    }
    recovered.digest = engine.state_digest();
    Ok((engine, recovered))
}

/// A running node.
pub struct Node {
    address: SocketAddr,
    recovered: Recovered,
    stop: Arc<AtomicBool>,
    sequencer: Arc<Sequencer>,
    metrics: Arc<Metrics>,
    final_digest: crate::pipeline::FinalDigest,
    threads: Vec<JoinHandle<()>>,
    server: Arc<tiny_http::Server>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("address", &self.address)
            .field("recovered", &self.recovered)
            .finish_non_exhaustive()
    }
}

fn open_vault(
    config: &NodeConfig,
) -> anyhow::Result<(Vault<sequent_vault::OsRng>, sequent_vault::DetokeniseGrant)> {
    let keys = if config.vault.keys.exists() {
        KeySet::load(&config.vault.keys)
            .with_context(|| format!("vault keys {}", config.vault.keys.display()))?
    } else {
        let mut rng = rand_core::UnwrapErr(rand_core::OsRng);
        let keys = KeySet::generate(&mut rng);
        keys.save(&config.vault.keys)
            .with_context(|| format!("vault keys {}", config.vault.keys.display()))?;
        eprintln!(
            "sequent-payments-gateway: generated vault keys in {}",
            config.vault.keys.display()
        );
        keys
    };
    let (vault, grant, report) = Vault::open_with_os_rng(&config.vault.records, keys)
        .with_context(|| format!("vault records {}", config.vault.records.display()))?;
    if report.torn_tail_bytes > 0 {
        eprintln!(
            "sequent-payments-gateway: vault: cut a torn tail of {} bytes",
            report.torn_tail_bytes
        );
    }
    Ok((vault, grant))
}

impl Node {
    /// Recovers, starts every stage and opens the HTTP port (last, after recovery is printed).
    pub fn start(config: &NodeConfig) -> anyhow::Result<Node> {
        let engine_config = config.engine_config();
        engine_config.validate();
        std::fs::create_dir_all(&config.journal.dir)
            .with_context(|| format!("journal {}", config.journal.dir.display()))?;
        let writer = Writer::open(
            &config.journal.dir,
            &JournalOptions {
                segment_len: config.journal.segment_mib << 20,
                ..JournalOptions::default()
            },
        )
        .with_context(|| {
            format!(
                "cannot open the journal in {}",
                config.journal.dir.display()
            )
        })?;
        if let Some(t) = &writer.open_report().truncated {
            eprintln!("sequent-payments-gateway: journal: {t:?}");
        }
        let mut replayed_jobs: Vec<(u16, Job)> = Vec::new();
        let mut challenges = Vec::new();
        let mut reports = BTreeMap::new();
        let (engine, recovered) = replay(&config.journal.dir, engine_config, |ts, o| match o {
            Output::ToAcquirer {
                acquirer,
                payment_id,
                attempt,
                msg,
            } if matches!(
                msg,
                AcquirerRequest::Authorise { .. } | AcquirerRequest::Reverse { .. }
            ) =>
            {
                replayed_jobs.push((
                    acquirer.0,
                    Job::Replayed {
                        payment: *payment_id,
                        attempt: *attempt,
                        msg: *msg,
                        ts,
                    },
                ))
            }
            Output::ChallengeRequired {
                payment_id,
                acs_trans_id,
                ..
            } => challenges.push((payment_id.0, *acs_trans_id)),
            Output::Reconciliation(r) => {
                reports.insert(r.acquirer.0, r.clone());
            }
            _ => {}
        })?;
        if recovered.sequence + 1 != writer.next_sequence() {
            anyhow::bail!(
                "replay ended at sequence {} but the journal continues at {}",
                recovered.sequence,
                writer.next_sequence()
            );
        }
        println!(
            "recovered: sequence {} records {} digest {}",
            recovered.sequence,
            recovered.replayed,
            hex(&recovered.digest)
        );
        let next_deadline = engine.next_deadline();

        let metrics = Arc::new(Metrics::default());
        let stop = Arc::new(AtomicBool::new(false));
        let sequencer = Arc::new(Sequencer::new(
            recovered.sequence,
            recovered.last_ts,
            Arc::clone(&metrics),
        ));
        let views = Arc::new(Views::default());
        lock(&views.challenges).extend(challenges);
        *lock(&views.reports) = reports;
        let (vault, grant) = open_vault(config)?;
        let vault = Arc::new(Mutex::new(vault));
        let detokeniser = Arc::new(Detokeniser {
            vault: Arc::clone(&vault),
            grant,
        });
        let acs = Arc::new(Mutex::new(AcsSim::new(AcsRules::default())));

        let mut threads = Vec::new();
        let mut connectors = BTreeMap::new();
        for link in &config.acquirers {
            let (tx, rx) = crossbeam_channel::unbounded();
            for (_, job) in replayed_jobs.iter().filter(|(a, _)| *a == link.id) {
                if let Job::Replayed {
                    msg: AcquirerRequest::Reverse { .. },
                    ts,
                    ..
                } = job
                {
                    if ts + REVERSAL_REPLAY_WINDOW_NS < recovered.last_ts {
                        continue;
                    }
                }
                let _ = tx.send(*job);
            }
            connectors.insert(link.id, tx);
            let connector = Connector::new(
                link.clone(),
                rx,
                Arc::clone(&sequencer),
                Arc::clone(&detokeniser),
                Arc::clone(&metrics),
                Arc::clone(&stop),
            );
            threads.push(
                std::thread::Builder::new()
                    .name(format!("acq-{}", link.name))
                    .spawn(move || connector.run())?,
            );
        }
        let (timer_tx, timer_rx) = crossbeam_channel::unbounded();
        if let Some(at) = next_deadline {
            let _ = timer_tx.send(at.0);
        }
        {
            let sequencer = Arc::clone(&sequencer);
            let stop = Arc::clone(&stop);
            threads.push(
                std::thread::Builder::new()
                    .name("timer".into())
                    .spawn(move || run_timer(timer_rx, sequencer, stop))?,
            );
        }
        let (reentry_tx, reentry_rx) = crossbeam_channel::unbounded();
        {
            let sequencer = Arc::clone(&sequencer);
            threads.push(
                std::thread::Builder::new()
                    .name("reentry".into())
                    .spawn(move || run_reentry(reentry_rx, sequencer))?,
            );
        }

        let durable = writer.durable_watch();
        let output = build_single_producer(
            config.gateway.ring_slots,
            OutputSlot::default,
            WaitStrategy::blocking(),
        )
        .thread_name("dispatcher")
        .handle_events_with(Dispatcher {
            durable,
            sequencer: Arc::clone(&sequencer),
            connectors,
            reentry: reentry_tx,
            timer: timer_tx,
            acs: Arc::clone(&acs),
            views: Arc::clone(&views),
            metrics: Arc::clone(&metrics),
            durable_seen: recovered.sequence,
        })
        .build()?;
        let final_digest = Arc::new(Mutex::new(None));
        let input = build_single_producer(
            config.gateway.ring_slots,
            crate::pipeline::InputSlot::default,
            WaitStrategy::blocking(),
        )
        .thread_name("journal")
        .handle_events_with(JournalStage {
            writer: Some(writer),
            buf: Vec::with_capacity(4096),
            metrics: Arc::clone(&metrics),
        })
        .thread_name("core")
        .handle_events_with(CoreStage {
            engine,
            out: Some(output),
            scratch: Vec::with_capacity(256),
            metrics: Arc::clone(&metrics),
            final_digest: Arc::clone(&final_digest),
            last_seq: recovered.sequence,
        })
        .build()?;
        sequencer.install(input);

        let server = Arc::new(
            tiny_http::Server::http(config.gateway.listen)
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.gateway.listen))?,
        );
        let address = server
            .server_addr()
            .to_ip()
            .context("the HTTP server has no IP address")?;
        let context = Arc::new(HttpContext::new(
            config,
            Arc::clone(&sequencer),
            Arc::clone(&views),
            Arc::clone(&metrics),
            vault,
            acs,
        ));
        for i in 0..config.gateway.threads {
            let server = Arc::clone(&server);
            let context = Arc::clone(&context);
            let stop = Arc::clone(&stop);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("http-{i}"))
                    .spawn(move || http::serve(&server, &context, &stop))?,
            );
        }
        Ok(Node {
            address,
            recovered,
            stop,
            sequencer,
            metrics,
            final_digest,
            threads,
            server,
        })
    }

    /// The merchant API's address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// What recovery found.
    pub fn recovered(&self) -> Recovered {
        self.recovered
    }

    /// Counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The stop flag (a signal handler sets it).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Stops HTTP, the connectors and the timer, drains the rings, syncs the journal; returns the
    /// last sequence and the engine's digest.
    pub fn shutdown(self) -> anyhow::Result<(u64, [u8; 32])> {
        self.stop.store(true, Ordering::Relaxed);
        self.server.unblock();
        // Let in-flight requests finish their answer before the rings close.
        std::thread::sleep(Duration::from_millis(50));
        self.sequencer.shutdown();
        for t in self.threads {
            let _ = t.join();
        }
        lock(&self.final_digest)
            .take()
            .context("the engine stage did not stop cleanly")
    }
}
