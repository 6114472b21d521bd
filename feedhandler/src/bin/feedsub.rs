//! `sequent-feedsub`: joins the feed's line(s), recovers gaps, rebuilds every book and prints
//! live statistics; `--books` prints each book and its digest at the end; `--json` prints one
//! JSON object per line instead of text.
//!
//! Exit codes: 0 the session ended (or `--duration-s` passed) with every gap recovered; 1 a gap
//! stayed open, the end of session never came, or a socket failed; 2 bad command line.

#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use sequent_feed::book::hex;
use sequent_feed::net::{LineAddr, NetSubscriber, RecvKind, SubscriberNetConfig};
use sequent_feed::subscriber::{Join, Recovery, Stats, Subscriber, SubscriberConfig};

#[derive(Debug, Parser)]
#[command(
    name = "sequent-feedsub",
    version,
    about = "sequent's market-data subscriber"
)]
struct Args {
    /// Line A: multicast group (or unicast address) and port.
    #[arg(long, default_value = "239.255.0.1:31001")]
    line_a: SocketAddrV4,
    /// Line B (optional): a second group carrying the same packets.
    #[arg(long)]
    line_b: Option<SocketAddrV4>,
    /// Interface address for multicast membership.
    #[arg(long, default_value = "127.0.0.1")]
    iface: Ipv4Addr,
    /// Publisher's retransmission server (UDP).
    #[arg(long, default_value = "127.0.0.1:31100")]
    retransmit: SocketAddr,
    /// Publisher's snapshot server (TCP).
    #[arg(long, default_value = "127.0.0.1:31101")]
    snapshot: SocketAddr,
    /// Receive path: recv, recvmmsg, io-uring or af-xdp (cargo feature `af-xdp`, root). The
    /// last two are probed and fall back to recvmmsg with a line saying why.
    #[arg(long, default_value = "recvmmsg")]
    recv: RecvKind,
    /// Skip gaps (counted) instead of recovering them: fresh data over complete data.
    #[arg(long)]
    gap_tolerant: bool,
    /// Ask for missed history by retransmission instead of a snapshot when joining late.
    #[arg(long)]
    join_by_retransmit: bool,
    /// Most packets held out of order before falling back to a snapshot.
    #[arg(long, default_value_t = 1024)]
    reorder_packets: usize,
    /// Most bytes held out of order before falling back to a snapshot.
    #[arg(long, default_value_t = 4 << 20)]
    reorder_bytes: usize,
    /// Statistics every this many milliseconds (0: only at the end).
    #[arg(long, default_value_t = 1000)]
    stats_ms: u64,
    /// Stop after this many seconds even if the session has not ended.
    #[arg(long)]
    duration_s: Option<u64>,
    /// Print every book and its digest at the end.
    #[arg(long)]
    books: bool,
    /// Book depth printed per side.
    #[arg(long, default_value_t = 5)]
    depth: usize,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

fn stats_line(stats: &Stats, rate: f64, json: bool) -> String {
    let p = |q| stats.latency_ns.value_at_quantile(q);
    if json {
        serde_json::json!({
            "messages": stats.messages,
            "messages_per_s": rate,
            "packets": stats.packets,
            "packets_a": stats.packets_a,
            "packets_b": stats.packets_b,
            "packets_retransmitted": stats.packets_retransmitted,
            "duplicate_packets": stats.duplicate_packets,
            "gaps_seen": stats.gaps_seen,
            "gaps_recovered_by_retransmit": stats.gaps_recovered_by_retransmit,
            "gaps_recovered_by_snapshot": stats.gaps_recovered_by_snapshot,
            "gaps_filled_by_other_line": stats.gaps_filled_by_other_line,
            "gaps_skipped": stats.gaps_skipped,
            "messages_skipped": stats.messages_skipped,
            "gaps_open": stats.gaps_open(),
            "snapshots_applied": stats.snapshots_applied,
            "latency_ns_p50": p(0.5),
            "latency_ns_p99": p(0.99),
            "latency_ns_max": stats.latency_ns.max(),
        })
        .to_string()
    } else {
        format!(
            "{} msgs ({rate:.0}/s), {} pkts (A {}, B {}, rtx {}), dup {}, gaps {} (rtx {}, snapshot {}, skipped {}, open {}), A/B fills {}, latency p50 {} ns p99 {} ns",
            stats.messages,
            stats.packets,
            stats.packets_a,
            stats.packets_b,
            stats.packets_retransmitted,
            stats.duplicate_packets,
            stats.gaps_seen,
            stats.gaps_recovered_by_retransmit,
            stats.gaps_recovered_by_snapshot,
            stats.gaps_skipped,
            stats.gaps_open(),
            stats.gaps_filled_by_other_line,
            p(0.5),
            p(0.99),
        )
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = SubscriberConfig {
        recovery: if args.gap_tolerant {
            Recovery::GapTolerant
        } else {
            Recovery::Complete
        },
        join: if args.join_by_retransmit {
            Join::Retransmit
        } else {
            Join::Snapshot
        },
        reorder_packets_max: args.reorder_packets.max(1),
        reorder_bytes_max: args.reorder_bytes,
        ..SubscriberConfig::default()
    };
    let line = |addr| LineAddr {
        addr,
        iface: args.iface,
    };
    let net = SubscriberNetConfig {
        line_a: line(args.line_a),
        line_b: args.line_b.map(line),
        recv: args.recv,
        retransmit_addr: args.retransmit,
        snapshot_addr: args.snapshot,
    };
    let (mut sub, path_line) = match NetSubscriber::open(Subscriber::new(config), &net) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("sequent-feedsub: cannot join {}: {e}", args.line_a);
            return ExitCode::from(1);
        }
    };
    eprintln!("sequent-feedsub: {path_line}");
    let start = Instant::now();
    let deadline = args.duration_s.map(|s| start + Duration::from_secs(s));
    let mut last = (Instant::now(), 0u64);
    while !sub.core.is_complete() && deadline.is_none_or(|d| Instant::now() < d) {
        if let Err(e) = sub.poll_once(Duration::from_millis(1)) {
            eprintln!("sequent-feedsub: socket failed: {e}");
            return ExitCode::from(1);
        }
        if args.stats_ms > 0 && last.0.elapsed() >= Duration::from_millis(args.stats_ms) {
            let rate = (sub.core.stats.messages - last.1) as f64 / last.0.elapsed().as_secs_f64();
            println!("{}", stats_line(&sub.core.stats, rate, args.json));
            last = (Instant::now(), sub.core.stats.messages);
        }
    }
    let rate = sub.core.stats.messages as f64 / start.elapsed().as_secs_f64().max(1e-9);
    println!("{}", stats_line(&sub.core.stats, rate, args.json));
    let books = sub.core.books();
    if args.books {
        for (locate, book) in books.symbols() {
            if args.json {
                let level =
                    |l: Option<(i64, sequent_feed::book::Level)>| l.map(|(p, l)| (p, l.shares));
                println!(
                    "{}",
                    serde_json::json!({"locate": locate, "symbol": book.name(), "bid_levels": book.bids.len(), "ask_levels": book.asks.len(), "best_bid": level(book.best_bid()), "best_ask": level(book.best_ask())})
                );
            } else {
                print!("{}", books.render(*locate, args.depth));
            }
        }
        if args.json {
            println!("{}", serde_json::json!({"digest": hex(&books.digest())}));
        } else {
            println!("digest {}", hex(&books.digest()));
        }
    }
    if !sub.core.is_complete() && deadline.is_none() {
        eprintln!("sequent-feedsub: the session did not end");
        return ExitCode::from(1);
    }
    if sub.core.stats.gaps_open() > 0 {
        eprintln!(
            "sequent-feedsub: {} gap(s) still open",
            sub.core.stats.gaps_open()
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
