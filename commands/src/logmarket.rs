//! The log marketplace's write side: analyse (and price) logs, pay an analysis exactly once,
//! register seller keys, record insight feedback — and the process manager that turns
//! `AnalysisPaid` into its journal entry and seller credits.
//!
//! Exactly-once payment: the `LogAnalysis` aggregate decides (`AnalysisPaid` is appended at most
//! once: the aggregate refuses a second pay, and optimistic concurrency serialises racing
//! payers). The journal entry's id is derived from the analysis id, so recording it again is a
//! no-op; the pay call records it at once, and the process manager (a checkpointed reader of
//! the global log) records it after a crash between the two commits.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use agora_domain::ledger::{
    AccountId, JournalEntry, LedgerCommand, Posting, LOG_PAYMENT_ENTRY_PREFIX,
};
use agora_domain::logmarket::aggregate::{
    split_payment, LogAnalysis, LogAnalysisCommand, LogAnalysisError, LogAnalysisEvent,
    PayAuthorisation, Verdict,
};
use agora_domain::logmarket::analysis::{
    self, AnalyseError, Analysis, MarketConfig, SellerId, Stage,
};
use agora_domain::logmarket::insight::{Agent, InsightKind, Severity};
use agora_domain::logmarket::seller::{
    verify_pay_signature, LogSeller, SellerCommand, SellerError, SignatureError,
};
use agora_domain::money::{Currency, Money};
use chrono::{DateTime, Utc};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::bus::{CommandBus, CommandError, CommitSignal};
use crate::journal::{balances_for, BalanceLookup};
use crate::metadata::CommandMetadata;
use crate::process::{ProcessRunner, Reactor};
use crate::store::{Store, StoredEvent};

/// Checkpoint name of the process manager in `projection_checkpoints`.
pub const PROCESS_CHECKPOINT: &str = "pm_logmarket";
/// Analyses computed at once on the blocking pool (the machine's cores are shared with the
/// async runtime and the database).
pub const MAX_CONCURRENT_ANALYSES: usize = 2;
/// Times an analysis is re-judged when concurrent analyses keep recording its first-time
/// templates first; then the request fails with a retryable conflict.
pub const MAX_NOVELTY_ATTEMPTS: usize = 3;
/// Actor stamped on the process manager's commands.
pub const PROCESS_ACTOR: &str = "process:logmarket";

/// Why a marketplace command failed.
#[derive(Debug, thiserror::Error)]
pub enum LogMarketError {
    #[error("{0}")]
    BadInput(String),
    #[error("log too large: {bytes} bytes; the limit is {limit} bytes")]
    LogTooLarge { bytes: usize, limit: usize },
    #[error("analysis not found")]
    NotFound,
    #[error("analysis already paid in transaction {transaction_id}")]
    AlreadyPaid { transaction_id: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("store failure: {0}")]
    Storage(String),
    /// A stored event the process manager cannot decode (it is parked, never skipped).
    #[error("event at position {position} ({event_type}) cannot be decoded: {reason}")]
    UnreadableEvent {
        position: i64,
        event_type: String,
        reason: String,
    },
}

impl From<AnalyseError> for LogMarketError {
    fn from(e: AnalyseError) -> Self {
        match e {
            AnalyseError::LogTooLarge { bytes, limit } => Self::LogTooLarge { bytes, limit },
            other => Self::BadInput(other.to_string()),
        }
    }
}

impl From<CommandError<LogAnalysisError>> for LogMarketError {
    fn from(e: CommandError<LogAnalysisError>) -> Self {
        match e {
            CommandError::Rejected(LogAnalysisError::NotFound) => Self::NotFound,
            CommandError::Rejected(LogAnalysisError::AlreadyPaid { transaction_id }) => {
                Self::AlreadyPaid { transaction_id }
            }
            CommandError::Rejected(LogAnalysisError::SellerMismatch) => {
                Self::Forbidden("the analysis belongs to another seller".into())
            }
            CommandError::Rejected(e @ LogAnalysisError::InsightNotFound { .. }) => {
                Self::BadInput(e.to_string())
            }
            CommandError::Rejected(e @ LogAnalysisError::FeedbackAlreadyGiven { .. }) => {
                Self::Conflict(e.to_string())
            }
            CommandError::Rejected(e) => Self::Conflict(e.to_string()),
            CommandError::Conflict => Self::Conflict("analysis kept changing; retry".into()),
            CommandError::Storage(s) => Self::Storage(s),
        }
    }
}

impl From<CommandError<SellerError>> for LogMarketError {
    fn from(e: CommandError<SellerError>) -> Self {
        match e {
            CommandError::Rejected(e) => Self::BadInput(e.to_string()),
            CommandError::Conflict => Self::Conflict("seller kept changing; retry".into()),
            CommandError::Storage(s) => Self::Storage(s),
        }
    }
}

/// How a pay request is authorised.
#[derive(Clone, Debug)]
pub enum PayAuth {
    /// The seller's ed25519 signature (hex) over the canonical pay message.
    Signature(String),
    /// No signature; the caller is an operator (admin or finance) with this principal.
    Operator(String),
    /// No signature and no operator role.
    None,
}

/// What a payment produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentReceipt {
    pub transaction_id: String,
    pub analysis_id: String,
    pub seller: SellerId,
    pub amount: Money,
    pub journal_entry_id: String,
    pub paid_at: DateTime<Utc>,
    /// The facts the payment was priced from, as recorded with the analysis.
    pub stage: Stage,
    pub value_score: u8,
    pub quality: rust_decimal::Decimal,
}

/// The receipt of a payment already recorded on `state`.
fn receipt(state: &LogAnalysis, analysis_id: &str, seller: &SellerId, txn: &str) -> PaymentReceipt {
    PaymentReceipt {
        transaction_id: txn.to_owned(),
        analysis_id: analysis_id.to_owned(),
        seller: seller.clone(),
        amount: state.price().unwrap_or(Money::ZERO),
        journal_entry_id: payment_entry_id(analysis_id),
        paid_at: state.paid_at().unwrap_or_default(),
        stage: state.stage().unwrap_or(Stage::Runtime),
        value_score: state.value_score().unwrap_or(0),
        quality: state_quality(state),
    }
}

/// The journal entry id of an analysis's payment.
pub fn payment_entry_id(analysis_id: &str) -> String {
    format!("{LOG_PAYMENT_ENTRY_PREFIX}{analysis_id}")
}

/// Namespace of analysis ids derived from a client key (UUIDv5).
const ANALYSIS_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6d1f_5b0a_4c2e_4f7e_9a31_7c55_e2b8_04d1);

/// The marketplace's command side.
pub struct LogMarket {
    store: Store,
    config: MarketConfig,
    analyses: CommandBus<LogAnalysis>,
    sellers: CommandBus<LogSeller>,
    journal: CommandBus<JournalEntry>,
    /// Template hashes the marketplace has seen (persisted in the events; loaded at start).
    /// Copied on write: an analysis reads a snapshot (an `Arc` clone) without holding a lock.
    known: RwLock<Arc<HashSet<String>>>,
    /// Serialises "check the novelty judgement, then record": two concurrent first-time
    /// patterns cannot both count as first. Never held while a log is analysed.
    novelty: Mutex<()>,
    /// Analyses running on the blocking pool at once ([`MAX_CONCURRENT_ANALYSES`]).
    analysing: tokio::sync::Semaphore,
    /// The journal entry's facts: the touched accounts' balances.
    balances: Arc<dyn BalanceLookup>,
}

impl LogMarket {
    pub fn new(
        store: &Store,
        signal: CommitSignal,
        config: MarketConfig,
        balances: Arc<dyn BalanceLookup>,
    ) -> Self {
        Self {
            store: store.clone(),
            config,
            balances,
            analyses: CommandBus::new(store, signal.clone(), ()),
            sellers: CommandBus::new(store, signal.clone(), ()),
            journal: CommandBus::new(store, signal, ()),
            known: RwLock::new(Arc::default()),
            novelty: Mutex::new(()),
            analysing: tokio::sync::Semaphore::new(MAX_CONCURRENT_ANALYSES),
        }
    }

    pub fn config(&self) -> &MarketConfig {
        &self.config
    }

    /// Adds template hashes to the known set (at start, from the templates read model).
    pub fn remember_templates<I: IntoIterator<Item = String>>(&self, hashes: I) {
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        Arc::make_mut(&mut known).extend(hashes);
    }

    pub fn known_templates(&self) -> usize {
        self.known.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Analyses, prices and records one log; returns the analysis id and the analysis.
    ///
    /// Under a client key the id is derived from the caller, the key and the log's `ordinal` in
    /// its request, so a request retried after a crash (its first run recorded, its answer lost)
    /// finds its analysis and returns it instead of recording a second one.
    #[tracing::instrument(skip_all, fields(seller = %seller, stage = %stage, bytes = content.len()))]
    pub async fn analyse(
        &self,
        seller: &SellerId,
        stage: Stage,
        content: &str,
        ordinal: u32,
        meta: &CommandMetadata,
    ) -> Result<(String, Analysis), LogMarketError> {
        let analysis_id = match &meta.idempotency_key {
            Some(key) => {
                let name = format!("{}\n{}\n{key}\n{ordinal}", meta.tenant, meta.actor);
                let id = Uuid::new_v5(&ANALYSIS_ID_NAMESPACE, name.as_bytes());
                let existing = self
                    .analyses
                    .load(&format!("analysis-{}", id.simple()))
                    .await?;
                if let Some(done) = existing.analysis() {
                    return Ok((format!("analysis-{}", id.simple()), done.clone()));
                }
                format!("analysis-{}", id.simple())
            }
            None => format!("analysis-{}", Uuid::now_v7().simple()),
        };
        let content: Arc<str> = Arc::from(content);
        for _ in 0..MAX_NOVELTY_ATTEMPTS {
            let (analysis, judged_new) = self.analyse_off_runtime(&content, stage).await?;
            let _guard = self.novelty.lock().await;
            // Judged against a snapshot: if another analysis recorded one of "our" first-time
            // templates meanwhile, judge again.
            if self.any_known(&judged_new) {
                continue;
            }
            let command = LogAnalysisCommand::Record {
                seller: seller.clone(),
                stage,
                analysis: Box::new(analysis.clone()),
                occurred_at: meta.occurred_at,
            };
            self.analyses.execute(&analysis_id, command, meta).await?;
            self.remember_templates(analysis.templates.iter().map(|t| t.hash.clone()));
            return Ok((analysis_id, analysis));
        }
        Err(LogMarketError::Conflict(
            "first-time patterns kept changing under this analysis; retry".into(),
        ))
    }

    /// Runs the CPU-bound analysis on tokio's blocking pool (at most
    /// [`MAX_CONCURRENT_ANALYSES`] at once) against a snapshot of the known templates; returns
    /// it with the template hashes it judged new.
    async fn analyse_off_runtime(
        &self,
        content: &Arc<str>,
        stage: Stage,
    ) -> Result<(Analysis, Vec<String>), LogMarketError> {
        let _permit = self
            .analysing
            .acquire()
            .await
            .map_err(|e| LogMarketError::Storage(format!("analysis pool closed: {e}")))?;
        let known = Arc::clone(&self.known.read().unwrap_or_else(|e| e.into_inner()));
        let config = self.config.clone();
        let content = Arc::clone(content);
        let task = tokio::task::spawn_blocking(move || {
            let judged_new = std::cell::RefCell::new(Vec::new());
            let analysis = analysis::analyse(&content, stage, &config, &|h| {
                let seen = known.contains(h);
                if !seen {
                    judged_new.borrow_mut().push(h.to_owned());
                }
                seen
            })?;
            Ok::<_, LogMarketError>((analysis, judged_new.into_inner()))
        });
        task.await
            .map_err(|e| LogMarketError::Storage(format!("analysis worker failed: {e}")))?
    }

    fn any_known(&self, hashes: &[String]) -> bool {
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        hashes.iter().any(|h| known.contains(h))
    }

    /// Registers (or rotates) a seller's payment key.
    pub async fn register_key(
        &self,
        seller: &SellerId,
        public_key_hex: &str,
        meta: &CommandMetadata,
    ) -> Result<(), LogMarketError> {
        let command = SellerCommand::RegisterKey {
            public_key_hex: public_key_hex.to_owned(),
            occurred_at: meta.occurred_at,
        };
        self.sellers.execute(seller.as_str(), command, meta).await?;
        Ok(())
    }

    pub async fn seller(&self, seller: &SellerId) -> Result<LogSeller, LogMarketError> {
        self.sellers
            .load(seller.as_str())
            .await
            .map_err(LogMarketError::from)
    }

    pub async fn analysis(&self, analysis_id: &str) -> Result<LogAnalysis, LogMarketError> {
        self.analyses
            .load(analysis_id)
            .await
            .map_err(LogMarketError::from)
    }

    /// Pays an analysis to its seller, exactly once. A seller with a registered key must sign
    /// the canonical pay message; without one, only an operator may pay.
    #[tracing::instrument(skip_all, fields(analysis = analysis_id, seller = %seller))]
    pub async fn pay(
        &self,
        analysis_id: &str,
        seller: &SellerId,
        auth: PayAuth,
        meta: &CommandMetadata,
    ) -> Result<PaymentReceipt, LogMarketError> {
        let state = self.analysis(analysis_id).await?;
        let price = state.price().ok_or(LogMarketError::NotFound)?;
        // Under a client key the transaction id is derived from the caller, the key and the
        // analysis: a pay retried after a crash finds its own payment and gets its receipt.
        let transaction_id = match &meta.idempotency_key {
            Some(key) => {
                let name = format!("pay\n{}\n{}\n{key}\n{analysis_id}", meta.tenant, meta.actor);
                let id = Uuid::new_v5(&ANALYSIS_ID_NAMESPACE, name.as_bytes());
                format!("txn-{}", id.simple())
            }
            None => format!("txn-{}", Uuid::now_v7().simple()),
        };
        if let Some(txn) = state.paid_in() {
            if txn == transaction_id {
                return Ok(receipt(&state, analysis_id, seller, txn));
            }
            return Err(LogMarketError::AlreadyPaid {
                transaction_id: txn.to_owned(),
            });
        }
        if state.seller() != Some(seller) {
            return Err(LogMarketError::Forbidden(
                "the analysis belongs to another seller".into(),
            ));
        }
        let registered = self.seller(seller).await?;
        let authorisation = match (registered.public_key_hex(), auth) {
            (Some(key), PayAuth::Signature(signature)) => {
                verify_pay_signature(key, analysis_id, seller, price, &signature).map_err(|e| {
                    match e {
                        SignatureError::Malformed => LogMarketError::BadInput(e.to_string()),
                        _ => LogMarketError::Forbidden(format!("payment signature refused: {e}")),
                    }
                })?;
                PayAuthorisation::SellerSignature {
                    public_key_hex: key.to_owned(),
                    signature_hex: signature.trim().to_ascii_lowercase(),
                }
            }
            (Some(_), _) => {
                return Err(LogMarketError::Forbidden(
                    "this seller has a registered key: the pay request needs its signature".into(),
                ))
            }
            (None, PayAuth::Operator(principal)) => PayAuthorisation::Operator { principal },
            (None, PayAuth::Signature(_)) => {
                return Err(LogMarketError::Forbidden(
                    "the seller has no registered key to verify the signature with".into(),
                ))
            }
            (None, PayAuth::None) => {
                return Err(LogMarketError::Forbidden(
                    "payment needs the seller's signature or an operator (admin, finance)".into(),
                ))
            }
        };
        let journal_entry_id = payment_entry_id(analysis_id);
        let command = LogAnalysisCommand::Pay {
            transaction_id: transaction_id.clone(),
            seller: seller.clone(),
            amount: price,
            journal_entry_id: journal_entry_id.clone(),
            agent_shares: split_payment(price, &state.paying_agents()),
            authorisation,
            occurred_at: meta.occurred_at,
        };
        self.analyses.execute(analysis_id, command, meta).await?;
        // Settle now; the process manager settles again (idempotently) if this fails or the
        // process dies here.
        let settled = self
            .settle_payment(
                analysis_id,
                seller,
                price,
                &transaction_id,
                &journal_entry_id,
                &state,
                meta,
            )
            .await;
        if let Err(e) = settled {
            tracing::warn!(error = %e, "payment recorded; settlement left to the process manager");
        }
        Ok(PaymentReceipt {
            transaction_id,
            analysis_id: analysis_id.to_owned(),
            seller: seller.clone(),
            amount: price,
            journal_entry_id,
            paid_at: meta.occurred_at,
            stage: state.stage().unwrap_or(Stage::Runtime),
            value_score: state.value_score().unwrap_or(0),
            quality: state_quality(&state),
        })
    }

    /// Records the payment's journal entry (marketplace funding → seller payable) and the
    /// seller's points. Both are idempotent.
    #[allow(clippy::too_many_arguments)]
    async fn settle_payment(
        &self,
        analysis_id: &str,
        seller: &SellerId,
        amount: Money,
        transaction_id: &str,
        journal_entry_id: &str,
        state: &LogAnalysis,
        meta: &CommandMetadata,
    ) -> Result<(), LogMarketError> {
        let payable = AccountId::seller_payable(seller.as_str())
            .map_err(|e| LogMarketError::BadInput(e.to_string()))?;
        let credit = amount
            .checked_neg()
            .map_err(|e| LogMarketError::BadInput(e.to_string()))?;
        let postings = vec![
            Posting::new(AccountId::marketplace_funding(), amount),
            Posting::new(payable, credit),
        ];
        let balances = balances_for(self.balances.as_ref(), Currency::usd(), &postings)
            .await
            .map_err(LogMarketError::Storage)?;
        let record = LedgerCommand::Record {
            currency: Currency::usd(),
            postings,
            memo: format!("log analysis {analysis_id} paid in {transaction_id}"),
            occurred_at: meta.occurred_at,
            balances,
        };
        self.journal
            .execute(journal_entry_id, record, meta)
            .await
            .map_err(|e| match e {
                CommandError::Rejected(e) => LogMarketError::Conflict(e.to_string()),
                CommandError::Conflict => LogMarketError::Conflict("journal busy".into()),
                CommandError::Storage(s) => LogMarketError::Storage(s),
            })?;
        let quality = state_quality(state);
        let credit = SellerCommand::CreditPayment {
            analysis_id: analysis_id.to_owned(),
            amount,
            quality,
            occurred_at: meta.occurred_at,
        };
        self.sellers.execute(seller.as_str(), credit, meta).await?;
        Ok(())
    }

    /// Records a reviewer's or the seller's verdict on one insight.
    pub async fn feedback(
        &self,
        analysis_id: &str,
        insight_index: u32,
        verdict: Verdict,
        reviewer: &str,
        meta: &CommandMetadata,
    ) -> Result<(), LogMarketError> {
        let command = LogAnalysisCommand::RecordFeedback {
            insight_index,
            verdict,
            reviewer: reviewer.to_owned(),
            occurred_at: meta.occurred_at,
        };
        self.analyses.execute(analysis_id, command, meta).await?;
        Ok(())
    }

    /// The process manager's reaction to one event. Idempotent: safe to deliver twice.
    pub async fn react(&self, event: &StoredEvent) -> Result<(), LogMarketError> {
        if event.aggregate_type != "log_analysis" {
            return Ok(());
        }
        let parsed: LogAnalysisEvent =
            serde_json::from_value(event.payload.clone()).map_err(|e| {
                LogMarketError::UnreadableEvent {
                    position: event.position.global_position,
                    event_type: event.event_type.clone(),
                    reason: e.to_string(),
                }
            })?;
        let mut meta = CommandMetadata::new(
            PROCESS_ACTOR,
            event.meta("tenant").unwrap_or("platform"),
            event_time(&parsed),
        )
        .map_err(|e| LogMarketError::BadInput(e.to_string()))?;
        if let Some(corr) = event.meta("correlation_id").and_then(|c| c.parse().ok()) {
            let cause = event.meta("event_id").and_then(|c| c.parse().ok());
            meta = meta.with_correlation(corr, cause);
        }
        let analysis_id = event.aggregate_id.as_str();
        match parsed {
            LogAnalysisEvent::LogAnalysisRecorded {
                seller, analysis, ..
            } => {
                self.remember_templates(analysis.templates.iter().map(|t| t.hash.clone()));
                let count = |f: &dyn Fn(InsightKind, Severity) -> bool| {
                    analysis
                        .insights
                        .iter()
                        .filter(|i| f(i.kind, i.severity))
                        .count() as u32
                };
                let credit = SellerCommand::CreditAnalysis {
                    analysis_id: analysis_id.to_owned(),
                    quality: analysis.overall_quality,
                    critical_errors: count(&|k, s| {
                        k.agent() == Agent::ErrorDetective && s == Severity::Critical
                    }),
                    security_findings: count(&|k, s| {
                        k.agent() == Agent::SecurityGuardian && s >= Severity::Medium
                    }),
                    performance_findings: count(&|k, _| k.agent() == Agent::PerformanceAnalyzer),
                    occurred_at: meta.occurred_at,
                };
                self.sellers.execute(seller.as_str(), credit, &meta).await?;
            }
            LogAnalysisEvent::AnalysisPaid {
                transaction_id,
                seller,
                amount,
                journal_entry_id,
                ..
            } => {
                let state = self.analysis(analysis_id).await?;
                self.settle_payment(
                    analysis_id,
                    &seller,
                    amount,
                    &transaction_id,
                    &journal_entry_id,
                    &state,
                    &meta,
                )
                .await?;
            }
            LogAnalysisEvent::InsightFeedbackRecorded { .. } => {}
        }
        Ok(())
    }
}

fn state_quality(state: &LogAnalysis) -> rust_decimal::Decimal {
    state.overall_quality().unwrap_or_default()
}

/// The reaction is stamped with the time of the event it reacts to, so a replay after a crash
/// writes exactly what the first delivery would have.
fn event_time(parsed: &LogAnalysisEvent) -> DateTime<Utc> {
    match parsed {
        LogAnalysisEvent::LogAnalysisRecorded { occurred_at, .. }
        | LogAnalysisEvent::AnalysisPaid { occurred_at, .. }
        | LogAnalysisEvent::InsightFeedbackRecorded { occurred_at, .. } => *occurred_at,
    }
}

/// Runs [`LogMarket::react`] over the global log from a checkpoint: at-least-once delivery of
/// idempotent reactions, so each effect happens exactly once.
pub type LogMarketProcess = ProcessRunner<LogMarket>;

/// The marketplace's process manager over `market`.
pub fn process(market: Arc<LogMarket>) -> LogMarketProcess {
    let store = market.store.clone();
    ProcessRunner::new(PROCESS_CHECKPOINT, &store, market)
}

#[async_trait::async_trait]
impl Reactor for LogMarket {
    type Error = LogMarketError;

    async fn react(&self, event: &StoredEvent) -> Result<(), LogMarketError> {
        LogMarket::react(self, event).await
    }
}

impl From<sqlx::Error> for LogMarketError {
    fn from(e: sqlx::Error) -> Self {
        storage(e)
    }
}

fn storage(e: sqlx::Error) -> LogMarketError {
    LogMarketError::Storage(e.to_string())
}
