//! The cross-shard coordinator's decisions go through `sequent-journal`: every record is
//! appended and synced before any message it causes is sent. The coordinator is then lost right
//! after its commit (its posts never sent); a new one is rebuilt from the journal alone
//! (`Reader` + `Record::decode` + `Coordinator::recover`) and finishes the transfer: both legs
//! posted. A second transfer left without a decision is aborted on recovery (presumed abort):
//! both legs voided.

use std::path::PathBuf;

use sequent_ledger::cross_shard::{
    Coordinator, CrossTransfer, Decision, Leg, Record, Shard, ShardInput, clearing_account, leg_id,
    shard_of,
};
use sequent_ledger::{Account, AccountFlags, Config, Ledger, PendingState, Transfer};

const SHARDS: u32 = 2;
const KIND_COORDINATOR: u8 = 7;

fn temp_dir() -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("sequent-ledger-coordinator-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn shard(s: u32) -> Shard {
    let mut ledger = Ledger::new(Config {
        accounts_max: 16,
        transfers_max: 64,
    });
    let account = |id| Account {
        id,
        ledger: 1,
        code: 1,
        flags: AccountFlags::default(),
        parent: 0,
        user_data: 0,
    };
    for id in [
        u128::from(s) + 2,
        u128::from(s) + 4,
        clearing_account(s, 1 - s, SHARDS),
    ] {
        assert!(ledger.create_account(0, &account(id)).is_success());
    }
    let mut out = Vec::new();
    let fund = Transfer {
        id: 99,
        debit_account_id: u128::from(s) + 4,
        credit_account_id: u128::from(s) + 2,
        amount: 1000,
        ledger: 1,
        code: 1,
        ..Transfer::default()
    };
    ledger.create_transfers(0, &[fund], &mut out);
    Shard::new(s, SHARDS, ledger)
}

/// Journals every pending record (synced), then hands out the messages.
fn flush(
    coordinator: &mut Coordinator,
    writer: &mut sequent_journal::Writer,
    send: bool,
) -> Vec<sequent_ledger::cross_shard::Envelope<sequent_ledger::cross_shard::ToShard>> {
    while let Some(record) = coordinator.poll_record() {
        writer
            .append(KIND_COORDINATOR, 0, &record.encode())
            .unwrap();
    }
    writer.sync().unwrap();
    let mut out = Vec::new();
    while let Some(m) = coordinator.poll_message() {
        if send {
            out.push(m);
        }
    }
    out
}

fn leg_state(shards: &[Shard], t: &CrossTransfer, leg: Leg) -> Option<PendingState> {
    let account = match leg {
        Leg::Debit => t.debit_account_id,
        Leg::Credit => t.credit_account_id,
    };
    shards[shard_of(account, SHARDS) as usize]
        .ledger
        .transfer(leg_id(t.id, leg, None))
        .map(|s| s.state)
}

#[test]
fn a_coordinator_rebuilt_from_its_journal_finishes_every_transfer() {
    let dir = temp_dir();
    let config = sequent_journal::Config::default();
    let mut shards = vec![shard(0), shard(1)];
    let committed = CrossTransfer {
        id: 1,
        debit_account_id: 2,
        credit_account_id: 3,
        amount: 40,
        ledger: 1,
        code: 9,
    };
    let undecided = CrossTransfer {
        id: 2,
        debit_account_id: 3,
        credit_account_id: 2,
        amount: 15,
        ledger: 1,
        code: 9,
    };
    {
        let mut writer = sequent_journal::Writer::open(&dir, &config).unwrap();
        let mut coordinator = Coordinator::new(SHARDS, 1_000);
        coordinator.handle_begin(10, committed);
        let prepares = flush(&mut coordinator, &mut writer, true);
        for m in prepares {
            let input = ShardInput {
                ts: 10,
                message: m.message,
            };
            let reply = shards[m.shard as usize].handle(&input);
            coordinator.handle_reply(reply);
        }
        // The commit is journaled; the coordinator dies before sending the posts.
        let posts = flush(&mut coordinator, &mut writer, false);
        assert!(posts.is_empty());
        // A second transfer begins; only its debit leg is prepared before the crash.
        coordinator.handle_begin(20, undecided);
        for m in flush(&mut coordinator, &mut writer, true) {
            if m.shard == shard_of(undecided.debit_account_id, SHARDS) {
                let input = ShardInput {
                    ts: 20,
                    message: m.message,
                };
                shards[m.shard as usize].handle(&input);
            }
        }
        writer.close().unwrap();
    }
    assert_eq!(
        leg_state(&shards, &committed, Leg::Debit),
        Some(PendingState::Pending)
    );

    // Recovery from the journal alone.
    let mut records = Vec::new();
    let mut reader = sequent_journal::Reader::open(&dir).unwrap();
    while let Some(r) = reader.next().unwrap() {
        assert_eq!(r.kind, KIND_COORDINATOR);
        records.push(Record::decode(r.payload).expect("a coordinator record"));
    }
    assert!(records.contains(&Record::Commit { id: 1 }));
    let mut writer = sequent_journal::Writer::open(&dir, &config).unwrap();
    let mut coordinator = Coordinator::recover(SHARDS, 1_000, &records);
    assert_eq!(coordinator.decision(1), Some(Decision::Post));
    assert_eq!(coordinator.decision(2), Some(Decision::Void));
    for _ in 0..3 {
        for m in flush(&mut coordinator, &mut writer, true) {
            let input = ShardInput {
                ts: 30,
                message: m.message,
            };
            let reply = shards[m.shard as usize].handle(&input);
            coordinator.handle_reply(reply);
        }
        coordinator.handle_tick(40);
    }
    writer.close().unwrap();
    assert!(coordinator.in_doubt().is_empty());
    for leg in [Leg::Debit, Leg::Credit] {
        assert_eq!(
            leg_state(&shards, &committed, leg),
            Some(PendingState::Posted)
        );
        assert_ne!(
            leg_state(&shards, &undecided, leg),
            Some(PendingState::Posted)
        );
        assert_ne!(
            leg_state(&shards, &undecided, leg),
            Some(PendingState::Pending)
        );
    }
    let balance = |s: usize, id: u128| shards[s].ledger.account(id).unwrap().balances;
    assert_eq!(balance(0, 2).debits_posted, 40);
    assert_eq!(balance(1, 3).credits_posted, 1000 + 40);
    let _ = std::fs::remove_dir_all(&dir);
}
