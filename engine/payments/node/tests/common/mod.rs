//! The harness: acquirer simulator processes, the gateway process, a tiny HTTP client, and the
//! PAN scan over everything the scenarios produced.
//!
//! The simulator is built as `sequent-payments-acquirer-sim`, a binary of this crate that calls
//! `sequent_acquirer_sim::cli::main_with_args`: `cargo test` builds it with these tests and
//! `env!("CARGO_BIN_EXE_…")` names it, so no test guesses a target folder or runs cargo itself.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bounds a hang; never what makes a test pass.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Everything produced that the PAN scan reads.
#[derive(Default, Clone)]
pub struct Capture(pub Arc<Mutex<Vec<Captured>>>);

/// What produced it, and the bytes.
pub type Captured = (String, Vec<u8>);

impl Capture {
    pub fn add(&self, what: &str, bytes: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .push((what.to_owned(), bytes.to_vec()));
    }
}

fn pump(
    capture: Capture,
    what: String,
    reader: impl Read + Send + 'static,
) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { return };
            capture.add(&what, line.as_bytes());
            let _ = tx.send(line);
        }
    });
    rx
}

fn wait_line(rx: &std::sync::mpsc::Receiver<String>, prefix: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no `{prefix}` line"));
        if let Some(rest) = line.strip_prefix(prefix) {
            return rest.trim().to_owned();
        }
    }
}

pub struct Sim {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
}

impl Sim {
    pub fn start(dir: &Path, name: &str, config: &str) -> Sim {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!("name = \"{name}\"\nbusiness_date = \"2026-11-24\"\n{config}"),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sequent-payments-acquirer-sim"))
            .arg("--config")
            .arg(&path)
            .args(["--admin-listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let rx = pump(
            Capture::default(),
            name.into(),
            child.stdout.take().unwrap(),
        );
        let addr = wait_line(&rx, "listening:").parse().unwrap();
        let admin = wait_line(&rx, "admin:").parse().unwrap();
        Sim { child, addr, admin }
    }

    pub fn command(&self, line: &str) -> String {
        let mut s = TcpStream::connect(self.admin).unwrap();
        writeln!(s, "{line}").unwrap();
        let mut reply = String::new();
        BufReader::new(s).read_line(&mut reply).unwrap();
        reply.trim().to_owned()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Gateway {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: std::sync::mpsc::Receiver<String>,
    pub addr: SocketAddr,
    pub recovered: String,
}

impl Gateway {
    pub fn start(config: &Path, capture: &Capture) -> Gateway {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sequent-payments-gateway"))
            .arg("--config")
            .arg(config)
            .args(["--listen", "127.0.0.1:0", "--stdin-stop"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = pump(
            capture.clone(),
            "gateway stdout".into(),
            child.stdout.take().unwrap(),
        );
        let _ = pump(
            capture.clone(),
            "gateway stderr".into(),
            child.stderr.take().unwrap(),
        );
        let recovered = wait_line(&stdout, "recovered:");
        let addr = wait_line(&stdout, "listening:").parse().unwrap();
        Gateway {
            stdin: child.stdin.take(),
            child,
            stdout,
            addr,
            recovered,
        }
    }

    /// Stops cleanly; returns the `stopped:` line's rest (`sequence N digest HEX`).
    pub fn stop(mut self) -> String {
        let mut stdin = self.stdin.take().unwrap();
        writeln!(stdin, "stop").unwrap();
        let line = wait_line(&self.stdout, "stopped:");
        assert!(self.child.wait().unwrap().success());
        line
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Http {
    pub status: u16,
    pub headers: String,
    pub body: serde_json::Value,
    pub text: String,
}

/// One request on its own connection.
pub fn http(
    capture: &Capture,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Http {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    capture.add(&format!("http {method} {path}"), &raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Http {
        status,
        headers: head.to_owned(),
        body: serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
        text: body.to_owned(),
    }
}

/// A merchant's client.
pub struct Merchant<'a> {
    pub capture: &'a Capture,
    pub addr: SocketAddr,
    pub key: &'a str,
}

impl Merchant<'_> {
    pub fn post(&self, path: &str, idem: &str, body: &str) -> Http {
        let auth = format!("Bearer {}", self.key);
        http(
            self.capture,
            self.addr,
            "POST",
            path,
            &[("Authorization", &auth), ("Idempotency-Key", idem)],
            body,
        )
    }

    pub fn get(&self, path: &str) -> Http {
        let auth = format!("Bearer {}", self.key);
        http(
            self.capture,
            self.addr,
            "GET",
            path,
            &[("Authorization", &auth)],
            "",
        )
    }

    /// Polls a payment until `done(status)`.
    pub fn wait_status(&self, id: u64, done: impl Fn(&str) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let r = self.get(&format!("/payments/{id}"));
            let status = r.body["status"].as_str().unwrap_or_default().to_owned();
            if done(&status) {
                return r.body;
            }
            assert!(
                Instant::now() < deadline,
                "payment {id} stuck at {}",
                r.text
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Writes the node's config; returns its path.
pub fn node_config(dir: &Path, sims: &[&Sim], engine: &str, connector: &str) -> PathBuf {
    let mut text = format!(
        "[gateway]\nlisten = \"127.0.0.1:0\"\nthreads = 3\nring_slots = 256\n\n[journal]\ndir = \"journal\"\nsegment_mib = 1\n\n\
         [vault]\nkeys = \"vault.keys\"\nrecords = \"vault.records\"\n\n[engine]\n{engine}\n\n\
         [[merchants]]\nid = 1\napi_key = \"sk_test_merchant_1\"\n\n[[merchants]]\nid = 2\napi_key = \"sk_test_merchant_2\"\n"
    );
    for (i, sim) in sims.iter().enumerate() {
        let name = ["acq-a", "acq-b"][i];
        text.push_str(&format!(
            "\n[[acquirers]]\nid = {}\nname = \"{name}\"\naddress = \"{}\"\nadmin = \"{}\"\nforward_retry_ms = 200\n{}\n",
            i + 1,
            sim.addr,
            sim.admin,
            if i == 0 { connector } else { "" }
        ));
    }
    let path = dir.join("payments.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A Luhn-valid PAN from 15 leading digits.
pub fn pan(prefix15: &str) -> String {
    assert_eq!(prefix15.len(), 15);
    for check in 0..10 {
        let candidate = format!("{prefix15}{check}");
        let digits: Vec<u8> = candidate.bytes().map(|b| b - b'0').collect();
        if sequent_vault::luhn_valid(&digits) {
            return candidate;
        }
    }
    unreachable!()
}

/// Fails on any 13–19 digit Luhn-valid run in what the scenario produced, in the journal's bytes
/// (as text, and each test PAN as a little-endian u64 as well), and in the vault's record file
/// (encrypted: must hold no clear PAN either).
pub fn pan_scan(capture: &Capture, dirs: &[PathBuf], pans: &[String]) {
    let mut scanned = 0;
    let mut check = |what: &str, bytes: &[u8]| {
        scanned += 1;
        assert!(
            !sequent_payments_node::edge::contains_pan(bytes),
            "a card number leaked into {what}"
        );
        for p in pans {
            let v: u64 = p.parse().unwrap();
            assert!(
                !bytes.windows(8).any(|w| w == v.to_le_bytes()),
                "a card number (binary) leaked into {what}"
            );
        }
    };
    for (what, bytes) in capture.0.lock().unwrap().iter() {
        check(what, bytes);
    }
    for dir in dirs {
        for entry in walk(dir) {
            let bytes = std::fs::read(&entry).unwrap();
            check(&entry.display().to_string(), &bytes);
        }
    }
    assert!(scanned > 10, "the scan read too little to mean anything");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
