//! The payments node over real loopback sockets: the gateway binary, two acquirer simulator
//! processes, HTTP requests. Each test ends with the PAN scan over everything it produced.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;

const VISA: &str = "4111111111111111";
const MASTERCARD: &str = "5555555555554444";

fn create_body(card: &str, amount: u64) -> String {
    format!(
        r#"{{"amount": {amount}, "currency": 978, "card": {{"number": "{card}", "expiry": "12/30"}}}}"#
    )
}

#[test]
fn authorise_capture_refund_duplicates_partial_3ds_mismatch_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let capture = Capture::default();
    // acq-a (cheaper, so routed first) alters every clearing row by one cent: a mismatch report.
    let a = Sim::start(
        dir.path(),
        "acq-a",
        "seed = 1\npartial_over_minor = 50000\n[mismatch]\nseed = 3\nalter_rate = 1.0\n",
    );
    let b = Sim::start(dir.path(), "acq-b", "seed = 2\n");
    let config = node_config(dir.path(), &[&a, &b], "auth_timeout_ms = 5000", "");
    let gw = Gateway::start(&config, &capture);
    assert!(gw.recovered.starts_with("sequence 0 "), "{}", gw.recovered);
    let m = Merchant {
        capture: &capture,
        addr: gw.addr,
        key: "sk_test_merchant_2",
    };

    // Happy path: authorise, capture part, refund part.
    let first = m.post("/payments", "order-1", &create_body(VISA, 1_000));
    assert_eq!(first.status, 201, "{}", first.text);
    let id = first.body["id"].as_u64().unwrap();
    assert_eq!(first.body["last4"], "1111");
    let done = m.wait_status(id, |s| s == "authorised");
    assert_eq!(done["authorised"], 1_000);
    assert_eq!(done["acquirer"], 1);

    // The same key and body: the first answer again; a different body: 409.
    let again = m.post("/payments", "order-1", &create_body(VISA, 1_000));
    assert_eq!((again.status, &again.body), (201, &first.body));
    let conflict = m.post("/payments", "order-1", &create_body(VISA, 1_001));
    assert_eq!(conflict.status, 409, "{}", conflict.text);
    assert_eq!(conflict.body["error"], "idempotency_key_reused");

    let captured = m.post(
        &format!("/payments/{id}/capture"),
        "cap-1",
        r#"{"amount": 600}"#,
    );
    assert_eq!(captured.status, 200, "{}", captured.text);
    assert_eq!(captured.body["status"], "captured");
    assert_eq!(captured.body["captured"], 600);
    let refunded = m.post(
        &format!("/payments/{id}/refund"),
        "ref-1",
        r#"{"amount": 100}"#,
    );
    assert_eq!(
        refunded.body["status"], "partially_refunded",
        "{}",
        refunded.text
    );
    let too_much = m.post(
        &format!("/payments/{id}/refund"),
        "ref-2",
        r#"{"amount": 10000}"#,
    );
    assert_eq!(too_much.status, 422);
    assert_eq!(too_much.body["error"], "amount_exceeds_refundable");

    // A bad card number: 400 naming the field, never echoing digits.
    let bad = m.post(
        "/payments",
        "order-bad",
        &create_body("4111111111111112", 500),
    );
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["field"], "card.number");
    assert!(!bad.text.contains("411111"), "{}", bad.text);

    // Partial approval: acq-a approves 500.00 of 800.00; the hold shrinks.
    let partial = m.post("/payments", "order-2", &create_body(MASTERCARD, 80_000));
    let pid = partial.body["id"].as_u64().unwrap();
    let p = m.wait_status(pid, |s| s == "authorised");
    assert_eq!(
        (p["amount"].as_u64(), p["authorised"].as_u64()),
        (Some(80_000), Some(50_000))
    );
    let void = m.post(&format!("/payments/{pid}/void"), "void-2", "");
    assert_eq!(void.body["status"], "voided", "{}", void.text);

    // 3-D Secure challenge (merchant 1 asks for 3DS from 500.00; the ACS challenges from 1000.00).
    let m1 = Merchant {
        capture: &capture,
        addr: gw.addr,
        key: "sk_test_merchant_1",
    };
    let c = m1.post(
        "/payments",
        "3ds-1",
        &create_body(&pan("401288888888188"), 120_000),
    );
    assert_eq!(c.body["status"], "authenticating", "{}", c.text);
    let cid = c.body["id"].as_u64().unwrap();
    let pending = m1.wait_status(cid, |_| true);
    let deadline = Instant::now() + PATIENCE;
    let mut pending = pending;
    while pending.get("challenge").is_none() {
        assert!(Instant::now() < deadline, "no challenge: {pending}");
        std::thread::sleep(Duration::from_millis(20));
        pending = m1.get(&format!("/payments/{cid}")).body;
    }
    let done = m1.post(
        &format!("/payments/{cid}/3ds/challenge"),
        "-",
        r#"{"otp": 123456}"#,
    );
    assert_eq!(done.status, 200, "{}", done.text);
    m1.wait_status(cid, |s| s == "authorised");
    // Merchant 2 cannot see merchant 1's payment.
    assert_eq!(m.get(&format!("/payments/{cid}")).status, 404);

    // Settlement: acq-a's file has every amount one cent off: reported, not settled.
    let recon = http(&capture, gw.addr, "POST", "/settlement/acq-a", &[], "");
    assert_eq!(recon.status, 200, "{}", recon.text);
    assert!(
        recon.body["amount_mismatch"].as_u64().unwrap() >= 3,
        "{}",
        recon.text
    );
    assert_eq!(recon.body["balanced"], false);
    let stored = http(&capture, gw.addr, "GET", "/reconciliation/acq-a", &[], "");
    assert_eq!(stored.body, recon.body);
    let recon_b = http(&capture, gw.addr, "POST", "/settlement/2", &[], "");
    assert_eq!(recon_b.body["balanced"], true, "{}", recon_b.text);

    // Every documented route is served, and nothing undocumented is.
    for (method, pattern) in sequent_payments_node::http::ROUTES {
        let path = pattern
            .replace("{id}", &id.to_string())
            .replace("{acquirer}", "acq-b");
        let r = m.post_or_get(method, &path);
        assert_ne!(r.body["error"], "no_such_route", "{method} {path}");
        assert_ne!(r.status, 405, "{method} {path}");
    }
    let metrics = http(&capture, gw.addr, "GET", "/metrics", &[], "");
    assert!(metrics.text.contains("sequent_payments_approvals"));

    // Restart: replay gives the same sequence and digest.
    let state = http(&capture, gw.addr, "GET", "/admin/state", &[], "");
    let digest = state.body["digest"].as_str().unwrap().to_owned();
    let stopped = gw.stop();
    assert!(
        stopped.ends_with(&digest) || stopped.contains("digest"),
        "{stopped}"
    );
    let stopped_digest = stopped.rsplit(' ').next().unwrap().to_owned();
    let gw = Gateway::start(&config, &capture);
    assert!(
        gw.recovered.ends_with(&stopped_digest),
        "{} vs {stopped}",
        gw.recovered
    );
    let stopped_seq = stopped.split_whitespace().nth(1).unwrap();
    assert!(
        gw.recovered
            .starts_with(&format!("sequence {stopped_seq} ")),
        "{}",
        gw.recovered
    );
    let m = Merchant {
        capture: &capture,
        addr: gw.addr,
        key: "sk_test_merchant_2",
    };
    // (The route walk above refunded the rest.)
    assert_eq!(m.get(&format!("/payments/{id}")).body["status"], "refunded");
    // A retry after the restart still gets the first answer.
    assert_eq!(
        m.post("/payments", "order-1", &create_body(VISA, 1_000))
            .body["id"],
        first.body["id"]
    );
    gw.stop();

    pan_scan(
        &capture,
        &[dir.path().to_owned()],
        &[VISA.into(), MASTERCARD.into()],
    );
}

impl Merchant<'_> {
    fn post_or_get(&self, method: &str, path: &str) -> Http {
        if method == "GET" {
            self.get(path)
        } else {
            self.post(path, &format!("route-{path}"), "{}")
        }
    }
}

#[test]
fn outage_fails_over_reverses_every_timeout_and_reconciles() {
    let dir = tempfile::tempdir().unwrap();
    let capture = Capture::default();
    // acq-a answers every request 800 ms late; the connector gives up after 300 ms: timeouts,
    // reversals, late answers, then its breaker opens; later it refuses connections outright.
    let a = Sim::start(dir.path(), "acq-a", "seed = 1\nlatency_ms = 800\n");
    let b = Sim::start(dir.path(), "acq-b", "seed = 2\n");
    let config = node_config(
        dir.path(),
        &[&a, &b],
        "auth_timeout_ms = 3000\nbreaker_failures = 2\nbreaker_open_ms = 1500",
        "response_timeout_ms = 300",
    );
    let gw = Gateway::start(&config, &capture);
    let m = Merchant {
        capture: &capture,
        addr: gw.addr,
        key: "sk_test_merchant_2",
    };
    let mut ids = Vec::new();
    let mut send = |n: usize, from: usize| {
        for i in from..from + n {
            let card = pan(&format!("4000{:011}", 1000 + i));
            let r = m.post(
                "/payments",
                &format!("o-{i}"),
                &create_body(&card, 1_000 + i as u64),
            );
            assert!(r.status == 201 || r.status == 503, "{}", r.text);
            if r.status == 503 {
                assert!(r.headers.contains("Retry-After"), "{}", r.headers);
            }
            if let Some(id) = r.body["id"].as_u64().or(r.body["payment_id"].as_u64()) {
                ids.push(id);
            }
        }
    };
    send(4, 0);
    // acq-a's sign-on answer is 800 ms late too, so the four go out at about 0.8 s and their
    // (late) answers come at about 1.6 s: refuse only after them.
    std::thread::sleep(Duration::from_millis(2_200));
    assert_eq!(a.command("outage refuse"), "ok outage refuse");
    std::thread::sleep(Duration::from_millis(1_600)); // the breaker's half-open probe meets a refusal
    send(4, 4);
    let mut authorised = 0;
    for &id in &ids {
        let v = m.wait_status(id, |s| s != "authorising");
        if v["status"] == "authorised" {
            authorised += 1;
            assert_eq!(v["acquirer"], 2, "{v}");
            let c = m.post(&format!("/payments/{id}/capture"), &format!("c-{id}"), "");
            assert_eq!(c.body["status"], "captured", "{}", c.text);
        }
    }
    assert_eq!(authorised, ids.len(), "every payment failed over to acq-b");
    assert_eq!(a.command("outage off"), "ok outage off");

    // Every reversal reaches acq-a at least once (0400 repeated until 0410).
    let deadline = Instant::now() + PATIENCE;
    let metric = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("sequent_payments_{name} ")))
            .unwrap()
            .parse()
            .unwrap()
    };
    loop {
        let t = http(&capture, gw.addr, "GET", "/metrics", &[], "").text;
        let (queued, acked) = (
            metric(&t, "reversals_queued"),
            metric(&t, "reversals_acknowledged"),
        );
        // The captures too: settlement must not race their 0220s to acq-b.
        if queued > 0
            && queued == acked
            && metric(&t, "late_answers") > 0
            && metric(&t, "forwards_acknowledged") >= authorised as u64
        {
            break;
        }
        assert!(Instant::now() < deadline, "reversals outstanding: {t}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The simulators' own records: per payment at most one authorisation left standing, and every
    // authorisation at acq-a (all timed out) reversed.
    let ra = http(&capture, gw.addr, "POST", "/settlement/acq-a", &[], "");
    let rb = http(&capture, gw.addr, "POST", "/settlement/acq-b", &[], "");
    // acq-a: its late approvals and their reversals. The engine files an auth row of an attempt
    // it had already reversed as `unexpected` (its late answer is on record as a late reply);
    // money-wise the file balances: each such row has its reversal matched, nothing is missing,
    // altered or doubled.
    for field in ["missing", "amount_mismatch", "duplicated"] {
        assert_eq!(ra.body[field], 0, "{}", ra.text);
    }
    let lines = ra.body["lines"].as_array().unwrap();
    for l in lines.iter().filter(|l| l["category"] == "unexpected") {
        assert_eq!(l["kind"], "auth", "{l}");
        assert!(
            lines.iter().any(|r| r["kind"] == "reversal"
                && r["category"] == "matched"
                && r["payment_id"] == l["payment_id"]),
            "{l} has no matched reversal"
        );
    }
    assert_eq!(rb.body["balanced"], true, "{}", rb.text);
    assert_eq!(rb.body["missing"], 0);
    let mut standing: BTreeMap<String, i32> = BTreeMap::new();
    let mut a_auths = BTreeSet::new();
    let mut a_reversals = BTreeSet::new();
    for entry in std::fs::read_dir(dir.path().join("clearing")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let payment = f[1][..9].to_owned();
            match f[5] {
                "auth" => *standing.entry(payment.clone()).or_default() += 1,
                "reversal" => *standing.entry(payment.clone()).or_default() -= 1,
                _ => {}
            }
            if f[0] == "acq-a" && f[5] == "auth" {
                a_auths.insert(f[1].to_owned());
            }
            if f[0] == "acq-a" && f[5] == "reversal" {
                a_reversals.insert(f[1].to_owned());
            }
        }
    }
    assert!(
        !a_auths.is_empty(),
        "acq-a approved (late) before its outage"
    );
    assert_eq!(
        a_auths, a_reversals,
        "every timed-out authorisation was reversed"
    );
    assert!(
        standing.values().all(|&n| n == 1),
        "nothing authorised twice: {standing:?}"
    );
    assert_eq!(standing.len(), ids.len());
    gw.stop();
    pan_scan(&capture, &[dir.path().to_owned()], &[]);
}
