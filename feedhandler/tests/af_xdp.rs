//! AF_XDP receive (cargo feature `af-xdp`). The end-to-end test needs root and a kernel that
//! lets us create a network namespace, a veth pair and load an XDP program; it prints SKIP with
//! the reason otherwise. The publisher thread lives in the namespace on one end of the pair, the
//! subscriber on the other end in ours, receiving line A through AF_XDP.
//!
//! Proves: the session arrives through the XDP socket (its datagram count covers line A), the
//! books equal the publisher's by digest with no open gap, also with 2% of line A dropped,
//! every hole then closed by the publisher's retransmission server across the pair (the
//! subscriber's requests leave from the line interface's address); and any AF_XDP failure
//! falls back to recvmmsg with a line saying why.

#![cfg(feature = "af-xdp")]

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sequent_feed::loss::{LossConfig, SessionGenerator};
use sequent_feed::net::{
    LineAddr, NetPublisher, NetSubscriber, PublisherNetConfig, RecvKind, RecvPath, SendKind,
    SubscriberNetConfig, xdp,
};
use sequent_feed::publisher::{Publisher, PublisherConfig};
use sequent_feed::subscriber::{Subscriber, SubscriberConfig};

#[test]
fn af_xdp_receives_a_session_over_a_veth_pair() {
    xdp_session(7, 0);
}

/// Line A loses 2% of its packets (seeded) on the way out of the namespace; the subscriber
/// asks the publisher's retransmission server across the veth pair for each hole.
#[test]
fn af_xdp_session_with_loss_recovers_every_gap_by_retransmission() {
    let stats = xdp_session(8, 20_000);
    if let Some(stats) = stats {
        assert!(stats.gaps_seen > 0, "2% loss opened no gap");
        assert!(
            stats.gaps_recovered_by_retransmit > 0,
            "holes closed by retransmission"
        );
    }
}

/// One session from a publisher in a namespace to a subscriber receiving line A through
/// AF_XDP, with `drop_ppm` of line A's packets dropped (seeded); the subscriber's books must
/// equal the publisher's with no open gap. Returns the subscriber's statistics, or None when
/// the test had to skip (printed with the reason).
fn xdp_session(salt: u8, drop_ppm: u32) -> Option<sequent_feed::subscriber::Stats> {
    if !xdp::is_root() {
        println!("SKIP: AF_XDP over veth needs root (namespaces, veth, bpf(2))");
        return None;
    }
    let (host_ip, ns_ip) = (
        Ipv4Addr::new(10, 197, salt, 1),
        Ipv4Addr::new(10, 197, salt, 2),
    );
    let veth = match xdp::VethPair::create(host_ip, ns_ip, &salt.to_string()) {
        Ok(v) => v,
        Err(why) => {
            println!("SKIP: cannot build the namespace and veth pair: {why}");
            return None;
        }
    };
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let line_a = LineAddr {
        addr: SocketAddrV4::new(host_ip, port),
        iface: host_ip,
    };
    let done = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(20);
    let netns = veth.ns_path();
    // The publisher opens first, in the namespace, and tells where its servers listen; it starts
    // sending once the subscriber is open.
    let (addresses_tx, addresses) = std::sync::mpsc::channel();
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let publisher = {
        let done = done.clone();
        std::thread::spawn(move || {
            xdp::enter_netns(&netns).unwrap();
            let config = PublisherNetConfig {
                line_a,
                line_b: None,
                ttl: 1,
                send: SendKind::SendMmsg,
                retransmit_addr: SocketAddrV4::new(ns_ip, 0),
                snapshot_addr: SocketAddrV4::new(ns_ip, 0),
                loss_a: LossConfig {
                    drop_ppm,
                    seed: u64::from(salt),
                    ..LossConfig::default()
                },
                loss_b: LossConfig::default(),
            };
            let (mut publisher, line) =
                NetPublisher::open(Publisher::new(PublisherConfig::default()), &config).unwrap();
            println!("publisher in {}: {line}", netns.display());
            addresses_tx
                .send((
                    publisher.retransmit_addr().unwrap(),
                    publisher.snapshot_addr().unwrap(),
                ))
                .unwrap();
            let _ = go_rx.recv();
            let mut generator = SessionGenerator::new(700 + u64::from(salt), 4, 300);
            let mut batch = Vec::new();
            let mut sent = 0u64;
            let mut batches = 0u64;
            while sent < 20_000 {
                batch.clear();
                for _ in 0..1 + batches % 8 {
                    generator.next_message(&mut batch);
                }
                sent += batch.len() as u64;
                publisher.publish(&batch).unwrap();
                batches += 1;
                if batches % 32 == 0 {
                    // Paced: copy-mode XDP drops when the fill ring runs dry.
                    std::thread::sleep(Duration::from_micros(300));
                }
            }
            while !done.load(Ordering::Acquire) && Instant::now() < deadline {
                publisher.core.end_session();
                publisher.pump().unwrap();
                publisher.serve().unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
            (publisher.core.books().digest(), publisher.sent_a)
        })
    };
    let (retransmit_addr, snapshot_addr) = addresses.recv().unwrap();
    let sub_config = SubscriberNetConfig {
        line_a,
        line_b: None,
        recv: RecvKind::AfXdp,
        retransmit_addr,
        snapshot_addr,
    };
    let (mut subscriber, line) =
        NetSubscriber::open(Subscriber::new(SubscriberConfig::default()), &sub_config).unwrap();
    println!("{line}");
    if subscriber.recv_path().kind() != RecvKind::AfXdp {
        println!("SKIP: the kernel refused AF_XDP here ({line})");
        done.store(true, Ordering::Release);
        drop(go);
        let _ = publisher.join();
        return None;
    }
    go.send(()).unwrap();
    while !subscriber.core.is_complete() && Instant::now() < deadline {
        subscriber.poll_once(Duration::from_millis(1)).unwrap();
    }
    done.store(true, Ordering::Release);
    let (digest, sent_a) = publisher.join().unwrap();
    let stats = subscriber.core.stats.clone();
    let via_xdp = subscriber.recv_path().xdp_packets();
    println!(
        "sent A {sent_a} ({drop_ppm} ppm dropped); received {} packets on A, {via_xdp} datagrams through AF_XDP; gaps {} recovered by retransmission {} open {}",
        stats.packets_a,
        stats.gaps_seen,
        stats.gaps_recovered_by_retransmit,
        stats.gaps_open()
    );
    assert!(subscriber.core.is_complete(), "the session did not end");
    assert_eq!(subscriber.core.books().digest(), digest);
    assert_eq!(stats.gaps_open(), 0);
    assert!(
        via_xdp >= stats.packets_a,
        "every line-A packet came through the XDP socket"
    );
    Some(stats)
}

#[test]
fn af_xdp_failure_falls_back_to_recvmmsg_with_the_reason() {
    let (mut path, line) = RecvPath::open(RecvKind::AfXdp);
    println!("{line}");
    assert_eq!(path.kind(), RecvKind::AfXdp, "decided per line");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    // TEST-NET-1 (RFC 5737): no interface owns it, so AF_XDP cannot find one to attach to.
    let nowhere = LineAddr {
        addr: SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 31001),
        iface: Ipv4Addr::new(192, 0, 2, 1),
    };
    let line = path.attach_xdp(&socket, nowhere);
    println!("{line}");
    assert_eq!(path.kind(), RecvKind::RecvMmsg);
    assert!(
        line.starts_with("receive path: recvmmsg (AF_XDP unavailable for 192.0.2.1:31001: interface: no interface owns 192.0.2.1"),
        "{line}"
    );
}

#[test]
fn udp_payload_parses_ethernet_ipv4_udp_and_refuses_the_rest() {
    let mut frame = vec![0u8; 14 + 24 + 8 + 5];
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    frame[14] = 0x46; // IPv4 with one option word: the parser honours IHL
    frame[14 + 9] = 17;
    let udp = 14 + 24;
    frame[udp + 2..udp + 4].copy_from_slice(&31001u16.to_be_bytes());
    frame[udp + 4..udp + 6].copy_from_slice(&13u16.to_be_bytes());
    frame[udp + 8..].copy_from_slice(b"hello");
    assert_eq!(xdp::udp_payload(&frame, 31001), Some(&b"hello"[..]));
    assert_eq!(xdp::udp_payload(&frame, 31002), None, "another port");
    let mut tcp = frame.clone();
    tcp[14 + 9] = 6;
    assert_eq!(xdp::udp_payload(&tcp, 31001), None, "not UDP");
    let mut long = frame.clone();
    long[udp + 4..udp + 6].copy_from_slice(&200u16.to_be_bytes());
    assert_eq!(
        xdp::udp_payload(&long, 31001),
        None,
        "UDP length beyond the frame"
    );
    assert_eq!(xdp::udp_payload(&frame[..20], 31001), None, "truncated");
}
