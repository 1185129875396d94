//! The log data marketplace (seed 000) behind the API: one service used by both the GraphQL
//! resolvers and the REST adapters under `/npe/log-marketplace/…`, so both enforce the same
//! roles, limits and idempotency.

pub mod corpus;
pub mod gql;
pub mod rest;
pub mod views;

use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_commands::logmarket::{LogMarket, LogMarketError, PayAuth};
use agora_commands::{CommandMetadata, LogPosition, Store};
use agora_domain::access::Role;
use agora_domain::logmarket::aggregate::Verdict;
use agora_domain::logmarket::analysis::{Analysis, MarketConfig, SellerId, Stage};
use agora_domain::money::Money;
use agora_projections::logmarket::{LogMarketQueries, SellerScope};
use agora_projections::ProjectionHost;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::graphql::auth::Principal;
use crate::graphql::error::ApiError;
use crate::ratelimit::{Counters, LimitError, RateLimiter};

/// Window of the submission quota.
const SUBMISSION_WINDOW: Duration = Duration::from_secs(3600);

/// Most logs in one batch (the seed's limit).
pub const MAX_BATCH_LOGS: usize = 100;
/// Most iterations of one simulation.
pub const MAX_SIMULATE_ITERATIONS: u32 = 50;
/// Longest a mutation waits for the read models to include it (read-your-writes).
pub const READ_YOUR_WRITES_MS: u64 = 2_000;

/// Limits and prices of the marketplace (see `config.rs` for the variables).
#[derive(Clone, Debug, PartialEq)]
pub struct MarketSettings {
    pub enabled: bool,
    pub config: MarketConfig,
    /// Marketplace API requests per key per minute (seed: 100).
    pub rate_limit_per_minute: u32,
    /// Log submissions per seller per hour (seed: 1000).
    pub submissions_per_hour: u32,
}

impl Default for MarketSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            config: MarketConfig::default(),
            rate_limit_per_minute: 100,
            submissions_per_hour: 1000,
        }
    }
}

/// A recorded analysis as returned by analyse calls.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AnalysisRecord {
    pub id: String,
    pub seller: SellerId,
    pub stage: Stage,
    pub timestamp: DateTime<Utc>,
    pub analysis: Analysis,
    pub paid: bool,
    pub transaction_id: Option<String>,
}

/// A payment as returned by pay calls.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Receipt {
    pub transaction_id: String,
    pub analysis_id: String,
    pub seller: SellerId,
    pub amount: Money,
    pub journal_entry_id: String,
    pub timestamp: DateTime<Utc>,
    pub stage: Stage,
    pub value_score: u8,
    pub quality: Decimal,
    /// `seller_signature` or `operator`.
    pub authorisation: String,
}

/// One log of a batch.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BatchItem {
    pub source: String,
    pub content: String,
}

/// A batch's results.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BatchOutcome {
    pub results: Vec<AnalysisRecord>,
}

/// A simulation's results: each analysis, and its payment when auto-pay paid it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimulationOutcome {
    pub results: Vec<(AnalysisRecord, Option<Receipt>)>,
}

/// The marketplace service.
pub struct MarketApi {
    pub market: Arc<LogMarket>,
    pub queries: LogMarketQueries,
    pub settings: MarketSettings,
    store: Store,
    projections: Arc<ProjectionHost>,
    requests: RateLimiter,
    submissions: RateLimiter,
}

fn market_error(e: LogMarketError) -> ApiError {
    match e {
        LogMarketError::BadInput(m) => ApiError::BadUserInput(m),
        LogMarketError::LogTooLarge { bytes, limit } => ApiError::PayloadTooLarge(format!(
            "log is {bytes} bytes; the limit is {limit} bytes (AGORA_LOGMARKET_MAX_LOG_BYTES)"
        )),
        LogMarketError::NotFound => ApiError::NotFound("analysis not found".into()),
        LogMarketError::AlreadyPaid { transaction_id } => ApiError::Conflict(format!(
            "analysis already paid in transaction {transaction_id}"
        )),
        LogMarketError::Conflict(m) => ApiError::Conflict(m),
        LogMarketError::Busy(m) => ApiError::Busy(m),
        e @ LogMarketError::DuplicateContent { .. } => ApiError::Conflict(e.to_string()),
        LogMarketError::Forbidden(m) => ApiError::Forbidden(m),
        LogMarketError::Storage(m) => ApiError::internal("log marketplace store", m),
        e @ LogMarketError::UnreadableEvent { .. } => {
            ApiError::internal("log marketplace event", e.to_string())
        }
    }
}

/// Roles whose platform keys read every tenant's sellers.
pub const CROSS_TENANT_READERS: &[Role] =
    &[Role::Admin, Role::Finance, Role::Auditor, Role::Reviewer];

/// The seller `sub_pkp_id` of the caller's tenant (sellers are scoped by tenant; a platform key
/// names the platform tenant's sellers).
fn parse_seller(p: &Principal, sub_pkp_id: &str) -> Result<SellerId, ApiError> {
    SellerId::for_tenant(&p.tenant, sub_pkp_id)
        .map_err(|e| ApiError::BadUserInput(format!("subPKPId: {e}")))
}

/// Whether `p` is the seller `seller` (a seller key of its tenant named like its subPKPId).
fn is_seller(p: &Principal, seller: &SellerId) -> bool {
    p.role == Role::Seller
        && SellerId::for_tenant(&p.tenant, &p.name).is_ok_and(|own| &own == seller)
}

/// Parses a seed `source` (pipeline stage).
pub fn stage(source: &str) -> Result<Stage, ApiError> {
    Stage::parse(source).ok_or_else(|| {
        ApiError::BadUserInput(format!(
            "source {source:?} must be one of build, test, deploy, runtime"
        ))
    })
}

impl MarketApi {
    pub fn new(
        store: &Store,
        market: Arc<LogMarket>,
        projections: Arc<ProjectionHost>,
        settings: MarketSettings,
        counters: Counters,
    ) -> Self {
        Self {
            queries: LogMarketQueries::new(store.read_models().clone()),
            requests: RateLimiter::new(
                "market-requests",
                settings.rate_limit_per_minute,
                counters.clone(),
            ),
            submissions: RateLimiter::with_window(
                "market-submissions",
                settings.submissions_per_hour,
                SUBMISSION_WINDOW,
                counters,
            ),
            store: store.clone(),
            projections,
            market,
            settings,
        }
    }

    /// Counts one marketplace API request by this key (across every process).
    pub async fn admit(&self, p: &Principal) -> Result<(), ApiError> {
        self.requests.check(&p.key_id).await.map_err(|e| {
            e.into_api(format!(
                "over {} marketplace requests per minute for this key",
                self.settings.rate_limit_per_minute
            ))
        })
    }

    fn enabled(&self) -> Result<(), ApiError> {
        if self.settings.enabled {
            Ok(())
        } else {
            Err(ApiError::NotFound(
                "the log marketplace is disabled (LOG_MARKETPLACE_ENABLED=false)".into(),
            ))
        }
    }

    /// The seller a caller may act for, in the caller's tenant: a seller key acts for itself
    /// only; admins for any seller of their tenant (a platform admin: the platform tenant's).
    pub fn seller_for(&self, p: &Principal, sub_pkp_id: &str) -> Result<SellerId, ApiError> {
        let seller = parse_seller(p, sub_pkp_id)?;
        match p.role {
            Role::Admin => Ok(seller),
            Role::Seller if p.name == sub_pkp_id => Ok(seller),
            Role::Seller => Err(ApiError::Forbidden(
                "a seller key may only act for its own subPKPId".into(),
            )),
            _ => Err(ApiError::Forbidden(format!(
                "role {} may not submit logs",
                p.role.as_str()
            ))),
        }
    }

    /// Whose sellers `p` reads: every tenant's for platform staff, else its own tenant's.
    pub fn scope(&self, p: &Principal) -> SellerScope {
        if p.sees_all_tenants(CROSS_TENANT_READERS) {
            SellerScope::All
        } else {
            SellerScope::Tenant(p.tenant.clone())
        }
    }

    async fn admit_submissions(&self, seller: &SellerId, n: u32) -> Result<(), ApiError> {
        self.submissions
            .check_n(seller.as_str(), n)
            .await
            .map_err(|e: LimitError| {
                e.into_api(format!(
                    "seller {seller} is over {} log submissions per hour",
                    self.settings.submissions_per_hour
                ))
            })
    }

    /// Refuses an empty log or one over the size limit, before anything is counted.
    fn check_size(&self, content: &str, index: Option<usize>) -> Result<(), ApiError> {
        let name = index.map_or("log".to_owned(), |i| format!("logs[{i}]"));
        let limit = self.settings.config.max_log_bytes;
        if content.trim().is_empty() {
            return Err(ApiError::BadUserInput(format!("{name} is empty")));
        }
        if content.len() > limit {
            return Err(ApiError::PayloadTooLarge(format!(
                "{name} is {} bytes; the limit is {limit} bytes (AGORA_LOGMARKET_MAX_LOG_BYTES)",
                content.len()
            )));
        }
        Ok(())
    }

    /// Waits (bounded) until the read models (the marketplace's, the ledger's, every one this
    /// process runs) include everything committed so far.
    pub async fn settle_reads(&self) {
        let Ok(Some(head)) = self.store.head().await else {
            return;
        };
        let deadline = Instant::now() + Duration::from_millis(READ_YOUR_WRITES_MS);
        while Instant::now() < deadline {
            if self.projection_position().await >= Some(head) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The position every projection has reached, read from the checkpoints table (the runner
    /// may live in another process sharing the database).
    async fn projection_position(&self) -> Option<LogPosition> {
        use sqlx::Row;
        let rows =
            sqlx::query("SELECT name, transaction_id, global_position FROM projection_checkpoints")
                .fetch_all(self.store.read_models())
                .await
                .ok()?;
        let names: Vec<&str> = self
            .projections
            .runners()
            .iter()
            .map(|r| r.name())
            .collect();
        let mut lowest: Option<LogPosition> = None;
        for row in rows {
            let name: String = row.try_get(0).ok()?;
            if !names.contains(&name.as_str()) {
                continue;
            }
            let p = LogPosition {
                transaction_id: row.try_get(1).ok()?,
                global_position: row.try_get(2).ok()?,
            };
            lowest = Some(lowest.map_or(p, |l| l.min(p)));
        }
        lowest
    }

    /// Analyses, prices and records one log.
    pub async fn analyze(
        &self,
        p: &Principal,
        meta: &CommandMetadata,
        sub_pkp_id: &str,
        source: &str,
        content: &str,
    ) -> Result<AnalysisRecord, ApiError> {
        self.enabled()?;
        let seller = self.seller_for(p, sub_pkp_id)?;
        let stage = stage(source)?;
        self.check_size(content, None)?;
        self.admit_submissions(&seller, 1).await?;
        let record = self.record(&seller, stage, content, 0, meta).await?;
        self.settle_reads().await;
        Ok(record)
    }

    async fn record(
        &self,
        seller: &SellerId,
        stage: Stage,
        content: &str,
        ordinal: u32,
        meta: &CommandMetadata,
    ) -> Result<AnalysisRecord, ApiError> {
        let (id, analysis) = self
            .market
            .analyse(seller, stage, content, ordinal, meta)
            .await
            .map_err(market_error)?;
        Ok(AnalysisRecord {
            id,
            seller: seller.clone(),
            stage,
            timestamp: meta.occurred_at,
            analysis,
            paid: false,
            transaction_id: None,
        })
    }

    /// Analyses up to [`MAX_BATCH_LOGS`] logs. Every item is validated before any is recorded.
    pub async fn batch(
        &self,
        p: &Principal,
        meta: &CommandMetadata,
        sub_pkp_id: &str,
        logs: &[BatchItem],
    ) -> Result<BatchOutcome, ApiError> {
        self.enabled()?;
        let seller = self.seller_for(p, sub_pkp_id)?;
        if logs.is_empty() || logs.len() > MAX_BATCH_LOGS {
            return Err(ApiError::BadUserInput(format!(
                "a batch holds 1..={MAX_BATCH_LOGS} logs; got {}",
                logs.len()
            )));
        }
        let mut stages = Vec::with_capacity(logs.len());
        for (i, item) in logs.iter().enumerate() {
            stages.push(stage(&item.source).map_err(|e| e.prefixed(&format!("logs[{i}]")))?);
            self.check_size(&item.content, Some(i))?;
        }
        self.admit_submissions(&seller, logs.len() as u32).await?;
        let mut results = Vec::with_capacity(logs.len());
        for (i, (item, stage)) in logs.iter().zip(stages).enumerate() {
            let ordinal = u32::try_from(i).unwrap_or(u32::MAX);
            results.push(
                self.record(&seller, stage, &item.content, ordinal, meta)
                    .await?,
            );
        }
        self.settle_reads().await;
        Ok(BatchOutcome { results })
    }

    /// Analyses `iterations` logs of the shipped corpus (in order, wrapping around) for the
    /// seller; with `auto_pay` (operators only) pays those with a value score over 70, as the
    /// seed's integration example does.
    pub async fn simulate(
        &self,
        p: &Principal,
        meta: &CommandMetadata,
        sub_pkp_id: &str,
        iterations: u32,
        auto_pay: bool,
    ) -> Result<SimulationOutcome, ApiError> {
        self.enabled()?;
        let seller = self.seller_for(p, sub_pkp_id)?;
        if iterations == 0 || iterations > MAX_SIMULATE_ITERATIONS {
            return Err(ApiError::BadUserInput(format!(
                "iterations must be 1..={MAX_SIMULATE_ITERATIONS}"
            )));
        }
        if auto_pay && !matches!(p.role, Role::Admin | Role::Finance) {
            return Err(ApiError::Forbidden(
                "autoPay pays as an operator: admin or finance only".into(),
            ));
        }
        self.admit_submissions(&seller, iterations).await?;
        let corpus = corpus::CORPUS;
        let mut results = Vec::with_capacity(iterations as usize);
        for i in 0..iterations as usize {
            let log = &corpus[i % corpus.len()];
            let ordinal = u32::try_from(i).unwrap_or(u32::MAX);
            let record = self
                .record(&seller, stage(log.stage)?, log.content, ordinal, meta)
                .await?;
            let receipt = if auto_pay && record.analysis.value_score > 70 {
                // The corpus wraps around: content the seller was paid for already is not
                // paid again.
                match self.pay_market(p, meta, &record.id, &seller, None).await {
                    Ok(receipt) => Some(receipt),
                    Err(LogMarketError::DuplicateContent { .. }) => None,
                    Err(e) => return Err(market_error(e)),
                }
            } else {
                None
            };
            results.push((record, receipt));
        }
        self.settle_reads().await;
        Ok(SimulationOutcome { results })
    }

    /// Pays an analysis to its seller, once. Sellers pay themselves only with their signature;
    /// admin and finance may pay with a signature or, for a seller without a registered key, as
    /// operators.
    pub async fn pay(
        &self,
        p: &Principal,
        meta: &CommandMetadata,
        analysis_id: &str,
        sub_pkp_id: &str,
        signature: Option<&str>,
    ) -> Result<Receipt, ApiError> {
        self.enabled()?;
        let seller = parse_seller(p, sub_pkp_id)?;
        match p.role {
            Role::Admin | Role::Finance => {}
            Role::Seller if is_seller(p, &seller) => {
                if signature.is_none() {
                    return Err(ApiError::Forbidden(
                        "a seller's pay request needs its signature".into(),
                    ));
                }
            }
            _ => {
                return Err(ApiError::Forbidden(format!(
                    "role {} may not pay this analysis",
                    p.role.as_str()
                )))
            }
        }
        let receipt = self
            .pay_inner(p, meta, analysis_id, &seller, signature)
            .await?;
        self.settle_reads().await;
        Ok(receipt)
    }

    async fn pay_inner(
        &self,
        p: &Principal,
        meta: &CommandMetadata,
        analysis_id: &str,
        seller: &SellerId,
        signature: Option<&str>,
    ) -> Result<Receipt, ApiError> {
        self.pay_market(p, meta, analysis_id, seller, signature)
            .await
            .map_err(market_error)
    }

    async fn pay_market(
        &self,
        p: &Principal,
        meta: &CommandMetadata,
        analysis_id: &str,
        seller: &SellerId,
        signature: Option<&str>,
    ) -> Result<Receipt, LogMarketError> {
        let auth = match (signature, p.role) {
            (Some(sig), _) => PayAuth::Signature(sig.to_owned()),
            (None, Role::Admin | Role::Finance) => PayAuth::Operator(p.name.clone()),
            (None, _) => PayAuth::None,
        };
        let authorisation = match &auth {
            PayAuth::Signature(_) => "seller_signature",
            _ => "operator",
        };
        let r = self.market.pay(analysis_id, seller, auth, meta).await?;
        Ok(Receipt {
            transaction_id: r.transaction_id,
            analysis_id: r.analysis_id,
            seller: r.seller,
            amount: r.amount,
            journal_entry_id: r.journal_entry_id,
            timestamp: r.paid_at,
            stage: r.stage,
            value_score: r.value_score,
            quality: r.quality,
            authorisation: authorisation.into(),
        })
    }

    /// Registers or rotates a seller's ed25519 payment key. An operator (admin, finance) sets it
    /// at once; a seller's own request waits for an operator's approval (a seller cannot mint
    /// payouts on its own). Returns whether the key is active now.
    pub async fn register_key(
        &self,
        p: &Principal,
        meta: &CommandMetadata,
        sub_pkp_id: &str,
        public_key_hex: &str,
    ) -> Result<bool, ApiError> {
        let active = match p.role {
            Role::Admin | Role::Finance => {
                let seller = parse_seller(p, sub_pkp_id)?;
                self.market
                    .register_key(&seller, public_key_hex, &p.name, meta)
                    .await
                    .map_err(market_error)?;
                true
            }
            _ => {
                let seller = self.seller_for(p, sub_pkp_id)?;
                self.market
                    .request_key(&seller, public_key_hex, &p.name, meta)
                    .await
                    .map_err(market_error)?;
                false
            }
        };
        self.settle_reads().await;
        Ok(active)
    }

    /// An operator (admin, finance) approves the key a seller asked for.
    pub async fn approve_key(
        &self,
        p: &Principal,
        meta: &CommandMetadata,
        sub_pkp_id: &str,
        public_key_hex: &str,
    ) -> Result<bool, ApiError> {
        if !matches!(p.role, Role::Admin | Role::Finance) {
            return Err(ApiError::Forbidden(
                "payment keys are approved by admin or finance".into(),
            ));
        }
        let seller = parse_seller(p, sub_pkp_id)?;
        self.market
            .approve_key(&seller, public_key_hex, &p.name, meta)
            .await
            .map_err(market_error)?;
        self.settle_reads().await;
        Ok(true)
    }

    /// Records a verdict on an insight: reviewers and admins on any analysis, a seller on its
    /// own.
    pub async fn feedback(
        &self,
        p: &Principal,
        meta: &CommandMetadata,
        analysis_id: &str,
        insight_index: u32,
        verdict: Verdict,
    ) -> Result<String, ApiError> {
        let state = self
            .market
            .analysis(analysis_id)
            .await
            .map_err(market_error)?;
        let owner = state
            .seller()
            .ok_or_else(|| ApiError::NotFound("analysis not found".into()))?;
        if !p.sees_all_tenants(CROSS_TENANT_READERS) && !owner.belongs_to(&p.tenant) {
            return Err(ApiError::NotFound("analysis not found".into()));
        }
        match p.role {
            Role::Reviewer | Role::Admin => {}
            Role::Seller if is_seller(p, owner) => {}
            _ => {
                return Err(ApiError::Forbidden(
                    "feedback comes from reviewers, admins or the analysis's seller".into(),
                ))
            }
        }
        self.market
            .feedback(analysis_id, insight_index, verdict, &p.name, meta)
            .await
            .map_err(market_error)?;
        // The feedback was accepted, so the insight exists in the state loaded above.
        let agent = state
            .insight_agent(insight_index)
            .ok_or_else(|| ApiError::internal("feedback", "insight vanished"))?;
        self.settle_reads().await;
        Ok(agent.id().to_owned())
    }

    /// Who may read a seller's own analyses and payments: the seller, or finance, auditor,
    /// reviewer and admin of its tenant (platform ones: of every tenant, naming another
    /// tenant's seller by its stored id). Returns the seller's stored id.
    pub fn may_read_seller(&self, p: &Principal, sub_pkp_id: &str) -> Result<SellerId, ApiError> {
        let seller = if p.sees_all_tenants(CROSS_TENANT_READERS) {
            SellerId::parse(sub_pkp_id)
                .map_err(|e| ApiError::BadUserInput(format!("subPKPId: {e}")))?
        } else {
            parse_seller(p, sub_pkp_id)?
        };
        self.may_read(p, &seller)?;
        Ok(seller)
    }

    /// Whether `p` may read the analyses of the seller stored as `stored`.
    pub fn may_read_stored(&self, p: &Principal, stored: &str) -> Result<(), ApiError> {
        let seller =
            SellerId::parse(stored).map_err(|e| ApiError::internal("stored seller id", e))?;
        self.may_read(p, &seller)
    }

    /// Whether `p` may read the stored seller `seller`'s analyses.
    pub fn may_read(&self, p: &Principal, seller: &SellerId) -> Result<(), ApiError> {
        if !p.sees_all_tenants(CROSS_TENANT_READERS) && !seller.belongs_to(&p.tenant) {
            return Err(ApiError::NotFound("seller not found".into()));
        }
        match p.role {
            Role::Admin | Role::Finance | Role::Auditor | Role::Reviewer => Ok(()),
            Role::Seller if is_seller(p, seller) => Ok(()),
            _ => Err(ApiError::Forbidden(
                "only the seller or finance, auditor, reviewer and admin roles see a seller's analyses"
                    .into(),
            )),
        }
    }
}
