//! Ledger read models: account balances, account history, journal entries, and balance as of a
//! past instant. A dumb fold over `LedgerEvent`s: the events carry the postings.
//!
//! Money is stored as canonical decimal text (the same on PostgreSQL and SQLite) and added up in
//! Rust with `Money`'s checked arithmetic, never in floating point.

use agora_commands::journal::BalanceLookup;
use agora_commands::store::StoredEvent;
use agora_domain::ledger::{
    AccountBalances, AccountId, BalanceFact, JournalEntry, LedgerEvent, Posting,
};
use agora_domain::money::{Currency, Money};
use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use sqlx::{AnyPool, Row};

use crate::engine::{Projection, ProjectionError, ReadTx, TableSpec, LIVE_PREFIX};

pub const NAME: &str = "ledger";
/// 2: history rows carry `balance_as_of` (the running balance in occurrence order).
const VERSION: i64 = 2;
/// Most history rows one query returns.
pub const MAX_HISTORY_PAGE: i64 = 100;

const BALANCES_DDL: &[&str] = &["CREATE TABLE IF NOT EXISTS {t} (
    account TEXT NOT NULL,
    currency TEXT NOT NULL,
    posted TEXT NOT NULL,
    pending_debits TEXT NOT NULL,
    pending_credits TEXT NOT NULL,
    postings BIGINT NOT NULL,
    PRIMARY KEY (account, currency))"];

const HISTORY_DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {t} (
    account TEXT NOT NULL,
    currency TEXT NOT NULL,
    seq BIGINT NOT NULL,
    entry_id TEXT NOT NULL,
    amount TEXT NOT NULL,
    balance_after TEXT NOT NULL,
    occurred_at_us BIGINT NOT NULL,
    global_position BIGINT NOT NULL,
    balance_as_of TEXT NOT NULL,
    PRIMARY KEY (account, currency, seq))",
    "CREATE INDEX IF NOT EXISTS {t}_as_of ON {t} (account, currency, occurred_at_us, seq)",
];

const ENTRIES_DDL: &[&str] = &["CREATE TABLE IF NOT EXISTS {t} (
    entry_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    currency TEXT NOT NULL,
    memo TEXT NOT NULL,
    postings TEXT NOT NULL,
    opened_at_us BIGINT NOT NULL,
    settled_at_us BIGINT,
    global_position BIGINT NOT NULL)"];

/// Table names for one prefix.
#[derive(Clone, Debug)]
struct Tables {
    balances: String,
    history: String,
    entries: String,
}

impl Tables {
    fn new(prefix: &str) -> Self {
        Self {
            balances: format!("{prefix}ledger_balances"),
            history: format!("{prefix}ledger_history"),
            entries: format!("{prefix}ledger_entries"),
        }
    }
}

/// The ledger projection.
#[derive(Clone, Debug)]
pub struct LedgerProjection {
    t: Tables,
}

impl Default for LedgerProjection {
    fn default() -> Self {
        Self::new(LIVE_PREFIX)
    }
}

impl LedgerProjection {
    pub fn new(prefix: &str) -> Self {
        Self {
            t: Tables::new(prefix),
        }
    }
}

/// A balance row as folded so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountBalance {
    pub account: String,
    pub currency: String,
    /// Posted balance, debit-positive: the sum of every posted posting to the account.
    pub posted: Money,
    /// Held (pending) debits and credits, both non-negative.
    pub pending_debits: Money,
    pub pending_credits: Money,
    /// Number of posted postings.
    pub postings: i64,
}

#[async_trait]
impl Projection for LedgerProjection {
    fn name(&self) -> &str {
        NAME
    }

    fn version(&self) -> i64 {
        VERSION
    }

    fn tables(&self) -> Vec<TableSpec> {
        vec![
            TableSpec::new(self.t.balances.clone(), BALANCES_DDL),
            TableSpec::new(self.t.history.clone(), HISTORY_DDL),
            TableSpec::new(self.t.entries.clone(), ENTRIES_DDL),
        ]
    }

    async fn apply(&self, tx: &mut ReadTx, event: &StoredEvent) -> Result<(), ProjectionError> {
        self.apply_batch(tx, std::slice::from_ref(event)).await
    }

    /// Folds the batch in memory (each touched balance loaded once) and writes every changed
    /// balance once, history and new entries as multi-row inserts.
    async fn apply_batch(
        &self,
        tx: &mut ReadTx,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let mut decoded = Vec::with_capacity(events.len());
        for event in events {
            if event.aggregate_type != JournalEntry::TYPE {
                continue;
            }
            let ledger_event: LedgerEvent = serde_json::from_value(event.payload.clone())
                .map_err(|e| ProjectionError::decode(event, e))?;
            decoded.push((event, ledger_event));
        }
        let mut batch = Batch::default();
        self.preload_balances(tx, &mut batch, &decoded).await?;
        for (event, ledger_event) in decoded {
            self.fold(&mut batch, event, ledger_event)?;
        }
        self.flush(tx, batch).await
    }

    fn with_prefix(&self, prefix: &str) -> Box<dyn Projection> {
        Box::new(Self::new(prefix))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Settle {
    /// Posted directly.
    Post,
    /// Held: counts as pending.
    Hold,
    /// A hold posted: leaves pending, becomes posted.
    PostHeld,
    /// A hold voided: leaves pending.
    Void,
}

/// Most rows per multi-row statement: at most 9 columns, so 4,608 parameters, under
/// PostgreSQL's 65,535 and SQLite's 32,766.
const ROWS_PER_INSERT: usize = 512;

/// Splits `items` into runs whose lengths are powers of two (largest first, at most
/// [`ROWS_PER_INSERT`]). A multi-row statement's text depends on its row count; with power-of-two
/// counts only ten texts exist, so each connection prepares them once and reuses them, instead of
/// preparing a new statement with thousands of parameters for every batch.
fn pow2_chunks<T>(items: &[T]) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let take = ROWS_PER_INSERT.min(1 << rest.len().ilog2());
        let (head, tail) = rest.split_at(take);
        out.push(head);
        rest = tail;
    }
    out
}

struct HistoryRow {
    account: String,
    currency: String,
    seq: i64,
    entry_id: String,
    amount: Money,
    balance_after: Money,
    occurred_at_us: i64,
    global_position: i64,
    /// The posted balance after every movement that occurred before this one or at the same
    /// instant and was recorded earlier: ordered by (occurred_at_us, seq). Set by
    /// `LedgerProjection::order_by_occurrence` before the row is written.
    balance_as_of: Money,
}

struct EntryRow {
    entry_id: String,
    status: &'static str,
    currency: String,
    memo: String,
    postings: String,
    opened_at_us: i64,
    settled_at_us: Option<i64>,
    global_position: i64,
}

/// What one batch changes, before it is written.
#[derive(Default)]
struct Batch {
    balances: HashMap<(String, String), AccountBalance>,
    history: Vec<HistoryRow>,
    new_entries: Vec<EntryRow>,
    new_entry_index: HashMap<String, usize>,
    /// Entries opened in an earlier batch and settled in this one: (id, status, settled_at_us).
    settled: Vec<(String, &'static str, i64)>,
}

fn postings_of(event: &LedgerEvent) -> &[Posting] {
    match event {
        LedgerEvent::EntryRecorded { postings, .. }
        | LedgerEvent::HoldPlaced { postings, .. }
        | LedgerEvent::HoldPosted { postings, .. }
        | LedgerEvent::HoldVoided { postings, .. } => postings,
    }
}

fn check_balanced(postings: &[Posting]) -> Result<(), ProjectionError> {
    let sum = Money::checked_sum(postings.iter().map(|p| p.amount))
        .map_err(|e| ProjectionError::Invariant(format!("postings overflow: {e}")))?;
    if sum.is_zero() {
        Ok(())
    } else {
        Err(ProjectionError::Invariant(format!(
            "journal entry postings sum to {sum}, not zero"
        )))
    }
}

fn parse_money(text: &str) -> Result<Money, ProjectionError> {
    Money::parse(text).map_err(|e| ProjectionError::Corrupt(format!("{text:?}: {e}")))
}

fn add(a: Money, b: Money) -> Result<Money, ProjectionError> {
    a.checked_add(b)
        .map_err(|e| ProjectionError::Invariant(format!("balance overflow: {e}")))
}

fn sub(a: Money, b: Money) -> Result<Money, ProjectionError> {
    a.checked_sub(b)
        .map_err(|e| ProjectionError::Invariant(format!("balance overflow: {e}")))
}

/// `VALUES ($1, …), (…)` for `rows` rows of `cols` columns.
fn values_clause(rows: usize, cols: usize) -> String {
    let mut out = String::from("VALUES ");
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("${}", r * cols + c + 1));
        }
        out.push(')');
    }
    out
}

impl LedgerProjection {
    fn fold(
        &self,
        batch: &mut Batch,
        event: &StoredEvent,
        ledger_event: LedgerEvent,
    ) -> Result<(), ProjectionError> {
        let entry_id = event.aggregate_id.as_str();
        let pos = event.position.global_position;
        let (currency, postings, at, how) = match ledger_event {
            LedgerEvent::EntryRecorded {
                currency,
                postings,
                memo,
                occurred_at,
            } => {
                open_entry(
                    batch,
                    entry_id,
                    "posted",
                    currency,
                    memo,
                    &postings,
                    occurred_at,
                    pos,
                )?;
                (currency, postings, occurred_at, Settle::Post)
            }
            LedgerEvent::HoldPlaced {
                currency,
                postings,
                memo,
                occurred_at,
            } => {
                open_entry(
                    batch,
                    entry_id,
                    "pending",
                    currency,
                    memo,
                    &postings,
                    occurred_at,
                    pos,
                )?;
                (currency, postings, occurred_at, Settle::Hold)
            }
            LedgerEvent::HoldPosted {
                currency,
                postings,
                occurred_at,
            } => {
                settle_entry(batch, entry_id, "posted", occurred_at)?;
                (currency, postings, occurred_at, Settle::PostHeld)
            }
            LedgerEvent::HoldVoided {
                currency,
                postings,
                occurred_at,
                ..
            } => {
                settle_entry(batch, entry_id, "voided", occurred_at)?;
                (currency, postings, occurred_at, Settle::Void)
            }
        };
        for posting in &postings {
            let row = Self::balance_mut(batch, posting.account.as_str(), currency);
            let Some(amount) = apply_posting(row, posting.amount, how, entry_id)? else {
                continue;
            };
            let line = HistoryRow {
                account: row.account.clone(),
                currency: row.currency.clone(),
                seq: row.postings,
                entry_id: entry_id.to_string(),
                amount,
                balance_after: row.posted,
                occurred_at_us: at.timestamp_micros(),
                global_position: pos,
                balance_as_of: Money::ZERO,
            };
            batch.history.push(line);
        }
        Ok(())
    }

    /// The batch's copy of a balance. Every stored balance the batch touches was preloaded, so
    /// a missing one is a new account.
    fn balance_mut<'b>(
        batch: &'b mut Batch,
        account: &str,
        currency: Currency,
    ) -> &'b mut AccountBalance {
        let key = (account.to_string(), currency.as_str().to_string());
        batch
            .balances
            .entry(key)
            .or_insert_with_key(|(account, currency)| AccountBalance {
                account: account.clone(),
                currency: currency.clone(),
                posted: Money::ZERO,
                pending_debits: Money::ZERO,
                pending_credits: Money::ZERO,
                postings: 0,
            })
    }

    /// Loads every balance the batch touches with one query per chunk of accounts.
    async fn preload_balances(
        &self,
        tx: &mut ReadTx,
        batch: &mut Batch,
        decoded: &[(&StoredEvent, LedgerEvent)],
    ) -> Result<(), ProjectionError> {
        let mut accounts: Vec<&str> = decoded
            .iter()
            .flat_map(|(_, e)| postings_of(e).iter().map(|p| p.account.as_str()))
            .collect();
        accounts.sort_unstable();
        accounts.dedup();
        for chunk in pow2_chunks(&accounts) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT account, currency, posted, pending_debits, pending_credits, postings \
                   FROM {} WHERE account IN ({})",
                self.t.balances,
                placeholders.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for account in chunk {
                q = q.bind(*account);
            }
            for row in q.fetch_all(&mut *tx).await? {
                let b = balance_from_row(&row)?;
                batch
                    .balances
                    .insert((b.account.clone(), b.currency.clone()), b);
            }
        }
        Ok(())
    }

    /// Sets `balance_as_of` on the batch's new history rows and moves it on stored rows that
    /// occurred after them. Per touched account: one indexed row for the balance before the
    /// batch's earliest movement, and the stored rows that occurred after it, which is none
    /// unless an entry is back-dated (then exactly the rows it moves).
    async fn order_by_occurrence(
        &self,
        tx: &mut ReadTx,
        history: &mut [HistoryRow],
    ) -> Result<(), ProjectionError> {
        let mut groups: HashMap<(String, String), Vec<usize>> = HashMap::new();
        for (i, h) in history.iter().enumerate() {
            groups
                .entry((h.account.clone(), h.currency.clone()))
                .or_default()
                .push(i);
        }
        for ((account, currency), rows) in groups {
            let Some(earliest) = rows.iter().map(|&i| history[i].occurred_at_us).min() else {
                continue;
            };
            let base: Option<String> = sqlx::query_scalar(&format!(
                "SELECT balance_as_of FROM {} WHERE account = $1 AND currency = $2 \
                   AND occurred_at_us <= $3 ORDER BY occurred_at_us DESC, seq DESC LIMIT 1",
                self.t.history
            ))
            .bind(&account)
            .bind(&currency)
            .bind(earliest)
            .fetch_optional(&mut *tx)
            .await?;
            let later = sqlx::query(&format!(
                "SELECT seq, occurred_at_us, amount FROM {} WHERE account = $1 AND currency = $2 \
                   AND occurred_at_us > $3",
                self.t.history
            ))
            .bind(&account)
            .bind(&currency)
            .bind(earliest)
            .fetch_all(&mut *tx)
            .await?;
            // (occurred_at_us, seq, amount, Ok(new row index) | Err(stored seq)).
            let mut line: Vec<(i64, i64, Money, Result<usize, i64>)> = Vec::new();
            for row in &later {
                let seq: i64 = row.try_get("seq")?;
                let amount = parse_money(&row.try_get::<String, _>("amount")?)?;
                line.push((row.try_get("occurred_at_us")?, seq, amount, Err(seq)));
            }
            for &i in &rows {
                let h = &history[i];
                line.push((h.occurred_at_us, h.seq, h.amount, Ok(i)));
            }
            line.sort_by_key(|&(at, seq, _, _)| (at, seq));
            let mut running = match base {
                Some(text) => parse_money(&text)?,
                None => Money::ZERO,
            };
            for (_, _, amount, which) in line {
                running = add(running, amount)?;
                match which {
                    Ok(i) => history[i].balance_as_of = running,
                    Err(seq) => {
                        sqlx::query(&format!(
                            "UPDATE {} SET balance_as_of = $1 WHERE account = $2 \
                               AND currency = $3 AND seq = $4",
                            self.t.history
                        ))
                        .bind(running.to_string())
                        .bind(&account)
                        .bind(&currency)
                        .bind(seq)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn flush(&self, tx: &mut ReadTx, mut batch: Batch) -> Result<(), ProjectionError> {
        self.order_by_occurrence(tx, &mut batch.history).await?;
        let mut balances: Vec<AccountBalance> = batch.balances.into_values().collect();
        balances.sort_by(|a, b| (&a.account, &a.currency).cmp(&(&b.account, &b.currency)));
        for chunk in pow2_chunks(&balances) {
            let sql = format!(
                "INSERT INTO {} (account, currency, posted, pending_debits, pending_credits, postings) {} \
                 ON CONFLICT (account, currency) DO UPDATE SET posted = excluded.posted, \
                   pending_debits = excluded.pending_debits, pending_credits = excluded.pending_credits, \
                   postings = excluded.postings",
                self.t.balances,
                values_clause(chunk.len(), 6)
            );
            let mut q = sqlx::query(&sql);
            for b in chunk {
                q = q
                    .bind(b.account.clone())
                    .bind(b.currency.clone())
                    .bind(b.posted.to_string())
                    .bind(b.pending_debits.to_string())
                    .bind(b.pending_credits.to_string())
                    .bind(b.postings);
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in pow2_chunks(&batch.history) {
            let sql = format!(
                "INSERT INTO {} (account, currency, seq, entry_id, amount, balance_after, occurred_at_us, global_position, balance_as_of) {}",
                self.t.history,
                values_clause(chunk.len(), 9)
            );
            let mut q = sqlx::query(&sql);
            for h in chunk {
                q = q
                    .bind(h.account.clone())
                    .bind(h.currency.clone())
                    .bind(h.seq)
                    .bind(h.entry_id.clone())
                    .bind(h.amount.to_string())
                    .bind(h.balance_after.to_string())
                    .bind(h.occurred_at_us)
                    .bind(h.global_position)
                    .bind(h.balance_as_of.to_string());
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in pow2_chunks(&batch.new_entries) {
            let sql = format!(
                "INSERT INTO {} (entry_id, status, currency, memo, postings, opened_at_us, settled_at_us, global_position) {}",
                self.t.entries,
                values_clause(chunk.len(), 8)
            );
            let mut q = sqlx::query(&sql);
            for e in chunk {
                q = q
                    .bind(e.entry_id.clone())
                    .bind(e.status)
                    .bind(e.currency.clone())
                    .bind(e.memo.clone())
                    .bind(e.postings.clone())
                    .bind(e.opened_at_us)
                    .bind(e.settled_at_us)
                    .bind(e.global_position);
            }
            q.execute(&mut *tx).await?;
        }
        for (entry_id, status, at_us) in &batch.settled {
            let n = sqlx::query(&format!(
                "UPDATE {} SET status = $1, settled_at_us = $2 WHERE entry_id = $3 AND status = 'pending'",
                self.t.entries
            ))
            .bind(*status)
            .bind(*at_us)
            .bind(entry_id.clone())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n != 1 {
                return Err(ProjectionError::Invariant(format!(
                    "entry {entry_id} settled as {status} but was not pending"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_posting_past_the_bound_is_a_typed_error_and_changes_nothing() {
        let max = Money::parse("1000000000000000").unwrap();
        let mut row = AccountBalance {
            account: "platform:funding".into(),
            currency: "USD".into(),
            posted: max,
            pending_debits: Money::ZERO,
            pending_credits: Money::ZERO,
            postings: 1,
        };
        let one = Money::parse("0.01").unwrap();
        for how in [Settle::Post, Settle::Hold] {
            let mut r = row.clone();
            if how == Settle::Hold {
                r.pending_debits = max;
            }
            let error = apply_posting(&mut r, one, how, "e-2").unwrap_err();
            assert!(error.is_poison());
            match error {
                ProjectionError::BalanceOutOfBounds { entry_id, account } => {
                    assert_eq!(
                        (entry_id.as_str(), account.as_str()),
                        ("e-2", "platform:funding")
                    );
                }
                other => panic!("expected BalanceOutOfBounds, got {other:?}"),
            }
        }
        assert_eq!(
            apply_posting(&mut row, -one, Settle::Post, "e-3").unwrap(),
            Some(-one)
        );
        assert_eq!(row.posted, max.checked_sub(one).unwrap());
    }

    #[test]
    fn pow2_chunks_cover_everything_in_order() {
        let items: Vec<usize> = (0..1300).collect();
        let chunks = pow2_chunks(&items);
        let sizes: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [512, 512, 256, 16, 4]);
        assert_eq!(chunks.concat(), items);
        assert!(pow2_chunks::<u8>(&[]).is_empty());
        assert_eq!(pow2_chunks(&[1, 2, 3]).len(), 2);
    }
}

#[allow(clippy::too_many_arguments)]
fn open_entry(
    batch: &mut Batch,
    entry_id: &str,
    status: &'static str,
    currency: Currency,
    memo: String,
    postings: &[Posting],
    at: DateTime<Utc>,
    pos: i64,
) -> Result<(), ProjectionError> {
    check_balanced(postings)?;
    let postings_json = serde_json::to_string(postings)
        .map_err(|e| ProjectionError::Invariant(format!("postings do not serialise: {e}")))?;
    if batch.new_entry_index.contains_key(entry_id) {
        return Err(ProjectionError::Invariant(format!(
            "entry {entry_id} opened twice"
        )));
    }
    batch
        .new_entry_index
        .insert(entry_id.to_string(), batch.new_entries.len());
    batch.new_entries.push(EntryRow {
        entry_id: entry_id.to_string(),
        status,
        currency: currency.as_str().to_string(),
        memo,
        postings: postings_json,
        opened_at_us: at.timestamp_micros(),
        settled_at_us: None,
        global_position: pos,
    });
    Ok(())
}

fn settle_entry(
    batch: &mut Batch,
    entry_id: &str,
    status: &'static str,
    at: DateTime<Utc>,
) -> Result<(), ProjectionError> {
    match batch.new_entry_index.get(entry_id) {
        Some(&i) => {
            let row = &mut batch.new_entries[i];
            if row.status != "pending" {
                return Err(ProjectionError::Invariant(format!(
                    "entry {entry_id} settled as {status} but was not pending"
                )));
            }
            row.status = status;
            row.settled_at_us = Some(at.timestamp_micros());
        }
        None => batch
            .settled
            .push((entry_id.to_string(), status, at.timestamp_micros())),
    }
    Ok(())
}

/// Checked addition of a posting to a balance: past ±10^15 it is the typed
/// [`ProjectionError::BalanceOutOfBounds`], never a panic or a wrong sum.
fn bounded_add(
    a: Money,
    b: Money,
    account: &str,
    entry_id: &str,
) -> Result<Money, ProjectionError> {
    a.checked_add(b)
        .map_err(|_| ProjectionError::BalanceOutOfBounds {
            entry_id: entry_id.to_string(),
            account: account.to_string(),
        })
}

/// Applies one posting to a balance; returns the posted amount when it adds a history line.
fn apply_posting(
    row: &mut AccountBalance,
    amount: Money,
    how: Settle,
    entry_id: &str,
) -> Result<Option<Money>, ProjectionError> {
    let (debit, credit) = if amount.is_positive() {
        (amount, Money::ZERO)
    } else {
        (Money::ZERO, amount.abs())
    };
    match how {
        Settle::Hold => {
            let debits = bounded_add(row.pending_debits, debit, &row.account, entry_id)?;
            let credits = bounded_add(row.pending_credits, credit, &row.account, entry_id)?;
            row.pending_debits = debits;
            row.pending_credits = credits;
            return Ok(None);
        }
        Settle::PostHeld | Settle::Void => {
            row.pending_debits = sub(row.pending_debits, debit)?;
            row.pending_credits = sub(row.pending_credits, credit)?;
            if row.pending_debits.is_negative() || row.pending_credits.is_negative() {
                return Err(ProjectionError::Invariant(format!(
                    "pending amounts of {} went negative settling {entry_id}",
                    row.account
                )));
            }
            if how == Settle::Void {
                return Ok(None);
            }
        }
        Settle::Post => {}
    }
    row.posted = bounded_add(row.posted, amount, &row.account, entry_id)?;
    row.postings += 1;
    Ok(Some(amount))
}

fn balance_from_row(row: &sqlx::any::AnyRow) -> Result<AccountBalance, ProjectionError> {
    Ok(AccountBalance {
        account: row.try_get("account")?,
        currency: row.try_get("currency")?,
        posted: parse_money(&row.try_get::<String, _>("posted")?)?,
        pending_debits: parse_money(&row.try_get::<String, _>("pending_debits")?)?,
        pending_credits: parse_money(&row.try_get::<String, _>("pending_credits")?)?,
        postings: row.try_get("postings")?,
    })
}

/// One posted movement on an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryLine {
    pub seq: i64,
    pub entry_id: String,
    pub amount: Money,
    pub balance_after: Money,
    pub occurred_at: DateTime<Utc>,
    pub global_position: i64,
}

/// Which page of an ordered listing, by key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyPage<T> {
    /// The first rows after this key (`None`: from the start).
    After(Option<T>),
    /// The last rows before this key (`None`: before the end).
    Before(Option<T>),
}

impl<T> KeyPage<T> {
    fn parts(self) -> (&'static str, Option<T>, &'static str) {
        match self {
            Self::After(k) => (">", k, "ASC"),
            Self::Before(k) => ("<", k, "DESC"),
        }
    }

    fn is_backward(&self) -> bool {
        matches!(self, Self::Before(_))
    }
}

/// Queries over the live ledger tables.
#[derive(Clone, Debug)]
pub struct LedgerQueries {
    pool: AnyPool,
    t: Tables,
}

impl LedgerQueries {
    pub fn new(pool: AnyPool) -> Self {
        Self {
            pool,
            t: Tables::new(LIVE_PREFIX),
        }
    }

    pub async fn balance(
        &self,
        account: &AccountId,
        currency: Currency,
    ) -> Result<Option<AccountBalance>, ProjectionError> {
        let row = sqlx::query(&format!(
            "SELECT account, currency, posted, pending_debits, pending_credits, postings \
               FROM {} WHERE account = $1 AND currency = $2",
            self.t.balances
        ))
        .bind(account.as_str())
        .bind(currency.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(balance_from_row).transpose()
    }

    /// Every balance row (for reconciliation and tests), ordered by account.
    pub async fn all_balances(&self) -> Result<Vec<AccountBalance>, ProjectionError> {
        let rows = sqlx::query(&format!(
            "SELECT account, currency, posted, pending_debits, pending_credits, postings \
               FROM {} ORDER BY account, currency",
            self.t.balances
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(balance_from_row).collect()
    }

    /// Posted movements with `seq > after_seq`, oldest first, at most `limit` (capped).
    pub async fn history(
        &self,
        account: &AccountId,
        currency: Currency,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<HistoryLine>, ProjectionError> {
        self.history_page(account, currency, KeyPage::After(Some(after_seq)), limit)
            .await
    }

    /// One page of posted movements, oldest first: the first `limit` after a `seq`, or the last
    /// `limit` before one (or before the end).
    pub async fn history_page(
        &self,
        account: &AccountId,
        currency: Currency,
        page: KeyPage<i64>,
        limit: i64,
    ) -> Result<Vec<HistoryLine>, ProjectionError> {
        let backward = page.is_backward();
        let (op, bound, order) = page.parts();
        let seq_bound = bound.unwrap_or(if op == ">" { 0 } else { i64::MAX });
        let rows = sqlx::query(&format!(
            "SELECT seq, entry_id, amount, balance_after, occurred_at_us, global_position FROM {} \
              WHERE account = $1 AND currency = $2 AND seq {op} $3 ORDER BY seq {order} LIMIT $4",
            self.t.history
        ))
        .bind(account.as_str())
        .bind(currency.as_str())
        .bind(seq_bound)
        .bind(limit.clamp(1, MAX_HISTORY_PAGE + 1))
        .fetch_all(&self.pool)
        .await?;
        let mut lines = rows
            .iter()
            .map(|row| {
                let us: i64 = row.try_get("occurred_at_us")?;
                Ok(HistoryLine {
                    seq: row.try_get("seq")?,
                    entry_id: row.try_get("entry_id")?,
                    amount: parse_money(&row.try_get::<String, _>("amount")?)?,
                    balance_after: parse_money(&row.try_get::<String, _>("balance_after")?)?,
                    occurred_at: agora_commands::store::micros_to_time(us)
                        .ok_or_else(|| ProjectionError::Corrupt(format!("time {us}")))?,
                    global_position: row.try_get("global_position")?,
                })
            })
            .collect::<Result<Vec<_>, ProjectionError>>()?;
        if backward {
            lines.reverse();
        }
        Ok(lines)
    }

    /// One page of balances ordered by (account, currency).
    pub async fn balances_page(
        &self,
        page: KeyPage<(String, String)>,
        limit: i64,
    ) -> Result<Vec<AccountBalance>, ProjectionError> {
        let backward = page.is_backward();
        let (op, bound, order) = page.parts();
        let condition = if bound.is_some() {
            format!("WHERE (account, currency) {op} ($1, $2)")
        } else {
            "WHERE $1 = $1 AND $2 = $2".to_string()
        };
        let (a, c) = bound.unwrap_or_default();
        let rows = sqlx::query(&format!(
            "SELECT account, currency, posted, pending_debits, pending_credits, postings FROM {} \
             {condition} ORDER BY account {order}, currency {order} LIMIT $3",
            self.t.balances
        ))
        .bind(a)
        .bind(c)
        .bind(limit.clamp(1, MAX_HISTORY_PAGE + 1))
        .fetch_all(&self.pool)
        .await?;
        let mut out = rows
            .iter()
            .map(balance_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        if backward {
            out.reverse();
        }
        Ok(out)
    }

    /// The posted balance as of `at`: the sum of every posted movement that occurred at or
    /// before `at`, read as the running balance in occurrence order (`balance_as_of`) of the
    /// last such history row: one indexed row, whatever the account's history. Entries
    /// recorded out of occurrence order are placed by the projection when they arrive.
    pub async fn balance_as_of(
        &self,
        account: &AccountId,
        currency: Currency,
        at: DateTime<Utc>,
    ) -> Result<Money, ProjectionError> {
        let running: Option<String> = sqlx::query_scalar(&format!(
            "SELECT balance_as_of FROM {} WHERE account = $1 AND currency = $2 \
               AND occurred_at_us <= $3 ORDER BY occurred_at_us DESC, seq DESC LIMIT 1",
            self.t.history
        ))
        .bind(account.as_str())
        .bind(currency.as_str())
        .bind(at.timestamp_micros())
        .fetch_optional(&self.pool)
        .await?;
        match running {
            Some(text) => parse_money(&text),
            None => Ok(Money::ZERO),
        }
    }

    /// The balances of `accounts` in `currency` (accounts without postings are left out).
    pub async fn balances_of(
        &self,
        currency: Currency,
        accounts: &[AccountId],
    ) -> Result<AccountBalances, ProjectionError> {
        let mut out = AccountBalances::none();
        for chunk in accounts.chunks(ROWS_PER_INSERT) {
            let placeholders: Vec<String> = (2..chunk.len() + 2).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT account, currency, posted, pending_debits, pending_credits, postings \
                   FROM {} WHERE currency = $1 AND account IN ({})",
                self.t.balances,
                placeholders.join(", ")
            );
            let mut q = sqlx::query(&sql).bind(currency.as_str());
            for account in chunk {
                q = q.bind(account.as_str());
            }
            for row in q.fetch_all(&self.pool).await? {
                let b = balance_from_row(&row)?;
                let account = AccountId::parse(&b.account).map_err(|e| {
                    ProjectionError::Corrupt(format!("account {:?}: {e}", b.account))
                })?;
                out.insert(
                    account,
                    BalanceFact {
                        posted: b.posted,
                        pending_debits: b.pending_debits,
                        pending_credits: b.pending_credits,
                    },
                );
            }
        }
        Ok(out)
    }

    /// An entry's status ("pending", "posted", "voided"), if the projection has seen it.
    pub async fn entry_status(&self, entry_id: &str) -> Result<Option<String>, ProjectionError> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT status FROM {} WHERE entry_id = $1",
            self.t.entries
        ))
        .bind(entry_id)
        .fetch_optional(&self.pool)
        .await?)
    }
}

#[async_trait]
impl BalanceLookup for LedgerQueries {
    async fn balances(
        &self,
        currency: Currency,
        accounts: &[AccountId],
    ) -> Result<AccountBalances, String> {
        self.balances_of(currency, accounts)
            .await
            .map_err(|e| e.to_string())
    }
}
