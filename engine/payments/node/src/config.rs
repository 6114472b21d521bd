//! The node's configuration (`payments.toml`): where to listen, the journal, the vault's files,
//! the merchants' API keys, the engine's timing knobs and one section per acquirer connector.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use sequent_payments::{AcquirerId, Config, MerchantId, Nanos};
use serde::Deserialize;

/// Most HTTP worker threads.
pub const HTTP_THREADS_MAX: usize = 64;
/// Most acquirer connectors.
pub const ACQUIRERS_MAX: usize = 16;

/// Why a configuration is refused: the key is named.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// TOML syntax or an unknown key.
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    /// A value out of range.
    #[error("{key}: {what}")]
    Value {
        /// The key.
        key: String,
        /// What is wrong.
        what: &'static str,
    },
}

/// `[gateway]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Merchant API address (loopback).
    pub listen: SocketAddr,
    /// HTTP worker threads (each blocks on its request; none spins).
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Input and output ring slots (powers of two).
    #[serde(default = "default_slots")]
    pub ring_slots: usize,
    /// How long an HTTP request waits for the engine's answer.
    #[serde(default = "default_reply_timeout")]
    pub reply_timeout_ms: u64,
}

fn default_threads() -> usize {
    4
}
fn default_slots() -> usize {
    1024
}
fn default_reply_timeout() -> u64 {
    10_000
}

/// `[journal]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    /// Directory of the input journal.
    pub dir: PathBuf,
    /// Segment size in MiB.
    #[serde(default = "default_segment_mib")]
    pub segment_mib: u64,
}

fn default_segment_mib() -> u64 {
    64
}

/// `[vault]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// Key file (`sequent-vault` format); generated on first start when absent.
    pub keys: PathBuf,
    /// Random-token record file.
    pub records: PathBuf,
}

/// `[engine]`: overrides of `sequent_payments::Config::example()`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineKnobs {
    /// How long an authorisation waits for its answer before the engine reverses it.
    pub auth_timeout_ms: Option<u64>,
    /// Consecutive failures that open an acquirer's breaker.
    pub breaker_failures: Option<u32>,
    /// How long an open breaker stays open.
    pub breaker_open_ms: Option<u64>,
    /// Most authorisations waiting at one acquirer.
    pub in_flight_max: Option<u32>,
    /// Most payments held.
    pub payments_max: Option<u32>,
}

/// `[[merchants]]`: who may call the merchant API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantKey {
    /// The engine's merchant id (must be configured in the engine).
    pub id: u32,
    /// `Authorization: Bearer <api_key>`.
    pub api_key: String,
}

/// `[[acquirers]]`: one connector each.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcquirerLink {
    /// The engine's acquirer id.
    pub id: u16,
    /// Name (logs, clearing file's first column).
    pub name: String,
    /// ISO 8583 address.
    pub address: SocketAddr,
    /// The simulator's admin (control line) address, for `clearing PATH`.
    pub admin: Option<SocketAddr>,
    /// Time for an authorisation's answer before the connector reports `AcquirerTimeout`.
    #[serde(default = "default_response_timeout")]
    pub response_timeout_ms: u64,
    /// First and largest reconnect back-off.
    #[serde(default = "default_backoff_min")]
    pub reconnect_min_ms: u64,
    /// Largest reconnect back-off.
    #[serde(default = "default_backoff_max")]
    pub reconnect_max_ms: u64,
    /// Interval between retransmissions of an unanswered reversal, capture or refund.
    #[serde(default = "default_forward_retry")]
    pub forward_retry_ms: u64,
    /// Field 32, acquiring institution id (digits).
    #[serde(default = "default_institution")]
    pub institution_id: String,
}

fn default_response_timeout() -> u64 {
    5_000
}
fn default_backoff_min() -> u64 {
    50
}
fn default_backoff_max() -> u64 {
    1_000
}
fn default_forward_retry() -> u64 {
    500
}
fn default_institution() -> String {
    "12345".into()
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Merchant API.
    pub gateway: GatewayConfig,
    /// Journal.
    pub journal: JournalConfig,
    /// Vault.
    pub vault: VaultConfig,
    /// Engine knobs.
    #[serde(default)]
    pub engine: EngineKnobs,
    /// Merchants' API keys.
    pub merchants: Vec<MerchantKey>,
    /// Acquirer connectors.
    pub acquirers: Vec<AcquirerLink>,
}

impl NodeConfig {
    /// Reads and checks a file; relative paths are taken from the file's folder.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut config = NodeConfig::parse(&text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut config.journal.dir,
            &mut config.vault.keys,
            &mut config.vault.records,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }

    /// Parses TOML and checks it against the engine configuration it builds.
    pub fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
        let config: NodeConfig = toml::from_str(text)?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, what| {
            Err(ConfigError::Value {
                key: key.to_owned(),
                what,
            })
        };
        if !(1..=HTTP_THREADS_MAX).contains(&self.gateway.threads) {
            return bad("gateway.threads", "must be 1..=64");
        }
        if !self.gateway.ring_slots.is_power_of_two() || self.gateway.ring_slots < 16 {
            return bad("gateway.ring_slots", "must be a power of two, at least 16");
        }
        if self.acquirers.is_empty() || self.acquirers.len() > ACQUIRERS_MAX {
            return bad("acquirers", "must list 1..=16 acquirers");
        }
        let engine = self.engine_config();
        for (i, a) in self.acquirers.iter().enumerate() {
            if !engine.acquirers.iter().any(|e| e.id == AcquirerId(a.id)) {
                return bad(&format!("acquirers[{i}].id"), "not an engine acquirer");
            }
            if self.acquirers[..i].iter().any(|b| b.id == a.id) {
                return bad(&format!("acquirers[{i}].id"), "duplicate");
            }
            if a.response_timeout_ms == 0 || a.reconnect_min_ms == 0 || a.forward_retry_ms == 0 {
                return bad(&format!("acquirers[{i}]"), "timeouts must be positive");
            }
            if a.institution_id.is_empty()
                || a.institution_id.len() > 11
                || !a.institution_id.bytes().all(|b| b.is_ascii_digit())
            {
                return bad(&format!("acquirers[{i}].institution_id"), "1..=11 digits");
            }
        }
        for (i, m) in self.merchants.iter().enumerate() {
            if engine.merchant(MerchantId(m.id)).is_none() {
                return bad(&format!("merchants[{i}].id"), "not an engine merchant");
            }
            if m.api_key.len() < 8 {
                return bad(&format!("merchants[{i}].api_key"), "at least 8 characters");
            }
        }
        Ok(())
    }

    /// The engine's configuration: `Config::example()` (merchants 1 and 2, acquirers 1 and 2,
    /// the rule set the engine's tests use) with `[engine]`'s overrides. Replay needs the same
    /// configuration as the run that wrote the journal.
    pub fn engine_config(&self) -> Config {
        const MS: u64 = 1_000_000;
        let mut c = Config::example();
        let k = &self.engine;
        if let Some(v) = k.auth_timeout_ms {
            c.auth_timeout = Nanos(v * MS);
        }
        if let Some(v) = k.breaker_failures {
            c.breaker_failures = v;
        }
        if let Some(v) = k.breaker_open_ms {
            c.breaker_open = Nanos(v * MS);
        }
        if let Some(v) = k.in_flight_max {
            for a in &mut c.acquirers {
                a.in_flight_max = v;
            }
        }
        if let Some(v) = k.payments_max {
            c.payments_max = v;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_config_parses() {
        let text = include_str!("../payments.toml");
        let config = NodeConfig::parse(text).unwrap();
        assert_eq!(config.acquirers.len(), 2);
        config.engine_config().validate();
    }

    #[test]
    fn an_unknown_acquirer_is_named() {
        let text = include_str!("../payments.toml").replace("id = 2\nname", "id = 9\nname");
        let err = NodeConfig::parse(&text).unwrap_err().to_string();
        assert!(err.contains("acquirers[1].id"), "{err}");
    }
}
