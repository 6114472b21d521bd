//! `Ledger::prefault` maps memory and changes nothing else: a ledger prefaulted mid-stream (with
//! stored, pending, expiring and failed transfers) has the same digest and snapshot as before,
//! and answers every later input as a twin that was never prefaulted.

use sequent_ledger::{Account, Config, Ledger, Outcome, Transfer, TransferFlags};

fn transfer(id: u128, debit: u128, credit: u128, flags: TransferFlags) -> Transfer {
    Transfer {
        id,
        debit_account_id: debit,
        credit_account_id: credit,
        amount: 10,
        ledger: 1,
        code: 1,
        flags,
        ..Transfer::default()
    }
}

/// Accounts, plain and pending transfers (some with a timeout), a remembered failure, a failed
/// chain; then `later` at times 100 and 1000 (expiring the pendings on the way).
fn drive(ledger: &mut Ledger, later: bool) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    if !later {
        for id in 1..=4 {
            let account = Account {
                id,
                ledger: 1,
                code: 1,
                ..Account::default()
            };
            outcomes.push(ledger.create_account(0, &account));
        }
        let mut batch = vec![
            transfer(10, 1, 2, TransferFlags::default()),
            transfer(11, 2, 3, TransferFlags::PENDING),
            transfer(12, 1, 9, TransferFlags::default()),
            transfer(13, 3, 4, TransferFlags::LINKED),
            transfer(14, 4, 4, TransferFlags::default()),
        ];
        let mut pending = transfer(15, 3, 1, TransferFlags::PENDING);
        pending.timeout_ns = 50;
        batch.push(pending);
        ledger.create_transfers(10, &batch, &mut outcomes);
    } else {
        let batch = [
            transfer(12, 1, 9, TransferFlags::default()),
            transfer(20, 4, 1, TransferFlags::default()),
            Transfer {
                id: 21,
                pending_id: 11,
                flags: TransferFlags::POST_PENDING,
                ..Transfer::default()
            },
        ];
        ledger.create_transfers(100, &batch, &mut outcomes);
        ledger.handle_tick(1_000);
        ledger.create_transfers(
            1_000,
            &[transfer(10, 1, 2, TransferFlags::default())],
            &mut outcomes,
        );
    }
    outcomes
}

fn snapshot(ledger: &Ledger) -> Vec<u8> {
    let mut bytes = Vec::new();
    ledger.write_snapshot(&mut bytes);
    bytes
}

#[test]
fn prefault_changes_no_state_and_no_later_answer() {
    let config = Config {
        accounts_max: 64,
        transfers_max: 4_096,
    };
    let mut plain = Ledger::new(config);
    let mut prefaulted = Ledger::new(config);
    prefaulted.prefault();
    assert_eq!(plain.state_digest(), prefaulted.state_digest());
    assert_eq!(drive(&mut plain, false), drive(&mut prefaulted, false));
    let (digest, bytes) = (prefaulted.state_digest(), snapshot(&prefaulted));
    prefaulted.prefault();
    assert_eq!(prefaulted.state_digest(), digest);
    assert_eq!(snapshot(&prefaulted), bytes);
    assert_eq!(snapshot(&plain), bytes);
    let answers = drive(&mut plain, true);
    assert_eq!(drive(&mut prefaulted, true), answers);
    assert!(answers.contains(&Outcome::Ok) && plain.expired_total() == 1);
    assert_eq!(plain.state_digest(), prefaulted.state_digest());
    assert_eq!(snapshot(&plain), snapshot(&prefaulted));
}
