//! Sockets and threads: one thread accepts, one thread per connection reads, answers after the
//! simulated latency, and watches for outages; control lines come from stdin or the admin port.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use sequent_iso8583::{Deframer, FrameError, encode_frame};

use crate::acquirer::{Acquirer, Session};
use crate::config::{OutageMode, SimConfig};

/// How often a connection thread looks up from a blocked read to check outages and shutdown.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Largest read per call.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// State shared by every thread.
#[derive(Debug)]
pub struct Shared {
    acquirer: Mutex<Acquirer>,
    /// `None`: follow the schedule; `Some(x)`: the operator said `outage x` (off = `Some(None)`).
    manual_outage: Mutex<Option<Option<OutageMode>>>,
    started: Instant,
    clearing_path: Option<PathBuf>,
    business_date: String,
    /// Set by `shutdown`; every loop checks it.
    stopping: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking connection thread must not take the simulator down with it.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// Shared state for a new simulator.
    pub fn new(config: SimConfig, clearing_path: Option<PathBuf>) -> Arc<Shared> {
        let business_date = config.business_date.clone().unwrap_or_else(today_utc);
        Arc::new(Shared {
            acquirer: Mutex::new(Acquirer::new(config)),
            manual_outage: Mutex::new(None),
            started: Instant::now(),
            clearing_path,
            business_date,
            stopping: AtomicBool::new(false),
        })
    }

    /// The outage in force now: the operator's, else the schedule's.
    pub fn outage_now(&self) -> Option<OutageMode> {
        if let Some(manual) = *lock(&self.manual_outage) {
            return manual;
        }
        let elapsed_ms = self.started.elapsed().as_millis() as u64;
        let acquirer = lock(&self.acquirer);
        acquirer
            .config()
            .outage
            .iter()
            .find(|o| (o.from_ms..o.to_ms).contains(&elapsed_ms))
            .map(|o| o.mode)
    }

    /// True once `shutdown` was asked.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Writes the clearing file to `path`; returns the rows written.
    pub fn write_clearing(&self, path: &Path) -> std::io::Result<usize> {
        let text = lock(&self.acquirer).clearing_csv(&self.business_date);
        std::fs::write(path, &text)?;
        Ok(text.lines().count() - 1)
    }

    /// Runs one control command and returns the one-line reply. Commands:
    /// `outage refuse|drop|off|auto`, `clearing [PATH]`, `stats`, `shutdown`.
    pub fn handle_command(&self, line: &str) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["outage", mode] => {
                let setting = match *mode {
                    "refuse" => Some(Some(OutageMode::Refuse)),
                    "drop" => Some(Some(OutageMode::Drop)),
                    "off" => Some(None),
                    "auto" => None,
                    _ => return "error outage takes refuse, drop, off or auto".into(),
                };
                *lock(&self.manual_outage) = setting;
                format!("ok outage {mode}")
            }
            ["clearing", rest @ ..] if rest.len() <= 1 => {
                let Some(path) = rest
                    .first()
                    .map(PathBuf::from)
                    .or_else(|| self.clearing_path.clone())
                else {
                    return "error clearing needs a path (or --clearing-file)".into();
                };
                match self.write_clearing(&path) {
                    Ok(rows) => format!("ok clearing {} rows {rows}", path.display()),
                    Err(e) => format!("error clearing {}: {e}", path.display()),
                }
            }
            ["stats"] => {
                let s = lock(&self.acquirer).stats();
                format!(
                    "ok stats requests {} duplicates {} unanswered {} approved {} reversed {}",
                    s.requests, s.duplicates, s.unanswered, s.approved, s.reversed
                )
            }
            ["shutdown"] => {
                self.stopping.store(true, Ordering::Relaxed);
                match &self.clearing_path {
                    Some(path) => match self.write_clearing(path) {
                        Ok(rows) => format!("ok shutdown clearing {} rows {rows}", path.display()),
                        Err(e) => format!("error shutdown clearing {}: {e}", path.display()),
                    },
                    None => "ok shutdown".into(),
                }
            }
            _ => "error unknown command (outage, clearing, stats, shutdown)".into(),
        }
    }
}

/// Accepts ISO 8583 connections until shutdown.
pub fn spawn_acquirer_listener(shared: Arc<Shared>, listener: TcpListener) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    thread::Builder::new()
        .name("accept".into())
        .spawn(move || {
            while !shared.stopping() {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if shared.outage_now() == Some(OutageMode::Refuse) {
                            let _ = stream.shutdown(Shutdown::Both);
                            continue;
                        }
                        let shared = Arc::clone(&shared);
                        let _ = thread::Builder::new()
                            .name("conn".into())
                            .spawn(move || serve(shared, stream));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(POLL_INTERVAL),
                    Err(_) => thread::sleep(POLL_INTERVAL),
                }
            }
        })?;
    Ok(())
}

fn serve(shared: Arc<Shared>, mut stream: TcpStream) {
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(POLL_INTERVAL)).is_err()
        || stream.set_nodelay(true).is_err()
    {
        return;
    }
    let mut session = Session::default();
    let mut deframer = Deframer::new();
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    // Answers leave when they are due, not one after another: a real acquirer works on many
    // requests of one connection at once, so one slow answer must not delay those behind it (and
    // the latency must not bound the rate). The writer thread owns the write side.
    let (answers, due) = std::sync::mpsc::channel();
    let Ok(write_side) = stream.try_clone() else {
        return;
    };
    if thread::Builder::new()
        .name("answers".into())
        .spawn(move || write_when_due(write_side, &due))
        .is_err()
    {
        return;
    }
    loop {
        if shared.stopping() || shared.outage_now() == Some(OutageMode::Refuse) {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        let n = match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(_) => return,
        };
        deframer.handle_bytes(&chunk[..n]);
        let dropping = shared.outage_now() == Some(OutageMode::Drop);
        while let Some(frame) = deframer.poll_message() {
            let request = match frame {
                Ok(request) => request,
                // Undecodable frames get no answer (docs/iso8583.md); a zero length ends the link.
                Err(FrameError::Message { .. }) => continue,
                Err(FrameError::Empty { .. }) => {
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
            };
            if dropping {
                continue;
            }
            let decision = lock(&shared.acquirer).handle_request(&mut session, &request);
            let Some(response) = decision.response else {
                continue;
            };
            let mut out = Vec::new();
            if encode_frame(&response, &mut out).is_err() {
                return;
            }
            let at = Instant::now() + Duration::from_millis(decision.delay_ms);
            if answers.send((at, out)).is_err() {
                return;
            }
        }
    }
}

/// Writes each answer at its due time (equal times in arrival order) until the reader hangs up
/// or a write fails. Blocks in `recv_timeout` until the earliest answer is due; never spins.
fn write_when_due(mut stream: TcpStream, due: &std::sync::mpsc::Receiver<(Instant, Vec<u8>)>) {
    use std::cmp::Reverse;
    use std::sync::mpsc::RecvTimeoutError;
    let mut queue: std::collections::BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>> =
        std::collections::BinaryHeap::new();
    let mut arrival = 0u64;
    loop {
        let received = match queue.peek() {
            None => due.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(Reverse((at, _, _))) => {
                due.recv_timeout(at.saturating_duration_since(Instant::now()))
            }
        };
        match received {
            Ok((at, bytes)) => {
                queue.push(Reverse((at, arrival, bytes)));
                arrival += 1;
            }
            Err(RecvTimeoutError::Timeout) => {}
            // The reader ended the connection: nobody is left to answer.
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while queue
            .peek()
            .is_some_and(|Reverse((at, _, _))| *at <= Instant::now())
        {
            let Some(Reverse((_, _, bytes))) = queue.pop() else {
                break;
            };
            if stream.write_all(&bytes).is_err() {
                return;
            }
        }
    }
}

/// Serves control commands on a TCP port: one command per line, one reply line each.
pub fn spawn_admin_listener(shared: Arc<Shared>, listener: TcpListener) -> std::io::Result<()> {
    thread::Builder::new().name("admin".into()).spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let shared = Arc::clone(&shared);
            let _ = thread::Builder::new()
                .name("admin-conn".into())
                .spawn(move || {
                    let Ok(mut writer) = stream.try_clone() else {
                        return;
                    };
                    for line in BufReader::new(stream).lines() {
                        let Ok(line) = line else { return };
                        let reply = shared.handle_command(&line);
                        if writeln!(writer, "{reply}").is_err() {
                            return;
                        }
                        if shared.stopping() {
                            std::process::exit(0);
                        }
                    }
                });
        }
    })?;
    Ok(())
}

/// Today's date (UTC) as `YYYY-MM-DD`, from the system clock (days-from-civil inverse, Howard
/// Hinnant's algorithm).
fn today_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The address a listener got (for the `listening:` line).
pub fn local(listener: &TcpListener) -> std::io::Result<SocketAddr> {
    listener.local_addr()
}
