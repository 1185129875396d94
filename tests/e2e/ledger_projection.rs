//! Ledger read models: balances, pending holds, history, balance as of a past instant.

use std::sync::Arc;

use agora_domain::ledger::LedgerCommand;
use agora_domain::money::{Currency, Money};
use agora_projections::ledger::{LedgerProjection, LedgerQueries};
use agora_projections::ProjectionRunner;
use agora_tests::{both_backends, TestStore};
use chrono::{DateTime, Duration, Utc};

use crate::common::{account, bus, hold, meta, money, transfer};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .unwrap()
        .to_utc()
}

async fn project(t: &TestStore) -> LedgerQueries {
    let runner = ProjectionRunner::new(t.store.clone(), Arc::new(LedgerProjection::default()));
    runner.prepare().await.unwrap();
    runner.catch_up().await.unwrap();
    LedgerQueries::new(t.store.read_models().clone())
}

async fn holds_and_history(t: TestStore) {
    let bus = bus(&t.store);
    let m = meta();
    let usd = Currency::usd();
    bus.execute(
        "fund",
        transfer("platform:equity", "platform:funding", "100.00", t0()),
        &m,
    )
    .await
    .unwrap();
    bus.execute(
        "h-1",
        hold(
            "platform:funding",
            "seller:s1:payable",
            "30.00",
            t0() + Duration::hours(1),
        ),
        &m,
    )
    .await
    .unwrap();
    bus.execute(
        "h-2",
        hold(
            "platform:funding",
            "seller:s2:payable",
            "20.00",
            t0() + Duration::hours(2),
        ),
        &m,
    )
    .await
    .unwrap();
    let q = project(&t).await;
    let funding = q
        .balance(&account("platform:funding"), usd)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(funding.posted, money("100.00"));
    assert_eq!(funding.pending_credits, money("50.00"));
    assert_eq!(funding.pending_debits, Money::ZERO);
    assert_eq!(
        q.entry_status("h-1").await.unwrap().as_deref(),
        Some("pending")
    );

    bus.execute(
        "h-1",
        LedgerCommand::PostHold {
            occurred_at: t0() + Duration::hours(3),
        },
        &m,
    )
    .await
    .unwrap();
    bus.execute(
        "h-2",
        LedgerCommand::VoidHold {
            reason: "dispute".into(),
            occurred_at: t0() + Duration::hours(4),
        },
        &m,
    )
    .await
    .unwrap();
    let q = project(&t).await;
    let funding = q
        .balance(&account("platform:funding"), usd)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(funding.posted, money("70.00"));
    assert_eq!(funding.pending_credits, Money::ZERO);
    let s1 = q
        .balance(&account("seller:s1:payable"), usd)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((s1.posted, s1.postings), (money("30.00"), 1));
    let s2 = q
        .balance(&account("seller:s2:payable"), usd)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (s2.posted, s2.pending_debits, s2.postings),
        (Money::ZERO, Money::ZERO, 0)
    );
    assert_eq!(
        q.entry_status("h-1").await.unwrap().as_deref(),
        Some("posted")
    );
    assert_eq!(
        q.entry_status("h-2").await.unwrap().as_deref(),
        Some("voided")
    );

    let history = q
        .history(&account("platform:funding"), usd, 0, 10)
        .await
        .unwrap();
    let lines: Vec<(String, Money, Money)> = history
        .iter()
        .map(|h| (h.entry_id.clone(), h.amount, h.balance_after))
        .collect();
    assert_eq!(
        lines,
        [
            ("fund".to_string(), money("100.00"), money("100.00")),
            ("h-1".to_string(), money("-30.00"), money("70.00"))
        ]
    );
    assert_eq!(
        q.history(&account("platform:funding"), usd, 1, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // Point in time: a hold counts once it is posted, at its posting time.
    let funding_id = account("platform:funding");
    assert_eq!(
        q.balance_as_of(&funding_id, usd, t0() - Duration::seconds(1))
            .await
            .unwrap(),
        Money::ZERO
    );
    assert_eq!(
        q.balance_as_of(&funding_id, usd, t0()).await.unwrap(),
        money("100.00")
    );
    assert_eq!(
        q.balance_as_of(&funding_id, usd, t0() + Duration::hours(2))
            .await
            .unwrap(),
        money("100.00")
    );
    assert_eq!(
        q.balance_as_of(&funding_id, usd, t0() + Duration::hours(3))
            .await
            .unwrap(),
        money("70.00")
    );
}
both_backends!(
    holds_post_and_void_with_history_and_point_in_time,
    holds_and_history
);

async fn out_of_order_as_of(t: TestStore) {
    // Recorded in the log in the opposite order of occurrence: as-of must sum by occurrence.
    let bus = bus(&t.store);
    let m = meta();
    bus.execute(
        "late",
        transfer("a:x", "b:y", "5.00", t0() + Duration::days(2)),
        &m,
    )
    .await
    .unwrap();
    bus.execute("early", transfer("a:x", "b:y", "7.25", t0()), &m)
        .await
        .unwrap();
    let q = project(&t).await;
    let y = account("b:y");
    assert_eq!(
        q.balance_as_of(&y, Currency::usd(), t0() + Duration::days(1))
            .await
            .unwrap(),
        money("7.25")
    );
    assert_eq!(
        q.balance_as_of(&y, Currency::usd(), t0() + Duration::days(3))
            .await
            .unwrap(),
        money("12.25")
    );
    assert_eq!(
        q.balance(&y, Currency::usd())
            .await
            .unwrap()
            .unwrap()
            .posted,
        money("12.25")
    );
}
both_backends!(balance_as_of_sums_by_occurrence_time, out_of_order_as_of);
