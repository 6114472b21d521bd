//! An open-loop order load over loopback TCP, for `sequent demo` and `sequent-bench engine`: each
//! session sends on a fixed schedule from its own thread and reads replies on another, and the
//! latency of each order is measured from its **intended** send time to its acknowledgement, so a
//! stall (in the engine, the network or the scheduler) is charged to every order behind it.
//!
//! The mix: limit orders around 100 on two symbols (`ABC`, `XYZ`) that rest and cross now and
//! then, and every tenth message cancels an earlier order. Each session draws its orders from a
//! xorshift generator seeded from [`LoadOptions::seed`] and its session number, so a run is
//! repeatable order for order.
//!
//! With [`LoadOptions::market_data`], a subscriber thread listens on the engine's feed (line A)
//! and times each order from its intended send time to the `AddOrder` tick that carries its
//! reference (`session << 32 | client order id`, the core's order id): what a market participant
//! sees. Orders that trade in full on arrival leave no `AddOrder` and are not in that histogram
//! (the count of ticks says how many are).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
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
    /// Intended send → the order's `AddOrder` tick seen by the subscriber, nanoseconds; empty
    /// without [`LoadOptions::market_data`].
    pub md_latency: Histogram<u64>,
    /// `AddOrder` ticks of this load's orders the subscriber saw.
    pub md_ticks: u64,
    /// The most any order left after its intended send time: how far the load generator itself
    /// fell behind its schedule (the latency still counts from the intended time).
    pub send_lag_max_ns: u64,
    /// Wall time of the run, sending and draining.
    pub elapsed: Duration,
    /// The first order's intended send time, the last order's actual send time and the last
    /// answer's arrival, ns since the run's clock origin (over all sessions).
    pub first_due_ns: u64,
    pub last_sent_ns: u64,
    pub last_answer_ns: u64,
}

impl LoadReport {
    /// The answer rate over the send rate, each over its own window (first intended send to the
    /// last send, or to the last answer): about 1 while the target keeps up, below 1 when answers
    /// trail further and further behind the schedule. 0 when nothing was sent.
    #[must_use]
    pub fn sustained_share(&self) -> f64 {
        let answered = self.acked + self.rejected;
        let send_window = self.last_sent_ns.saturating_sub(self.first_due_ns).max(1) as f64;
        let answer_window = self.last_answer_ns.saturating_sub(self.first_due_ns).max(1) as f64;
        if self.sent == 0 {
            return 0.0;
        }
        ((answered as f64 / answer_window) / (self.sent as f64 / send_window)).min(1.0)
    }

    fn empty() -> Self {
        Self {
            sent: 0,
            acked: 0,
            rejected: 0,
            fills: 0,
            latency: histogram(),
            md_latency: histogram(),
            md_ticks: 0,
            send_lag_max_ns: 0,
            elapsed: Duration::ZERO,
            first_due_ns: u64::MAX,
            last_sent_ns: 0,
            last_answer_ns: 0,
        }
    }
}

/// What [`run_with`] adds to [`run`].
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Seed of the order mix; 0 is the stream [`run`] sends.
    pub seed: u64,
    /// The engine's market-data line A (unicast or multicast on loopback): when set, a subscriber
    /// records intended send → `AddOrder` tick.
    pub market_data: Option<SocketAddrV4>,
}

/// Client order ids a session may use in one run: the intended-send table has this many slots
/// (8 bytes each), so a run sends at most this many messages per session.
pub const IDS_PER_SESSION_MAX: usize = 2_000_000;

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
    run_with(address, config, &LoadOptions::default())
}

/// [`run`] with a seed and, optionally, a market-data subscriber.
pub fn run_with(
    address: SocketAddr,
    config: &LoadConfig,
    options: &LoadOptions,
) -> std::io::Result<LoadReport> {
    let stop = Arc::new(AtomicBool::new(false));
    // One clock origin for every session and the subscriber: intended times compare across them.
    let epoch = Instant::now();
    let started = Instant::now();
    // intended send time (ns since `epoch`, 0 = not sent) per session, per client order id
    let intended: Vec<Arc<Vec<AtomicU64>>> = (0..config.sessions)
        .map(|_| {
            Arc::new(
                (0..IDS_PER_SESSION_MAX)
                    .map(|_| AtomicU64::new(0))
                    .collect(),
            )
        })
        .collect();
    let md_stop = Arc::new(AtomicBool::new(false));
    let subscriber = match options.market_data {
        Some(line) => {
            let socket = sequent_feed::net::receiver_socket(sequent_feed::net::LineAddr {
                addr: line,
                iface: Ipv4Addr::LOCALHOST,
            })?;
            socket.set_nonblocking(false)?;
            socket.set_read_timeout(Some(Duration::from_millis(20)))?;
            let intended = intended.clone();
            let stop = Arc::clone(&md_stop);
            Some(std::thread::spawn(move || {
                market_data(&socket, &intended, epoch, &stop)
            }))
        }
        None => None,
    };
    let handles: Vec<_> = (0..config.sessions)
        .map(|i| {
            let stop = Arc::clone(&stop);
            let rate = config.rate_per_session;
            let intended = Arc::clone(&intended[i as usize]);
            let seed = options.seed;
            std::thread::spawn(move || client(address, i + 1, rate, seed, epoch, &intended, &stop))
        })
        .collect();
    std::thread::sleep(config.duration);
    stop.store(true, Ordering::Release);
    let mut total = LoadReport::empty();
    let mut failure = None;
    for handle in handles {
        let stats = match handle.join() {
            Ok(Ok(stats)) => stats,
            Ok(Err(e)) => {
                failure.get_or_insert(e);
                continue;
            }
            Err(_) => {
                failure.get_or_insert(std::io::Error::other("a load thread panicked"));
                continue;
            }
        };
        total.sent += stats.sent;
        total.acked += stats.acked;
        total.rejected += stats.rejected;
        total.fills += stats.fills;
        total.send_lag_max_ns = total.send_lag_max_ns.max(stats.send_lag_max_ns);
        total.first_due_ns = total.first_due_ns.min(stats.first_due_ns);
        total.last_sent_ns = total.last_sent_ns.max(stats.last_sent_ns);
        total.last_answer_ns = total.last_answer_ns.max(stats.last_answer_ns);
        total
            .latency
            .add(&stats.latency)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
    }
    // The subscriber's drain is not the target's time.
    total.elapsed = started.elapsed();
    // Release: the subscriber may stop once every session has been answered; pairs with its
    // Acquire load.
    md_stop.store(true, Ordering::Release);
    if let Some(subscriber) = subscriber {
        let (ticks, latency) = subscriber
            .join()
            .map_err(|_| std::io::Error::other("the market-data subscriber panicked"))??;
        total.md_ticks = ticks;
        total.md_latency = latency;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(total)
}

/// The market-data subscriber: reads line A until told to stop and then quiet for 200 ms (at
/// most 5 s), recording intended send → `AddOrder` for this load's orders.
fn market_data(
    socket: &std::net::UdpSocket,
    intended: &[Arc<Vec<AtomicU64>>],
    epoch: Instant,
    stop: &AtomicBool,
) -> std::io::Result<(u64, Histogram<u64>)> {
    use sequent_feed::proto::{Message, Packet};
    let mut latency = histogram();
    let mut ticks = 0u64;
    let mut packet = vec![0u8; 1 << 16];
    let mut quiet_since: Option<Instant> = None;
    let mut stopping_since: Option<Instant> = None;
    loop {
        if stop.load(Ordering::Acquire) {
            let since = *stopping_since.get_or_insert_with(Instant::now);
            let quiet = quiet_since.is_some_and(|q| q.elapsed() > Duration::from_millis(200));
            if quiet || since.elapsed() > Duration::from_secs(5) {
                break;
            }
        }
        let len = match socket.recv(&mut packet) {
            Ok(len) => len,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                quiet_since.get_or_insert_with(Instant::now);
                continue;
            }
            Err(e) => return Err(e),
        };
        quiet_since = None;
        let now = epoch.elapsed().as_nanos() as u64;
        let Ok(parsed) = Packet::parse(&packet[..len]) else {
            continue;
        };
        for (_, message) in parsed.messages() {
            let Message::AddOrder(add) = message else {
                continue;
            };
            let order_ref = add.order_ref.get();
            let (session, id) = ((order_ref >> 32) as usize, order_ref as u32 as usize);
            let Some(table) = session.checked_sub(1).and_then(|s| intended.get(s)) else {
                continue;
            };
            // Acquire: pairs with the sender's Release store of the intended time.
            let t0 = table.get(id).map_or(0, |t| t.load(Ordering::Acquire));
            if t0 > 0 {
                ticks += 1;
                latency.saturating_record(now.saturating_sub(t0).max(100));
            }
        }
    }
    Ok((ticks, latency))
}

/// One simulated client: a sender on the open-loop schedule and a receiver on the same
/// connection. Orders rest around 100 and cross now and then; every tenth message cancels.
fn client(
    address: SocketAddr,
    session: u32,
    rate: u64,
    seed: u64,
    epoch: Instant,
    intended: &Arc<Vec<AtomicU64>>,
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
            // A load run counts only its own replies: nothing resent from an earlier run.
            next_expected: crate::protocol::NO_RESEND.into(),
            flags: 1,
            reserved: [0; 7],
        }),
    );
    stream.write_all(&frame[..len])?;
    let mut reader = stream.try_clone()?;
    let sent = Arc::new(AtomicU64::new(0));
    let done_sending = Arc::new(AtomicBool::new(false));
    let receiver = {
        let intended = Arc::clone(intended);
        let sent = Arc::clone(&sent);
        let done = Arc::clone(&done_sending);
        std::thread::spawn(move || -> std::io::Result<LoadReport> {
            reader.set_read_timeout(Some(Duration::from_millis(50)))?;
            let mut stats = LoadReport::empty();
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
                            stats.last_answer_ns = now;
                            let t0 =
                                intended[a.client_order_id.get() as usize].load(Ordering::Acquire);
                            stats
                                .latency
                                .saturating_record(now.saturating_sub(t0).max(100));
                        }
                        // Reason 2 (unknown order) answers a cancel of an order that already
                        // traded; cancels are not counted as sent orders.
                        EngineMessage::Rejected(r) if r.reason.get() != 2 => {
                            stats.rejected += 1;
                            stats.last_answer_ns = now;
                        }
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
    // Let the login be answered before the first order; the schedule starts after it.
    std::thread::sleep(Duration::from_millis(20));
    let start_ns = epoch.elapsed().as_nanos() as u64;
    let interval_ns = 1_000_000_000 / rate.max(1);
    let mut sequence = 1u32;
    let mut id = 1u32;
    let mut send_lag_max_ns = 0u64;
    let mut last_sent_ns = 0u64;
    let mut x = (u64::from(session) ^ seed.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while !stop.load(Ordering::Acquire) && (id as usize) < intended.len() - 1 {
        let due = start_ns + u64::from(id) * interval_ns;
        let now = epoch.elapsed().as_nanos() as u64;
        if now < due {
            std::thread::sleep(Duration::from_nanos((due - now).min(1_000_000)));
            continue;
        }
        send_lag_max_ns = send_lag_max_ns.max(now - due);
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
            last_sent_ns = epoch.elapsed().as_nanos() as u64;
        }
        sequence += 1;
        id += 1;
    }
    done_sending.store(true, Ordering::Release);
    let mut stats = receiver
        .join()
        .map_err(|_| std::io::Error::other("a load receiver panicked"))??;
    stats.send_lag_max_ns = send_lag_max_ns;
    stats.first_due_ns = start_ns + interval_ns;
    stats.last_sent_ns = last_sent_ns;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(sent: u64, answered: u64, last_sent_ns: u64, last_answer_ns: u64) -> LoadReport {
        LoadReport {
            sent,
            acked: answered,
            first_due_ns: 1_000,
            last_sent_ns,
            last_answer_ns,
            ..LoadReport::empty()
        }
    }

    #[test]
    fn a_target_that_keeps_up_sustains_the_whole_rate() {
        // 1000 orders over 1 s, every answer 50 µs behind its send.
        let share = report(1_000, 1_000, 1_000_001_000, 1_000_051_000).sustained_share();
        assert!(share > 0.99 && share <= 1.0, "{share}");
    }

    #[test]
    fn answers_trailing_the_schedule_show_as_a_lower_share() {
        // The same orders, the last answered 1 s after the last send: half the rate.
        let share = report(1_000, 1_000, 1_000_001_000, 2_000_001_000).sustained_share();
        assert!((share - 0.5).abs() < 0.01, "{share}");
        assert_eq!(report(0, 0, 0, 0).sustained_share(), 0.0);
    }
}
