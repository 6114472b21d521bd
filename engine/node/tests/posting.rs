//! The ledger posting hook end to end (docs/engine-ledger-posting.md): the engine with `[ledger]`
//! over loopback TCP, three sessions trading on two books with shared accounts (so some trades are
//! between one account and itself). Checked against a naive model built from the `Fill` replies the
//! clients received and the orders they sent: every trade posted exactly once (the ledger journal
//! holds trades 1..=N with N = fills / 2, and the ledger's transfers are exactly the two legs of
//! each trade between different accounts); every account's cash and position balance equals the
//! model's; debits equal credits in every ledger. Restarts: graceful (the rebuilt ledger has the
//! live digest; more trading goes on from there), with the ledger journal deleted (rebuilt from the
//! engine journal past a snapshot that is ahead of it), and kill -9 of the binary mid-load (the
//! ledger after restart holds exactly the trades of the recovered engine journal, once each).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sequent_journal::snapshot::SnapshotStore;
use sequent_node::client::Client;
use sequent_node::config::EngineConfig;
use sequent_node::core::{Core, Output, Trade};
use sequent_node::engine::{Engine, core_config};
use sequent_node::posting::{CASH_LEDGER, account_id, position_ledger, replay_ledger};
use sequent_node::protocol::{ClientMessage, EngineMessage};

mod support;
use support::{TempDir, http, start_binary};

const TIMEOUT: Duration = Duration::from_secs(20);
const SYMBOLS: [&str; 2] = ["ABC", "XYZ"];

fn config_text(journal: &Path) -> String {
    format!(
        r#"
symbols = ["ABC", "XYZ"]
sessions_max = 8
[venue]
orders_max = 65536
levels_max = 4096
levels_per_side_max = 1024
accounts_max = 8
ids_max = 65536
[rings]
input_slots = 1024
output_slots = 4096
[journal]
dir = "{}"
durability = "group"
group_records = 32
interval_us = 300
segment_mib = 1
[gateway]
listen = "127.0.0.1:0"
connections_max = 8
[metrics]
listen = "127.0.0.1:0"
[snapshots]
every_records = 150
[ledger]
transfers_max = 65536
segment_mib = 1
snapshot_every = 40
"#,
        journal.display()
    )
}

fn config(dir: &Path) -> EngineConfig {
    EngineConfig::parse(&config_text(&dir.join("journal"))).unwrap()
}

/// The naive model: balances (credits − debits) per (venue account, ledger), from fills.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
struct Model {
    balances: BTreeMap<(u32, u32), i128>,
    fills: u64,
    /// Every order sent: (session, client order id) → (account, symbol, buy). Orders rest
    /// across restarts, so a fill may answer an order of an earlier run.
    orders: BTreeMap<(u32, u32), (u32, u16, bool)>,
}

impl Model {
    fn fill(&mut self, account: u32, symbol: u16, buy: bool, price: i64, qty: u64) {
        let cash = i128::from(price) * i128::from(qty);
        let qty = i128::from(qty);
        let (cash, qty) = if buy { (-cash, qty) } else { (cash, -qty) };
        *self.balances.entry((account, CASH_LEDGER)).or_default() += cash;
        *self
            .balances
            .entry((account, position_ledger(symbol)))
            .or_default() += qty;
        self.fills += 1;
    }

    fn trade(&mut self, trade: &Trade) {
        self.fill(
            trade.buyer_account,
            trade.symbol,
            true,
            trade.price,
            trade.qty,
        );
        self.fill(
            trade.seller_account,
            trade.symbol,
            false,
            trade.price,
            trade.qty,
        );
    }
}

/// A session's client.
struct Trader {
    client: Client,
    session: u32,
}

impl Trader {
    fn connect(address: SocketAddr, session: u32) -> Self {
        let mut client = Client::connect(address, TIMEOUT).unwrap();
        assert!(matches!(
            client.login(session, false).unwrap(),
            EngineMessage::LoginAccepted(_)
        ));
        Self { client, session }
    }

    /// Reads everything up to the answer to a heartbeat: since a connection's replies keep the
    /// core's order, every fill of earlier inputs has then arrived.
    fn drain(&mut self, model: &mut Model) {
        self.client.send(0, &ClientMessage::Heartbeat).unwrap();
        loop {
            match self.client.receive().unwrap().message {
                EngineMessage::Heartbeat => return,
                EngineMessage::Fill(fill) => {
                    let (account, symbol, buy) =
                        model.orders[&(self.session, fill.client_order_id.get())];
                    model.fill(account, symbol, buy, fill.price.get(), fill.qty.get());
                }
                _ => {}
            }
        }
    }
}

/// A seeded stream of crossing orders from three sessions on two books, accounts 0..5 shared
/// between the sessions; client order ids from `first`.
fn trade_round(address: SocketAddr, first: u32, count: u32, seed: u64, model: &mut Model) {
    let mut traders: Vec<Trader> = (1..=3).map(|s| Trader::connect(address, s)).collect();
    let mut state = seed | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for id in first..first + count {
        let r = next();
        let trader = &mut traders[(r % 3) as usize];
        let account = ((r >> 8) % 5) as u32;
        let symbol = ((r >> 16) % 2) as u16;
        let buy = (r >> 20) % 2 == 0;
        let price = 98 + ((r >> 24) % 5) as i64;
        let qty = 1 + (r >> 32) % 9;
        model
            .orders
            .insert((trader.session, id), (account, symbol, buy));
        trader
            .client
            .new_limit(id, account, SYMBOLS[symbol as usize], buy, price, qty)
            .unwrap();
    }
    // Twice: after the first pass every order has been applied (each trader's orders come before
    // its heartbeat), but a later trader's order may have filled an earlier trader's resting
    // order after that one's heartbeat; the second pass collects those fills.
    for _ in 0..2 {
        for trader in &mut traders {
            trader.drain(model);
        }
    }
}

/// The ledger rebuilt from its journal must hold trades 1..=`trades` once each, the two legs of
/// every trade between different accounts, and the model's balances; debits equal credits.
fn check_ledger(config: &EngineConfig, trades: u64, model: &Model) -> [u8; 32] {
    let (ledger, posted) = replay_ledger(config).unwrap();
    let numbers: Vec<u64> = posted.iter().map(|t| t.match_number).collect();
    assert_eq!(
        numbers,
        (1..=trades).collect::<Vec<_>>(),
        "the ledger journal must hold every trade once, in order"
    );
    let crossed = posted
        .iter()
        .filter(|t| t.buyer_account != t.seller_account)
        .count();
    assert!(crossed > 10, "too few trades between accounts: {crossed}");
    assert!(
        crossed < posted.len(),
        "the load should include same-account trades"
    );
    assert_eq!(ledger.transfers().len(), 2 * crossed, "two legs per trade");
    for (ledger_id, name) in (1..=3u32).zip(["cash", "ABC", "XYZ"]) {
        let rows = ledger.trial_balance(ledger_id);
        assert_eq!(
            rows.total_debits_posted, rows.total_credits_posted,
            "trial balance of {name}"
        );
    }
    for account in 0..8u32 {
        for ledger_id in 1..=3u32 {
            let state = ledger.account(account_id(account, ledger_id)).unwrap();
            let balance =
                state.balances.credits_posted as i128 - state.balances.debits_posted as i128;
            let expected = model
                .balances
                .get(&(account, ledger_id))
                .copied()
                .unwrap_or(0);
            assert_eq!(
                balance, expected,
                "account {account} ledger {ledger_id}: ledger {balance}, fills {expected}"
            );
        }
    }
    ledger.state_digest()
}

fn hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn every_trade_is_posted_once_and_survives_restarts() {
    let dir = TempDir::new("posting-graceful");
    let config = config(&dir.0);
    let mut model = Model::default();

    // Run 1: trade, then look at the live ledger.
    let engine = Engine::start(&config).unwrap();
    trade_round(engine.address(), 1, 600, 0x5eed, &mut model);
    assert_eq!(model.fills % 2, 0, "every trade gives two fills");
    let trades = model.fills / 2;
    assert!(trades > 50, "the load made too few trades: {trades}");
    let metrics = engine.metrics_address().unwrap();
    // The posting stage runs beside the gateway: wait until it has taken the last trade.
    let deadline = std::time::Instant::now() + TIMEOUT;
    let text = loop {
        let text = http(metrics, "GET /metrics");
        if metric(&text, "sequent_ledger_last_trade") == trades {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "posting stalled");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(metric(&text, "sequent_ledger_trial_balance_ok"), 1);
    let skipped = metric(
        &text,
        "sequent_ledger_postings_skipped_total{reason=\"same_account\"}",
    );
    assert_eq!(
        metric(&text, "sequent_ledger_postings_total") + skipped,
        trades
    );
    assert_eq!(metric(&text, "sequent_ledger_postings_existing_total"), 0);
    let admin = http(metrics, "GET /admin/ledger");
    assert!(admin.starts_with("HTTP/1.1 200"), "{admin}");
    engine.shutdown().unwrap();
    let digest = check_ledger(&config, trades, &model);
    assert!(
        admin.contains(&format!("\"digest\":\"{}\"", hex(&digest))),
        "the live ledger's digest differs from the one rebuilt from its journal:\n{admin}"
    );

    // The stop wrote a snapshot of the ledger (and `snapshot_every` some before it; two kept).
    let ledger_snapshots =
        SnapshotStore::open(&dir.0.join("journal").join("ledger").join("snapshots")).unwrap();
    let snapshots = ledger_snapshots.list().unwrap();
    assert_eq!(snapshots.len(), 2, "{snapshots:?}");

    // Run 2: a graceful restart restores the ledger from that snapshot, re-applies nothing,
    // and goes on from it.
    let (engine, text) = restart_with_ledger(&config, &digest, trades);
    assert_eq!(
        metric(&text, "sequent_ledger_postings_total"),
        0,
        "the snapshot at the stop covers every trade: nothing is replayed"
    );
    trade_round(engine.address(), 1001, 400, 0xfeed, &mut model);
    let trades = model.fills / 2;
    engine.shutdown().unwrap();
    let digest = check_ledger(&config, trades, &model);

    // Run 2b: the newest snapshot damaged: it is passed over for the older one, and the ledger
    // journal after that is replayed.
    let (_, newest) = ledger_snapshots.list().unwrap().remove(0);
    let mut bytes = std::fs::read(&newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&newest, bytes).unwrap();
    let (engine, text) = restart_with_ledger(&config, &digest, trades);
    let replayed = metric(&text, "sequent_ledger_postings_total")
        + metric(
            &text,
            "sequent_ledger_postings_skipped_total{reason=\"same_account\"}",
        );
    // The older snapshot is one `snapshot_every` wrote during run 2 (at the first batch boundary
    // past 40 trades), so some trades, but not all, are replayed.
    assert!(
        replayed > 0 && replayed < trades,
        "{replayed} of {trades} trades replayed after the older snapshot"
    );
    engine.shutdown().unwrap();

    // Run 3: without its journal, the ledger is rebuilt from the engine journal: the newest
    // snapshot is ahead of it, so the whole journal is replayed and every trade re-posted once.
    assert!(
        std::fs::read_dir(config.snapshot_dir()).unwrap().count() > 0,
        "a snapshot should exist, to be passed over"
    );
    std::fs::remove_dir_all(dir.0.join("journal").join("ledger")).unwrap();
    let engine = Engine::start(&config).unwrap();
    let text = http(engine.metrics_address().unwrap(), "GET /metrics");
    assert_eq!(metric(&text, "sequent_ledger_last_trade"), trades);
    engine.shutdown().unwrap();
    assert_eq!(check_ledger(&config, trades, &model), digest);
}

/// Starts the engine again and checks that its live ledger has `digest` and has taken trades up
/// to `trades`; returns the engine and its metrics text.
fn restart_with_ledger(config: &EngineConfig, digest: &[u8; 32], trades: u64) -> (Engine, String) {
    let engine = Engine::start(config).unwrap();
    let metrics = engine.metrics_address().unwrap();
    let admin = http(metrics, "GET /admin/ledger");
    assert!(admin.contains(&hex(digest)), "{admin}");
    let text = http(metrics, "GET /metrics");
    assert_eq!(metric(&text, "sequent_ledger_last_trade"), trades);
    (engine, text)
}

/// The trades of the engine journal, by replaying it through a fresh core.
fn journal_trades(config: &EngineConfig) -> Vec<Trade> {
    let mut core = Core::new(&core_config(config));
    let mut reader = sequent_journal::Reader::from_sequence(&config.journal.dir, 1).unwrap();
    let mut out = Vec::new();
    let mut trades = Vec::new();
    while let Some(entry) = reader.next().unwrap() {
        let input = sequent_node::record::decode(entry.kind, entry.payload).unwrap();
        out.clear();
        core.apply(entry.timestamp_ns, &input, &mut out);
        trades.extend(out.iter().filter_map(|o| match o {
            Output::Trade(trade) => Some(*trade),
            _ => None,
        }));
    }
    trades
}

#[test]
fn kill_9_mid_load_loses_and_doubles_no_posting() {
    let dir = TempDir::new("posting-kill");
    let path = dir.0.join("engine.toml");
    std::fs::write(&path, config_text(&dir.0.join("journal"))).unwrap();
    let config = config(&dir.0);

    let engine = start_binary(&path);
    let mut model = Model::default();
    trade_round(engine.address, 1, 300, 0xabc, &mut model);
    // More orders in flight, then SIGKILL without reading their answers.
    let mut a = Client::connect(engine.address, TIMEOUT).unwrap();
    let mut b = Client::connect(engine.address, TIMEOUT).unwrap();
    a.login(4, false).unwrap();
    b.login(5, false).unwrap();
    for id in 1..=400u32 {
        let price = 99 + i64::from(id % 3);
        a.new_limit(id, id % 4, "ABC", true, price, 3).unwrap();
        b.new_limit(id, 4 - id % 4, "ABC", false, price, 2).unwrap();
    }
    let _ = a.receive_n(50);
    let mut engine = engine;
    engine.child.kill().unwrap(); // SIGKILL
    engine.child.wait().unwrap();
    drop(engine);

    // Restart, trade a little more, stop cleanly.
    let engine = start_binary(&path);
    trade_round(engine.address, 2001, 200, 0xdef, &mut model);
    let mut engine = engine;
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(engine.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(engine.child.wait().unwrap().success());

    // The ledger holds exactly the recovered engine journal's trades, once each.
    let trades = journal_trades(&config);
    // Sessions 1 to 3 saw fills only of acknowledged (durable) trades; sessions 4 and 5 traded
    // too.
    assert!(
        trades.len() as u64 > model.fills / 2,
        "the load in flight at the kill made no trade that survived"
    );
    let mut expected = Model::default();
    for trade in &trades {
        expected.trade(trade);
    }
    let (_, posted) = replay_ledger(&config).unwrap();
    assert_eq!(
        posted, trades,
        "the ledger journal must hold the engine's trades exactly"
    );
    check_ledger(&config, trades.len() as u64, &expected);
}
