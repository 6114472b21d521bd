//! The simulated acquirer's decisions, without sockets: a request in, maybe a response out, and
//! the records that end up in the clearing file.

use std::collections::{BTreeMap, HashMap};

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use sequent_iso8583::{Message, Mti, OriginalData, PrivateData, ResponseCode, network, processing};

use crate::config::SimConfig;

/// A clearing row's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    /// An approved 0100.
    Auth,
    /// An approved 0200 purchase (a sale, or the capture of an earlier 0100 by RRN).
    Capture,
    /// An approved 0200 refund (processing code 200000).
    Refund,
    /// An accepted 0400 of an approved authorisation.
    Reversal,
}

impl RowKind {
    /// The CSV word.
    pub fn word(self) -> &'static str {
        match self {
            RowKind::Auth => "auth",
            RowKind::Capture => "capture",
            RowKind::Refund => "refund",
            RowKind::Reversal => "reversal",
        }
    }
}

/// One line of the clearing file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearingRow {
    /// Retrieval reference number (field 37).
    pub rrn: String,
    /// Our payment id (field 48 tag 01), empty when absent.
    pub payment_id: String,
    /// Minor units (the approved amount for partial approvals).
    pub amount_minor: u64,
    /// ISO 4217 numeric (field 49).
    pub currency: String,
    /// auth, capture, refund or reversal.
    pub kind: RowKind,
}

/// Per-connection state.
#[derive(Debug, Default)]
pub struct Session {
    /// An 0800 sign-on was accepted and no sign-off since.
    pub signed_on: bool,
    /// Business requests processed on this connection (for partial acknowledgement).
    pub business_requests: u64,
}

/// What to do with one request.
#[derive(Debug)]
pub struct Decision {
    /// The answer to write, after `delay_ms`; `None`: no answer (lost, or a response was read).
    pub response: Option<Message>,
    /// Simulated processing latency.
    pub delay_ms: u64,
}

/// Counters for the `stats` command.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Requests handled (including duplicates).
    pub requests: u64,
    /// Retransmissions answered from the cache.
    pub duplicates: u64,
    /// Requests processed but deliberately not answered.
    pub unanswered: u64,
    /// Approvals (00 or 10).
    pub approved: u64,
    /// Reversals accepted.
    pub reversed: u64,
}

#[derive(Debug, Clone)]
struct Auth {
    stan: String,
    amount_minor: u64,
    reversed: bool,
}

/// The acquirer: rules, the authorisations it approved, the retransmission cache.
#[derive(Debug)]
pub struct Acquirer {
    config: SimConfig,
    rng: ChaCha8Rng,
    /// Approved 0100s by RRN, for captures and reversals.
    auths: BTreeMap<String, Auth>,
    /// Answers by (MTI, STAN, RRN): a retransmission gets the same answer, not a second
    /// authorisation.
    answered: HashMap<(Mti, String, String), Message>,
    rows: Vec<ClearingRow>,
    next_auth_id: u32,
    stats: Stats,
}

fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

impl Acquirer {
    /// A fresh acquirer.
    pub fn new(config: SimConfig) -> Acquirer {
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        Acquirer {
            config,
            rng,
            auths: BTreeMap::new(),
            answered: HashMap::new(),
            rows: Vec::new(),
            next_auth_id: 1,
            stats: Stats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The clearing rows so far, in the order they happened.
    pub fn rows(&self) -> &[ClearingRow] {
        &self.rows
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    fn delay(&mut self) -> u64 {
        let jitter = if self.config.jitter_ms == 0 {
            0
        } else {
            self.rng.next_u64() % (self.config.jitter_ms + 1)
        };
        self.config.latency_ms + jitter
    }

    /// Decides the answer to one request on `session`.
    pub fn handle_request(&mut self, session: &mut Session, request: &Message) -> Decision {
        self.stats.requests += 1;
        let delay_ms = self.delay();
        let Some(_) = request.mti().response() else {
            return Decision {
                response: None,
                delay_ms,
            }; // a response sent to us: ignore
        };
        let key = (
            request.mti(),
            request.get_str(11).unwrap_or_default().to_owned(),
            request.get_str(37).unwrap_or_default().to_owned(),
        );
        if request.mti() != Mti::NetworkRequest
            && let Some(cached) = self.answered.get(&key)
        {
            self.stats.duplicates += 1;
            return Decision {
                response: Some(cached.clone()),
                delay_ms,
            };
        }
        // Network messages and refusals before sign-on are answered but not remembered: only
        // business answers are what a retransmission must see again.
        let business = request.mti() != Mti::NetworkRequest
            && (session.signed_on || !self.config.require_sign_on);
        let response = match request.mti() {
            Mti::NetworkRequest => self.network(session, request),
            _ if !business => respond(request, ResponseCode::IssuerUnavailable),
            Mti::AuthorisationRequest | Mti::FinancialRequest => self.authorise(request),
            Mti::ReversalRequest => self.reverse(request),
            _ => None,
        };
        let Some(response) = response else {
            return Decision {
                response: None,
                delay_ms,
            };
        };
        if !business {
            return Decision {
                response: Some(response),
                delay_ms,
            };
        }
        self.answered.insert(key, response.clone());
        // The answer is lost on the way back: the work above (an approval, a reversal) stands.
        let amount = request.get_str(4).and_then(|a| a.parse::<u64>().ok());
        let authorisation = matches!(
            request.mti(),
            Mti::AuthorisationRequest | Mti::FinancialRequest
        );
        let silent = (authorisation
            && amount.is_some_and(|a| self.config.silent_amounts.contains(&a)))
            || (self.config.no_answer_rate > 0.0
                && uniform(&mut self.rng) < self.config.no_answer_rate);
        let burst = u64::from(self.config.burst_size);
        let unacknowledged =
            burst > 0 && session.business_requests % burst >= u64::from(self.config.burst_answered);
        session.business_requests += 1;
        if silent || unacknowledged {
            self.stats.unanswered += 1;
            return Decision {
                response: None,
                delay_ms,
            };
        }
        Decision {
            response: Some(response),
            delay_ms,
        }
    }

    fn network(&mut self, session: &mut Session, request: &Message) -> Option<Message> {
        let code = match request.get_str(70) {
            Some(network::SIGN_ON) => {
                session.signed_on = true;
                ResponseCode::Approved
            }
            Some(network::SIGN_OFF) => {
                session.signed_on = false;
                ResponseCode::Approved
            }
            Some(network::ECHO) => ResponseCode::Approved,
            _ => ResponseCode::FormatError,
        };
        respond(request, code)
    }

    fn authorise(&mut self, request: &Message) -> Option<Message> {
        let amount = request.get_str(4).and_then(|a| a.parse::<u64>().ok());
        let (Some(amount), Some(rrn), Some(_stan)) =
            (amount, request.get_str(37), request.get_str(11))
        else {
            return respond(request, ResponseCode::FormatError);
        };
        let rrn = rrn.to_owned();
        let refund = request.get_str(3) == Some(processing::REFUND);
        // A 0200 purchase naming the RRN of an approved 0100 is its capture.
        if request.mti() == Mti::FinancialRequest && !refund {
            if let Some(auth) = self.auths.get(&rrn) {
                let code = if auth.reversed || amount > auth.amount_minor {
                    ResponseCode::InvalidAmount
                } else {
                    self.record(request, amount, RowKind::Capture);
                    self.stats.approved += 1;
                    ResponseCode::Approved
                };
                return respond(request, code);
            }
        }
        let bin: Option<u32> = request
            .pan()
            .and_then(|p| p.expose().get(..6))
            .and_then(|b| b.parse().ok());
        if !refund
            && bin.is_some_and(|bin| {
                self.config
                    .decline_bins
                    .iter()
                    .any(|[lo, hi]| (*lo..=*hi).contains(&bin))
            })
        {
            return respond(request, ResponseCode::DoNotHonour);
        }
        if self.config.error_rate > 0.0 && uniform(&mut self.rng) < self.config.error_rate {
            return respond(request, ResponseCode::SystemMalfunction);
        }
        if !refund && self.config.limit_minor.is_some_and(|limit| amount > limit) {
            return respond(request, ResponseCode::InsufficientFunds);
        }
        let partial = self
            .config
            .partial_over_minor
            .filter(|&over| !refund && amount > over);
        let approved_minor = partial.unwrap_or(amount);
        let code = if partial.is_some() {
            ResponseCode::PartialApproval
        } else {
            ResponseCode::Approved
        };
        let mut response = respond(request, code)?;
        let auth_id = format!("A{:05}", self.next_auth_id % 100_000);
        self.next_auth_id += 1;
        response.set(38, &auth_id).ok()?;
        if partial.is_some() {
            let currency = request.get_str(49).unwrap_or("000");
            response
                .set(54, format!("0002{currency}D{approved_minor:012}"))
                .ok()?;
        }
        let kind = match (request.mti(), refund) {
            (Mti::AuthorisationRequest, _) => RowKind::Auth,
            (_, true) => RowKind::Refund,
            _ => RowKind::Capture,
        };
        if kind == RowKind::Auth {
            let stan = request.get_str(11).unwrap_or_default().to_owned();
            self.auths.insert(
                rrn,
                Auth {
                    stan,
                    amount_minor: approved_minor,
                    reversed: false,
                },
            );
        }
        self.record(request, approved_minor, kind);
        self.stats.approved += 1;
        Some(response)
    }

    fn reverse(&mut self, request: &Message) -> Option<Message> {
        let original = request.get_str(90).and_then(OriginalData::decode);
        let (Some(original), Some(rrn)) = (original, request.get_str(37)) else {
            return respond(request, ResponseCode::FormatError);
        };
        let code = match self.auths.get_mut(rrn) {
            Some(auth) if auth.stan == original.stan => {
                if !auth.reversed {
                    auth.reversed = true;
                    let amount = auth.amount_minor;
                    self.record(request, amount, RowKind::Reversal);
                    self.stats.reversed += 1;
                }
                ResponseCode::Approved
            }
            _ => ResponseCode::OriginalNotFound,
        };
        respond(request, code)
    }

    fn record(&mut self, request: &Message, amount_minor: u64, kind: RowKind) {
        let payment_id = request
            .get_str(48)
            .and_then(|text| PrivateData::decode(text).ok())
            .and_then(|p| p.payment_id)
            .unwrap_or_default();
        self.rows.push(ClearingRow {
            rrn: request.get_str(37).unwrap_or_default().to_owned(),
            payment_id,
            amount_minor,
            currency: request.get_str(49).unwrap_or("000").to_owned(),
            kind,
        });
    }

    /// The clearing file's text, with the configured mismatches injected (seeded, so the same
    /// rows and seed always give the same file). Columns: see the crate docs.
    pub fn clearing_csv(&self, business_date: &str) -> String {
        let m = self.config.mismatch;
        let mut rng = ChaCha8Rng::seed_from_u64(m.seed);
        let mut out = String::from("acquirer,rrn,payment_id,amount_minor,currency,type,date\n");
        for row in &self.rows {
            // Three draws per row, always, so one rate does not shift the others' draws.
            let (drop, dup, alter) = (uniform(&mut rng), uniform(&mut rng), uniform(&mut rng));
            if drop < m.drop_rate {
                continue;
            }
            let amount = row.amount_minor + u64::from(alter < m.alter_rate);
            let line = format!(
                "{},{},{},{},{},{},{}\n",
                self.config.name,
                row.rrn,
                csv_field(&row.payment_id),
                amount,
                row.currency,
                row.kind.word(),
                business_date
            );
            out.push_str(&line);
            if dup < m.duplicate_rate {
                out.push_str(&line);
            }
        }
        out
    }
}

/// Quotes a field when it holds a comma or quote (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn respond(request: &Message, code: ResponseCode) -> Option<Message> {
    Message::response_to(request, code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sequent_iso8583::PanField;

    fn request(stan: &str, amount: u64) -> Message {
        let mut m = Message::new(Mti::AuthorisationRequest);
        m.set_pan(PanField::new("4111111111111111").unwrap());
        m.set(4, format!("{amount:012}"))
            .unwrap()
            .set(11, stan)
            .unwrap();
        m.set(37, format!("{stan:0>12}"))
            .unwrap()
            .set(49, "978")
            .unwrap();
        m
    }

    fn signed_on() -> Session {
        Session {
            signed_on: true,
            business_requests: 0,
        }
    }

    #[test]
    fn partial_acknowledgement_answers_the_first_of_each_burst() {
        let mut acquirer = Acquirer::new(SimConfig {
            burst_size: 3,
            burst_answered: 2,
            ..SimConfig::default()
        });
        let mut session = signed_on();
        let answered: Vec<bool> = (0..7)
            .map(|i| {
                acquirer
                    .handle_request(&mut session, &request(&format!("{i:06}"), 10))
                    .response
                    .is_some()
            })
            .collect();
        assert_eq!(answered, [true, true, false, true, true, false, true]);
        assert_eq!(
            acquirer.rows().len(),
            7,
            "unacknowledged requests are still processed"
        );
    }

    #[test]
    fn error_rate_one_answers_96_and_records_nothing() {
        let mut acquirer = Acquirer::new(SimConfig {
            error_rate: 1.0,
            ..SimConfig::default()
        });
        let decision = acquirer.handle_request(&mut signed_on(), &request("000001", 10));
        assert_eq!(decision.response.unwrap().get_str(39), Some("96"));
        assert!(acquirer.rows().is_empty());
    }

    #[test]
    fn no_answer_still_approves_and_a_retransmission_gets_the_answer() {
        let mut acquirer = Acquirer::new(SimConfig {
            no_answer_rate: 1.0,
            ..SimConfig::default()
        });
        let mut session = signed_on();
        assert!(
            acquirer
                .handle_request(&mut session, &request("000001", 10))
                .response
                .is_none()
        );
        assert_eq!(
            acquirer.rows().len(),
            1,
            "the approval stands although its answer was lost"
        );
        let again = acquirer.handle_request(&mut session, &request("000001", 10));
        assert_eq!(again.response.unwrap().get_str(39), Some("00"));
        assert_eq!(acquirer.rows().len(), 1);
    }

    #[test]
    fn mismatches_are_seeded_and_drop_rows() {
        let config = SimConfig {
            mismatch: crate::config::Mismatch {
                seed: 9,
                drop_rate: 0.5,
                ..Default::default()
            },
            ..SimConfig::default()
        };
        let mut acquirer = Acquirer::new(config);
        for i in 0..40 {
            acquirer.handle_request(&mut signed_on(), &request(&format!("{i:06}"), 100 + i));
        }
        let csv = acquirer.clearing_csv("2026-11-24");
        let rows = csv.lines().count() - 1;
        assert!(rows > 5 && rows < 35, "{rows} of 40 kept");
        assert_eq!(
            csv,
            acquirer.clearing_csv("2026-11-24"),
            "same seed, same file"
        );
    }

    #[test]
    fn latency_is_fixed_plus_seeded_jitter() {
        let config = SimConfig {
            latency_ms: 5,
            jitter_ms: 3,
            seed: 4,
            ..SimConfig::default()
        };
        let delays = |config: &SimConfig| {
            let mut acquirer = Acquirer::new(config.clone());
            (0..20)
                .map(|i| {
                    acquirer
                        .handle_request(&mut signed_on(), &request(&format!("{i:06}"), 1))
                        .delay_ms
                })
                .collect::<Vec<_>>()
        };
        let first = delays(&config);
        assert!(first.iter().all(|d| (5..=8).contains(d)));
        assert!(first.iter().any(|&d| d != first[0]), "jitter varies");
        assert_eq!(first, delays(&config));
    }
}
