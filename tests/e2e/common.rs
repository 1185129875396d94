//! Builders shared by the tests.

use agora_commands::{CommandBus, CommandMetadata, CommitSignal, Store};
use agora_domain::ledger::{AccountBalances, AccountId, JournalEntry, LedgerCommand, Posting};
use agora_domain::money::{Currency, Money};
use chrono::{DateTime, Utc};

pub fn bus(store: &Store) -> CommandBus<JournalEntry> {
    CommandBus::new(store, CommitSignal::new(), ())
}

pub fn meta() -> CommandMetadata {
    CommandMetadata::new("tester", "tenant-a", Utc::now()).expect("metadata")
}

pub fn account(s: &str) -> AccountId {
    AccountId::parse(s).expect("account id")
}

pub fn money(s: &str) -> Money {
    Money::parse(s).expect("money")
}

/// A two-posting transfer of `amount` from `from` (credited) to `to` (debited).
pub fn transfer(from: &str, to: &str, amount: &str, at: DateTime<Utc>) -> LedgerCommand {
    let amount = money(amount);
    LedgerCommand::Record {
        currency: Currency::usd(),
        postings: vec![
            Posting::new(account(to), amount),
            Posting::new(account(from), amount.checked_neg().expect("neg")),
        ],
        memo: "test transfer".into(),
        occurred_at: at,
        balances: AccountBalances::none(),
    }
}

pub fn hold(from: &str, to: &str, amount: &str, at: DateTime<Utc>) -> LedgerCommand {
    match transfer(from, to, amount, at) {
        LedgerCommand::Record {
            currency,
            postings,
            memo,
            occurred_at,
            balances,
        } => LedgerCommand::Hold {
            currency,
            postings,
            memo,
            occurred_at,
            balances,
        },
        _ => unreachable!("transfer builds a Record"),
    }
}

/// A journal-entry event stored as is (no aggregate decided it): `marker` tells commits apart.
pub fn raw_event(id: &str, seq: usize, marker: &str) -> cqrs_es::persist::SerializedEvent {
    cqrs_es::persist::SerializedEvent::new(
        id.into(),
        seq,
        "journal_entry".into(),
        "Probe".into(),
        "1.0".into(),
        serde_json::json!({"marker": marker}),
        serde_json::json!({}),
    )
}
