//! An open-loop order load over loopback TCP, for `sequent demo` and `sequent-bench engine`: each
//! session sends on a fixed schedule from its own thread and reads replies on another, and the
//! latency of each order is measured from its **intended** send time to its acknowledgement, so a
//! stall (in the engine, the network or the scheduler) is charged to every order behind it.
//!
//! The mix: limit orders around 100 on two symbols (`ABC`, `XYZ`) that rest and cross now and
//! then, and every tenth message cancels an earlier order.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::protocol::{
    CancelBody, ClientMessage, Decoded, EngineMessage, FRAME_LEN_MAX, LoginBody, decode_engine,
    encode_client,
};

/// What a load run saw.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// New orders sent.
    pub sent: u64,
    /// New orders acknowledged.
    pub acked: u64,
    /// New orders rejected.
    pub rejected: u64,
    /// Fills received (two per trade when both sides are in the load).
    pub fills: u64,
    /// Intended send → acknowledgement, nanoseconds.
    pub latency: Histogram<u64>,
    /// Wall time of the run, sending and draining.
    pub elapsed: Duration,
}

/// How to load.
#[derive(Debug, Clone, Copy)]
pub struct LoadConfig {
    /// Sessions `1..=sessions`, one connection each.
    pub sessions: u32,
    /// Messages per second per session.
    pub rate_per_session: u64,
    /// How long to send.
    pub duration: Duration,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(100, 600_000_000_000, 3).expect("valid bounds")
}

/// Runs the load against an engine (or anything that speaks the protocol) at `address`.
pub fn run(address: SocketAddr, config: &LoadConfig) -> std::io::Result<LoadReport> {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles: Vec<_> = (0..config.sessions)
        .map(|i| {
            let stop = Arc::clone(&stop);
            let rate = config.rate_per_session;
            std::thread::spawn(move || client(address, i + 1, rate, &stop))
        })
        .collect();
    std::thread::sleep(config.duration);
    stop.store(true, Ordering::Release);
    let mut total = LoadReport {
        sent: 0,
        acked: 0,
        rejected: 0,
        fills: 0,
        latency: histogram(),
        elapsed: Duration::ZERO,
    };
    for handle in handles {
        let stats = handle
            .join()
            .map_err(|_| std::io::Error::other("a load thread panicked"))??;
        total.sent += stats.sent;
        total.acked += stats.acked;
        total.rejected += stats.rejected;
        total.fills += stats.fills;
        total
            .latency
            .add(&stats.latency)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
    }
    total.elapsed = started.elapsed();
    Ok(total)
}

/// One simulated client: a sender on the open-loop schedule and a receiver on the same
/// connection. Orders rest around 100 and cross now and then; every tenth message cancels.
fn client(
    address: SocketAddr,
    session: u32,
    rate: u64,
    stop: &AtomicBool,
) -> std::io::Result<LoadReport> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_nodelay(true)?;
    let mut frame = [0u8; FRAME_LEN_MAX];
    let len = encode_client(
        &mut frame,
        0,
        &ClientMessage::Login(LoginBody {
            session: session.into(),
            next_expected: 1.into(),
            flags: 1,
            reserved: [0; 7],
        }),
    );
    stream.write_all(&frame[..len])?;
    let mut reader = stream.try_clone()?;
    // intended send time (ns since `epoch`) per client order id
    let intended: Arc<Vec<AtomicU64>> =
        Arc::new((0..2_000_000).map(|_| AtomicU64::new(0)).collect());
    let sent = Arc::new(AtomicU64::new(0));
    let done_sending = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    let receiver = {
        let intended = Arc::clone(&intended);
        let sent = Arc::clone(&sent);
        let done = Arc::clone(&done_sending);
        std::thread::spawn(move || -> std::io::Result<LoadReport> {
            reader.set_read_timeout(Some(Duration::from_millis(50)))?;
            let mut stats = LoadReport {
                sent: 0,
                acked: 0,
                rejected: 0,
                fills: 0,
                latency: histogram(),
                elapsed: Duration::ZERO,
            };
            let mut buffer = Vec::with_capacity(1 << 16);
            let mut chunk = [0u8; 1 << 14];
            let mut idle_since = None;
            loop {
                let answered = stats.acked + stats.rejected;
                if done.load(Ordering::Acquire) && answered >= sent.load(Ordering::Acquire) {
                    break;
                }
                match reader.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        idle_since = None;
                        buffer.extend_from_slice(&chunk[..n]);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        let since = *idle_since.get_or_insert_with(Instant::now);
                        if done.load(Ordering::Acquire) && since.elapsed() > Duration::from_secs(5)
                        {
                            break; // answers lost: reported by the caller's check
                        }
                        continue;
                    }
                    Err(e) => return Err(e),
                }
                let mut at = 0;
                while let Decoded::Frame(f, len) = decode_engine(&buffer[at..]) {
                    at += len;
                    let now = epoch.elapsed().as_nanos() as u64;
                    match f.message {
                        EngineMessage::Accepted(a) => {
                            stats.acked += 1;
                            let t0 =
                                intended[a.client_order_id.get() as usize].load(Ordering::Acquire);
                            stats
                                .latency
                                .saturating_record(now.saturating_sub(t0).max(100));
                        }
                        // Reason 2 (unknown order) answers a cancel of an order that already
                        // traded; cancels are not counted as sent orders.
                        EngineMessage::Rejected(r) if r.reason.get() != 2 => stats.rejected += 1,
                        EngineMessage::Fill(_) => stats.fills += 1,
                        _ => {}
                    }
                }
                buffer.drain(..at);
            }
            stats.sent = sent.load(Ordering::Acquire);
            Ok(stats)
        })
    };
    // Let the login be answered before the first order.
    std::thread::sleep(Duration::from_millis(20));
    let interval_ns = 1_000_000_000 / rate.max(1);
    let mut sequence = 1u32;
    let mut id = 1u32;
    let mut x = u64::from(session).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while !stop.load(Ordering::Acquire) && (id as usize) < intended.len() - 1 {
        let due = u64::from(id) * interval_ns;
        let now = epoch.elapsed().as_nanos() as u64;
        if now < due {
            std::thread::sleep(Duration::from_nanos((due - now).min(1_000_000)));
            continue;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let message = if id % 10 == 0 {
            // Cancel an earlier order (rejected as unknown when it already traded: not counted).
            ClientMessage::Cancel(CancelBody {
                client_order_id: (id - 5).into(),
                reserved: 0.into(),
            })
        } else {
            let buy = x & 1 == 0;
            let offset = ((x >> 8) % 6) as i64;
            ClientMessage::NewOrder(crate::client::limit_order(
                id,
                session,
                if x & 0x100 == 0 { "ABC" } else { "XYZ" },
                buy,
                if buy { 97 + offset } else { 103 - offset },
                1 + (x >> 20) % 10,
            ))
        };
        intended[id as usize].store(due, Ordering::Release);
        let len = encode_client(&mut frame, sequence, &message);
        stream.write_all(&frame[..len])?;
        if id % 10 != 0 {
            sent.fetch_add(1, Ordering::AcqRel);
        }
        sequence += 1;
        id += 1;
    }
    done_sending.store(true, Ordering::Release);
    receiver
        .join()
        .map_err(|_| std::io::Error::other("a load receiver panicked"))?
}
