//! `sequent-bench feed`: market-data decoding and transport, each beside a peer or a baseline in
//! the same run.
//!
//! - Decode ns/message: sequent's ITCH 5.0 reader beside the `itchy` crate on the same bytes (the
//!   ITCH sample repeated in memory), and sequent's own feed protocol (packets of the same book
//!   messages) through `Packet::parse` and its message iterator; the book builder's apply cost.
//! - Transport on loopback (multicast where it loops back, else unicast): messages/s and
//!   packets/s for each send path (send, sendmmsg, io_uring) into a recvmmsg receiver, and each
//!   receive path (recv, recvmmsg, io_uring multishot) behind a sendmmsg sender, with the loss
//!   the receiver saw.
//! - One-way publish-to-book latency (publisher's send stamp to the subscriber applying the
//!   packet) at a fixed, paced rate: HdrHistogram percentiles.
//!
//! Everything goes through `sequent-feed`'s public API.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sequent_feed::book::Books;
use sequent_feed::itch::{Itch, ItchReader};
use sequent_feed::net::{
    LineAddr, NetPublisher, NetSubscriber, PublisherNetConfig, RecvKind, RecvPath, SendKind,
    SubscriberNetConfig, multicast_loopback_works, receiver_socket, thread_cpu_ns,
};
use sequent_feed::proto::{self, Message, MessageRef, Packet};
use sequent_feed::publisher::{Publisher, PublisherConfig};
use sequent_feed::subscriber::{Subscriber, SubscriberConfig};

/// One measured row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FeedRow {
    pub section: &'static str,
    pub name: String,
    pub messages: u64,
    pub ns_per_message: Option<f64>,
    pub messages_per_s: Option<f64>,
    pub packets_per_s: Option<f64>,
    pub loss_pct: Option<f64>,
    pub p50_ns: Option<u64>,
    pub p99_ns: Option<u64>,
    pub p999_ns: Option<u64>,
    pub max_ns: Option<u64>,
    pub note: String,
}

impl FeedRow {
    /// A row of the decode section: `ns` per message over `messages`, with a note.
    fn decode(name: impl Into<String>, messages: u64, ns: f64, note: impl Into<String>) -> FeedRow {
        let mut row = FeedRow::new("decode", name, messages);
        row.ns_per_message = Some(ns);
        row.messages_per_s = Some(1e9 / ns);
        row.note = note.into();
        row
    }

    fn new(section: &'static str, name: impl Into<String>, messages: u64) -> FeedRow {
        FeedRow {
            section,
            name: name.into(),
            messages,
            ns_per_message: None,
            messages_per_s: None,
            packets_per_s: None,
            loss_pct: None,
            p50_ns: None,
            p99_ns: None,
            p999_ns: None,
            max_ns: None,
            note: String::new(),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// The ITCH file, read once and repeated `repeat` times in memory.
    pub itch: Vec<u8>,
    pub repeat: usize,
    /// Rounds per decoder; the best round is reported (least disturbed by other work).
    pub rounds: usize,
    /// Messages per transport run.
    pub transport_messages: u64,
    /// Paced rate of the latency run, messages per second, and its length.
    pub latency_rate: u64,
    pub latency_messages: u64,
}

fn best_ns_per(rounds: usize, messages: u64, mut f: impl FnMut() -> u64) -> (f64, u64) {
    let mut best = f64::MAX;
    let mut count = 0;
    for _ in 0..rounds.max(1) {
        let start = Instant::now();
        count = f();
        let ns = start.elapsed().as_nanos() as f64 / messages.max(1) as f64;
        best = best.min(ns);
    }
    (best, count)
}

/// Decoding rows: sequent ITCH, itchy, sequent protocol, book apply.
pub fn decode(config: &FeedConfig) -> anyhow::Result<Vec<FeedRow>> {
    let mut data = Vec::with_capacity(config.itch.len() * config.repeat);
    for _ in 0..config.repeat {
        data.extend_from_slice(&config.itch);
    }
    let messages = ItchReader::new(&config.itch).count() as u64 * config.repeat as u64;
    let mut rows = Vec::new();

    let (ns, count) = best_ns_per(config.rounds, messages, || {
        let mut n = 0u64;
        for item in ItchReader::new(black_box(&data)) {
            black_box(item.expect("the sample decodes"));
            n += 1;
        }
        n
    });
    anyhow::ensure!(count == messages, "sequent decoded {count} of {messages}");
    let row = FeedRow::decode(
        "ITCH 5.0: sequent ItchReader",
        messages,
        ns,
        "zero-copy slice, fields decoded for S R A F E C X D U P",
    );
    rows.push(row);

    let (ns, count) = best_ns_per(config.rounds, messages, || {
        let mut n = 0u64;
        for item in itchy::MessageStream::from_reader(black_box(&data[..])) {
            black_box(item.expect("itchy decodes the sample"));
            n += 1;
        }
        n
    });
    anyhow::ensure!(count == messages, "itchy decoded {count} of {messages}");
    let row = FeedRow::decode(
        "ITCH 5.0: itchy 0.3.4 MessageStream",
        messages,
        ns,
        "its reader API over &[u8]; decodes every type fully",
    );
    rows.push(row);

    // The same book messages in sequent's protocol, MTU-sized packets.
    let mut books = Books::new();
    let mut feed: Vec<Message> = Vec::new();
    for item in ItchReader::new(&config.itch) {
        let (_, itch) = item?;
        if let Some(m) = itch.to_feed(|r| books.order(r).map(|o| o.price)) {
            books.apply(&m);
            feed.push(m);
        }
    }
    let mut publisher = Publisher::new(PublisherConfig {
        history_packets_max: 1 << 20,
        ..PublisherConfig::default()
    });
    let mut packets: Vec<Vec<u8>> = Vec::new();
    for _ in 0..config.repeat {
        for m in &feed {
            publisher.handle_message(m);
            while let Some(p) = publisher.poll_packet(0) {
                packets.push(p.to_vec());
            }
        }
    }
    publisher.flush();
    while let Some(p) = publisher.poll_packet(0) {
        packets.push(p.to_vec());
    }
    let feed_messages = feed.len() as u64 * config.repeat as u64;
    let (ns, count) = best_ns_per(config.rounds, feed_messages, || {
        let mut n = 0u64;
        for p in black_box(&packets) {
            let packet = Packet::parse(p).expect("our packets parse");
            for m in packet.messages() {
                black_box(m);
                n += 1;
            }
        }
        n
    });
    anyhow::ensure!(
        count == feed_messages,
        "protocol decoded {count} of {feed_messages}"
    );
    let two_pass = FeedRow::decode(
        "sequent feed protocol: Packet::parse + messages()",
        feed_messages,
        ns,
        "validates every block, then the iterator decodes again (the subscriber's path)",
    );
    let (ns, count) = best_ns_per(config.rounds, feed_messages, || {
        let mut n = 0u64;
        for p in black_box(&packets) {
            proto::for_each_message(p, |_, m| {
                black_box(m);
                n += 1;
            })
            .expect("our packets decode");
        }
        n
    });
    anyhow::ensure!(
        count == feed_messages,
        "protocol decoded {count} of {feed_messages}"
    );
    let row = FeedRow::decode(
        "sequent feed protocol: for_each_message (one pass)",
        feed_messages,
        ns,
        format!(
            "{} MTU packets of the sample's book messages",
            packets.len()
        ),
    );
    rows.push(row);
    rows.push(two_pass);

    // What a book builder reads (references, shares, prices), the same for both formats: the
    // ITCH reader decodes each message whole first; the feed protocol's views read the fields
    // in place.
    let (ns, count) = best_ns_per(config.rounds, messages, || {
        let mut acc = 0u64;
        for item in ItchReader::new(black_box(&data)) {
            acc = acc.wrapping_add(itch_book_fields(&item.expect("the sample decodes").1));
        }
        black_box(acc);
        messages
    });
    anyhow::ensure!(count == messages);
    let itch_fields = FeedRow::decode(
        "ITCH 5.0: sequent ItchReader, book fields read",
        messages,
        ns,
        "each message decoded whole, then its references, shares and price read",
    );
    let (ns, count) = best_ns_per(config.rounds, feed_messages, || {
        let mut acc = 0u64;
        let mut n = 0u64;
        for p in black_box(&packets) {
            proto::for_each_message_ref(p, |_, m| {
                acc = acc.wrapping_add(book_fields(m));
                n += 1;
            })
            .expect("our packets decode");
        }
        black_box(acc);
        n
    });
    anyhow::ensure!(
        count == feed_messages,
        "protocol decoded {count} of {feed_messages}"
    );
    let views = FeedRow::decode(
        "sequent feed protocol: views (for_each_message_ref), book fields read",
        feed_messages,
        ns,
        "type, length and side checked; the same fields read in place, nothing copied",
    );
    rows.push(itch_fields);
    rows.push(views);

    let (ns, _) = best_ns_per(config.rounds, feed_messages, || {
        let mut books = Books::new();
        for _ in 0..config.repeat {
            for m in &feed {
                books.apply(m);
            }
        }
        black_box(books.orders_len() as u64)
    });
    let row = FeedRow::decode(
        "book builder: Books::apply (context)",
        feed_messages,
        ns,
        "per message, the books rebuilt from empty each repeat",
    );
    rows.push(row);
    Ok(rows)
}

/// The fields a book builder reads from an ITCH message, folded into one number.
fn itch_book_fields(m: &Itch) -> u64 {
    match *m {
        Itch::AddOrder {
            order_ref,
            shares,
            price,
            ..
        } => order_ref ^ u64::from(shares) ^ u64::from(price),
        Itch::OrderExecuted {
            order_ref,
            shares,
            price,
            ..
        } => order_ref ^ u64::from(shares) ^ u64::from(price.unwrap_or(0)),
        Itch::OrderCancel {
            order_ref, shares, ..
        } => order_ref ^ u64::from(shares),
        Itch::OrderDelete { order_ref, .. } => order_ref,
        Itch::OrderReplace {
            orig_ref,
            new_ref,
            shares,
            price,
            ..
        } => orig_ref ^ new_ref ^ u64::from(shares) ^ u64::from(price),
        Itch::Trade {
            order_ref,
            shares,
            price,
            ..
        } => order_ref ^ u64::from(shares) ^ u64::from(price),
        _ => 0,
    }
}

/// The same fields of a feed-protocol message, read in place.
fn book_fields(m: MessageRef<'_>) -> u64 {
    match m {
        MessageRef::AddOrder(a) => {
            a.order_ref.get() ^ u64::from(a.shares.get()) ^ a.price.get() as u64
        }
        MessageRef::OrderExecuted(e) => {
            e.order_ref.get() ^ u64::from(e.shares.get()) ^ e.price.get() as u64
        }
        MessageRef::OrderCancelled(c) => c.order_ref.get() ^ u64::from(c.shares.get()),
        MessageRef::OrderDeleted(d) => d.order_ref.get(),
        MessageRef::OrderReplaced(r) => {
            r.orig_ref.get() ^ r.new_ref.get() ^ u64::from(r.shares.get()) ^ r.price.get() as u64
        }
        MessageRef::Trade(t) => {
            t.order_ref.get() ^ u64::from(t.shares.get()) ^ t.price.get() as u64
        }
        _ => 0,
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A line on loopback: multicast if it loops back here, else unicast; the string says which.
pub fn loopback_line(salt: u8) -> anyhow::Result<(LineAddr, String)> {
    let port = free_port()?;
    let group = Ipv4Addr::new(239, 255, 80, salt);
    let local = Ipv4Addr::LOCALHOST;
    Ok(if multicast_loopback_works(group, port, local) {
        (
            LineAddr {
                addr: SocketAddrV4::new(group, port),
                iface: local,
            },
            format!("multicast {group}:{port} on lo"),
        )
    } else {
        (
            LineAddr {
                addr: SocketAddrV4::new(local, port),
                iface: local,
            },
            "unicast on 127.0.0.1 (multicast does not loop back here)".into(),
        )
    })
}

/// Sends `messages` generated messages as fast as the send path goes; a receiver thread on
/// `recv` counts. Returns (send msgs/s, send pkts/s, received share, path line).
///
/// With `two_lines`, the publisher sends every packet on lines A and B (two groups) and the
/// receiver reads both, as an arbitrating subscriber does; the received share then counts both
/// copies.
fn transport_run(
    send: SendKind,
    recv: RecvKind,
    messages: u64,
    salt: u8,
    two_lines: bool,
) -> anyhow::Result<(f64, f64, f64, f64, String)> {
    let (line, transport) = loopback_line(salt)?;
    let rx = receiver_socket(line)?;
    let line_b = if two_lines {
        Some(loopback_line(salt.wrapping_add(100))?.0)
    } else {
        None
    };
    let rx_b = line_b.map(receiver_socket).transpose()?;
    let local = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
    let config = PublisherNetConfig {
        line_a: line,
        line_b,
        ttl: 0,
        send,
        retransmit_addr: local,
        snapshot_addr: local,
        loss_a: Default::default(),
        loss_b: Default::default(),
    };
    let (mut publisher, path_line) =
        NetPublisher::open(Publisher::new(PublisherConfig::default()), &config)?;
    let done = Arc::new(AtomicBool::new(false));
    let receiver = {
        let done = done.clone();
        std::thread::spawn(move || {
            let (mut path, recv_line) = RecvPath::open(recv);
            // As `NetSubscriber::poll_once` does: the line(s) and the (here idle)
            // retransmission socket, waited on together (poll(2), or the io_uring path's one
            // ring).
            let rtx = UdpSocket::bind("127.0.0.1:0").expect("a loopback socket");
            rtx.set_nonblocking(true).expect("non-blocking");
            let all = match &rx_b {
                Some(b) => [&rx, b, &rtx],
                None => [&rx, &rtx, &rtx],
            };
            let sockets = &all[..if rx_b.is_some() { 3 } else { 2 }];
            let (mut packets, mut msgs) = (0u64, 0u64);
            let start = Instant::now();
            let cpu_start = thread_cpu_ns();
            let mut last = start;
            loop {
                let _ = path.wait(sockets, Duration::from_millis(5));
                let n = path
                    .recv_all(sockets, |_, p| {
                        if let Ok(packet) = Packet::parse(p) {
                            msgs += packet.count();
                        }
                    })
                    .unwrap_or(0);
                packets += n as u64;
                if n > 0 {
                    last = Instant::now();
                }
                if done.load(Ordering::Acquire) && last.elapsed() > Duration::from_millis(50) {
                    break;
                }
            }
            let cpu_ns = thread_cpu_ns() - cpu_start;
            (
                packets,
                msgs,
                (last - start).as_secs_f64(),
                recv_line,
                cpu_ns,
            )
        })
    };
    // Pre-generate so the generator is not measured.
    let mut generator = sequent_feed::loss::SessionGenerator::new(7, 8, 2_000);
    let mut batch = Vec::with_capacity(messages as usize);
    while (batch.len() as u64) < messages {
        generator.next_message(&mut batch);
    }
    let start = Instant::now();
    for (i, m) in batch.iter().enumerate() {
        publisher.core.handle_message(m);
        if i % 256 == 255 {
            publisher.pump()?;
        }
    }
    publisher.core.flush();
    publisher.pump()?;
    let took = start.elapsed().as_secs_f64();
    done.store(true, Ordering::Release);
    let (rx_packets, rx_msgs, rx_secs, recv_line, rx_cpu_ns) = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))?;
    let sent_packets = publisher.sent_a as f64;
    Ok((
        batch.len() as f64 / took,
        sent_packets / took,
        rx_msgs as f64 / (batch.len() as f64 * if two_lines { 2.0 } else { 1.0 }),
        rx_packets as f64 / rx_secs.max(1e-9),
        format!(
            "receiver CPU {:.0} ns/packet; {path_line}; {recv_line}; {transport}",
            rx_cpu_ns as f64 / rx_packets.max(1) as f64
        ),
    ))
}

/// Interleaved rounds per receive path: the receive-path comparison takes each path's median
/// receiver CPU per packet, so a burst of load from a neighbour hits every path alike.
const RECV_ROUNDS: usize = 5;

/// Transport rows: each send path into recvmmsg, each receive path behind sendmmsg (receive
/// paths in [`RECV_ROUNDS`] interleaved rounds, median reported).
pub fn transport(config: &FeedConfig) -> anyhow::Result<Vec<FeedRow>> {
    let mut rows = Vec::new();
    for (i, send) in [SendKind::Send, SendKind::SendMmsg, SendKind::IoUring]
        .into_iter()
        .enumerate()
    {
        let (msgs_s, pkts_s, received, _, line) = transport_run(
            send,
            RecvKind::RecvMmsg,
            config.transport_messages,
            10 + i as u8,
            false,
        )?;
        let mut row = FeedRow::new(
            "transport",
            format!("send {send:?} → recvmmsg"),
            config.transport_messages,
        );
        row.messages_per_s = Some(msgs_s);
        row.packets_per_s = Some(pkts_s);
        row.loss_pct = Some(100.0 * (1.0 - received));
        row.note = line;
        rows.push(row);
    }
    let kinds = [RecvKind::Recv, RecvKind::RecvMmsg, RecvKind::IoUring];
    for two_lines in [false, true] {
        // Per kind: (receiver CPU ns/packet, received pkts/s, received share, note) per round.
        let mut rounds: Vec<Vec<(f64, f64, f64, String)>> = vec![Vec::new(); kinds.len()];
        for round in 0..RECV_ROUNDS {
            for (k, recv) in kinds.into_iter().enumerate() {
                let salt = 20 + (round * kinds.len() + k) as u8 + if two_lines { 40 } else { 0 };
                let (_, _, received, rx_pkts_s, line) = transport_run(
                    SendKind::SendMmsg,
                    recv,
                    config.transport_messages,
                    salt,
                    two_lines,
                )?;
                let cpu = line
                    .strip_prefix("receiver CPU ")
                    .and_then(|n| n.split(' ').next())
                    .and_then(|n| n.parse::<f64>().ok())
                    .unwrap_or(f64::NAN);
                rounds[k].push((cpu, rx_pkts_s, received, line));
            }
        }
        for (recv, mut runs) in kinds.into_iter().zip(rounds) {
            runs.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (lo, hi) = (runs[0].0, runs[runs.len() - 1].0);
            let (cpu, rx_pkts_s, _, line) = &runs[runs.len() / 2];
            let worst_received = runs.iter().map(|r| r.2).fold(f64::INFINITY, f64::min);
            let mut row = FeedRow::new(
                "transport",
                format!(
                    "sendmmsg → receive {recv:?}{}",
                    if two_lines { ", lines A+B" } else { "" }
                ),
                config.transport_messages,
            );
            row.packets_per_s = Some(*rx_pkts_s);
            row.loss_pct = Some(100.0 * (1.0 - worst_received));
            let rest = line.split_once("; ").map_or("", |(_, r)| r);
            row.note = format!(
                "receiver CPU {cpu:.0} ns/packet (median of {RECV_ROUNDS} interleaved runs, {lo:.0}–{hi:.0}; parse included; the line{} and an idle retransmission socket waited on together); {rest}",
                if two_lines { "s" } else { "" }
            );
            rows.push(row);
        }
    }
    Ok(rows)
}

/// AF_XDP beside recvmmsg, on the host end of a veth pair whose other end (in a network
/// namespace) carries a paced publisher: [`RECV_ROUNDS`] interleaved runs per path, median
/// receiver CPU per packet. Needs the `af-xdp` feature and root; otherwise one row says why.
pub fn af_xdp(config: &FeedConfig) -> anyhow::Result<Vec<FeedRow>> {
    let messages = (config.transport_messages / 5).max(10_000);
    let not_run = |why: &str| {
        let mut row = FeedRow::new("af-xdp", "receive AfXdp", 0);
        row.note = format!("not run: {why}");
        Ok(vec![row])
    };
    #[cfg(not(feature = "af-xdp"))]
    {
        let _ = messages;
        not_run(
            "built without the af-xdp feature (cargo build --release -p sequent-bench --features af-xdp)",
        )
    }
    #[cfg(feature = "af-xdp")]
    {
        use sequent_feed::net::xdp;
        if !xdp::is_root() {
            return not_run("needs root (a namespace, a veth pair, bpf(2))");
        }
        let (host_ip, ns_ip) = (Ipv4Addr::new(10, 197, 60, 1), Ipv4Addr::new(10, 197, 60, 2));
        let veth = match xdp::VethPair::create(host_ip, ns_ip, "bench") {
            Ok(veth) => veth,
            Err(why) => return not_run(&format!("cannot build the veth pair: {why}")),
        };
        let kinds = [RecvKind::RecvMmsg, RecvKind::AfXdp];
        let mut rounds: Vec<Vec<(f64, f64, String)>> = vec![Vec::new(); kinds.len()];
        for round in 0..RECV_ROUNDS {
            for (k, recv) in kinds.into_iter().enumerate() {
                let seed = (round * kinds.len() + k) as u64;
                rounds[k].push(xdp_run(&veth, host_ip, ns_ip, recv, messages, seed)?);
            }
        }
        let mut rows = Vec::new();
        for (recv, mut runs) in kinds.into_iter().zip(rounds) {
            runs.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (lo, hi) = (runs[0].0, runs[runs.len() - 1].0);
            let (cpu, pkts_s, line) = &runs[runs.len() / 2];
            let mut row = FeedRow::new(
                "af-xdp",
                format!("veth, paced → receive {recv:?}"),
                messages,
            );
            row.packets_per_s = Some(*pkts_s);
            row.loss_pct = Some(0.0);
            row.note = format!(
                "receiver CPU {cpu:.0} ns/packet (median of {RECV_ROUNDS} interleaved runs, {lo:.0}–{hi:.0}; the subscriber's whole poll loop, books included); {line}"
            );
            rows.push(row);
        }
        Ok(rows)
    }
}

/// One session over the veth pair into a `NetSubscriber` on `recv`: (receiver CPU ns per
/// packet, packets/s, path line). Fails unless the books end equal with no gap open.
#[cfg(feature = "af-xdp")]
fn xdp_run(
    veth: &sequent_feed::net::xdp::VethPair,
    host_ip: Ipv4Addr,
    ns_ip: Ipv4Addr,
    recv: RecvKind,
    messages: u64,
    seed: u64,
) -> anyhow::Result<(f64, f64, String)> {
    use sequent_feed::net::xdp;
    let line_a = LineAddr {
        addr: SocketAddrV4::new(host_ip, free_port()?),
        iface: host_ip,
    };
    let done = Arc::new(AtomicBool::new(false));
    let (addresses_tx, addresses) = std::sync::mpsc::channel();
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let netns = veth.ns_path();
    let publisher = {
        let done = done.clone();
        std::thread::spawn(move || -> anyhow::Result<[u8; 32]> {
            xdp::enter_netns(&netns)?;
            let config = PublisherNetConfig {
                line_a,
                line_b: None,
                ttl: 1,
                send: SendKind::SendMmsg,
                retransmit_addr: SocketAddrV4::new(ns_ip, 0),
                snapshot_addr: SocketAddrV4::new(ns_ip, 0),
                loss_a: Default::default(),
                loss_b: Default::default(),
            };
            let (mut publisher, _) =
                NetPublisher::open(Publisher::new(PublisherConfig::default()), &config)?;
            addresses_tx.send((publisher.retransmit_addr()?, publisher.snapshot_addr()?))?;
            let _ = go_rx.recv();
            let mut generator = sequent_feed::loss::SessionGenerator::new(900 + seed, 8, 2_000);
            let mut batch = Vec::new();
            let (mut sent, mut batches) = (0u64, 0u64);
            while sent < messages {
                batch.clear();
                for _ in 0..1 + batches % 8 {
                    generator.next_message(&mut batch);
                }
                sent += batch.len() as u64;
                publisher.publish(&batch)?;
                batches += 1;
                if batches % 32 == 0 {
                    // Paced alike for both paths: copy-mode XDP drops when its fill ring runs dry.
                    std::thread::sleep(Duration::from_micros(300));
                }
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while !done.load(Ordering::Acquire) && Instant::now() < deadline {
                publisher.core.end_session();
                publisher.pump()?;
                publisher.serve()?;
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(publisher.core.books().digest())
        })
    };
    let (retransmit_addr, snapshot_addr) = addresses.recv()?;
    let (mut subscriber, line) = NetSubscriber::open(
        Subscriber::new(SubscriberConfig::default()),
        &SubscriberNetConfig {
            line_a,
            line_b: None,
            recv,
            retransmit_addr,
            snapshot_addr,
        },
    )?;
    if subscriber.recv_path().kind() != recv {
        done.store(true, Ordering::Release);
        drop(go);
        let _ = publisher.join();
        anyhow::bail!("{recv:?} fell back: {line}");
    }
    go.send(())?;
    let start = Instant::now();
    let cpu_start = thread_cpu_ns();
    let deadline = start + Duration::from_secs(30);
    while !subscriber.core.is_complete() && Instant::now() < deadline {
        subscriber.poll_once(Duration::from_millis(1))?;
    }
    let cpu_ns = thread_cpu_ns() - cpu_start;
    let secs = start.elapsed().as_secs_f64();
    done.store(true, Ordering::Release);
    let digest = publisher
        .join()
        .map_err(|_| anyhow::anyhow!("publisher panicked"))??;
    let stats = &subscriber.core.stats;
    anyhow::ensure!(
        subscriber.core.is_complete() && subscriber.core.books().digest() == digest,
        "{recv:?}: the session did not end with equal books ({} packets, gaps {})",
        stats.packets_a,
        stats.gaps_seen
    );
    let packets = stats.packets_a.max(1);
    Ok((
        cpu_ns as f64 / packets as f64,
        packets as f64 / secs,
        format!("{line}; gaps {}", stats.gaps_seen),
    ))
}

/// One-way latency: a paced publisher thread, a subscriber in this thread.
pub fn latency(config: &FeedConfig) -> anyhow::Result<Vec<FeedRow>> {
    let (line, transport) = loopback_line(40)?;
    let local = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
    let pub_config = PublisherNetConfig {
        line_a: line,
        line_b: None,
        ttl: 0,
        send: SendKind::SendMmsg,
        retransmit_addr: local,
        snapshot_addr: local,
        loss_a: Default::default(),
        loss_b: Default::default(),
    };
    let (mut publisher, path_line) =
        NetPublisher::open(Publisher::new(PublisherConfig::default()), &pub_config)?;
    let sub_config = SubscriberNetConfig {
        line_a: line,
        line_b: None,
        recv: RecvKind::RecvMmsg,
        retransmit_addr: publisher.retransmit_addr()?,
        snapshot_addr: publisher.snapshot_addr()?,
    };
    let (mut sub, _) =
        NetSubscriber::open(Subscriber::new(SubscriberConfig::default()), &sub_config)?;
    let rate = config.latency_rate.max(1);
    let total = config.latency_messages;
    let thread = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut generator = sequent_feed::loss::SessionGenerator::new(9, 8, 2_000);
        let mut batch = Vec::new();
        let start = Instant::now();
        let mut sent = 0u64;
        while sent < total {
            let due = Duration::from_nanos(sent * 1_000_000_000 / rate);
            while start.elapsed() < due {
                std::thread::sleep(Duration::from_micros(50));
            }
            batch.clear();
            generator.next_message(&mut batch);
            sent += batch.len() as u64;
            publisher.publish(&batch)?;
        }
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            publisher.core.end_session();
            publisher.pump()?;
            publisher.serve()?;
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sub.core.is_complete() && Instant::now() < deadline {
        sub.poll_once(Duration::from_millis(1))?;
    }
    let stats = sub.core.stats.clone();
    thread
        .join()
        .map_err(|_| anyhow::anyhow!("publisher panicked"))??;
    let h = &stats.latency_ns;
    let mut row = FeedRow::new(
        "latency",
        format!("publish → book, {rate} msgs/s paced"),
        stats.messages,
    );
    row.p50_ns = Some(h.value_at_quantile(0.5));
    row.p99_ns = Some(h.value_at_quantile(0.99));
    row.p999_ns = Some(h.value_at_quantile(0.999));
    row.max_ns = Some(h.max());
    row.note = format!(
        "{path_line}, recvmmsg polled with 1 ms poll(2) timeout; {transport}; {} packets, gaps {}",
        stats.packets, stats.gaps_seen
    );
    Ok(vec![row])
}

/// Renders rows as a Markdown table.
pub fn render_markdown(rows: &[FeedRow]) -> String {
    let mut out = String::from(
        "| section | what | messages | ns/msg | msgs/s | pkts/s | loss | p50 | p99 | p99.9 | max | note |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    let f = |v: Option<f64>, d: usize| v.map_or("".to_string(), |v| format!("{v:.d$}"));
    let rate = |v: Option<f64>| v.map_or("".to_string(), |v| format!("{:.2}M", v / 1e6));
    let ns = |v: Option<u64>| v.map_or("".to_string(), |v| format!("{:.1} µs", v as f64 / 1e3));
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.section,
            r.name,
            r.messages,
            f(r.ns_per_message, 1),
            rate(r.messages_per_s),
            rate(r.packets_per_s),
            r.loss_pct.map_or("".to_string(), |v| format!("{v:.2}%")),
            ns(r.p50_ns),
            ns(r.p99_ns),
            ns(r.p999_ns),
            ns(r.max_ns),
            r.note
        ));
    }
    out
}

/// Decode ratios the issue targets: sequent ITCH vs itchy, protocol vs sequent ITCH.
pub fn targets(rows: &[FeedRow]) -> Vec<String> {
    let get = |prefix: &str| {
        rows.iter()
            .find(|r| r.name.starts_with(prefix))
            .and_then(|r| r.ns_per_message)
    };
    let mut out = Vec::new();
    if let (Some(ours), Some(itchy), Some(proto)) = (
        get("ITCH 5.0: sequent"),
        get("ITCH 5.0: itchy"),
        get("sequent feed protocol: for_each"),
    ) {
        out.push(format!(
            "target ITCH decode >= itchy: {} (sequent {ours:.1} ns/msg, itchy {itchy:.1} ns/msg, {:.1}x)",
            if ours <= itchy { "met" } else { "NOT met" },
            itchy / ours
        ));
        match (
            get("ITCH 5.0: sequent ItchReader, book fields"),
            get("sequent feed protocol: views"),
        ) {
            (Some(itch_fields), Some(views)) => out.push(format!(
                "target own protocol faster than ITCH: {} (book fields read: views {views:.1} ns/msg vs ItchReader {itch_fields:.1}, {:.1}x; owned decode, whole message black-boxed: {proto:.1} vs {ours:.1})",
                if views < itch_fields { "met" } else { "NOT met" },
                itch_fields / views
            )),
            _ => out.push(format!(
                "target own protocol faster than ITCH: {} ({proto:.1} ns/msg vs {ours:.1})",
                if proto < ours { "met" } else { "NOT met" }
            )),
        }
    }
    let row = |name: &str| rows.iter().find(|r| r.name == name);
    for lines in ["", ", lines A+B"] {
        match (
            row(&format!("sendmmsg → receive IoUring{lines}")),
            row(&format!("sendmmsg → receive RecvMmsg{lines}")),
        ) {
            (Some(uring), _) if !uring.note.contains("receive path: io_uring") => out.push(format!(
                "target io_uring receive >= recvmmsg{lines}: not measurable here (the io_uring probe failed; see the row's note)"
            )),
            (Some(uring), Some(mmsg)) => {
                let cpu = |r: &FeedRow| {
                    r.note
                        .strip_prefix("receiver CPU ")
                        .and_then(|n| n.split(' ').next())
                        .and_then(|n| n.parse::<f64>().ok())
                };
                let loss = |r: &FeedRow| r.loss_pct.unwrap_or(0.0);
                if let (Some(u), Some(m)) = (cpu(uring), cpu(mmsg)) {
                    out.push(format!(
                        "target io_uring receive >= recvmmsg{lines}: {} (receiver CPU per packet: io_uring {u:.0} ns with {:.2}% lost, recvmmsg {m:.0} ns with {:.2}% lost: recvmmsg/io_uring {:.2}x)",
                        if u <= m && loss(uring) <= loss(mmsg) {
                            "met"
                        } else {
                            "NOT met"
                        },
                        loss(uring),
                        loss(mmsg),
                        m / u
                    ));
                }
            }
            _ => {}
        }
    }
    out
}
