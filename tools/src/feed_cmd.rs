//! `sequent feed itch FILE`: replays a NASDAQ TotalView-ITCH 5.0 file into the feed's book
//! builder (`sequent_feed::book::Books`) and prints the count of messages by type and in total,
//! per-symbol statistics, the books and their digest. `--publish` re-publishes the book messages
//! in sequent's feed protocol over multicast at a multiple of the file's own rate (the seed's
//! market-data burst scenario: `--speed 10`), with the retransmission and snapshot servers up.
//!
//! An unknown message type or a truncated tail is an error naming the byte offset.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sequent_feed::book::{Books, format_price, hex};
use sequent_feed::itch::{self, ItchReader};
use sequent_feed::net::{LineAddr, NetPublisher, PublisherNetConfig, SendKind};
use sequent_feed::publisher::{Publisher, PublisherConfig};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Replay an ITCH 5.0 file: counts by type, per-symbol statistics, books; optionally
    /// re-publish it over multicast.
    Itch(ItchArgs),
}

#[derive(clap::Args, Debug)]
pub struct ItchArgs {
    /// The ITCH 5.0 file (2-byte length prefixes may be zero: framed by type and size).
    file: PathBuf,
    /// Book levels printed per side.
    #[arg(long, default_value_t = 5)]
    depth: usize,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Re-publish the file's book messages over multicast (sequent feed protocol).
    #[arg(long)]
    publish: bool,
    /// Publish at this multiple of the file's own rate (its timestamps); 0 = as fast as possible.
    #[arg(long, default_value_t = 10.0)]
    speed: f64,
    /// Line A group and port.
    #[arg(long, default_value = "239.255.0.1:31001")]
    line_a: SocketAddrV4,
    /// Line B group and port (optional).
    #[arg(long)]
    line_b: Option<SocketAddrV4>,
    /// Multicast interface.
    #[arg(long, default_value = "127.0.0.1")]
    iface: Ipv4Addr,
    /// Send path: send, sendmmsg or io-uring (probed; falls back to sendmmsg with a line).
    #[arg(long, default_value = "sendmmsg")]
    send: SendKind,
    /// Retransmission server address (UDP).
    #[arg(long, default_value = "127.0.0.1:31100")]
    retransmit: SocketAddrV4,
    /// Snapshot server address (TCP).
    #[arg(long, default_value = "127.0.0.1:31101")]
    snapshot: SocketAddrV4,
    /// Packets kept for retransmission; older ranges are answered "unavailable" (snapshot).
    #[arg(long, default_value_t = 4096)]
    history_packets: usize,
    /// Seconds to keep serving retransmissions and snapshots after the end of session.
    #[arg(long, default_value_t = 2)]
    linger_s: u64,
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Itch(args) => itch_cmd(&args),
    }
}

fn itch_cmd(args: &ItchArgs) -> anyhow::Result<()> {
    let data =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let mut books = Books::new();
    let counts =
        itch::replay(&data, &mut books).with_context(|| format!("{}", args.file.display()))?;
    if args.json {
        let symbols: Vec<_> = books
            .symbols()
            .iter()
            .map(|(locate, book)| {
                serde_json::json!({
                    "locate": locate,
                    "symbol": book.name(),
                    "stats": book.stats,
                    "bid_levels": book.bids.len(),
                    "ask_levels": book.asks.len(),
                    "best_bid": book.best_bid().map(|(p, l)| (p, l.shares)),
                    "best_ask": book.best_ask().map(|(p, l)| (p, l.shares)),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "messages": counts.total,
                "by_type": counts.by_type,
                "symbols": symbols,
                "resting_orders": books.orders_len(),
                "digest": hex(&books.digest()),
            })
        );
    } else {
        let by_type: Vec<String> = counts
            .by_type
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        println!("{} messages: {}", counts.total, by_type.join(", "));
        for (locate, book) in books.symbols() {
            let s = book.stats;
            println!(
                "{} (locate {locate}): adds {}, executions {} ({} shares), cancels {}, deletes {}, replaces {}, trades {} ({} shares), unknown refs {}; best bid {}, best ask {}",
                book.name(),
                s.adds,
                s.executions,
                s.executed_shares,
                s.cancels,
                s.deletes,
                s.replaces,
                s.trades,
                s.traded_shares,
                s.unknown_refs,
                book.best_bid().map_or("-".into(), |(p, l)| format!(
                    "{} x {}",
                    format_price(p),
                    l.shares
                )),
                book.best_ask().map_or("-".into(), |(p, l)| format!(
                    "{} x {}",
                    format_price(p),
                    l.shares
                )),
            );
        }
        for locate in books.symbols().keys() {
            print!("{}", books.render(*locate, args.depth));
        }
        println!(
            "{} resting orders, digest {}",
            books.orders_len(),
            hex(&books.digest())
        );
    }
    if args.publish {
        publish(args, &data)?;
    }
    Ok(())
}

fn publish(args: &ItchArgs, data: &[u8]) -> anyhow::Result<()> {
    if args.speed < 0.0 || !args.speed.is_finite() {
        bail!("--speed must be a finite number >= 0");
    }
    if args.history_packets < 2 {
        bail!("--history-packets must be at least 2");
    }
    let line = |addr| LineAddr {
        addr,
        iface: args.iface,
    };
    let config = PublisherNetConfig {
        line_a: line(args.line_a),
        line_b: args.line_b.map(line),
        ttl: 1,
        send: args.send,
        retransmit_addr: args.retransmit,
        snapshot_addr: args.snapshot,
        loss_a: Default::default(),
        loss_b: Default::default(),
    };
    let (mut publisher, path_line) = NetPublisher::open(
        Publisher::new(PublisherConfig {
            history_packets_max: args.history_packets,
            ..PublisherConfig::default()
        }),
        &config,
    )
    .context("opening the publisher's sockets")?;
    eprintln!("sequent feed: {path_line}");
    let start = Instant::now();
    let mut first_ns = None;
    let mut published = 0u64;
    for item in ItchReader::new(data) {
        let (_, message) = item?;
        let Some(feed) = message.to_feed(|r| publisher.core.books().order(r).map(|o| o.price))
        else {
            continue;
        };
        let time_ns = itch_time(&message);
        let first = *first_ns.get_or_insert(time_ns);
        if args.speed > 0.0 {
            let due =
                Duration::from_nanos(((time_ns.saturating_sub(first)) as f64 / args.speed) as u64);
            if start.elapsed() < due {
                publisher.core.flush();
                publisher.pump()?;
                publisher.serve()?;
                while start.elapsed() < due {
                    std::hint::spin_loop();
                    if due - start.elapsed() > Duration::from_micros(200) {
                        std::thread::sleep(Duration::from_micros(100));
                    }
                }
            }
        }
        publisher.core.handle_message(&feed);
        published += 1;
    }
    publisher.core.end_session();
    publisher.pump()?;
    let took = start.elapsed();
    eprintln!(
        "sequent feed: published {published} messages in {:.3} s ({:.0} msgs/s), {} packets on A, {} on B; serving for {} s",
        took.as_secs_f64(),
        published as f64 / took.as_secs_f64().max(1e-9),
        publisher.sent_a,
        publisher.sent_b,
        args.linger_s
    );
    let linger = Instant::now() + Duration::from_secs(args.linger_s);
    let mut beat = Instant::now();
    while Instant::now() < linger {
        publisher.serve()?;
        if beat.elapsed() >= Duration::from_millis(100) {
            publisher.core.end_session();
            publisher.pump()?;
            beat = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

fn itch_time(message: &itch::Itch) -> u64 {
    use itch::Itch::*;
    match *message {
        SystemEvent { time_ns, .. }
        | StockDirectory { time_ns, .. }
        | AddOrder { time_ns, .. }
        | OrderExecuted { time_ns, .. }
        | OrderCancel { time_ns, .. }
        | OrderDelete { time_ns, .. }
        | OrderReplace { time_ns, .. }
        | Trade { time_ns, .. }
        | Other { time_ns, .. } => time_ns,
    }
}
