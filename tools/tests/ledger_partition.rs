//! A network partition between the coordinator and one shard, through a TCP proxy in this test
//! (`sequent ledger shard` ×3 and `sequent ledger coordinator` as processes, `--timeout-ms 200`).
//! The proxy forwards whole frames; its mode changes mid-run:
//!
//! 1. **blackhole** for 600–900 ms: connections stay open, every frame either way is swallowed
//!    (prepares, replies, resolutions and resends alike), so transfers touching that shard time
//!    out in their prepare phase and are aborted while the coordinator cannot reach the shard;
//! 2. **forward** (healed) for a while;
//! 3. **cut** for 600–900 ms: every connection through the proxy is shut down and new ones are
//!    accepted and closed at once (refused), so the coordinator reconnects in a loop;
//! 4. **duplicate** to the end: every frame either way is delivered twice.
//!
//! With all amounts 1 (no prepare can fail for lack of funds) every voided transfer was aborted
//! by a timeout. At the end, from the journals alone (`common/shards.rs::check_whole`): every
//! transfer fully posted or fully voided on all shards, no leg pending, no money created or
//! destroyed, the clearing accounts net to zero, and the coordinator's journal agrees with the
//! shards' (`Commit` exactly where both legs posted). The proxy's counters prove each fault
//! happened (frames swallowed, connections cut, frames duplicated).
//!
//! `SEQUENT_PARTITION_SEED` replays a seed (printed).

#[path = "common/shards.rs"]
mod shards;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shards::*;

const TRANSFERS: u64 = 600;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Forward = 0,
    Blackhole = 1,
    Cut = 2,
    Duplicate = 3,
}

impl Mode {
    fn from_u8(v: u8) -> Mode {
        match v {
            0 => Mode::Forward,
            1 => Mode::Blackhole,
            2 => Mode::Cut,
            _ => Mode::Duplicate,
        }
    }
}

#[derive(Default)]
struct Counters {
    forwarded: AtomicU64,
    swallowed: AtomicU64,
    duplicated: AtomicU64,
    cut: AtomicU64,
}

/// A frame-aware TCP proxy in front of one shard.
struct Proxy {
    port: u16,
    mode: Arc<AtomicU8>,
    /// Every socket it holds, so that `Cut` can shut them all down at once.
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    counters: Arc<Counters>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Proxy {
            port,
            mode: Arc::new(AtomicU8::new(Mode::Forward as u8)),
            sockets: Arc::default(),
            counters: Arc::default(),
        };
        let (mode, sockets, counters) = (
            Arc::clone(&proxy.mode),
            Arc::clone(&proxy.sockets),
            Arc::clone(&proxy.counters),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if Mode::from_u8(mode.load(Ordering::SeqCst)) == Mode::Cut {
                    // Refused: accepted and closed before a byte passes.
                    counters.cut.fetch_add(1, Ordering::Relaxed);
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                {
                    let mut held = sockets.lock().unwrap();
                    held.push(client.try_clone().unwrap());
                    held.push(server.try_clone().unwrap());
                }
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let (mode, counters) = (Arc::clone(&mode), Arc::clone(&counters));
                    std::thread::spawn(move || pump(from, to, &mode, &counters));
                }
            }
        });
        proxy
    }

    fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
        if mode == Mode::Cut {
            for socket in self.sockets.lock().unwrap().drain(..) {
                let _ = socket.shutdown(Shutdown::Both);
                self.counters.cut.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Moves whole frames (u32 length, payload) from `from` to `to` as the mode says, until either
/// side closes.
fn pump(from: TcpStream, mut to: TcpStream, mode: &AtomicU8, counters: &Counters) {
    let mut reader = BufReader::new(&from);
    let mut frame = Vec::new();
    loop {
        let mut len = [0u8; 4];
        if reader.read_exact(&mut len).is_err() {
            break;
        }
        frame.clear();
        frame.extend_from_slice(&len);
        frame.resize(4 + u32::from_le_bytes(len) as usize, 0);
        if reader.read_exact(&mut frame[4..]).is_err() {
            break;
        }
        let copies = match Mode::from_u8(mode.load(Ordering::SeqCst)) {
            Mode::Forward => 1,
            Mode::Duplicate => 2,
            Mode::Blackhole => 0,
            Mode::Cut => break,
        };
        match copies {
            0 => counters.swallowed.fetch_add(1, Ordering::Relaxed),
            1 => counters.forwarded.fetch_add(1, Ordering::Relaxed),
            _ => counters.duplicated.fetch_add(1, Ordering::Relaxed),
        };
        if (0..copies).any(|_| to.write_all(&frame).is_err()) {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[test]
fn a_partitioned_shard_times_out_phases_and_every_transfer_ends_whole_after_it_heals() {
    let mut rng = Rng::from_env("SEQUENT_PARTITION_SEED");
    let dir = test_dir("ledger-partition");
    let input = write_input(&dir, &mut rng, TRANSFERS, 1);
    let ports: Vec<u16> = (0..SHARDS).map(|_| free_port()).collect();
    let mut processes = Children::default();
    for index in 0..SHARDS {
        let (child, log) = start_shard(index, &dir, ports[index as usize]);
        processes.0.push(child);
        wait_for_line(&log, "listening");
    }
    let victim = rng.below(u64::from(SHARDS)) as usize;
    let proxy = Proxy::start(ports[victim]);
    let mut through = ports.clone();
    through[victim] = proxy.port;
    let mut coordinator = coordinator_command(&dir, &through, &input, 200)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(coordinator.stdout.take().unwrap());
    processes.0.push(coordinator);
    let mut lines = out.lines().map_while(Result::ok);
    let mut decisions = Vec::new();

    read_decisions(&mut lines, 20 + rng.below(40) as usize, &mut decisions);
    let blackhole_ms = 600 + rng.below(300);
    proxy.set(Mode::Blackhole);
    std::thread::sleep(Duration::from_millis(blackhole_ms));
    proxy.set(Mode::Forward);
    read_decisions(&mut lines, 20 + rng.below(40) as usize, &mut decisions);
    let cut_ms = 600 + rng.below(300);
    proxy.set(Mode::Cut);
    std::thread::sleep(Duration::from_millis(cut_ms));
    proxy.set(Mode::Duplicate);
    decisions.extend(lines);
    let coordinator = processes.0.last_mut().unwrap();
    assert!(coordinator.wait().unwrap().success());
    drop(processes);

    let counters = &proxy.counters;
    let (swallowed, cut, duplicated) = (
        counters.swallowed.load(Ordering::Relaxed),
        counters.cut.load(Ordering::Relaxed),
        counters.duplicated.load(Ordering::Relaxed),
    );
    println!(
        "shard {victim} behind the proxy: blackholed {blackhole_ms} ms ({swallowed} frames \
         swallowed), cut {cut_ms} ms ({cut} sockets cut or refused), then {duplicated} frames \
         duplicated; {} decisions printed",
        decisions.len()
    );
    assert!(swallowed > 0, "the blackhole swallowed nothing");
    assert!(cut > 0, "nothing was cut");
    assert!(duplicated > 0, "nothing was duplicated");

    let whole = check_whole(&dir, TRANSFERS, &decisions);
    println!("{} posted, {} voided", whole.posted, whole.voided);
    assert_eq!(
        decisions.len() as u64,
        TRANSFERS,
        "one decision line per transfer"
    );
    assert!(whole.posted > 0, "nothing posted");
    // Amounts of 1 never fail a prepare: these were aborted by the timeout, in the partition.
    assert!(whole.voided > 0, "no phase timed out during the partition");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `Prepare` frame (docs/ledger-format.md, "Frames") for the debit leg of a transfer of 1 from
/// customer 3 (shard 0 of 3) to customer 1.
fn prepare_frame(id: u128) -> Vec<u8> {
    let mut payload = vec![1u8];
    for v in [id, 3, 1, 1] {
        payload.extend_from_slice(&v.to_le_bytes());
    }
    payload.extend_from_slice(&1u32.to_le_bytes());
    payload.extend_from_slice(&1u16.to_le_bytes());
    payload.extend_from_slice(&[1, 0]);
    let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&payload);
    frame
}

/// The coordinator's side of a partition it cannot see: its old connection is half-open (the
/// shard still holds it; nothing arrives on it) when it reconnects. The shard serves every
/// connection on its own thread, so the new one is answered at once, the old one still works,
/// and a duplicate prepare over either answers the same.
#[test]
fn a_shard_answers_a_new_connection_while_a_silent_one_stays_open() {
    let dir = test_dir("ledger-half-open");
    let port = free_port();
    let (shard, log) = start_shard(0, &dir, port);
    let _processes = Children(vec![shard]);
    wait_for_line(&log, "listening");
    let silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut fresh = TcpStream::connect(("127.0.0.1", port)).unwrap();
    fresh
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reply = [0u8; 4 + 19];
    for connection in [&mut fresh, &mut silent.try_clone().unwrap()] {
        connection
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        connection.write_all(&prepare_frame(77)).unwrap();
        connection.read_exact(&mut reply).unwrap();
        // Prepared { id 77, debit leg, ok }.
        assert_eq!(u32::from_le_bytes(reply[..4].try_into().unwrap()), 19);
        assert_eq!(reply[4], 1, "a prepared reply");
        assert_eq!(u128::from_le_bytes(reply[5..21].try_into().unwrap()), 77);
        assert_eq!(&reply[21..], &[1, 1], "debit leg, ok");
    }
    drop(silent);
    let _ = std::fs::remove_dir_all(&dir);
}
