//! Unit-level behaviour of the ledger that the random workloads do not reach: capacity, overflow,
//! the hierarchy (roll-ups, depth limit, balance sheet), history queries and statements, closed
//! accounts, expiry on a tick, and the stable numbering of outcomes.

use sequent_ledger::{
    Account, AccountFlags, Config, HIERARCHY_DEPTH_MAX, Ledger, Outcome, QueryError, Transfer,
    TransferFlags,
};

fn account(id: u128, flags: AccountFlags, parent: u128) -> Account {
    Account {
        id,
        ledger: 1,
        code: 10,
        flags,
        parent,
        user_data: 0,
    }
}

fn transfer(id: u128, debit: u128, credit: u128, amount: u128) -> Transfer {
    Transfer {
        id,
        debit_account_id: debit,
        credit_account_id: credit,
        amount,
        ledger: 1,
        code: 1,
        ..Transfer::default()
    }
}

fn one(ledger: &mut Ledger, ts: u64, t: Transfer) -> Outcome {
    let mut out = Vec::new();
    ledger.create_transfers(ts, &[t], &mut out);
    out[0]
}

fn small() -> Ledger {
    Ledger::new(Config {
        accounts_max: 4,
        transfers_max: 4,
    })
}

#[test]
fn a_full_ledger_answers_ledger_full_and_still_answers_duplicates() {
    let mut l = small();
    for id in 1..=4 {
        assert_eq!(
            l.create_account(0, &account(id, AccountFlags::default(), 0)),
            Outcome::Ok
        );
    }
    assert_eq!(
        l.create_account(0, &account(5, AccountFlags::default(), 0)),
        Outcome::LedgerFull
    );
    assert_eq!(
        l.create_account(0, &account(4, AccountFlags::default(), 0)),
        Outcome::Exists
    );
    for id in 1..=3 {
        assert_eq!(one(&mut l, 0, transfer(id, 1, 2, 5)), Outcome::Ok);
    }
    // A remembered failure takes the last slot.
    assert_eq!(
        one(&mut l, 0, transfer(4, 1, 9, 5)),
        Outcome::CreditAccountNotFound
    );
    assert_eq!(one(&mut l, 0, transfer(5, 1, 2, 5)), Outcome::LedgerFull);
    assert_eq!(one(&mut l, 0, transfer(1, 1, 2, 5)), Outcome::Exists);
    assert_eq!(
        one(&mut l, 0, transfer(4, 1, 9, 5)),
        Outcome::CreditAccountNotFound
    );
    // ledger_full is not remembered: the same id can still be answered later by a bigger ledger.
    assert_eq!(l.failure(5), None);
}

#[test]
fn balances_never_wrap() {
    let mut l = small();
    l.create_account(0, &account(1, AccountFlags::default(), 0));
    l.create_account(0, &account(2, AccountFlags::default(), 0));
    l.create_account(0, &account(3, AccountFlags::default(), 0));
    assert_eq!(one(&mut l, 0, transfer(1, 1, 2, u128::MAX)), Outcome::Ok);
    assert_eq!(
        one(&mut l, 0, transfer(2, 1, 3, 1)),
        Outcome::OverflowsDebits
    );
    assert_eq!(
        one(&mut l, 0, transfer(3, 3, 2, 1)),
        Outcome::OverflowsCredits
    );
    let mut pending = transfer(4, 3, 1, 1);
    pending.flags = TransferFlags::PENDING;
    pending.timeout_ns = u64::MAX;
    assert_eq!(one(&mut l, 5, pending), Outcome::OverflowsTimeout);
}

#[test]
fn hierarchy_rolls_up_and_is_bounded() {
    let mut l = Ledger::new(Config::default());
    // A chain of HIERARCHY_DEPTH_MAX accounts: 1 <- 2 <- ... <- 8; a ninth level is refused.
    for id in 1..=HIERARCHY_DEPTH_MAX as u128 {
        let parent = if id == 1 { 0 } else { id - 1 };
        assert_eq!(
            l.create_account(0, &account(id, AccountFlags::default(), parent)),
            Outcome::Ok
        );
    }
    let deep = account(100, AccountFlags::default(), HIERARCHY_DEPTH_MAX as u128);
    assert_eq!(l.create_account(0, &deep), Outcome::HierarchyTooDeep);
    assert_eq!(
        l.create_account(0, &account(50, AccountFlags::default(), 0)),
        Outcome::Ok
    );
    assert_eq!(
        l.create_account(0, &account(51, AccountFlags::default(), 2)),
        Outcome::Ok
    );
    assert_eq!(one(&mut l, 0, transfer(1, 8, 50, 30)), Outcome::Ok);
    assert_eq!(one(&mut l, 0, transfer(2, 50, 51, 5)), Outcome::Ok);
    // Node 2's roll-up holds 3..=8 (30 debited) and 51 (5 credited).
    let node = l.account(2).unwrap();
    assert_eq!(node.rollup.debits_posted, 30);
    assert_eq!(node.rollup.credits_posted, 5);
    assert_eq!(node.balances.debits_posted, 0);
    let sheet = l.balance_sheet(2).unwrap();
    let ids: Vec<u128> = sheet.iter().map(|r| r.account_id).collect();
    assert_eq!(ids, vec![2, 3, 4, 5, 6, 7, 8, 51]);
    assert_eq!(sheet[0].depth, 0);
    assert_eq!(sheet[7].depth, 1);
    assert_eq!(l.balance_sheet(99), Err(QueryError::AccountNotFound));
}

#[test]
fn history_answers_balances_at_a_sequence_or_time_and_statements() {
    let mut l = small();
    l.create_account(0, &account(1, AccountFlags::HISTORY, 0)); // seq 1
    l.create_account(0, &account(2, AccountFlags::default(), 0)); // seq 2
    assert_eq!(one(&mut l, 100, transfer(1, 1, 2, 10)), Outcome::Ok); // seq 3
    let mut pending = transfer(2, 1, 2, 7);
    pending.flags = TransferFlags::PENDING;
    pending.timeout_ns = 50;
    assert_eq!(one(&mut l, 200, pending), Outcome::Ok); // seq 4, expires at 250
    l.handle_tick(300); // expires before sequence 5
    assert_eq!(one(&mut l, 300, transfer(3, 2, 1, 4)), Outcome::Ok); // seq 5
    let at = |s| l.balance_at_seq(1, s).unwrap();
    assert_eq!(at(2).debits_posted, 0);
    assert_eq!(at(3).debits_posted, 10);
    assert_eq!(at(4).debits_pending, 7);
    assert_eq!(at(5).debits_pending, 0);
    assert_eq!(at(5).credits_posted, 4);
    assert_eq!(l.balance_at_ts(1, 250).unwrap().debits_pending, 7);
    assert_eq!(l.balance_at_ts(1, 300).unwrap().debits_pending, 0);
    assert_eq!(l.balance_at_seq(2, 5), Err(QueryError::NoHistory));
    let statement = l.statement(1, 4, 5).unwrap();
    assert_eq!(statement.opening.debits_posted, 10);
    assert_eq!(statement.lines.len(), 2);
    assert!(statement.lines[0].debit && !statement.lines[1].debit);
    assert_eq!(statement.closing, l.account(1).unwrap().balances);
    assert_eq!(l.expired_total(), 1);
}

#[test]
fn a_closed_account_still_voids_its_pending_transfers() {
    let mut l = small();
    l.create_account(0, &account(1, AccountFlags::default(), 0));
    l.create_account(0, &account(2, AccountFlags::default(), 0));
    let mut pending = transfer(1, 1, 2, 9);
    pending.flags = TransferFlags::PENDING;
    assert_eq!(one(&mut l, 0, pending), Outcome::Ok);
    assert_eq!(l.close_account(0, 2), Outcome::Ok);
    let mut post = Transfer {
        id: 2,
        pending_id: 1,
        flags: TransferFlags::POST_PENDING,
        ..Transfer::default()
    };
    assert_eq!(one(&mut l, 0, post), Outcome::AccountClosed);
    post.id = 3;
    post.flags = TransferFlags::VOID_PENDING;
    assert_eq!(one(&mut l, 0, post), Outcome::Ok);
    assert_eq!(l.account(1).unwrap().balances.debits_pending, 0);
}

#[test]
fn outcome_numbering_and_names_are_stable() {
    // The numbering is the order of `Outcome::ALL`, and the names are unique snake_case; these
    // pins change only with a documented format change (docs/ledger-format.md).
    for (i, o) in Outcome::ALL.iter().enumerate() {
        assert_eq!(*o as usize, i, "{o:?}");
        assert!(o.name().chars().all(|c| c.is_ascii_lowercase() || c == '_'));
    }
    let names: std::collections::BTreeSet<_> = Outcome::ALL.iter().map(|o| o.name()).collect();
    assert_eq!(names.len(), Outcome::ALL.len());
    assert_eq!(Outcome::ExceedsCredits as u8, 48);
    assert_eq!(Outcome::LinkedEventFailed.name(), "linked_event_failed");
}
