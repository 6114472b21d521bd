//! `engine.toml`: everything the engine is sized and placed by. Unknown keys are refused (the
//! error names the key and its line), so a typo never silently falls back to a default.
//! `engine/node/engine.toml` is the sample.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Tradable symbols, 1 to 8 ASCII bytes each; one book each.
    pub symbols: Vec<String>,
    /// Sessions `1..=sessions_max` may log in.
    #[serde(default = "defaults::sessions_max")]
    pub sessions_max: u32,
    /// Per-session settings.
    #[serde(default)]
    pub sessions: SessionsSection,
    /// Venue capacity.
    #[serde(default)]
    pub venue: VenueSection,
    /// Ring sizes.
    #[serde(default)]
    pub rings: RingsSection,
    /// Core per stage (absent: not pinned).
    #[serde(default)]
    pub cores: CoresSection,
    /// Wait strategy per stage.
    #[serde(default)]
    pub wait: WaitSection,
    /// The journal.
    pub journal: JournalSection,
    /// Order entry.
    #[serde(default)]
    pub gateway: GatewaySection,
    /// Prometheus metrics.
    #[serde(default)]
    pub metrics: MetricsSection,
    /// Market data over UDP multicast (absent: no feed).
    pub feed: Option<FeedSection>,
    /// Hot standby replication (absent: none). docs/replication.md.
    #[serde(default)]
    pub replication: ReplicationSection,
    /// State snapshots: recovery loads the newest and replays only the journal after it.
    #[serde(default)]
    pub snapshots: SnapshotsSection,
    /// The ledger posting hook (absent: off). docs/engine-ledger-posting.md.
    #[serde(default)]
    pub ledger: Option<LedgerSection>,
}

/// `[ledger]`: every trade posted into a double-entry ledger (docs/engine-ledger-posting.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerSection {
    /// The posting ledger's journal (default: `ledger` inside the journal directory).
    pub dir: Option<PathBuf>,
    /// Transfer ids the ledger holds (two per trade); allocated at start. A full ledger refuses
    /// further trades (`ledger_full` in the failure metric) and the engine goes on trading.
    pub transfers_max: u32,
    /// Segment size of the ledger journal, MiB.
    pub segment_mib: u64,
    /// Write a snapshot of the posting ledger every this many trades, at the first batch boundary
    /// past it (batches hold at most 256 trades; 0: only at a graceful stop); recovery restores
    /// the newest usable one and replays the ledger journal after it.
    pub snapshot_every: u64,
}

impl Default for LedgerSection {
    fn default() -> Self {
        Self {
            dir: None,
            transfers_max: 1 << 20,
            segment_mib: 16,
            snapshot_every: 0,
        }
    }
}

/// `[sessions]`: what the engine keeps per session (docs/order-entry.md, "Resending replies").
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsSection {
    /// Order replies kept per session for resends on login, `0..=4096` (0: none; a login that
    /// asks for a resend gets a gap). All sessions' histories are allocated at start:
    /// `sessions_max × resend_history` replies of 32 bytes, at most 16 Mi of them.
    pub resend_history: u32,
}

impl Default for SessionsSection {
    fn default() -> Self {
        Self {
            resend_history: 1024,
        }
    }
}

/// `[snapshots]`: when the engine writes its state (docs/engine-snapshot.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotsSection {
    /// Where snapshot files go (default: `snapshots` inside the journal directory, so they move
    /// with the journal they belong to).
    pub dir: Option<PathBuf>,
    /// Take one after every input whose sequence is a multiple of this (0: only on the admin
    /// command and at stop).
    pub every_records: u64,
    /// Take one at a graceful stop (SIGTERM).
    pub on_stop: bool,
    /// Snapshot files kept (the newest); older ones are deleted after a new one is written.
    pub keep: usize,
}

impl Default for SnapshotsSection {
    fn default() -> Self {
        Self {
            dir: None,
            every_records: 1_000_000,
            on_stop: true,
            keep: 3,
        }
    }
}

impl EngineConfig {
    /// Where the snapshots of this engine's journal are written.
    #[must_use]
    pub fn snapshot_dir(&self) -> PathBuf {
        self.snapshots
            .dir
            .clone()
            .unwrap_or_else(|| self.journal.dir.join("snapshots"))
    }
}

/// `[replication]`: the journal stream to a hot standby, failure detection and fencing
/// (docs/replication.md).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationSection {
    /// Where this engine, while primary, serves its journal stream to a standby (absent: no
    /// standby can attach).
    pub listen: Option<SocketAddr>,
    /// The other engine's replication address: a starting primary asks it whether it has taken
    /// over (and refuses to start if so); a fenced primary learns there that it was replaced.
    pub peer: Option<SocketAddr>,
    /// Release replies only once the standby has acknowledged their input (as well as after the
    /// journal's durable write when `journal.hold_replies_until_durable`).
    pub standby_ack: bool,
    /// With `standby_ack`: how long the primary goes without a standby before it releases
    /// replies on its own (0: never; it holds until a standby attaches). Must exceed
    /// `heartbeat_timeout_ms` twice over, so that a replaced primary learns it is fenced first.
    pub degrade_after_ms: u64,
    /// The primary sends a heartbeat after this long without a record.
    pub heartbeat_interval_ms: u64,
    /// The standby declares the primary dead after this long without a message.
    pub heartbeat_timeout_ms: u64,
    /// Both sides compute `state_digest()` at every multiple of this sequence and compare them.
    pub digest_every: u64,
    /// A standby takes over by itself when the primary dies (false: only on an admin command).
    pub auto_promote: bool,
}

impl Default for ReplicationSection {
    fn default() -> Self {
        Self {
            listen: None,
            peer: None,
            standby_ack: false,
            degrade_after_ms: 0,
            heartbeat_interval_ms: 5,
            heartbeat_timeout_ms: 50,
            digest_every: 4096,
            auto_promote: true,
        }
    }
}

/// A feed send path by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendName {
    /// One `send(2)` per packet.
    Send,
    /// `sendmmsg(2)`.
    Sendmmsg,
    /// io_uring, probed at start with a fallback.
    IoUring,
}

/// `[feed]`: where the engine publishes market data (docs/feed-protocol.md).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSection {
    /// Line A: multicast group and port (a unicast address works too, for tests).
    pub line_a: std::net::SocketAddrV4,
    /// Line B, optional: a second group carrying the same packets.
    pub line_b: Option<std::net::SocketAddrV4>,
    /// The interface to send multicast on.
    #[serde(default = "defaults::feed_interface")]
    pub interface: std::net::Ipv4Addr,
    /// Multicast TTL.
    #[serde(default = "defaults::ttl")]
    pub ttl: u32,
    /// Send path.
    #[serde(default = "defaults::send")]
    pub send: SendName,
    /// Retransmission server (unicast UDP).
    pub retransmit: std::net::SocketAddrV4,
    /// Snapshot server (TCP).
    pub snapshot: std::net::SocketAddrV4,
    /// Packets kept for retransmission.
    #[serde(default = "defaults::history_packets")]
    pub history_packets: usize,
}

/// `[venue]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VenueSection {
    /// Resting orders, all books.
    pub orders_max: u32,
    /// Price levels, all books.
    pub levels_max: u32,
    /// Price levels per book side.
    pub levels_per_side_max: u32,
    /// Accounts `0..accounts_max`.
    pub accounts_max: u32,
    /// Order ids over the engine's life (ids are never reused).
    pub ids_max: u32,
}

impl Default for VenueSection {
    fn default() -> Self {
        Self {
            orders_max: 1 << 20,
            levels_max: 1 << 16,
            levels_per_side_max: 1 << 14,
            accounts_max: 1 << 12,
            ids_max: 1 << 22,
        }
    }
}

/// `[rings]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RingsSection {
    /// Slots of the input ring (gateway → journal ∥ core); a power of two.
    pub input_slots: usize,
    /// Slots of the output ring (core → gateway); a power of two.
    pub output_slots: usize,
}

impl Default for RingsSection {
    fn default() -> Self {
        Self {
            input_slots: 1 << 14,
            output_slots: 1 << 16,
        }
    }
}

/// `[cores]`: the core each thread is pinned to.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoresSection {
    /// The gateway (network I/O and sequencer) thread.
    pub gateway: Option<usize>,
    /// The journal writer stage.
    pub journal: Option<usize>,
    /// The core (sessions, throttle, matching) stage.
    pub core: Option<usize>,
    /// The ledger posting stage (with `[ledger]`).
    pub posting: Option<usize>,
}

/// A wait strategy by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitName {
    /// Busy spin: lowest latency, one core per waiting thread.
    Spin,
    /// Spin, then yield.
    Yield,
    /// Park on a futex.
    Blocking,
    /// Spin, yield, then park.
    Phased,
}

impl WaitName {
    /// The ring's strategy.
    #[must_use]
    pub fn strategy(self) -> sequent_ring::WaitStrategy {
        use sequent_ring::WaitStrategy;
        match self {
            Self::Spin => WaitStrategy::BusySpin,
            Self::Yield => WaitStrategy::Yielding,
            Self::Blocking => WaitStrategy::blocking(),
            Self::Phased => WaitStrategy::phased(),
        }
    }
}

/// `[wait]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WaitSection {
    /// The journal stage.
    pub journal: WaitName,
    /// The core stage.
    pub core: WaitName,
    /// The ledger posting stage.
    pub posting: WaitName,
}

impl Default for WaitSection {
    fn default() -> Self {
        Self {
            journal: WaitName::Blocking,
            core: WaitName::Blocking,
            posting: WaitName::Blocking,
        }
    }
}

/// Journal durability by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurabilityName {
    /// Page cache only until shutdown.
    None,
    /// Every `interval_us`.
    Periodic,
    /// Every `group_records` records or `interval_us`.
    Group,
}

/// `[journal]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalSection {
    /// Directory of the journal (created if missing).
    pub dir: PathBuf,
    /// Sync policy.
    #[serde(default = "defaults::durability")]
    pub durability: DurabilityName,
    /// Group commit: records per sync.
    #[serde(default = "defaults::group_records")]
    pub group_records: u64,
    /// Longest time between syncs, µs.
    #[serde(default = "defaults::interval_us")]
    pub interval_us: u64,
    /// Segment size, MiB.
    #[serde(default = "defaults::segment_mib")]
    pub segment_mib: u64,
    /// Hold every reply until the input that caused it is durable.
    #[serde(default = "defaults::hold_until_durable")]
    pub hold_replies_until_durable: bool,
}

impl JournalSection {
    /// The journal crate's configuration.
    #[must_use]
    pub fn journal_config(&self) -> sequent_journal::Config {
        let interval = Duration::from_micros(self.interval_us.max(1));
        sequent_journal::Config {
            segment_len: self.segment_mib.max(1) << 20,
            durability: match self.durability {
                DurabilityName::None => sequent_journal::Durability::None,
                DurabilityName::Periodic => sequent_journal::Durability::Periodic { interval },
                DurabilityName::Group => sequent_journal::Durability::GroupCommit {
                    records: self.group_records.max(1),
                    interval,
                },
            },
            journal_id: None,
        }
    }
}

/// `[gateway]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySection {
    /// Order-entry listen address (port 0: any free port, printed at start).
    pub listen: SocketAddr,
    /// Connections held at once; all their buffers are allocated at start.
    pub connections_max: usize,
}

impl Default for GatewaySection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9100)),
            connections_max: 512,
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Prometheus text endpoint (`GET /metrics`); absent: no endpoint.
    pub listen: Option<SocketAddr>,
}

mod defaults {
    use super::{DurabilityName, SendName};
    pub fn feed_interface() -> std::net::Ipv4Addr {
        std::net::Ipv4Addr::LOCALHOST
    }
    pub fn ttl() -> u32 {
        1
    }
    pub fn send() -> SendName {
        SendName::Sendmmsg
    }
    pub fn history_packets() -> usize {
        65_536
    }
    pub fn sessions_max() -> u32 {
        256
    }
    pub fn durability() -> DurabilityName {
        DurabilityName::Group
    }
    pub fn group_records() -> u64 {
        256
    }
    pub fn interval_us() -> u64 {
        200
    }
    pub fn segment_mib() -> u64 {
        64
    }
    pub fn hold_until_durable() -> bool {
        true
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not valid TOML for this schema (the message names the key and line).
    #[error("{0}")]
    Parse(String),
    /// A value out of range.
    #[error("{key}: {reason}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

impl EngineConfig {
    /// An engine on loopback for the open-loop load of `load.rs` (its symbols `ABC` and `XYZ`, up
    /// to 64 sessions), on any free port, with a group-committed journal in `journal_dir` (128
    /// records or 200 µs): what `sequent demo` and `sequent-bench engine` run.
    #[must_use]
    pub fn loopback(journal_dir: &std::path::Path, hold_replies_until_durable: bool) -> Self {
        Self {
            symbols: vec!["ABC".into(), "XYZ".into()],
            sessions_max: 64,
            sessions: SessionsSection::default(),
            venue: VenueSection {
                orders_max: 1 << 20,
                levels_max: 1 << 14,
                levels_per_side_max: 1 << 12,
                accounts_max: 64,
                ids_max: 1 << 22,
            },
            rings: RingsSection::default(),
            cores: CoresSection::default(),
            wait: WaitSection::default(),
            journal: JournalSection {
                dir: journal_dir.to_path_buf(),
                durability: DurabilityName::Group,
                group_records: 128,
                interval_us: 200,
                segment_mib: 16,
                hold_replies_until_durable,
            },
            gateway: GatewaySection {
                listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                connections_max: 128,
            },
            metrics: MetricsSection::default(),
            feed: None,
            replication: ReplicationSection::default(),
            snapshots: SnapshotsSection::default(),
            ledger: None,
        }
    }

    /// Parses and checks a configuration text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// Range checks that serde cannot express.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.into(),
            })
        };
        if self.symbols.is_empty() {
            return invalid("symbols", "at least one symbol");
        }
        for symbol in &self.symbols {
            if crate::protocol::symbol_bytes(symbol).is_none() || !symbol.is_ascii() {
                return Err(ConfigError::Invalid {
                    key: "symbols",
                    reason: format!("{symbol:?} is not 1 to 8 ASCII bytes"),
                });
            }
        }
        if self.sessions_max == 0 || self.sessions_max > crate::core::SESSIONS_MAX {
            return invalid("sessions_max", "must be 1..=65536");
        }
        if self.sessions.resend_history > crate::core::RESEND_HISTORY_MAX {
            return Err(ConfigError::Invalid {
                key: "sessions.resend_history",
                reason: format!(
                    "{} is above {} (a whole history must fit half a connection's write buffer)",
                    self.sessions.resend_history,
                    crate::core::RESEND_HISTORY_MAX
                ),
            });
        }
        if u64::from(self.sessions_max) * u64::from(self.sessions.resend_history)
            > crate::core::RESEND_ENTRIES_MAX
        {
            return Err(ConfigError::Invalid {
                key: "sessions.resend_history",
                reason: format!(
                    "sessions_max × resend_history = {} replies, above the {} allocated at most",
                    u64::from(self.sessions_max) * u64::from(self.sessions.resend_history),
                    crate::core::RESEND_ENTRIES_MAX
                ),
            });
        }
        for (key, slots) in [
            ("rings.input_slots", self.rings.input_slots),
            ("rings.output_slots", self.rings.output_slots),
        ] {
            if !slots.is_power_of_two() || slots < 64 {
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!("{slots} is not a power of two of at least 64"),
                });
            }
        }
        if self.gateway.connections_max == 0 {
            return invalid("gateway.connections_max", "at least 1");
        }
        let replication = &self.replication;
        if replication.heartbeat_interval_ms == 0
            || replication.heartbeat_interval_ms >= replication.heartbeat_timeout_ms
        {
            return invalid(
                "replication.heartbeat_interval_ms",
                "must be positive and below replication.heartbeat_timeout_ms",
            );
        }
        if self.snapshots.keep == 0 {
            return invalid("snapshots.keep", "at least 1");
        }
        if replication.digest_every == 0 {
            return invalid("replication.digest_every", "at least 1");
        }
        if replication.degrade_after_ms != 0
            && replication.degrade_after_ms < 2 * replication.heartbeat_timeout_ms
        {
            return invalid(
                "replication.degrade_after_ms",
                "0 (never) or at least twice replication.heartbeat_timeout_ms",
            );
        }
        if self.venue.orders_max == 0 || self.venue.ids_max == 0 || self.venue.accounts_max == 0 {
            return invalid(
                "venue",
                "orders_max, ids_max and accounts_max must be positive",
            );
        }
        if let Some(ledger) = &self.ledger {
            if ledger.transfers_max == 0 {
                return invalid("ledger.transfers_max", "at least 1");
            }
            // One cash account and one position account per symbol for every venue account.
            let accounts = u64::from(self.venue.accounts_max) * (1 + self.symbols.len() as u64);
            if accounts > u64::from(u32::MAX) {
                return invalid(
                    "ledger",
                    "venue.accounts_max × (1 + symbols) ledger accounts exceed 2^32",
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loopback_config_passes_its_checks() {
        let config = EngineConfig::loopback(std::path::Path::new("j"), true);
        config.check().unwrap();
        assert_eq!(config.gateway.listen.port(), 0);
    }

    #[test]
    fn the_sample_parses() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/engine.toml"))
            .expect("the sample config");
        let config = EngineConfig::parse(&text).unwrap();
        assert_eq!(config.symbols, ["ABC", "XYZ", "QQQ"]);
    }

    #[test]
    fn a_bad_key_is_refused_by_name() {
        let error = EngineConfig::parse(
            "symbols = [\"ABC\"]\n[journal]\ndir = \"j\"\n[rings]\ninput_slot = 64\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("input_slot"), "{error}");
        assert!(error.contains("line 5"), "{error}");
        let error = EngineConfig::parse(
            "symbols = [\"ABC\"]\n[journal]\ndir = \"j\"\n[rings]\ninput_slots = 100\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("rings.input_slots"), "{error}");
        let error = EngineConfig::parse("symbols = [\"TOOLONGNAME\"]\n[journal]\ndir = \"j\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("symbols"), "{error}");
        let error = EngineConfig::parse(
            "symbols = [\"A\"]\n[journal]\ndir = \"j\"\ndurability = \"sometimes\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("durability"), "{error}");
        let error = EngineConfig::parse(
            "symbols = [\"A\"]\n[journal]\ndir = \"j\"\n[sessions]\nresend_histroy = 8\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("resend_histroy"), "{error}");
        let error = EngineConfig::parse(
            "symbols = [\"A\"]\n[journal]\ndir = \"j\"\n[sessions]\nresend_history = 5000\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("sessions.resend_history"), "{error}");
        let error = EngineConfig::parse(
            "symbols = [\"A\"]\nsessions_max = 65536\n[journal]\ndir = \"j\"\n[sessions]\nresend_history = 4096\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("sessions.resend_history"), "{error}");
    }

    #[test]
    fn the_ledger_section_is_optional_and_refuses_unknown_keys() {
        let base = "symbols = [\"ABC\"]\n[journal]\ndir = \"j\"\n";
        assert!(EngineConfig::parse(base).unwrap().ledger.is_none());
        let config = EngineConfig::parse(&format!("{base}[ledger]\n")).unwrap();
        let ledger = config.ledger.unwrap();
        assert_eq!(ledger.transfers_max, 1 << 20);
        assert_eq!(ledger.dir, None);
        let error = EngineConfig::parse(&format!("{base}[ledger]\ntransfer_max = 8\n"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("transfer_max"), "{error}");
        let error = EngineConfig::parse(&format!("{base}[ledger]\ntransfers_max = 0\n"))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("ledger.transfers_max"), "{error}");
    }
}
