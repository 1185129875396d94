//! Ledger read models: account balances, account history, journal entries, and balance as of a
//! past instant. A dumb fold over `LedgerEvent`s: the events carry the postings.
//!
//! Money is stored as canonical decimal text (the same on PostgreSQL and SQLite) and added up in
//! Rust with `Money`'s checked arithmetic, never in floating point.

use agora_commands::store::StoredEvent;
use agora_domain::ledger::{AccountId, JournalEntry, LedgerEvent, Posting};
use agora_domain::money::{Currency, Money};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use sqlx::{AnyPool, Row};

use crate::engine::{Projection, ProjectionError, ReadTx, TableSpec, LIVE_PREFIX};

pub const NAME: &str = "ledger";
const VERSION: i64 = 1;
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
    PRIMARY KEY (account, currency, seq))",
    "CREATE INDEX IF NOT EXISTS {t}_as_of ON {t} (account, currency, occurred_at_us)",
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
        if event.aggregate_type != JournalEntry::TYPE {
            return Ok(());
        }
        let ledger_event: LedgerEvent = serde_json::from_value(event.payload.clone())
            .map_err(|e| ProjectionError::decode(event, e))?;
        let entry_id = event.aggregate_id.as_str();
        let pos = event.position.global_position;
        match ledger_event {
            LedgerEvent::EntryRecorded {
                currency,
                postings,
                memo,
                occurred_at,
            } => {
                check_balanced(&postings)?;
                self.insert_entry(
                    tx,
                    entry_id,
                    "posted",
                    currency,
                    &memo,
                    &postings,
                    occurred_at,
                    pos,
                )
                .await?;
                self.settle(
                    tx,
                    entry_id,
                    currency,
                    &postings,
                    occurred_at,
                    pos,
                    Settle::Post,
                )
                .await
            }
            LedgerEvent::HoldPlaced {
                currency,
                postings,
                memo,
                occurred_at,
            } => {
                check_balanced(&postings)?;
                self.insert_entry(
                    tx,
                    entry_id,
                    "pending",
                    currency,
                    &memo,
                    &postings,
                    occurred_at,
                    pos,
                )
                .await?;
                self.settle(
                    tx,
                    entry_id,
                    currency,
                    &postings,
                    occurred_at,
                    pos,
                    Settle::Hold,
                )
                .await
            }
            LedgerEvent::HoldPosted {
                currency,
                postings,
                occurred_at,
            } => {
                self.mark_entry(tx, entry_id, "posted", occurred_at).await?;
                self.settle(
                    tx,
                    entry_id,
                    currency,
                    &postings,
                    occurred_at,
                    pos,
                    Settle::PostHeld,
                )
                .await
            }
            LedgerEvent::HoldVoided {
                currency,
                postings,
                occurred_at,
                ..
            } => {
                self.mark_entry(tx, entry_id, "voided", occurred_at).await?;
                self.settle(
                    tx,
                    entry_id,
                    currency,
                    &postings,
                    occurred_at,
                    pos,
                    Settle::Void,
                )
                .await
            }
        }
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

impl LedgerProjection {
    #[allow(clippy::too_many_arguments)]
    async fn insert_entry(
        &self,
        tx: &mut ReadTx,
        entry_id: &str,
        status: &str,
        currency: Currency,
        memo: &str,
        postings: &[Posting],
        at: DateTime<Utc>,
        pos: i64,
    ) -> Result<(), ProjectionError> {
        let postings_json = serde_json::to_string(postings)
            .map_err(|e| ProjectionError::Invariant(format!("postings do not serialise: {e}")))?;
        sqlx::query(&format!(
            "INSERT INTO {} (entry_id, status, currency, memo, postings, opened_at_us, global_position) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            self.t.entries
        ))
        .bind(entry_id)
        .bind(status)
        .bind(currency.as_str())
        .bind(memo)
        .bind(postings_json)
        .bind(at.timestamp_micros())
        .bind(pos)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    async fn mark_entry(
        &self,
        tx: &mut ReadTx,
        entry_id: &str,
        status: &str,
        at: DateTime<Utc>,
    ) -> Result<(), ProjectionError> {
        let n = sqlx::query(&format!(
            "UPDATE {} SET status = $1, settled_at_us = $2 WHERE entry_id = $3 AND status = 'pending'",
            self.t.entries
        ))
        .bind(status)
        .bind(at.timestamp_micros())
        .bind(entry_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Err(ProjectionError::Invariant(format!(
                "entry {entry_id} settled as {status} but was not pending"
            )));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn settle(
        &self,
        tx: &mut ReadTx,
        entry_id: &str,
        currency: Currency,
        postings: &[Posting],
        at: DateTime<Utc>,
        pos: i64,
        how: Settle,
    ) -> Result<(), ProjectionError> {
        for posting in postings {
            let account = posting.account.as_str();
            let mut row = self
                .load_balance(tx, account, currency.as_str())
                .await?
                .unwrap_or_else(|| AccountBalance {
                    account: account.to_string(),
                    currency: currency.as_str().to_string(),
                    posted: Money::ZERO,
                    pending_debits: Money::ZERO,
                    pending_credits: Money::ZERO,
                    postings: 0,
                });
            let amount = posting.amount;
            let (debit, credit) = if amount.is_positive() {
                (amount, Money::ZERO)
            } else {
                (Money::ZERO, amount.abs())
            };
            if matches!(how, Settle::Hold) {
                row.pending_debits = add(row.pending_debits, debit)?;
                row.pending_credits = add(row.pending_credits, credit)?;
            }
            if matches!(how, Settle::PostHeld | Settle::Void) {
                row.pending_debits = sub(row.pending_debits, debit)?;
                row.pending_credits = sub(row.pending_credits, credit)?;
                if row.pending_debits.is_negative() || row.pending_credits.is_negative() {
                    return Err(ProjectionError::Invariant(format!(
                        "pending amounts of {account} went negative settling {entry_id}"
                    )));
                }
            }
            if matches!(how, Settle::Post | Settle::PostHeld) {
                row.posted = add(row.posted, amount)?;
                row.postings += 1;
                self.insert_history(tx, &row, entry_id, amount, at, pos)
                    .await?;
            }
            self.save_balance(tx, &row).await?;
        }
        Ok(())
    }

    async fn load_balance(
        &self,
        tx: &mut ReadTx,
        account: &str,
        currency: &str,
    ) -> Result<Option<AccountBalance>, ProjectionError> {
        let row = sqlx::query(&format!(
            "SELECT account, currency, posted, pending_debits, pending_credits, postings \
               FROM {} WHERE account = $1 AND currency = $2",
            self.t.balances
        ))
        .bind(account)
        .bind(currency)
        .fetch_optional(&mut *tx)
        .await?;
        row.as_ref().map(balance_from_row).transpose()
    }

    async fn save_balance(
        &self,
        tx: &mut ReadTx,
        b: &AccountBalance,
    ) -> Result<(), ProjectionError> {
        sqlx::query(&format!(
            "INSERT INTO {} (account, currency, posted, pending_debits, pending_credits, postings) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (account, currency) DO UPDATE SET posted = excluded.posted, \
               pending_debits = excluded.pending_debits, pending_credits = excluded.pending_credits, \
               postings = excluded.postings",
            self.t.balances
        ))
        .bind(&b.account)
        .bind(&b.currency)
        .bind(b.posted.to_string())
        .bind(b.pending_debits.to_string())
        .bind(b.pending_credits.to_string())
        .bind(b.postings)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    async fn insert_history(
        &self,
        tx: &mut ReadTx,
        after: &AccountBalance,
        entry_id: &str,
        amount: Money,
        at: DateTime<Utc>,
        pos: i64,
    ) -> Result<(), ProjectionError> {
        sqlx::query(&format!(
            "INSERT INTO {} (account, currency, seq, entry_id, amount, balance_after, occurred_at_us, global_position) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            self.t.history
        ))
        .bind(&after.account)
        .bind(&after.currency)
        .bind(after.postings)
        .bind(entry_id)
        .bind(amount.to_string())
        .bind(after.posted.to_string())
        .bind(at.timestamp_micros())
        .bind(pos)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
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
        let rows = sqlx::query(&format!(
            "SELECT seq, entry_id, amount, balance_after, occurred_at_us, global_position FROM {} \
              WHERE account = $1 AND currency = $2 AND seq > $3 ORDER BY seq LIMIT $4",
            self.t.history
        ))
        .bind(account.as_str())
        .bind(currency.as_str())
        .bind(after_seq)
        .bind(limit.clamp(1, MAX_HISTORY_PAGE))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
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
            .collect()
    }

    /// The posted balance as of `at`: the sum of every posted movement that occurred at or
    /// before `at`. Summed exactly (entries may be recorded out of occurrence order, so the
    /// running balance of the latest row is not enough).
    pub async fn balance_as_of(
        &self,
        account: &AccountId,
        currency: Currency,
        at: DateTime<Utc>,
    ) -> Result<Money, ProjectionError> {
        let amounts: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT amount FROM {} WHERE account = $1 AND currency = $2 AND occurred_at_us <= $3",
            self.t.history
        ))
        .bind(account.as_str())
        .bind(currency.as_str())
        .bind(at.timestamp_micros())
        .fetch_all(&self.pool)
        .await?;
        let mut total = Money::ZERO;
        for amount in &amounts {
            total = add(total, parse_money(amount)?)?;
        }
        Ok(total)
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
