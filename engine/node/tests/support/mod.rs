//! What the tests that run a whole engine share: a scratch directory, the `sequent-engine`
//! binary as a child process, and a one-shot HTTP request to its metrics endpoint.

#![allow(dead_code)] // each test file uses its own subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A fresh directory `sequent-NAME-PID` under the system's temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("sequent-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `sequent-engine` process, killed on drop.
pub struct Running {
    pub child: Child,
    pub address: SocketAddr,
    /// The text of its `recovered:` line.
    pub recovered: String,
    /// The metrics address, once its `metrics:` line is read (printed after `listening:`, and
    /// only with a `[metrics]` section).
    metrics: mpsc::Receiver<SocketAddr>,
}

impl Running {
    /// The metrics endpoint's address; panics if the engine does not print one within 10 s.
    pub fn metrics(&self) -> SocketAddr {
        self.metrics
            .recv_timeout(Duration::from_secs(10))
            .expect("metrics address printed")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `sequent-engine --config CONFIG` and waits for its `listening:` line.
pub fn start_binary(config: &Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sequent-engine"))
        .arg("--config")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut recovered = String::new();
    let address = loop {
        let line = lines.next().expect("the engine printed nothing").unwrap();
        if let Some(text) = line.strip_prefix("recovered: ") {
            recovered = text.to_string();
        }
        if let Some(address) = line.strip_prefix("listening: ") {
            break address.parse().unwrap();
        }
    };
    // Keep draining stdout so the engine never blocks on a full pipe; pass the metrics line on.
    let (metrics_tx, metrics) = mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("metrics: http://")
                && let Ok(address) = url.trim_end_matches("/metrics").parse()
            {
                let _ = metrics_tx.send(address);
            }
        }
    });
    Running {
        child,
        address,
        recovered,
        metrics,
    }
}

/// Sends `REQUEST HTTP/1.1` (for example `GET /metrics`) and returns the whole answer.
pub fn http(address: SocketAddr, request: &str) -> String {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .write_all(format!("{request} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}
