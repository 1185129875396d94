//! The GraphQL schema: queries for identity, the event history and the ledger; mutations for API
//! keys and journal entries. Every resolver checks role and tenant first.

use agora_commands::{CommandMetadata, EventFilter, LogPosition, Page, StoredEvent};
use agora_domain::access::Role;
use agora_domain::ledger::{
    check_client_entry_id, AccountBalances, AccountId, LedgerCommand, Posting,
};
use agora_domain::money::Currency;
use agora_projections::ledger::{AccountBalance, KeyPage};
use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::{NewKey, Principal};
use super::error::ApiError;
use super::money::MoneyScalar;
use super::RequestContext;
use crate::app::AppState;

/// Largest page of any connection.
pub const MAX_PAGE: i32 = 100;
pub use super::auth::PLATFORM_TENANT;

type Res<T> = Result<T, async_graphql::Error>;

pub(crate) fn request<'a>(ctx: &'a Context<'_>) -> &'a RequestContext {
    ctx.data_unchecked::<RequestContext>()
}

pub(crate) fn state<'a>(ctx: &'a Context<'_>) -> &'a AppState {
    ctx.data_unchecked::<AppState>()
}

pub(crate) fn caller<'a>(ctx: &'a Context<'_>, roles: &[Role]) -> Result<&'a Principal, ApiError> {
    let principal = request(ctx).principal.as_ref().map_err(Clone::clone)?;
    principal.require(roles)
}

/// Platform staff only: a key of the platform tenant in one of `roles`. The ledger (accounts are
/// not tenant-scoped yet), projection status and parked events span every tenant, so tenant keys
/// (a tenant's admin included) get no access at all rather than a leaky one.
pub(crate) fn platform_caller<'a>(
    ctx: &'a Context<'_>,
    roles: &[Role],
) -> Result<&'a Principal, ApiError> {
    let p = caller(ctx, roles)?;
    if p.is_platform() {
        Ok(p)
    } else {
        Err(ApiError::Forbidden(
            "this is visible to platform staff only".into(),
        ))
    }
}

/// A Relay page request: `first` (+ `after`) or `last` (+ `before`).
struct PageArgs {
    limit: i64,
    cursor: Option<String>,
    backward: bool,
}

fn page_args(
    first: Option<i32>,
    after: Option<String>,
    last: Option<i32>,
    before: Option<String>,
) -> Result<PageArgs, ApiError> {
    let bad = |m: &str| Err(ApiError::BadUserInput(m.to_string()));
    let (n, cursor, backward) = match (first, last) {
        (Some(_), Some(_)) => return bad("give `first` or `last`, not both"),
        (None, None) => return bad("`first` or `last` is required"),
        (Some(_), None) if before.is_some() => return bad("`before` goes with `last`"),
        (None, Some(_)) if after.is_some() => return bad("`after` goes with `first`"),
        (Some(n), None) => (n, after, false),
        (None, Some(n)) => (n, before, true),
    };
    if !(1..=MAX_PAGE).contains(&n) {
        return bad(&format!("`first`/`last` must be 1..={MAX_PAGE}"));
    }
    Ok(PageArgs {
        limit: i64::from(n),
        cursor,
        backward,
    })
}

/// Builds a connection from `limit + 1` fetched rows (oldest first): the extra row tells
/// whether another page exists in the paging direction.
fn connection<T, N: async_graphql::OutputType>(
    args: &PageArgs,
    mut rows: Vec<T>,
    cursor: impl Fn(&T) -> String,
    node: impl Fn(T) -> N,
) -> Connection<String, N> {
    let limit = args.limit as usize;
    let more = rows.len() > limit;
    if more && args.backward {
        rows.remove(0);
    } else if more {
        rows.truncate(limit);
    }
    let had_cursor = args.cursor.is_some();
    let (previous, next) = if args.backward {
        (more, had_cursor)
    } else {
        (had_cursor, more)
    };
    let mut conn = Connection::new(previous, next);
    conn.edges
        .extend(rows.into_iter().map(|r| Edge::new(cursor(&r), node(r))));
    conn
}

fn parse_position_cursor(cursor: Option<String>) -> Result<LogPosition, ApiError> {
    let Some(c) = cursor else {
        return Ok(LogPosition::START);
    };
    let bad = || ApiError::BadUserInput(format!("invalid cursor {c:?}"));
    let (tx, pos) = c.split_once(':').ok_or_else(bad)?;
    Ok(LogPosition {
        transaction_id: tx.parse().map_err(|_| bad())?,
        global_position: pos.parse().map_err(|_| bad())?,
    })
}

fn position_cursor(p: LogPosition) -> String {
    format!("{}:{}", p.transaction_id, p.global_position)
}

fn account(s: &str) -> Result<AccountId, ApiError> {
    AccountId::parse(s).map_err(|e| ApiError::BadUserInput(format!("account {s:?}: {e}")))
}

fn currency(s: &str) -> Result<Currency, ApiError> {
    Currency::parse(s).map_err(|e| ApiError::BadUserInput(format!("currency {s:?}: {e}")))
}

/// One event of the log with its metadata and global position.
pub struct EventNode(StoredEvent);

#[Object]
impl EventNode {
    async fn global_position(&self) -> i64 {
        self.0.position.global_position
    }
    async fn transaction_id(&self) -> i64 {
        self.0.position.transaction_id
    }
    async fn aggregate_type(&self) -> &str {
        &self.0.aggregate_type
    }
    async fn aggregate_id(&self) -> &str {
        &self.0.aggregate_id
    }
    async fn sequence(&self) -> i64 {
        self.0.sequence
    }
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }
    async fn event_version(&self) -> &str {
        &self.0.event_version
    }
    async fn payload(&self) -> Json<serde_json::Value> {
        Json(self.0.payload.clone())
    }
    async fn metadata(&self) -> Json<serde_json::Value> {
        Json(self.0.metadata.clone())
    }
    async fn recorded_at(&self) -> DateTime<Utc> {
        self.0.recorded_at
    }
    async fn event_id(&self) -> Option<&str> {
        self.0.meta("event_id")
    }
    async fn actor(&self) -> Option<&str> {
        self.0.meta("actor")
    }
    async fn tenant(&self) -> Option<&str> {
        self.0.meta("tenant")
    }
    async fn correlation_id(&self) -> Option<&str> {
        self.0.meta("correlation_id")
    }
    async fn causation_id(&self) -> Option<&str> {
        self.0.meta("causation_id")
    }
    async fn occurred_at(&self) -> Option<&str> {
        self.0.meta("occurred_at")
    }
}

/// Narrows the event history; all given fields must match.
#[derive(InputObject, Default)]
pub struct EventFilterInput {
    pub from_position: Option<i64>,
    pub to_position: Option<i64>,
    pub from_time: Option<DateTime<Utc>>,
    pub to_time: Option<DateTime<Utc>>,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub correlation_id: Option<String>,
    pub actor: Option<String>,
}

#[derive(SimpleObject)]
pub struct Me {
    pub key_id: String,
    pub principal: String,
    pub role: String,
    pub tenant: String,
}

#[derive(SimpleObject)]
pub struct AccountBalanceView {
    pub account: String,
    pub currency: String,
    pub posted: MoneyScalar,
    pub pending_debits: MoneyScalar,
    pub pending_credits: MoneyScalar,
    pub postings: i64,
}

#[derive(SimpleObject)]
pub struct HistoryLineView {
    pub seq: i64,
    pub entry_id: String,
    pub amount: MoneyScalar,
    pub balance_after: MoneyScalar,
    pub occurred_at: DateTime<Utc>,
    pub global_position: i64,
}

/// An API key as listed to an administrator (cursor: `id`).
#[derive(SimpleObject)]
pub struct ApiKeyView {
    pub id: String,
    pub principal: String,
    pub role: String,
    pub tenant: String,
    /// active, expired or revoked.
    pub status: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(SimpleObject)]
pub struct ProjectionStatusView {
    pub name: String,
    pub global_position: i64,
    pub events_applied: u64,
    pub lag_events: i64,
    pub lag_seconds: f64,
    pub last_error: Option<String>,
}

fn balance_view(b: AccountBalance) -> AccountBalanceView {
    AccountBalanceView {
        account: b.account,
        currency: b.currency,
        posted: MoneyScalar(b.posted),
        pending_debits: MoneyScalar(b.pending_debits),
        pending_credits: MoneyScalar(b.pending_credits),
        postings: b.postings,
    }
}

#[derive(Default)]
pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// The caller's key, principal, role and tenant.
    async fn me(&self, ctx: &Context<'_>) -> Res<Me> {
        let p = caller(ctx, &Role::ALL)?;
        Ok(Me {
            key_id: p.key_id.clone(),
            principal: p.name.clone(),
            role: p.role.as_str().into(),
            tenant: p.tenant.clone(),
        })
    }

    /// The ledger's ed25519 public key (hex) that signs the audit seal's checkpoints.
    async fn ledger_public_key(&self, ctx: &Context<'_>) -> Res<String> {
        caller(ctx, &Role::ALL)?;
        Ok(state(ctx).public_key_hex.clone())
    }

    /// The global event log in commit order (auditor, admin). Auditors outside the platform
    /// tenant see their tenant's events only. Cursors are opaque; page with `first`/`after`.
    #[allow(clippy::too_many_arguments)]
    async fn events(
        &self,
        ctx: &Context<'_>,
        filter: Option<EventFilterInput>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Res<Connection<String, EventNode>> {
        let p = caller(ctx, &[Role::Auditor, Role::Admin])?;
        let args = page_args(first, after, last, before)?;
        let filter = event_filter(p, filter.unwrap_or_default());
        let page = match (&args.cursor, args.backward) {
            (c, false) => Page::After(parse_position_cursor(c.clone())?),
            (None, true) => Page::Before(None),
            (c, true) => Page::Before(Some(parse_position_cursor(c.clone())?)),
        };
        let events = state(ctx)
            .store
            .query_events_page(&filter, page, args.limit + 1)
            .await
            .map_err(|e| ApiError::internal("event history", e))?;
        Ok(connection(
            &args,
            events,
            |e| position_cursor(e.position),
            EventNode,
        ))
    }

    /// An account's balance (finance, auditor, admin).
    async fn ledger_balance(
        &self,
        ctx: &Context<'_>,
        account: String,
        #[graphql(default = "USD")] currency: String,
    ) -> Res<Option<AccountBalanceView>> {
        platform_caller(ctx, &[Role::Finance, Role::Auditor, Role::Admin])?;
        let b = state(ctx)
            .ledger_queries
            .balance(&self::account(&account)?, self::currency(&currency)?)
            .await
            .map_err(|e| ApiError::internal("ledger balance", e))?;
        Ok(b.map(balance_view))
    }

    /// An account's posted movements, oldest first (finance, auditor, admin).
    #[allow(clippy::too_many_arguments)]
    async fn ledger_history(
        &self,
        ctx: &Context<'_>,
        account: String,
        #[graphql(default = "USD")] currency: String,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Res<Connection<String, HistoryLineView>> {
        platform_caller(ctx, &[Role::Finance, Role::Auditor, Role::Admin])?;
        let args = page_args(first, after, last, before)?;
        let seq = args
            .cursor
            .as_ref()
            .map(|c| {
                c.parse::<i64>()
                    .map_err(|_| ApiError::BadUserInput(format!("invalid cursor {c:?}")))
            })
            .transpose()?;
        let page = if args.backward {
            KeyPage::Before(seq)
        } else {
            KeyPage::After(seq)
        };
        let lines = state(ctx)
            .ledger_queries
            .history_page(
                &self::account(&account)?,
                self::currency(&currency)?,
                page,
                args.limit + 1,
            )
            .await
            .map_err(|e| ApiError::internal("ledger history", e))?;
        Ok(connection(
            &args,
            lines,
            |h| h.seq.to_string(),
            |h| HistoryLineView {
                seq: h.seq,
                entry_id: h.entry_id,
                amount: MoneyScalar(h.amount),
                balance_after: MoneyScalar(h.balance_after),
                occurred_at: h.occurred_at,
                global_position: h.global_position,
            },
        ))
    }

    /// Every account with a balance, ordered by account and currency (finance, auditor, admin).
    async fn ledger_accounts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Res<Connection<String, AccountBalanceView>> {
        platform_caller(ctx, &[Role::Finance, Role::Auditor, Role::Admin])?;
        let args = page_args(first, after, last, before)?;
        let key = args
            .cursor
            .as_ref()
            .map(|c| {
                c.rsplit_once('|')
                    .map(|(a, cur)| (a.to_string(), cur.to_string()))
                    .ok_or_else(|| ApiError::BadUserInput(format!("invalid cursor {c:?}")))
            })
            .transpose()?;
        let page = if args.backward {
            KeyPage::Before(key)
        } else {
            KeyPage::After(key)
        };
        let rows = state(ctx)
            .ledger_queries
            .balances_page(page, args.limit + 1)
            .await
            .map_err(|e| ApiError::internal("ledger accounts", e))?;
        Ok(connection(
            &args,
            rows,
            |b| format!("{}|{}", b.account, b.currency),
            balance_view,
        ))
    }

    /// An account's posted balance as of an instant (finance, auditor, admin).
    async fn ledger_balance_as_of(
        &self,
        ctx: &Context<'_>,
        account: String,
        #[graphql(default = "USD")] currency: String,
        at: DateTime<Utc>,
    ) -> Res<MoneyScalar> {
        platform_caller(ctx, &[Role::Finance, Role::Auditor, Role::Admin])?;
        let m = state(ctx)
            .ledger_queries
            .balance_as_of(&self::account(&account)?, self::currency(&currency)?, at)
            .await
            .map_err(|e| ApiError::internal("ledger as-of", e))?;
        Ok(MoneyScalar(m))
    }

    /// API keys ordered by id (admin): a platform admin sees every tenant's (or `tenant`'s), a
    /// tenant's admin its own tenant's. Never a token or its hash.
    async fn api_keys(
        &self,
        ctx: &Context<'_>,
        tenant: Option<String>,
        first: i32,
        after: Option<String>,
    ) -> Res<Vec<ApiKeyView>> {
        let p = caller(ctx, &[Role::Admin])?;
        if !(1..=MAX_PAGE).contains(&first) {
            return Err(ApiError::BadUserInput(format!("`first` must be 1..={MAX_PAGE}")).into());
        }
        let tenant = match tenant {
            Some(t) => {
                p.may_reach(&t, &[Role::Admin])?;
                Some(t)
            }
            None if p.is_platform() => None,
            None => Some(p.tenant.clone()),
        };
        let rows = state(ctx)
            .api_key_queries
            .list(tenant.as_deref(), after.as_deref(), i64::from(first))
            .await
            .map_err(|e| ApiError::internal("api keys", e))?;
        let now = Utc::now();
        Ok(rows
            .into_iter()
            .map(|k| ApiKeyView {
                status: match (k.revoked_at, k.expires_at) {
                    (Some(_), _) => "revoked",
                    (None, Some(e)) if e <= now => "expired",
                    _ => "active",
                }
                .into(),
                id: k.key_id,
                principal: k.principal,
                role: k.role.as_str().into(),
                tenant: k.tenant,
                issued_at: k.issued_at,
                expires_at: k.expires_at,
                revoked_at: k.revoked_at,
            })
            .collect())
    }

    /// Progress and lag of every projection (platform auditor, admin).
    async fn projections(&self, ctx: &Context<'_>) -> Res<Vec<ProjectionStatusView>> {
        platform_caller(ctx, &[Role::Auditor, Role::Admin])?;
        let mut out = Vec::new();
        for status in state(ctx).projections.statuses().await {
            let s = status.map_err(|e| ApiError::internal("projection status", e))?;
            out.push(ProjectionStatusView {
                name: s.name,
                global_position: s.position.global_position,
                events_applied: s.events_applied,
                lag_events: s.lag_events,
                lag_seconds: s.lag_seconds,
                last_error: s.last_error,
            });
        }
        Ok(out)
    }
}

#[derive(InputObject, Serialize)]
pub struct CreateApiKeyInput {
    pub principal: String,
    /// client, seller, author, reviewer, finance, auditor or admin.
    pub role: String,
    /// The key's tenant; `platform` for staff keys that may reach across tenants (platform
    /// admins only).
    pub tenant: String,
    /// When the key stops working (optional; must be in the future).
    pub expires_at: Option<DateTime<Utc>>,
}

/// A new API key. `token` is shown here only: it is not stored.
#[derive(Serialize, Deserialize)]
pub struct CreatedApiKey {
    pub id: String,
    pub principal: String,
    pub role: String,
    pub tenant: String,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// The API-token secret the token was derived from.
    #[serde(default)]
    pub token_secret_id: String,
}

#[Object]
impl CreatedApiKey {
    async fn id(&self) -> &str {
        &self.id
    }
    /// The bearer token. Keep it: it cannot be shown again (a retry with the same idempotency
    /// key returns the same one, unless the API-token secret was rotated in between).
    async fn token(&self, ctx: &Context<'_>) -> Res<String> {
        let keys = &state(ctx).keys;
        if keys.token_secret_id() != self.token_secret_id {
            return Err(ApiError::Conflict(format!(
                "key {} was made under another API-token secret, so its token cannot be shown \
                 again; revoke it and create a new key",
                self.id
            ))
            .into());
        }
        Ok(keys.token_for(&self.id))
    }
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires_at
    }
    async fn principal(&self) -> &str {
        &self.principal
    }
    async fn role(&self) -> &str {
        &self.role
    }
    async fn tenant(&self) -> &str {
        &self.tenant
    }
}

#[derive(InputObject, Serialize)]
pub struct PostingInput {
    /// e.g. `platform:funding`, `seller:s-42:payable`.
    pub account: String,
    /// Positive = debit, negative = credit.
    pub amount: MoneyScalar,
}

#[derive(InputObject, Serialize)]
pub struct JournalEntryInput {
    /// Chosen by the client; the entry's identity.
    pub entry_id: String,
    #[graphql(default = "USD")]
    pub currency: String,
    pub postings: Vec<PostingInput>,
    #[graphql(default)]
    pub memo: String,
}

#[derive(SimpleObject, Serialize, Deserialize)]
pub struct JournalEntryResult {
    pub entry_id: String,
    /// posted, pending or voided.
    pub status: String,
}

#[derive(Default)]
pub struct MutationRoot;

/// The idempotency key of a mutation: its argument, else the `Idempotency-Key` header.
pub(crate) fn resolve_key(ctx: &Context<'_>, arg: Option<String>) -> Result<String, ApiError> {
    let key = arg
        .or_else(|| request(ctx).idempotency_key.clone())
        .ok_or_else(|| {
            ApiError::BadUserInput(
                "every mutation needs an idempotency key: the `idempotencyKey` argument or the \
             `Idempotency-Key` header"
                    .into(),
            )
        })?;
    super::idempotency::check_client_key(&key)?;
    Ok(key)
}

pub(crate) fn metadata(
    ctx: &Context<'_>,
    p: &Principal,
    key: &str,
) -> Result<CommandMetadata, ApiError> {
    let meta = CommandMetadata::new(&p.name, &p.tenant, Utc::now())
        .and_then(|m| m.with_idempotency_key(key))
        .map_err(|e| ApiError::BadUserInput(e.to_string()))?;
    Ok(meta.with_correlation(request(ctx).correlation_id, None))
}

impl JournalEntryInput {
    fn postings(&self) -> Result<Vec<Posting>, ApiError> {
        self.postings
            .iter()
            .map(|p| Ok(Posting::new(account(&p.account)?, p.amount.0)))
            .collect()
    }

    /// The facts the decision needs: the current balances of the accounts the entry touches,
    /// from the ledger read model.
    async fn balances(&self, s: &AppState) -> Result<AccountBalances, ApiError> {
        let accounts: Vec<AccountId> = self.postings()?.into_iter().map(|p| p.account).collect();
        s.ledger_queries
            .balances_of(currency(&self.currency)?, &accounts)
            .await
            .map_err(|e| ApiError::internal("ledger balances", e))
    }
}

#[Object]
impl MutationRoot {
    /// Creates an API key (admin).
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        input: CreateApiKeyInput,
        idempotency_key: Option<String>,
    ) -> Res<CreatedApiKey> {
        let p = caller(ctx, &[Role::Admin])?;
        // A tenant's admin makes keys for its own tenant only (never a platform key).
        p.may_reach(&input.tenant, &[Role::Admin])?;
        let key = resolve_key(ctx, idempotency_key)?;
        let req = json!({"createApiKey": input});
        let s = state(ctx);
        let out = s
            .idempotency
            .once(p, &key, &req, || async {
                let role = Role::parse(&input.role)?;
                let id = new_key_id();
                let meta = metadata(ctx, p, &key)?;
                let new_key = NewKey {
                    key_id: &id,
                    principal: &input.principal,
                    role,
                    tenant: &input.tenant,
                    expires_at: input.expires_at,
                };
                s.keys.issue(&new_key, &meta).await?;
                Ok(CreatedApiKey {
                    id,
                    principal: input.principal.clone(),
                    role: role.as_str().into(),
                    tenant: input.tenant.clone(),
                    expires_at: input.expires_at,
                    token_secret_id: s.keys.token_secret_id(),
                })
            })
            .await?;
        Ok(out)
    }

    /// Revokes an API key (admin). Revoking a revoked key is not an error.
    async fn revoke_api_key(
        &self,
        ctx: &Context<'_>,
        id: String,
        idempotency_key: Option<String>,
    ) -> Res<bool> {
        let p = caller(ctx, &[Role::Admin])?;
        // A tenant's admin revokes its own tenant's keys only; another tenant's key is absent.
        let tenant = key_tenant(ctx, &id).await?;
        if tenant
            .as_deref()
            .is_some_and(|t| p.may_reach(t, &[Role::Admin]).is_err())
        {
            return Err(ApiError::NotFound("no API key with this id".into()).into());
        }
        let key = resolve_key(ctx, idempotency_key)?;
        let req = json!({"revokeApiKey": id});
        let s = state(ctx);
        Ok(s.idempotency
            .once(p, &key, &req, || async {
                let revoked = s.keys.revoke(&id, &metadata(ctx, p, &key)?).await;
                counted(s, "api_key", revoked)?;
                Ok(true)
            })
            .await?)
    }

    /// Records a balanced journal entry that posts at once (finance, admin).
    async fn record_journal_entry(
        &self,
        ctx: &Context<'_>,
        input: JournalEntryInput,
        idempotency_key: Option<String>,
    ) -> Res<JournalEntryResult> {
        let req = json!({"recordJournalEntry": &input});
        ledger_command(
            ctx,
            idempotency_key,
            req,
            &input.entry_id.clone(),
            "posted",
            Some(&input),
            |at, balances| {
                Ok(LedgerCommand::Record {
                    currency: currency(&input.currency)?,
                    postings: input.postings()?,
                    memo: input.memo.clone(),
                    occurred_at: at,
                    balances,
                })
            },
        )
        .await
    }

    /// Places a hold: a pending entry to post or void later (finance, admin).
    async fn place_hold(
        &self,
        ctx: &Context<'_>,
        input: JournalEntryInput,
        idempotency_key: Option<String>,
    ) -> Res<JournalEntryResult> {
        let req = json!({"placeHold": &input});
        ledger_command(
            ctx,
            idempotency_key,
            req,
            &input.entry_id.clone(),
            "pending",
            Some(&input),
            |at, balances| {
                Ok(LedgerCommand::Hold {
                    currency: currency(&input.currency)?,
                    postings: input.postings()?,
                    memo: input.memo.clone(),
                    occurred_at: at,
                    balances,
                })
            },
        )
        .await
    }

    /// Posts a pending hold (finance, admin).
    async fn post_hold(
        &self,
        ctx: &Context<'_>,
        entry_id: String,
        idempotency_key: Option<String>,
    ) -> Res<JournalEntryResult> {
        let req = json!({"postHold": entry_id});
        ledger_command(
            ctx,
            idempotency_key,
            req,
            &entry_id,
            "posted",
            None,
            |at, _| Ok(LedgerCommand::PostHold { occurred_at: at }),
        )
        .await
    }

    /// Voids a pending hold (finance, admin).
    async fn void_hold(
        &self,
        ctx: &Context<'_>,
        entry_id: String,
        reason: String,
        idempotency_key: Option<String>,
    ) -> Res<JournalEntryResult> {
        let req = json!({"voidHold": {"entryId": entry_id, "reason": reason}});
        ledger_command(
            ctx,
            idempotency_key,
            req,
            &entry_id,
            "voided",
            None,
            |at, _| {
                Ok(LedgerCommand::VoidHold {
                    reason: reason.clone(),
                    occurred_at: at,
                })
            },
        )
        .await
    }
}

/// Runs a client's journal command. Entry ids in the system namespaces
/// ([`agora_domain::ledger::SYSTEM_ENTRY_PREFIXES`]) are refused before anything is stored.
/// An opening command (`opening`: the entry) gets the touched accounts' balances as facts.
#[allow(clippy::too_many_arguments)]
async fn ledger_command(
    ctx: &Context<'_>,
    idempotency_key: Option<String>,
    req: serde_json::Value,
    entry_id: &str,
    status: &str,
    opening: Option<&JournalEntryInput>,
    command: impl FnOnce(DateTime<Utc>, AccountBalances) -> Result<LedgerCommand, ApiError>,
) -> Res<JournalEntryResult> {
    let p = platform_caller(ctx, &[Role::Finance, Role::Admin])?;
    check_client_entry_id(entry_id).map_err(ApiError::from)?;
    let key = resolve_key(ctx, idempotency_key)?;
    let s = state(ctx);
    let out = s
        .idempotency
        .once(p, &key, &req, || async {
            let meta = metadata(ctx, p, &key)?;
            let balances = match opening {
                Some(input) => input.balances(s).await?,
                None => AccountBalances::none(),
            };
            let cmd = command(meta.occurred_at, balances)?;
            let result = s.ledger.execute(entry_id, cmd, &meta).await;
            counted(s, "journal_entry", result.map_err(ApiError::from))?;
            Ok(JournalEntryResult {
                entry_id: entry_id.to_string(),
                status: status.to_string(),
            })
        })
        .await?;
    Ok(out)
}

/// Counts a command's outcome in the metrics and passes it on.
pub(crate) fn counted<T>(
    s: &AppState,
    aggregate: &str,
    result: Result<T, ApiError>,
) -> Result<T, ApiError> {
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.code(),
    };
    s.metrics.command(aggregate, outcome);
    result
}

/// The tenant of key `id`, if it exists.
async fn key_tenant(ctx: &Context<'_>, id: &str) -> Result<Option<String>, ApiError> {
    state(ctx).keys.tenant_of(id).await
}

fn new_key_id() -> String {
    let bytes: [u8; 8] = rand::random();
    hex::encode(bytes)
}

/// Events read per poll by a subscription.
pub const SUBSCRIPTION_BATCH: i64 = 100;
/// Longest a subscription waits between polls when no local commit wakes it.
pub const SUBSCRIPTION_POLL_MS: u64 = 500;
/// A subscription re-checks its API key at least this often ...
pub const SUBSCRIPTION_RECHECK_MS: u64 = 1_000;
/// ... and after this many items: a revoked or expired key ends the stream.
pub const SUBSCRIPTION_RECHECK_ITEMS: u64 = 100;

/// The state of [`guard_subscription`]'s stream.
struct Guarded<T> {
    inner: std::pin::Pin<Box<dyn futures::Stream<Item = Res<T>> + Send>>,
    state: AppState,
    key_id: String,
    _slot: crate::graphql::auth::SubscriptionSlot,
    ticker: tokio::time::Interval,
    since_check: u64,
    ended: bool,
}

/// Limits `stream` to one of the caller's subscription slots (over
/// `MAX_SUBSCRIPTIONS_PER_KEY` → `THROTTLED`) and re-checks the caller's key every
/// [`SUBSCRIPTION_RECHECK_MS`] and every [`SUBSCRIPTION_RECHECK_ITEMS`] items: once it is
/// revoked or expired, the stream yields `UNAUTHENTICATED` and ends.
pub(crate) fn guard_subscription<T: Send + 'static>(
    state: &AppState,
    principal: &Principal,
    stream: impl futures::Stream<Item = Res<T>> + Send + 'static,
) -> Result<impl futures::Stream<Item = Res<T>>, ApiError> {
    let slot = state.keys.open_subscription(&principal.key_id)?;
    let period = std::time::Duration::from_millis(SUBSCRIPTION_RECHECK_MS);
    let guarded = Guarded {
        inner: Box::pin(stream),
        state: state.clone(),
        key_id: principal.key_id.clone(),
        _slot: slot,
        ticker: tokio::time::interval_at(tokio::time::Instant::now() + period, period),
        since_check: 0,
        ended: false,
    };
    Ok(futures::stream::unfold(guarded, next_guarded))
}

async fn next_guarded<T>(mut g: Guarded<T>) -> Option<(Res<T>, Guarded<T>)> {
    use futures::StreamExt;
    if g.ended {
        return None;
    }
    let item = loop {
        tokio::select! {
            item = g.inner.next() => break item?,
            _ = g.ticker.tick() => {
                if let Err(e) = key_still_active(&g.state, &g.key_id).await {
                    g.ended = true;
                    return Some((Err(e.into()), g));
                }
            }
        }
    };
    g.since_check += 1;
    if g.since_check >= SUBSCRIPTION_RECHECK_ITEMS {
        g.since_check = 0;
        if let Err(e) = key_still_active(&g.state, &g.key_id).await {
            g.ended = true;
            return Some((Err(e.into()), g));
        }
    }
    Some((item, g))
}

/// `Ok` while the key is active; `UNAUTHENTICATED` once it is revoked or expired.
async fn key_still_active(state: &AppState, key_id: &str) -> Result<(), ApiError> {
    if state.keys.still_active(key_id).await? {
        Ok(())
    } else {
        Err(ApiError::Unauthenticated(
            "this API key was revoked or has expired: the subscription ended".into(),
        ))
    }
}

#[derive(Default)]
pub struct SubscriptionRoot;

struct Follow {
    state: AppState,
    filter: EventFilter,
    after: LogPosition,
    buffer: std::collections::VecDeque<StoredEvent>,
    commits: tokio::sync::watch::Receiver<u64>,
}

#[async_graphql::Subscription]
impl SubscriptionRoot {
    /// New events in commit order as they are committed (auditor, admin; tenant-scoped like
    /// `events`). Starts after `after` (a cursor from `events`) or at the current end of the log.
    async fn events(
        &self,
        ctx: &Context<'_>,
        filter: Option<EventFilterInput>,
        after: Option<String>,
    ) -> async_graphql::Result<impl futures::Stream<Item = Res<EventNode>>> {
        let p = caller(ctx, &[Role::Auditor, Role::Admin])?;
        let s = state(ctx).clone();
        let filter = event_filter(p, filter.unwrap_or_default());
        let after = match after {
            Some(c) => parse_position_cursor(Some(c))?,
            None => s
                .store
                .visible_head()
                .await
                .map_err(|e| ApiError::internal("subscription start", e))?,
        };
        let follow = Follow {
            commits: s.signal.subscribe(),
            state: s.clone(),
            filter,
            after,
            buffer: Default::default(),
        };
        Ok(guard_subscription(
            &s,
            p,
            futures::stream::unfold(follow, next_event),
        )?)
    }
}

async fn next_event(mut f: Follow) -> Option<(Res<EventNode>, Follow)> {
    loop {
        if let Some(e) = f.buffer.pop_front() {
            return Some((Ok(EventNode(e)), f));
        }
        match f
            .state
            .store
            .query_events(&f.filter, f.after, SUBSCRIPTION_BATCH)
            .await
        {
            Ok(events) if !events.is_empty() => {
                if let Some(last) = events.last() {
                    f.after = last.position;
                }
                f.buffer.extend(events);
                continue;
            }
            Ok(_) => {}
            Err(e) => return Some((Err(ApiError::internal("subscription read", e).into()), f)),
        }
        tokio::select! {
            _ = f.commits.changed() => {}
            _ = tokio::time::sleep(std::time::Duration::from_millis(SUBSCRIPTION_POLL_MS)) => {}
        }
    }
}

/// The store filter for a caller: tenant keys (a tenant's admin included) see their tenant only.
fn event_filter(p: &Principal, f: EventFilterInput) -> EventFilter {
    EventFilter {
        from_position: f.from_position,
        to_position: f.to_position,
        from_time: f.from_time,
        to_time: f.to_time,
        aggregate_type: f.aggregate_type,
        aggregate_id: f.aggregate_id,
        correlation_id: f.correlation_id,
        actor: f.actor,
        tenant: (!p.is_platform()).then(|| p.tenant.clone()),
    }
}
