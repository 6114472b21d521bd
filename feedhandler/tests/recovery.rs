//! Recovery in virtual time, with the sans-IO publisher and subscriber wired through seeded loss
//! injectors (no sockets: `tests/loopback.rs` does the same over real UDP). Each test prints its
//! seeds; a failing run reproduces with the same seeds.
//!
//! Proves: under 1–5% drop, duplication and reordering on both lines (and on the retransmission
//! path), the subscriber's books equal the publisher's by digest and every gap closed by the
//! other line, retransmission or snapshot (none skipped); a B-line outage is invisible; a late
//! joiner recovers by snapshot; overflow of the bounded reorder buffer falls back to a snapshot
//! with the buffer never above its bound; the gap-tolerant mode skips and counts instead of
//! asking; a publisher resumed after failover continues the sequence without reset.

use sequent_feed::loss::{LossConfig, LossInjector, SessionGenerator};
use sequent_feed::proto::{self, Message};
use sequent_feed::publisher::{Publisher, PublisherConfig, Retransmit};
use sequent_feed::subscriber::{Action, Join, Line, Recovery, Stats, Subscriber, SubscriberConfig};

struct Harness {
    publisher: Publisher,
    generator: SessionGenerator,
    a: LossInjector,
    b: LossInjector,
    rtx: LossInjector,
    subscriber: Option<Subscriber>,
    config: SubscriberConfig,
    now_ns: u64,
    /// Sends on line B are suppressed while this is true (an outage).
    b_down: bool,
    a_down: bool,
    max_reorder: usize,
}

impl Harness {
    fn new(seed: u64, loss_ppm: u32, history: usize, config: SubscriberConfig) -> Harness {
        let loss = |salt: u64| {
            LossInjector::new(LossConfig {
                drop_ppm: loss_ppm,
                duplicate_ppm: loss_ppm,
                reorder_ppm: loss_ppm,
                seed: seed ^ salt,
            })
        };
        println!(
            "seed {seed}, loss {loss_ppm} ppm each of drop/duplicate/reorder, history {history} packets"
        );
        Harness {
            publisher: Publisher::new(PublisherConfig {
                history_packets_max: history,
                ..PublisherConfig::default()
            }),
            generator: SessionGenerator::new(seed, 4, 500),
            a: loss(0xA),
            b: loss(0xB),
            rtx: loss(0xC),
            subscriber: Some(Subscriber::new(config)),
            config,
            now_ns: 1,
            b_down: false,
            a_down: false,
            max_reorder: 0,
        }
    }

    fn deliver(&mut self, line: Line, packets: Vec<Vec<u8>>) {
        if let Some(sub) = self.subscriber.as_mut() {
            for packet in packets {
                sub.handle_packet(self.now_ns, line, &packet).unwrap();
                self.max_reorder = self.max_reorder.max(sub.reorder_len());
            }
        }
    }

    fn send_polled(&mut self) {
        let mut packets = Vec::new();
        while let Some(p) = self.publisher.poll_packet(self.now_ns) {
            packets.push(p.to_vec());
        }
        for packet in packets {
            let (mut on_a, mut on_b) = (Vec::new(), Vec::new());
            if !self.a_down {
                self.a.handle_packet(&packet, &mut on_a);
            }
            if !self.b_down {
                self.b.handle_packet(&packet, &mut on_b);
            }
            self.deliver(Line::A, on_a);
            self.deliver(Line::B, on_b);
        }
        self.serve();
    }

    /// Answers the subscriber's requests, as the retransmission and snapshot servers would.
    fn serve(&mut self) {
        for _ in 0..100 {
            let Some(sub) = self.subscriber.as_mut() else {
                return;
            };
            sub.handle_timeout(self.now_ns);
            let Some(action) = sub.poll_action() else {
                return;
            };
            match action {
                Action::Retransmit { from_seq, count } => {
                    let mut packets = Vec::new();
                    match self.publisher.handle_retransmit_request(
                        from_seq,
                        count,
                        self.now_ns,
                        &mut packets,
                    ) {
                        Retransmit::Packets(_) => {
                            let mut out = Vec::new();
                            for p in packets {
                                self.rtx.handle_packet(&p, &mut out);
                            }
                            self.rtx.flush(&mut out);
                            self.deliver(Line::Retransmit, out);
                        }
                        Retransmit::Unavailable { .. } => {
                            sub.handle_retransmit_unavailable(self.now_ns);
                        }
                    }
                }
                Action::Snapshot => {
                    let mut bytes = Vec::new();
                    self.publisher.snapshot(&mut bytes);
                    let messages: Vec<Message> = proto::decode_stream(&bytes)
                        .collect::<Result<_, _>>()
                        .unwrap();
                    self.subscriber
                        .as_mut()
                        .unwrap()
                        .handle_snapshot(self.now_ns, &messages)
                        .unwrap();
                    // The snapshot flushed a partial packet: send it.
                    self.send_polled();
                }
            }
        }
        panic!("the subscriber keeps asking");
    }

    /// Publishes `messages` in batches of 1–8, 10 µs apart, with a heartbeat every 64 batches.
    fn run(&mut self, messages: u64, mut each_batch: impl FnMut(&mut Harness, u64)) {
        let mut batch = Vec::new();
        let mut sent = 0;
        let mut batches = 0u64;
        while sent < messages {
            batch.clear();
            let size = 1 + (batches.wrapping_mul(2_654_435_761) >> 7) % 8;
            for _ in 0..size {
                self.generator.next_message(&mut batch);
            }
            for m in &batch {
                self.publisher.handle_message(m);
                sent += 1;
            }
            self.publisher.flush();
            self.now_ns += 10_000;
            self.send_polled();
            batches += 1;
            if batches % 64 == 0 {
                self.publisher.heartbeat();
                self.send_polled();
            }
            each_batch(self, sent);
        }
    }

    /// Ends the session and idles (heartbeats, timers) until the subscriber is complete.
    fn finish(&mut self) -> Stats {
        self.a_down = false;
        self.b_down = false;
        self.publisher.end_session();
        for _ in 0..2_000 {
            self.send_polled();
            let mut out = Vec::new();
            self.a.flush(&mut out);
            self.b.flush(&mut out);
            self.deliver(Line::A, out);
            if self.subscriber.as_ref().unwrap().is_complete() {
                break;
            }
            self.now_ns += 5_000_000;
            self.publisher.end_session();
        }
        let sub = self.subscriber.as_ref().unwrap();
        let stats = &sub.stats;
        assert!(
            sub.is_complete(),
            "subscriber at {:?}, end {}",
            sub.next_seq(),
            self.publisher.next_seq()
        );
        assert_eq!(
            sub.books().digest(),
            self.publisher.books().digest(),
            "books differ"
        );
        assert_eq!(sub.books().digest(), self.generator.books().digest());
        assert_eq!(stats.gaps_open(), 0, "{:?}", sub.stats);
        sub.books().check_invariants().unwrap();
        println!(
            "{} messages, {} packets; A {:?}; B {:?}; gaps seen {} (other line {}, retransmit {}, snapshot {}), duplicates {}, requests {}, snapshots {} (reasons {:?})",
            stats.messages,
            stats.packets,
            self.a.stats,
            self.b.stats,
            stats.gaps_seen,
            stats.gaps_filled_by_other_line,
            stats.gaps_recovered_by_retransmit,
            stats.gaps_recovered_by_snapshot,
            stats.duplicate_packets,
            stats.retransmit_requests,
            stats.snapshots_applied,
            stats.snapshot_reasons,
        );
        stats.clone()
    }
}

fn seed(default: u64) -> u64 {
    std::env::var("SEQUENT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn lossy_single_line_recovers_every_gap() {
    for (i, ppm) in [10_000u32, 30_000, 50_000].into_iter().enumerate() {
        let mut h = Harness::new(seed(11 + i as u64), ppm, 4096, SubscriberConfig::default());
        h.b_down = true;
        h.run(40_000, |_, _| {});
        h.b_down = true;
        let stats = h.finish();
        assert!(h.a.stats.dropped > 0 && h.a.stats.duplicated > 0 && h.a.stats.reordered > 0);
        assert!(stats.gaps_recovered_by_retransmit > 0);
        assert_eq!(stats.messages_skipped, 0);
    }
}

#[test]
fn lossy_a_and_b_lines_recover_every_gap() {
    let mut h = Harness::new(seed(21), 40_000, 4096, SubscriberConfig::default());
    h.run(60_000, |_, _| {});
    let stats = h.finish();
    assert!(stats.gaps_filled_by_other_line > 0, "B filled A's gaps");
    assert!(stats.duplicate_packets > 0);
}

#[test]
fn b_line_outage_is_invisible() {
    let config = SubscriberConfig {
        gap_wait_ns: 0,
        ..SubscriberConfig::default()
    };
    let mut h = Harness::new(seed(31), 0, 4096, config);
    h.run(30_000, |h, sent| h.b_down = (5_000..20_000).contains(&sent));
    let stats = h.finish();
    assert_eq!(stats.gaps_seen, 0);
    assert_eq!(stats.retransmit_requests + stats.snapshot_requests, 0);
    assert!(stats.packets_b < stats.packets_a);
}

#[test]
fn late_joiner_recovers_by_snapshot() {
    let mut h = Harness::new(seed(41), 20_000, 64, SubscriberConfig::default());
    let saved = h.subscriber.take();
    h.run(30_000, |h, sent| {
        if sent >= 12_000 && h.subscriber.is_none() {
            h.subscriber = saved_take(&mut None, h.config);
        }
    });
    drop(saved);
    let stats = h.finish();
    assert!(stats.gaps_recovered_by_snapshot >= 1);
    assert!(stats.messages < 30_000);
}

fn saved_take(_: &mut Option<Subscriber>, config: SubscriberConfig) -> Option<Subscriber> {
    Some(Subscriber::new(config))
}

#[test]
fn reorder_overflow_falls_back_to_snapshot_within_the_bound() {
    let config = SubscriberConfig {
        reorder_packets_max: 16,
        join: Join::Retransmit,
        retransmit_attempts_max: 2,
        ..SubscriberConfig::default()
    };
    let mut h = Harness::new(seed(51), 10_000, 32, config);
    h.run(30_000, |h, sent| {
        // Both lines lose a long stretch: far more than the history and the buffer hold.
        let out = (10_000..14_000).contains(&sent);
        h.a_down = out;
        h.b_down = out;
    });
    let stats = h.finish();
    assert!(stats.reorder_overflows >= 1 || stats.snapshots_applied >= 1);
    assert!(stats.gaps_recovered_by_snapshot >= 1);
    assert!(h.max_reorder <= 16, "reorder buffer held {}", h.max_reorder);
}

#[test]
fn gap_tolerant_mode_skips_and_counts() {
    let config = SubscriberConfig {
        recovery: Recovery::GapTolerant,
        ..SubscriberConfig::default()
    };
    let mut h = Harness::new(seed(61), 30_000, 4096, config);
    h.b_down = true;
    h.run(20_000, |_, _| {});
    h.publisher.end_session();
    h.send_polled();
    let stats = &h.subscriber.as_ref().unwrap().stats;
    assert_eq!(stats.retransmit_requests + stats.snapshot_requests, 0);
    assert!(stats.messages_skipped > 0);
    assert_eq!(stats.gaps_seen, stats.gaps_skipped);
    assert_eq!(
        stats.messages + stats.messages_skipped,
        h.publisher.next_seq() - 1
    );
}

#[test]
fn failover_continues_the_sequence() {
    let mut h = Harness::new(seed(71), 20_000, 4096, SubscriberConfig::default());
    h.run(10_000, |_, _| {});
    // The engine fails over: a new publisher resumes at the sequence and books it reached.
    let next = h.publisher.next_seq();
    let books = h.publisher.books().clone();
    let config = *h.publisher.config();
    h.publisher.flush();
    h.send_polled();
    h.publisher = Publisher::resume(config, next, books);
    h.run(10_000, |_, _| {});
    assert!(h.publisher.next_seq() > next);
    let stats = h.finish();
    assert!(stats.gaps_open() == 0);
    let sub = h.subscriber.as_ref().unwrap();
    assert_eq!(sub.next_seq(), Some(h.publisher.next_seq()));
}
