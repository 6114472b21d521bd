//! End to end over real UDP on loopback: a publisher thread (sockets, loss injection, the
//! retransmission and snapshot servers) and a subscriber in the test thread. Multicast on `lo`
//! with IP_MULTICAST_LOOP when this host delivers it (probed first); otherwise unicast UDP on
//! 127.0.0.1, said in the output. Every wait has a deadline; seeds are printed.
//!
//! Proves, over sockets: with 3% drop, duplication and reordering on both lines the books equal
//! the publisher's by digest and every gap closed; each send path (send, sendmmsg, io_uring with
//! its fallback) and receive path (recv, recvmmsg) carries a session; a late joiner recovers by
//! snapshot; a B-line outage is invisible.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sequent_feed::loss::{LossConfig, SessionGenerator};
use sequent_feed::net::{
    LineAddr, NetPublisher, NetSubscriber, PublisherNetConfig, RecvKind, RecvOptions, SendKind,
    SubscriberNetConfig, UringBuffers, multicast_loopback_works, probe_uring_recv,
};
use sequent_feed::publisher::{Publisher, PublisherConfig};
use sequent_feed::subscriber::{Stats, Subscriber, SubscriberConfig};

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two lines: multicast groups if this host loops multicast back, else unicast on 127.0.0.1.
fn lines(salt: u8) -> (LineAddr, LineAddr) {
    let (pa, pb) = (free_port(), free_port());
    let group_a = Ipv4Addr::new(239, 255, 70, salt);
    let group_b = Ipv4Addr::new(239, 255, 71, salt);
    let (a, b) = if multicast_loopback_works(group_a, pa, LOCAL) {
        println!("transport: multicast on lo ({group_a}:{pa}, {group_b}:{pb})");
        (
            SocketAddrV4::new(group_a, pa),
            SocketAddrV4::new(group_b, pb),
        )
    } else {
        println!("transport: unicast UDP on 127.0.0.1 (multicast does not loop back on this host)");
        (SocketAddrV4::new(LOCAL, pa), SocketAddrV4::new(LOCAL, pb))
    };
    (
        LineAddr {
            addr: a,
            iface: LOCAL,
        },
        LineAddr {
            addr: b,
            iface: LOCAL,
        },
    )
}

struct Run {
    messages: u64,
    seed: u64,
    loss_ppm: u32,
    history: usize,
    send: SendKind,
    recv: RecvKind,
    /// Messages published before the subscriber joins (late joiner).
    join_after: u64,
    /// Line B is silent for messages in this range.
    b_outage: std::ops::Range<u64>,
    /// How long a hole may wait for the other line before a request goes out.
    gap_wait_ns: u64,
    /// Receive-path options (the io_uring probe and buffer provision).
    recv_options: RecvOptions,
}

/// One run at a time: each has a publisher thread that sends flat out, and CI has two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(r: Run) -> (Stats, RecvKind) {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (line_a, line_b) = lines((r.seed % 200) as u8 + 1);
    let loss = |salt| LossConfig {
        drop_ppm: r.loss_ppm,
        duplicate_ppm: r.loss_ppm,
        reorder_ppm: r.loss_ppm,
        seed: r.seed ^ salt,
    };
    let pub_config = PublisherNetConfig {
        line_a,
        line_b: Some(line_b),
        ttl: 0,
        send: r.send,
        retransmit_addr: SocketAddrV4::new(LOCAL, 0),
        snapshot_addr: SocketAddrV4::new(LOCAL, 0),
        loss_a: loss(0xA),
        loss_b: loss(0xB),
    };
    let core = Publisher::new(PublisherConfig {
        history_packets_max: r.history,
        ..PublisherConfig::default()
    });
    let (mut publisher, line) = NetPublisher::open(core, &pub_config).unwrap();
    println!("seed {}, loss {} ppm, {line}", r.seed, r.loss_ppm);
    let sub_config = SubscriberNetConfig {
        line_a,
        line_b: Some(line_b),
        recv: r.recv,
        retransmit_addr: publisher.retransmit_addr().unwrap(),
        snapshot_addr: publisher.snapshot_addr().unwrap(),
    };
    // A subscriber from the start joins before the first packet leaves (no race with the
    // publisher thread); a late joiner opens its sockets later, below.
    let open = || {
        let (subscriber, line) = NetSubscriber::open_with(
            Subscriber::new(SubscriberConfig {
                gap_wait_ns: r.gap_wait_ns,
                ..SubscriberConfig::default()
            }),
            &sub_config,
            r.recv_options,
        )
        .unwrap();
        println!("{line}");
        subscriber
    };
    let mut early = (r.join_after == 0).then(open);
    let done = Arc::new(AtomicBool::new(false));
    let joined = Arc::new(AtomicBool::new(r.join_after == 0));
    let deadline = Instant::now() + Duration::from_secs(30);
    let publisher_thread = {
        let (done, joined) = (done.clone(), joined.clone());
        std::thread::spawn(move || {
            let mut generator = SessionGenerator::new(r.seed, 4, 300);
            let mut batch = Vec::new();
            let mut sent = 0u64;
            let mut batches = 0u64;
            while sent < r.messages {
                if sent >= r.join_after && !joined.load(Ordering::Acquire) {
                    // Wait for the late joiner to open its sockets.
                    publisher.serve().unwrap();
                    std::thread::sleep(Duration::from_millis(1));
                    assert!(Instant::now() < deadline, "late joiner never joined");
                    continue;
                }
                batch.clear();
                let size = 1 + (batches.wrapping_mul(2_654_435_761) >> 7) % 8;
                for _ in 0..size {
                    generator.next_message(&mut batch);
                }
                for m in &batch {
                    publisher.core.handle_message(m);
                    sent += 1;
                }
                publisher.core.flush();
                publisher.b_down = r.b_outage.contains(&sent);
                publisher.pump().unwrap();
                publisher.serve().unwrap();
                batches += 1;
                if batches % 64 == 0 {
                    publisher.core.heartbeat();
                    publisher.pump().unwrap();
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            publisher.b_down = false;
            publisher.flush_loss().unwrap();
            // End of session, repeated (it may be dropped), serving requests until done.
            while !done.load(Ordering::Acquire) && Instant::now() < deadline {
                publisher.core.end_session();
                publisher.pump().unwrap();
                for _ in 0..10 {
                    publisher.serve().unwrap();
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            (
                publisher.core.books().digest(),
                generator.books().digest(),
                publisher.sent_a,
                publisher.sent_b,
            )
        })
    };
    if r.join_after > 0 {
        // Join late: after the publisher has gone past `join_after` messages.
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut subscriber = early.take().unwrap_or_else(open);
    joined.store(true, Ordering::Release);
    while !subscriber.core.is_complete() && Instant::now() < deadline {
        subscriber.poll_once(Duration::from_millis(1)).unwrap();
    }
    done.store(true, Ordering::Release);
    let (digest, generated, sent_a, sent_b) = publisher_thread.join().unwrap();
    let stats = subscriber.core.stats.clone();
    println!(
        "sent A {sent_a} B {sent_b}; received {} packets ({} A, {} B, {} retransmitted), {} messages; gaps seen {} (other line {}, retransmit {}, snapshot {}); duplicates {}; requests {}; snapshots {}; latency p50 {} ns p99 {} ns",
        stats.packets,
        stats.packets_a,
        stats.packets_b,
        stats.packets_retransmitted,
        stats.messages,
        stats.gaps_seen,
        stats.gaps_filled_by_other_line,
        stats.gaps_recovered_by_retransmit,
        stats.gaps_recovered_by_snapshot,
        stats.duplicate_packets,
        stats.retransmit_requests,
        stats.snapshots_applied,
        stats.latency_ns.value_at_quantile(0.5),
        stats.latency_ns.value_at_quantile(0.99),
    );
    assert!(
        subscriber.core.is_complete(),
        "not complete by the deadline: next {:?}",
        subscriber.core.next_seq()
    );
    assert_eq!(digest, generated);
    assert_eq!(
        subscriber.core.books().digest(),
        digest,
        "books differ from the publisher's"
    );
    assert_eq!(stats.gaps_open(), 0);
    assert_eq!(stats.messages_skipped, 0);
    if subscriber.recv_path().kind() == RecvKind::IoUring {
        println!(
            "io_uring multishot re-armed {} times",
            subscriber.recv_path().rearms()
        );
    }
    (stats, subscriber.recv_path().kind())
}

#[test]
fn lossy_session_over_sockets_recovers_every_gap() {
    for (i, (send, recv)) in [
        (SendKind::SendMmsg, RecvKind::RecvMmsg),
        (SendKind::IoUring, RecvKind::Recv),
        (SendKind::Send, RecvKind::RecvMmsg),
    ]
    .into_iter()
    .enumerate()
    {
        let stats = run(Run {
            messages: 15_000,
            seed: 100 + i as u64,
            loss_ppm: 30_000,
            history: 8192,
            send,
            recv,
            join_after: 0,
            b_outage: 0..0,
            gap_wait_ns: 1_000_000,
            recv_options: RecvOptions::default(),
        })
        .0;
        assert!(
            stats.gaps_seen + stats.gaps_filled_by_other_line > 0,
            "3% loss on both lines opens holes"
        );
        assert!(stats.duplicate_packets > 0);
    }
}

#[test]
fn late_joiner_over_sockets_recovers_by_snapshot() {
    let stats = run(Run {
        messages: 12_000,
        seed: 200,
        loss_ppm: 10_000,
        history: 32,
        send: SendKind::SendMmsg,
        recv: RecvKind::RecvMmsg,
        join_after: 6_000,
        b_outage: 0..0,
        gap_wait_ns: 1_000_000,
        recv_options: RecvOptions::default(),
    })
    .0;
    assert!(stats.snapshots_applied >= 1);
    assert!(stats.gaps_recovered_by_snapshot >= 1);
}

#[test]
fn b_line_outage_over_sockets_is_invisible() {
    let stats = run(Run {
        messages: 5_000,
        seed: 300,
        loss_ppm: 0,
        history: 8192,
        send: SendKind::SendMmsg,
        recv: RecvKind::RecvMmsg,
        join_after: 0,
        b_outage: 1_000..4_000,
        // Invisible means: the other line fills any hole before a request would go out. The
        // wait covers a subscriber thread descheduled between reading B and A on a busy host.
        gap_wait_ns: 50_000_000,
        recv_options: RecvOptions::default(),
    })
    .0;
    assert_eq!(stats.gaps_seen, 0);
    assert_eq!(stats.retransmit_requests + stats.snapshot_requests, 0);
    assert!(stats.packets_b < stats.packets_a);
}

fn uring_run(seed: u64, buffers: UringBuffers) {
    if let Err(why) = probe_uring_recv(Some(buffers)) {
        println!("SKIP: io_uring receive with {buffers:?} buffers does not work here: {why}");
        return;
    }
    let (stats, kind) = run(Run {
        messages: 15_000,
        seed,
        loss_ppm: 30_000,
        history: 8192,
        send: SendKind::SendMmsg,
        recv: RecvKind::IoUring,
        join_after: 0,
        b_outage: 0..0,
        gap_wait_ns: 1_000_000,
        recv_options: RecvOptions {
            uring_buffers: Some(buffers),
            ..RecvOptions::default()
        },
    });
    assert_eq!(kind, RecvKind::IoUring, "the probe passed, so no fallback");
    assert!(stats.gaps_seen + stats.gaps_filled_by_other_line > 0);
    assert!(
        stats.gaps_recovered_by_retransmit > 0,
        "holes closed by retransmission"
    );
    assert!(stats.duplicate_packets > 0);
}

#[test]
fn io_uring_receive_with_buffer_ring_recovers_every_gap() {
    uring_run(400, UringBuffers::Ring);
}

#[test]
fn io_uring_receive_with_classic_provided_buffers_recovers_every_gap() {
    uring_run(401, UringBuffers::Classic);
}

fn failing_probe(_: Option<UringBuffers>) -> Result<UringBuffers, String> {
    Err("injected probe failure".into())
}

#[test]
fn io_uring_receive_falls_back_to_recvmmsg_when_the_probe_fails() {
    let options = RecvOptions {
        uring_probe: failing_probe,
        ..RecvOptions::default()
    };
    let (path, line) = sequent_feed::net::RecvPath::open_with(RecvKind::IoUring, options);
    println!("{line}");
    assert_eq!(path.kind(), RecvKind::RecvMmsg);
    assert_eq!(
        line,
        "receive path: recvmmsg (io_uring receive unavailable: injected probe failure)"
    );
    // And the fallen-back subscriber still carries a lossy session to the same books.
    let (stats, kind) = run(Run {
        messages: 5_000,
        seed: 402,
        loss_ppm: 30_000,
        history: 8192,
        send: SendKind::SendMmsg,
        recv: RecvKind::IoUring,
        join_after: 0,
        b_outage: 0..0,
        gap_wait_ns: 1_000_000,
        recv_options: options,
    });
    assert_eq!(kind, RecvKind::RecvMmsg);
    assert!(stats.duplicate_packets > 0);
}

#[cfg(not(feature = "af-xdp"))]
#[test]
fn af_xdp_without_the_feature_falls_back_to_recvmmsg_saying_so() {
    let (path, line) = sequent_feed::net::RecvPath::open(RecvKind::AfXdp);
    println!("{line}");
    assert_eq!(path.kind(), RecvKind::RecvMmsg);
    assert!(line.contains("AF_XDP not built"), "{line}");
}

/// Subscribers are opened in one thread and polled in another (`engine/node/tests/feed.rs`).
#[test]
fn subscriber_is_send() {
    fn send<T: Send>() {}
    send::<NetSubscriber>();
    send::<sequent_feed::net::RecvPath>();
}
