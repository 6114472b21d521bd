//! The simulator's configuration: a TOML file, each key also a command-line flag.
//!
//! ```toml
//! name = "acq-a"                 # acquirer name, first column of the clearing file
//! seed = 7                       # every random choice (latency jitter, error and silence draws, mismatches)
//! latency_ms = 2                 # fixed part of the answer delay
//! jitter_ms = 3                  # plus uniform 0..=jitter_ms
//! decline_bins = [[400000, 400099]]   # BIN ranges (first six digits, inclusive) answered 05
//! limit_minor = 100000           # amounts above → 51
//! partial_over_minor = 50000     # amounts above (and within the limit) → 10, approved for this much, field 54
//! error_rate = 0.0               # share answered 96 (nothing recorded)
//! no_answer_rate = 0.0           # share processed but never answered (the answer is "lost")
//! silent_amounts = [1313]        # 0100/0200 amounts processed but never answered (a deterministic hook for tests)
//! burst_size = 0                 # partial acknowledgement, when > 0: a connection's 0100/0200/0400s count
//! burst_answered = 0             #   in bursts of burst_size, and only the first burst_answered of each are answered
//! require_sign_on = true         # requests before an 0800 sign-on get 91
//! business_date = "2026-11-24"   # date column of the clearing file (default: today, UTC)
//!
//! [[outage]]                     # scheduled outages, ms after start
//! from_ms = 60000
//! to_ms = 90000
//! mode = "refuse"                # "refuse": new and open connections are closed; "drop": requests read and ignored
//!
//! [mismatch]                     # injected into the clearing file only (the simulator's own records stay right)
//! seed = 11
//! drop_rate = 0.0                # a row left out
//! duplicate_rate = 0.0           # a row written twice
//! alter_rate = 0.0               # a row's amount changed by +1
//! ```

use serde::Deserialize;

/// How an outage shows itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutageMode {
    /// Connections are closed as soon as they are accepted, and open ones are closed.
    Refuse,
    /// Connections stay up; requests are read and silently ignored (not processed, not recorded).
    Drop,
}

/// A scheduled outage, relative to the simulator's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    /// Start, ms after start-up.
    pub from_ms: u64,
    /// End (exclusive), ms after start-up.
    pub to_ms: u64,
    /// Refuse or drop.
    pub mode: OutageMode,
}

/// Errors injected into the clearing file.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mismatch {
    /// Seed of the mismatch draws (separate from the main seed, so the same traffic can be
    /// cleared with and without mismatches).
    pub seed: u64,
    /// Share of rows left out.
    pub drop_rate: f64,
    /// Share of rows written twice.
    pub duplicate_rate: f64,
    /// Share of rows whose amount is raised by one minor unit.
    pub alter_rate: f64,
}

/// Everything the simulator can be told.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Acquirer name.
    pub name: String,
    /// Seed for every random draw.
    pub seed: u64,
    /// Fixed answer delay.
    pub latency_ms: u64,
    /// Random extra delay, uniform in 0..=jitter_ms.
    pub jitter_ms: u64,
    /// Inclusive BIN ranges answered 05.
    pub decline_bins: Vec<[u32; 2]>,
    /// Amounts above this are answered 51.
    pub limit_minor: Option<u64>,
    /// Amounts above this are partially approved for exactly this amount (10, field 54).
    pub partial_over_minor: Option<u64>,
    /// Share answered 96.
    pub error_rate: f64,
    /// Share processed but not answered.
    pub no_answer_rate: f64,
    /// Amounts of 0100/0200 requests processed but never answered (their reversals are answered).
    pub silent_amounts: Vec<u64>,
    /// Partial acknowledgement: when > 0, a connection's business requests (0100, 0200, 0400;
    /// not 0800) are counted in bursts of this many, and only the first `burst_answered` of each
    /// burst are answered; the rest are processed and their answers lost. Counted, not timed, so
    /// a test knows which ones go unanswered.
    pub burst_size: u32,
    /// Answered requests per burst (below `burst_size`).
    pub burst_answered: u32,
    /// Refuse (91) requests on a connection that has not signed on.
    pub require_sign_on: bool,
    /// Date column of the clearing file, `YYYY-MM-DD`; `None`: today (UTC) at start-up.
    pub business_date: Option<String>,
    /// Scheduled outages.
    pub outage: Vec<Outage>,
    /// Clearing-file mismatches.
    pub mismatch: Mismatch,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            name: "acq-sim".into(),
            seed: 1,
            latency_ms: 0,
            jitter_ms: 0,
            decline_bins: Vec::new(),
            limit_minor: None,
            partial_over_minor: None,
            error_rate: 0.0,
            no_answer_rate: 0.0,
            silent_amounts: Vec::new(),
            burst_size: 0,
            burst_answered: 0,
            require_sign_on: true,
            business_date: None,
            outage: Vec::new(),
            mismatch: Mismatch::default(),
        }
    }
}

/// Why a configuration is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// TOML syntax or an unknown key.
    #[error("config: {0}")]
    Toml(#[from] toml::de::Error),
    /// A value out of range.
    #[error("config: {key}: {what}")]
    Value {
        /// The key.
        key: &'static str,
        /// What is wrong.
        what: &'static str,
    },
}

impl SimConfig {
    /// Parses TOML and checks ranges.
    pub fn from_toml(text: &str) -> Result<SimConfig, ConfigError> {
        let config: SimConfig = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every rate is in 0..=1, ranges are ordered, the date is shaped `YYYY-MM-DD`, and
    /// the name is CSV-safe.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let rate = |key, r: f64| {
            if (0.0..=1.0).contains(&r) {
                Ok(())
            } else {
                Err(ConfigError::Value {
                    key,
                    what: "must be within 0..=1",
                })
            }
        };
        rate("error_rate", self.error_rate)?;
        rate("no_answer_rate", self.no_answer_rate)?;
        rate("mismatch.drop_rate", self.mismatch.drop_rate)?;
        rate("mismatch.duplicate_rate", self.mismatch.duplicate_rate)?;
        rate("mismatch.alter_rate", self.mismatch.alter_rate)?;
        if self
            .decline_bins
            .iter()
            .any(|[from, to]| from > to || *to > 999_999)
        {
            return Err(ConfigError::Value {
                key: "decline_bins",
                what: "each range is [from, to] with from <= to <= 999999",
            });
        }
        if self.burst_size > 0 && self.burst_answered >= self.burst_size {
            return Err(ConfigError::Value {
                key: "burst_answered",
                what: "must be below burst_size",
            });
        }
        if self.outage.iter().any(|o| o.from_ms >= o.to_ms) {
            return Err(ConfigError::Value {
                key: "outage",
                what: "from_ms must be below to_ms",
            });
        }
        if let Some(date) = &self.business_date {
            let b = date.as_bytes();
            let shaped = b.len() == 10
                && b[4] == b'-'
                && b[7] == b'-'
                && b.iter()
                    .enumerate()
                    .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
            if !shaped {
                return Err(ConfigError::Value {
                    key: "business_date",
                    what: "expected YYYY-MM-DD",
                });
            }
        }
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ConfigError::Value {
                key: "name",
                what: "letters, digits, - and _ only",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
            .collect::<Vec<_>>()
            .join("\n");
        let config = SimConfig::from_toml(&example).unwrap();
        assert_eq!(config.name, "acq-a");
        assert_eq!(config.outage[0].mode, OutageMode::Refuse);
        assert_eq!(config.decline_bins, vec![[400000, 400099]]);
        assert!(SimConfig::from_toml("error_rate = 2.0").is_err());
        assert!(SimConfig::from_toml("nonsense = 1").is_err());
    }
}
