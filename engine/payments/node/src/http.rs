//! The merchant API: HTTP/JSON on loopback (`tiny_http`, blocking, a few worker threads that
//! never touch the engine's threads: they only call the sequencer and wait for an answer).
//! The contract is `docs/payments-api.yaml`; [`ROUTES`] is what is served, and a test checks
//! the two agree.
//!
//! The card number is validated and tokenised here and goes no further: the sequenced input holds
//! the token, BIN, last four and expiry; the body hash (idempotency) is taken over a canonical
//! request with the card replaced by its token; error messages name the field, never the digits.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sequent_payments::sim::acs::AcsSim;
use sequent_payments::{
    AcquirerId, Bin, CreatePayment, Expiry, IdemKey, Input, MerchantId, Output, PaymentId,
    PaymentView, Reason, ReconReport, Reply, ThreeDsResult, Token,
};
use sequent_vault::{OsRng, Pan, Token as VaultToken, TokenError, Vault, VaultError};
use serde_json::{Value, json};

use crate::config::{AcquirerLink, NodeConfig};
use crate::edge;
use crate::pipeline::{Emitted, Metrics, PipelineError, Sequencer, Views, lock, now_ns};

/// Largest request body read.
pub const BODY_BYTES_MAX: usize = 16 * 1024;

/// Every (method, path pattern) served; `{x}` is a path parameter.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/payments"),
    ("GET", "/payments/{id}"),
    ("POST", "/payments/{id}/capture"),
    ("POST", "/payments/{id}/void"),
    ("POST", "/payments/{id}/refund"),
    ("POST", "/payments/{id}/3ds/challenge"),
    ("POST", "/settlement/{acquirer}"),
    ("GET", "/reconciliation/{acquirer}"),
    ("GET", "/metrics"),
    ("GET", "/admin/state"),
];

/// What the HTTP workers share.
pub struct HttpContext {
    sequencer: Arc<Sequencer>,
    views: Arc<Views>,
    metrics: Arc<Metrics>,
    vault: Arc<Mutex<Vault<OsRng>>>,
    acs: Arc<Mutex<AcsSim>>,
    merchants: HashMap<String, MerchantId>,
    acquirers: Vec<AcquirerLink>,
    /// BIN and last four of random tokens made by this process (FF1 tokens carry their own).
    random_cards: Mutex<HashMap<u128, (u32, u16)>>,
    reply_timeout: Duration,
    clearing_dir: PathBuf,
    clearing_runs: AtomicU64,
}

impl std::fmt::Debug for HttpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpContext").finish_non_exhaustive()
    }
}

impl HttpContext {
    /// Built by the node.
    pub fn new(
        config: &NodeConfig,
        sequencer: Arc<Sequencer>,
        views: Arc<Views>,
        metrics: Arc<Metrics>,
        vault: Arc<Mutex<Vault<OsRng>>>,
        acs: Arc<Mutex<AcsSim>>,
    ) -> HttpContext {
        HttpContext {
            sequencer,
            views,
            metrics,
            vault,
            acs,
            merchants: config
                .merchants
                .iter()
                .map(|m| (m.api_key.clone(), MerchantId(m.id)))
                .collect(),
            acquirers: config.acquirers.clone(),
            random_cards: Mutex::new(HashMap::new()),
            reply_timeout: Duration::from_millis(config.gateway.reply_timeout_ms),
            clearing_dir: config.journal.dir.with_file_name("clearing"),
            clearing_runs: AtomicU64::new(0),
        }
    }
}

/// An answer: status, JSON body, optional `Retry-After` seconds.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Value,
    /// `Retry-After`, seconds.
    pub retry_after: Option<u64>,
}

fn ok(status: u16, body: Value) -> Answer {
    Answer {
        status,
        body,
        retry_after: None,
    }
}

fn error(status: u16, code: &str, message: &str) -> Answer {
    ok(status, json!({ "error": code, "message": message }))
}

fn field_error(field: &str, message: &str) -> Answer {
    ok(
        400,
        json!({ "error": "invalid_request", "field": field, "message": message }),
    )
}

/// Serves requests until `stop`.
pub fn serve(server: &tiny_http::Server, context: &HttpContext, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let request = match server.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(_) => return,
        };
        handle(context, request);
    }
}

fn handle(context: &HttpContext, mut request: tiny_http::Request) {
    context
        .metrics
        .http_requests
        .fetch_add(1, Ordering::Relaxed);
    let method = request.method().as_str().to_owned();
    let url = request.url().to_owned();
    let authorization = header(&request, "Authorization");
    let idempotency = header(&request, "Idempotency-Key");
    let mut body = Vec::new();
    let read = request
        .as_reader()
        .take(BODY_BYTES_MAX as u64 + 1)
        .read_to_end(&mut body);
    let answer = if read.is_err() || body.len() > BODY_BYTES_MAX {
        error(413, "body_too_large", "the request body is over 16 KiB")
    } else {
        route(context, &method, &url, authorization, idempotency, &body)
    };
    if answer.status >= 500 {
        context.metrics.http_5xx.fetch_add(1, Ordering::Relaxed);
    } else if answer.status >= 400 {
        context.metrics.http_4xx.fetch_add(1, Ordering::Relaxed);
    }
    let text = if answer.body.is_string() {
        answer.body.as_str().unwrap_or_default().to_owned()
    } else {
        format!("{}\n", answer.body)
    };
    let content_type = if answer.body.is_string() {
        "text/plain; charset=utf-8"
    } else {
        "application/json"
    };
    let mut response = tiny_http::Response::from_string(text)
        .with_status_code(answer.status)
        .with_header(
            tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes())
                .expect("static header"),
        );
    if let Some(secs) = answer.retry_after {
        response = response.with_header(
            tiny_http::Header::from_bytes(&b"Retry-After"[..], secs.to_string().as_bytes())
                .expect("digits"),
        );
    }
    let _ = request.respond(response);
}

fn header(request: &tiny_http::Request, name: &'static str) -> Option<String> {
    request
        .headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str().to_owned())
}

/// Matches `path` against a route pattern; returns the parameters.
pub fn match_route<'a>(pattern: &str, path: &'a str) -> Option<Vec<&'a str>> {
    let p: Vec<&str> = pattern.trim_matches('/').split('/').collect();
    let s: Vec<&str> = path.trim_matches('/').split('/').collect();
    if p.len() != s.len() {
        return None;
    }
    let mut params = Vec::new();
    for (a, b) in p.iter().zip(&s) {
        if a.starts_with('{') {
            if b.is_empty() {
                return None;
            }
            params.push(*b);
        } else if a != b {
            return None;
        }
    }
    Some(params)
}

fn route(
    context: &HttpContext,
    method: &str,
    url: &str,
    authorization: Option<String>,
    idempotency: Option<String>,
    body: &[u8],
) -> Answer {
    let path = url.split('?').next().unwrap_or_default();
    let mut path_known = false;
    for (m, pattern) in ROUTES {
        let Some(params) = match_route(pattern, path) else {
            continue;
        };
        path_known = true;
        if *m != method {
            continue;
        }
        return dispatch(
            context,
            pattern,
            &params,
            authorization.as_deref(),
            idempotency.as_deref(),
            body,
        );
    }
    if path_known {
        error(
            405,
            "method_not_allowed",
            "this path does not take that method",
        )
    } else {
        error(404, "no_such_route", "no such path")
    }
}

fn dispatch(
    context: &HttpContext,
    pattern: &str,
    params: &[&str],
    authorization: Option<&str>,
    idempotency: Option<&str>,
    body: &[u8],
) -> Answer {
    match pattern {
        "/metrics" => return ok(200, Value::String(context.metrics.render())),
        "/admin/state" => return admin_state(context),
        "/settlement/{acquirer}" => return settle(context, params[0]),
        "/reconciliation/{acquirer}" => return reconciliation(context, params[0]),
        _ => {}
    }
    let Some(merchant) = authorization
        .and_then(|a| a.strip_prefix("Bearer "))
        .and_then(|key| context.merchants.get(key.trim()))
        .copied()
    else {
        return error(
            401,
            "unauthorised",
            "send Authorization: Bearer <merchant API key>",
        );
    };
    let payment = match params.first() {
        Some(text) => match text.parse::<u64>() {
            Ok(id) if id > 0 => Some(PaymentId(id)),
            _ => return error(404, "payment_not_found", "no such payment"),
        },
        None => None,
    };
    if pattern == "/payments/{id}" {
        return status(context, merchant, payment.unwrap_or_default());
    }
    if pattern == "/payments/{id}/3ds/challenge" {
        return challenge(context, merchant, payment.unwrap_or_default(), body);
    }
    let json: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return field_error("body", "the body must be a JSON object"),
        }
    };
    let Some(key_text) = idempotency.filter(|k| !k.is_empty() && k.len() <= 255) else {
        return field_error("Idempotency-Key", "header required, 1 to 255 characters");
    };
    let key = edge::idem_key(key_text);
    match pattern {
        "/payments" => create(context, merchant, key, &json),
        "/payments/{id}/capture" | "/payments/{id}/refund" | "/payments/{id}/void" => command(
            context,
            merchant,
            key,
            pattern,
            payment.unwrap_or_default(),
            &json,
        ),
        _ => error(404, "no_such_route", "no such path"),
    }
}

fn snake(debug: &str) -> String {
    let mut out = String::new();
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn view_json(context: &HttpContext, v: &PaymentView) -> Value {
    let mut j = json!({
        "id": v.payment_id.0,
        "status": snake(&format!("{:?}", v.status)),
        "amount": v.amount,
        "currency": v.currency,
        "authorised": v.authorised,
        "captured": v.captured,
        "refunded": v.refunded,
        "charged_back": v.charged_back,
        "last4": format!("{:04}", v.last4),
        "attempt": v.attempt,
    });
    if let Some(r) = v.reason {
        j["reason"] = json!(snake(&format!("{r:?}")));
    }
    if let Some(c) = v.decline_code {
        j["decline_code"] = json!(format!("{c:02}"));
    }
    if let Some(a) = v.acquirer {
        j["acquirer"] = json!(a.0);
    }
    if let Some(t) = crate::pipeline::challenge_of(&context.views, v.payment_id) {
        j["challenge"] = json!({ "acs_trans_id": t });
    }
    j
}

/// Seconds until `retry_at` (sequenced time ≈ wall time), at least 1.
fn retry_after(retry_at: u64) -> u64 {
    retry_at
        .saturating_sub(now_ns())
        .div_ceil(1_000_000_000)
        .max(1)
}

fn reply_answer(context: &HttpContext, reply: &Reply, created: bool) -> Answer {
    match reply {
        Reply::Ok(v) => ok(if created { 201 } else { 200 }, view_json(context, v)),
        Reply::Status(v) => ok(200, view_json(context, v)),
        Reply::Conflict => error(
            409,
            "idempotency_key_reused",
            "this Idempotency-Key was used before with a different request body",
        ),
        Reply::Rejected {
            payment_id,
            reason,
            retry_at,
        } => {
            let status = match reason {
                Reason::NoRouteAvailable => 503,
                Reason::PaymentNotFound => 404,
                Reason::InvalidState => 409,
                Reason::CapacityExceeded | Reason::LedgerRejected => 503,
                _ => 422,
            };
            let mut body = json!({
                "error": snake(&format!("{reason:?}")),
                "message": "the payment was refused",
            });
            if payment_id.0 != 0 {
                body["payment_id"] = json!(payment_id.0);
            }
            Answer {
                status,
                body,
                retry_after: (*reason == Reason::NoRouteAvailable).then(|| retry_after(retry_at.0)),
            }
        }
    }
}

fn call(context: &HttpContext, input: Input) -> Result<Emitted, Answer> {
    match context.sequencer.call(input, false, context.reply_timeout) {
        Ok((_, emitted)) => Ok(emitted),
        Err(PipelineError::Timeout) => Err(error(
            504,
            "engine_timeout",
            "no answer from the engine in time; retry with the same Idempotency-Key",
        )),
        Err(PipelineError::Stopped) => Err(error(503, "stopping", "the node is stopping")),
    }
}

fn call_reply(context: &HttpContext, input: Input) -> Result<Reply, Answer> {
    match call(context, input)? {
        Emitted::Engine(Output::Reply { reply, .. }) => Ok(reply),
        _ => Err(error(500, "internal", "unexpected engine answer")),
    }
}

fn status(context: &HttpContext, merchant: MerchantId, payment: PaymentId) -> Answer {
    match call_reply(
        context,
        Input::GetStatus {
            merchant,
            payment_id: payment,
        },
    ) {
        Ok(reply) => reply_answer(context, &reply, false),
        Err(a) => a,
    }
}

/// `MM/YY` → `YYMM`.
fn parse_expiry(text: &str) -> Option<Expiry> {
    let (mm, yy) = text.split_once('/')?;
    let (m, y): (u16, u16) = (mm.parse().ok()?, yy.parse().ok()?);
    ((1..=12).contains(&m) && mm.len() == 2 && yy.len() == 2).then_some(Expiry(y * 100 + m))
}

/// The value of ASCII digits (`Pan::bin` and `Pan::last4` give ASCII).
fn digits_value(d: &[u8]) -> u32 {
    d.iter().fold(0, |acc, &x| acc * 10 + u32::from(x - b'0'))
}

/// The card of a create request: (token, BIN, last four, expiry, what the body hash sees).
fn card(context: &HttpContext, json: &Value) -> Result<(Token, Bin, u16, Expiry, Value), Answer> {
    let expiry_at = |v: Option<&Value>, field: &str| {
        v.and_then(Value::as_str)
            .and_then(parse_expiry)
            .ok_or_else(|| field_error(field, "expiry must be MM/YY"))
    };
    match (json.get("card"), json.get("token")) {
        (Some(card), None) => {
            let Some(number) = card.get("number").and_then(Value::as_str) else {
                return Err(field_error(
                    "card.number",
                    "card number required, as a string",
                ));
            };
            let Ok(pan) = Pan::parse(number) else {
                return Err(ok(
                    400,
                    json!({
                        "error": "invalid_card_number",
                        "field": "card.number",
                        "message": "the card number must be 13 to 19 digits and pass the Luhn check",
                    }),
                ));
            };
            let expiry = expiry_at(card.get("expiry"), "card.expiry")?;
            let bin = digits_value(&pan.bin());
            let last4 = digits_value(&pan.last4()) as u16;
            let mut vault = lock(&context.vault);
            let token = match vault.tokenise_ff1(&pan) {
                Ok(t) => edge::engine_token(&t).map(|e| (e, t, true)),
                Err(VaultError::Ff1DomainTooSmall { .. } | VaultError::Ff1NoCounter) => None,
                Err(_) => return Err(error(500, "vault", "the vault refused the card")),
            };
            let (token, text, ff1) = match token {
                Some(t) => t,
                None => loop {
                    // 13–15 digit PANs (FF1's domain is too small) take random tokens.
                    let t = vault
                        .tokenise_random(&pan)
                        .map_err(|_| error(500, "vault", "the vault refused the card"))?;
                    if let Some(e) = edge::engine_token(&t) {
                        break (e, t, false);
                    }
                },
            };
            drop(vault);
            if !ff1 {
                lock(&context.random_cards).insert(token.0, (bin, last4));
            }
            // FF1 tokens are deterministic, so a retry hashes the same. A random token is new on
            // every call, so the hash sees BIN, last four and expiry instead (see README).
            let hashed = if ff1 {
                json!({ "token": text.as_str(), "expiry": expiry.0 })
            } else {
                json!({ "bin": bin, "last4": last4, "expiry": expiry.0 })
            };
            Ok((token, Bin(bin), last4, expiry, hashed))
        }
        (None, Some(token)) => {
            let text = token
                .as_str()
                .ok_or_else(|| field_error("token", "token must be a string"))?;
            let vault_token = match VaultToken::parse(text) {
                Ok(t) => t,
                Err(TokenError::LooksLikePan) => {
                    return Err(field_error(
                        "token",
                        "this looks like a card number; send it as card.number",
                    ));
                }
                Err(TokenError::Shape) => return Err(field_error("token", "not a token")),
            };
            let expiry = expiry_at(json.get("expiry"), "expiry")?;
            let engine = edge::engine_token(&vault_token)
                .ok_or_else(|| field_error("token", "not a token"))?;
            let (bin, last4) = match vault_token.kind() {
                sequent_vault::TokenKind::Ff1 => {
                    let t = vault_token.as_str();
                    (
                        t[..6].parse().unwrap_or(0),
                        t[t.len() - 4..].parse().unwrap_or(0),
                    )
                }
                sequent_vault::TokenKind::Random => *lock(&context.random_cards)
                    .get(&engine.0)
                    .ok_or_else(|| field_error("token", "unknown token"))?,
            };
            let hashed = json!({ "token": text, "expiry": expiry.0 });
            Ok((engine, Bin(bin), last4, expiry, hashed))
        }
        _ => Err(field_error(
            "card",
            "send either card {number, expiry} or token",
        )),
    }
}

fn parse_three_ds(json: &Value) -> Result<Option<ThreeDsResult>, Answer> {
    let Some(t) = json.get("three_ds") else {
        return Ok(None);
    };
    let eci = t
        .get("eci")
        .and_then(Value::as_u64)
        .filter(|e| *e < 100)
        .ok_or_else(|| field_error("three_ds.eci", "two-digit number"))?;
    let hex = t
        .get("cavv")
        .and_then(Value::as_str)
        .filter(|h| h.len() == 40)
        .ok_or_else(|| field_error("three_ds.cavv", "40 hex digits (20 bytes)"))?;
    let mut cavv = [0u8; 20];
    for (i, b) in cavv.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| field_error("three_ds.cavv", "40 hex digits (20 bytes)"))?;
    }
    Ok(Some(ThreeDsResult {
        eci: eci as u8,
        cavv,
    }))
}

fn amount_of(json: &Value, field: &str, required: bool) -> Result<Option<u64>, Answer> {
    match json.get(field) {
        None if !required => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|a| *a > 0)
            .map(Some)
            .ok_or_else(|| field_error(field, "a positive whole number of minor units")),
        None => Err(field_error(field, "required")),
    }
}

fn create(context: &HttpContext, merchant: MerchantId, key: IdemKey, json: &Value) -> Answer {
    let parsed = (|| {
        let amount = amount_of(json, "amount", true)?.unwrap_or_default();
        let currency = json
            .get("currency")
            .and_then(Value::as_u64)
            .filter(|c| *c < 1000)
            .ok_or_else(|| field_error("currency", "ISO 4217 numeric code, e.g. 978"))?
            as u16;
        let three_ds = parse_three_ds(json)?;
        let (token, bin, last4, expiry, hashed_card) = card(context, json)?;
        let canonical = json!({
            "op": "create",
            "amount": amount,
            "currency": currency,
            "card": hashed_card,
            "three_ds": json.get("three_ds").cloned().unwrap_or(Value::Null),
        });
        Ok::<_, Answer>(CreatePayment {
            merchant,
            key,
            body_hash: edge::body_hash(&canonical),
            amount,
            currency,
            token,
            bin,
            last4,
            expiry,
            three_ds,
        })
    })();
    let create = match parsed {
        Ok(c) => c,
        Err(a) => return a,
    };
    match call_reply(context, Input::CreatePayment(create)) {
        Ok(reply) => reply_answer(context, &reply, true),
        Err(a) => a,
    }
}

fn command(
    context: &HttpContext,
    merchant: MerchantId,
    key: IdemKey,
    pattern: &str,
    payment: PaymentId,
    json: &Value,
) -> Answer {
    let op = pattern.rsplit('/').next().unwrap_or_default();
    let requested = if op == "void" {
        None
    } else {
        match amount_of(json, "amount", false) {
            Ok(a) => a,
            Err(a) => return a,
        }
    };
    let canonical = json!({ "op": op, "payment": payment.0, "amount": requested });
    let body_hash = edge::body_hash(&canonical);
    // Without an amount: capture all that is authorised, refund all that is refundable (read
    // from the engine first; the body hash covers the request as sent, so a retry matches).
    let amount = match (op, requested) {
        ("void", _) => 0,
        (_, Some(a)) => a,
        (_, None) => match call_reply(
            context,
            Input::GetStatus {
                merchant,
                payment_id: payment,
            },
        ) {
            Ok(Reply::Status(v)) if op == "capture" => v.authorised.max(1),
            Ok(Reply::Status(v)) => v
                .captured
                .saturating_sub(v.refunded)
                .saturating_sub(v.charged_back)
                .max(1),
            Ok(reply) => return reply_answer(context, &reply, false),
            Err(a) => return a,
        },
    };
    let input = match op {
        "capture" => Input::Capture {
            merchant,
            key,
            body_hash,
            payment_id: payment,
            amount,
        },
        "refund" => Input::Refund {
            merchant,
            key,
            body_hash,
            payment_id: payment,
            amount,
        },
        _ => Input::Void {
            merchant,
            key,
            body_hash,
            payment_id: payment,
        },
    };
    match call_reply(context, input) {
        Ok(reply) => reply_answer(context, &reply, false),
        Err(a) => a,
    }
}

fn challenge(
    context: &HttpContext,
    merchant: MerchantId,
    payment: PaymentId,
    body: &[u8],
) -> Answer {
    let json: Value = serde_json::from_slice(body).unwrap_or(json!({}));
    let Some(otp) = json.get("otp").and_then(Value::as_u64) else {
        return field_error("otp", "the one-time code the cardholder typed, a number");
    };
    // Only the owning merchant may complete its payment's challenge.
    match call_reply(
        context,
        Input::GetStatus {
            merchant,
            payment_id: payment,
        },
    ) {
        Ok(Reply::Status(_)) => {}
        Ok(reply) => return reply_answer(context, &reply, false),
        Err(a) => return a,
    }
    let Some(acs_trans_id) = crate::pipeline::challenge_of(&context.views, payment) else {
        return error(
            409,
            "no_challenge",
            "this payment has no open 3-D Secure challenge",
        );
    };
    // The browser came back (CRes), then the ACS's result (RReq), each a sequenced input.
    let rreq =
        lock(&context.acs).answer_challenge(acs_trans_id, otp.min(u64::from(u32::MAX)) as u32);
    if let Err(a) = call_silent(
        context,
        Input::ThreeDsCRes {
            payment_id: payment,
            acs_trans_id,
        },
    ) {
        return a;
    }
    if let Some(rreq) = rreq {
        if let Err(a) = call_silent(context, Input::ThreeDsRReq(rreq)) {
            return a;
        }
    }
    status(context, merchant, payment)
}

/// Sequences an input that has no answer of its own, then waits until the engine has applied it
/// (a digest request right behind it is answered after it).
fn call_silent(context: &HttpContext, input: Input) -> Result<(), Answer> {
    context
        .sequencer
        .submit(input)
        .map_err(|_| error(503, "stopping", "the node is stopping"))?;
    Ok(())
}

fn admin_state(context: &HttpContext) -> Answer {
    match context
        .sequencer
        .call(Input::Tick, true, context.reply_timeout)
    {
        Ok((seq, Emitted::Digest(d))) => ok(
            200,
            json!({ "sequence": seq, "digest": crate::node::hex(&d) }),
        ),
        _ => error(503, "engine_timeout", "no digest from the engine"),
    }
}

fn link<'a>(context: &'a HttpContext, param: &str) -> Option<&'a AcquirerLink> {
    context
        .acquirers
        .iter()
        .find(|a| a.name == param || a.id.to_string() == param)
}

fn report_json(r: &ReconReport) -> Value {
    use sequent_payments::ReconCategory as C;
    let lines: Vec<Value> = r
        .lines
        .iter()
        .map(|l| {
            json!({
                "category": snake(&format!("{:?}", l.category)),
                "payment_id": l.payment_id.0,
                "kind": snake(&format!("{:?}", l.kind)),
                "reference": l.reference,
                "amount": l.amount,
                "expected": l.expected,
            })
        })
        .collect();
    json!({
        "acquirer": r.acquirer.0,
        "matched": r.count(C::Matched),
        "missing": r.count(C::Missing),
        "unexpected": r.count(C::Unexpected),
        "duplicated": r.count(C::Duplicated),
        "amount_mismatch": r.count(C::AmountMismatch),
        "balanced": r.lines.iter().all(|l| l.category == C::Matched),
        "settled_net": r.settled_net,
        "fees": r.fees,
        "refunds_settled": r.refunds_settled,
        "lines": lines,
    })
}

fn settle(context: &HttpContext, param: &str) -> Answer {
    let Some(link) = link(context, param) else {
        return error(404, "unknown_acquirer", "no such acquirer");
    };
    let Some(admin) = link.admin else {
        return error(
            409,
            "no_admin",
            "this acquirer has no admin address configured",
        );
    };
    let _ = std::fs::create_dir_all(&context.clearing_dir);
    let run = context.clearing_runs.fetch_add(1, Ordering::Relaxed);
    let path = context
        .clearing_dir
        .join(format!("{}-{}-{run}.csv", link.name, std::process::id()));
    let text = match crate::settlement::fetch_clearing(admin, &path) {
        Ok(t) => t,
        Err(e) => return error(502, "clearing_unavailable", &e.to_string()),
    };
    let rows = match crate::settlement::parse_clearing(&text) {
        Ok(r) => r,
        Err(e) => return error(502, "clearing_malformed", &e.to_string()),
    };
    match call(
        context,
        Input::ClearingFile {
            acquirer: AcquirerId(link.id),
            rows,
        },
    ) {
        Ok(Emitted::Engine(Output::Reconciliation(r))) => ok(200, report_json(&r)),
        Ok(_) => error(500, "internal", "unexpected engine answer"),
        Err(a) => a,
    }
}

fn reconciliation(context: &HttpContext, param: &str) -> Answer {
    let Some(link) = link(context, param) else {
        return error(404, "unknown_acquirer", "no such acquirer");
    };
    match lock(&context.views.reports).get(&link.id) {
        Some(r) => ok(200, report_json(r)),
        None => error(
            404,
            "no_report",
            "no clearing file reconciled yet for this acquirer",
        ),
    }
}
