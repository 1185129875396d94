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
use agora_domain::logmarket::claims::{
    seller_digest_id, template_claim_id, ClaimCommand, ClaimError, SellerLogDigest, TemplateClaim,
};
use agora_domain::logmarket::insight::{Agent, InsightKind, Severity};
use agora_domain::logmarket::seller::{
    verify_pay_signature, LogSeller, SellerCommand, SellerError, SignatureError,
};
use agora_domain::money::{Currency, Money};
use chrono::{DateTime, Utc};
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
    /// A rule refuses the request as it stands.
    #[error("{0}")]
    Conflict(String),
    /// Contention: the target kept changing under concurrent writers; a retry may succeed.
    #[error("{0}")]
    Busy(String),
    /// The seller's earlier analysis of the same log content is the payable one.
    #[error("the seller's analysis {first} of the same log content was the payable one")]
    DuplicateContent { first: String },
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
            CommandError::Conflict => Self::Busy("analysis kept changing; retry".into()),
            CommandError::Storage(s) => Self::Storage(s),
        }
    }
}

impl From<CommandError<ClaimError>> for LogMarketError {
    fn from(e: CommandError<ClaimError>) -> Self {
        match e {
            CommandError::Rejected(e) => Self::Conflict(e.to_string()),
            CommandError::Conflict => Self::Busy("claim kept changing; retry".into()),
            CommandError::Storage(s) => Self::Storage(s),
        }
    }
}

impl From<CommandError<SellerError>> for LogMarketError {
    fn from(e: CommandError<SellerError>) -> Self {
        match e {
            CommandError::Rejected(
                e @ (SellerError::NoPendingKey | SellerError::PendingKeyMismatch { .. }),
            ) => Self::Conflict(e.to_string()),
            CommandError::Rejected(e) => Self::BadInput(e.to_string()),
            CommandError::Conflict => Self::Busy("seller kept changing; retry".into()),
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

/// Passes of "analyse, claim the new templates": a second pass only drops templates lost to
/// other analyses, so it never finds one it has not claimed.
const MAX_CLAIM_PASSES: usize = 3;

/// Namespace of analysis ids derived from a client key (UUIDv5).
const ANALYSIS_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6d1f_5b0a_4c2e_4f7e_9a31_7c55_e2b8_04d1);

/// The marketplace's command side.
pub struct LogMarket {
    store: Store,
    config: MarketConfig,
    analyses: CommandBus<LogAnalysis>,
    sellers: CommandBus<LogSeller>,
    journal: CommandBus<JournalEntry>,
    templates: CommandBus<TemplateClaim>,
    digests: CommandBus<SellerLogDigest>,
    /// Template hashes known to be claimed (a cache of the `TemplateClaim` aggregates, loaded
    /// at start from the templates read model): a template in it is not new; one not in it is
    /// new only if this analysis wins its claim. Copied on write: an analysis reads a snapshot
    /// (an `Arc` clone) and holds no lock while it runs.
    known: RwLock<Arc<HashSet<String>>>,
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
            templates: CommandBus::new(store, signal.clone(), ()),
            digests: CommandBus::new(store, signal.clone(), ()),
            journal: CommandBus::new(store, signal, ()),
            known: RwLock::new(Arc::default()),
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
        let first = self
            .analyse_off_runtime(&content, stage, HashSet::new(), HashSet::new())
            .await?;
        let (analysis, claimed_templates) = self
            .claim_templates(&analysis_id, &content, stage, first, meta)
            .await?;
        let command = LogAnalysisCommand::Record {
            seller: seller.clone(),
            stage,
            analysis: Box::new(analysis.clone()),
            claimed_templates,
            occurred_at: meta.occurred_at,
        };
        self.analyses.execute(&analysis_id, command, meta).await?;
        self.remember_templates(analysis.templates.iter().map(|t| t.hash.clone()));
        Ok((analysis_id, analysis))
    }

    /// Runs the CPU-bound analysis on tokio's blocking pool (at most
    /// [`MAX_CONCURRENT_ANALYSES`] at once), counting as known a snapshot of the cached
    /// templates and `lost` (templates this analysis lost to others' claims), but never
    /// `mine` (templates this analysis already claimed: another analysis that saw them later
    /// may have put them in the cache meanwhile); no lock is held while it runs.
    async fn analyse_off_runtime(
        &self,
        content: &Arc<str>,
        stage: Stage,
        lost: HashSet<String>,
        mine: HashSet<String>,
    ) -> Result<Analysis, LogMarketError> {
        let _permit = self
            .analysing
            .acquire()
            .await
            .map_err(|e| LogMarketError::Storage(format!("analysis pool closed: {e}")))?;
        let known = Arc::clone(&self.known.read().unwrap_or_else(|e| e.into_inner()));
        let config = self.config.clone();
        let content = Arc::clone(content);
        let task = tokio::task::spawn_blocking(move || {
            analysis::analyse(&content, stage, &config, &|h| {
                !mine.contains(h) && (known.contains(h) || lost.contains(h))
            })
        });
        let analysis = task
            .await
            .map_err(|e| LogMarketError::Storage(format!("analysis worker failed: {e}")))??;
        Ok(analysis)
    }

    /// Claims each template `analysis` judged new; a template another analysis claimed first is
    /// not new, and the log is analysed again without it. Returns the final analysis and the
    /// templates it claimed. Bounded: a second pass judges new only templates already claimed.
    async fn claim_templates(
        &self,
        analysis_id: &str,
        content: &Arc<str>,
        stage: Stage,
        mut analysis: Analysis,
        meta: &CommandMetadata,
    ) -> Result<(Analysis, Vec<String>), LogMarketError> {
        let mut lost = HashSet::new();
        let mut claimed = Vec::new();
        for _ in 0..MAX_CLAIM_PASSES {
            let mut lost_now = false;
            for t in analysis.templates.iter().filter(|t| t.new) {
                if claimed.contains(&t.hash) {
                    continue;
                }
                let command = ClaimCommand {
                    analysis_id: analysis_id.to_owned(),
                    occurred_at: meta.occurred_at,
                };
                match self
                    .templates
                    .execute(&template_claim_id(&t.hash), command, meta)
                    .await
                {
                    Ok(()) => claimed.push(t.hash.clone()),
                    Err(CommandError::Rejected(ClaimError::AlreadyClaimed { .. })) => {
                        lost.insert(t.hash.clone());
                        lost_now = true;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if !lost_now {
                claimed.retain(|h| analysis.templates.iter().any(|t| t.new && &t.hash == h));
                return Ok((analysis, claimed));
            }
            self.remember_templates(lost.iter().cloned());
            let mine = claimed.iter().cloned().collect();
            analysis = self
                .analyse_off_runtime(content, stage, lost.clone(), mine)
                .await?;
        }
        Err(LogMarketError::Busy(
            "template claims kept changing; retry".into(),
        ))
    }

    /// An operator (admin, finance) sets a seller's payment key: active at once.
    pub async fn register_key(
        &self,
        seller: &SellerId,
        public_key_hex: &str,
        operator: &str,
        meta: &CommandMetadata,
    ) -> Result<(), LogMarketError> {
        let command = SellerCommand::RegisterKey {
            public_key_hex: public_key_hex.to_owned(),
            operator: operator.to_owned(),
            occurred_at: meta.occurred_at,
        };
        self.sellers.execute(seller.as_str(), command, meta).await?;
        Ok(())
    }

    /// A seller asks for a payment key: pending until an operator approves it.
    pub async fn request_key(
        &self,
        seller: &SellerId,
        public_key_hex: &str,
        requested_by: &str,
        meta: &CommandMetadata,
    ) -> Result<(), LogMarketError> {
        let command = SellerCommand::RequestKey {
            public_key_hex: public_key_hex.to_owned(),
            requested_by: requested_by.to_owned(),
            occurred_at: meta.occurred_at,
        };
        self.sellers.execute(seller.as_str(), command, meta).await?;
        Ok(())
    }

    /// An operator approves the seller's pending key (named, so the approval is of that key).
    pub async fn approve_key(
        &self,
        seller: &SellerId,
        public_key_hex: &str,
        operator: &str,
        meta: &CommandMetadata,
    ) -> Result<(), LogMarketError> {
        let command = SellerCommand::ApproveKey {
            public_key_hex: public_key_hex.to_owned(),
            operator: operator.to_owned(),
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
        // The seller first: another seller (another tenant's included) learns nothing about
        // this analysis, not even whether it was paid.
        if state.seller() != Some(seller) {
            return Err(LogMarketError::Forbidden(
                "the analysis belongs to another seller".into(),
            ));
        }
        if let Some(txn) = state.paid_in() {
            if txn == transaction_id {
                return Ok(receipt(&state, analysis_id, seller, txn));
            }
            return Err(LogMarketError::AlreadyPaid {
                transaction_id: txn.to_owned(),
            });
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
        self.claim_content(analysis_id, seller, &state, meta)
            .await?;
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

    /// The same log content from one seller is paid once: the first analysis of it to be paid
    /// claims the seller's digest (a `SellerLogDigest`, first writer wins); another analysis
    /// of that content is refused. Claimed before the payment, so a pay retried after a crash
    /// between the two finds its own claim.
    async fn claim_content(
        &self,
        analysis_id: &str,
        seller: &SellerId,
        state: &LogAnalysis,
        meta: &CommandMetadata,
    ) -> Result<(), LogMarketError> {
        let Some(sha256) = state.analysis().map(|a| a.log_sha256.clone()) else {
            return Err(LogMarketError::NotFound);
        };
        let command = ClaimCommand {
            analysis_id: analysis_id.to_owned(),
            occurred_at: meta.occurred_at,
        };
        match self
            .digests
            .execute(&seller_digest_id(seller, &sha256), command, meta)
            .await
        {
            Ok(()) => Ok(()),
            Err(CommandError::Rejected(ClaimError::AlreadyClaimed { owner })) => {
                Err(LogMarketError::DuplicateContent { first: owner })
            }
            Err(e) => Err(e.into()),
        }
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
                CommandError::Conflict => LogMarketError::Busy("journal busy".into()),
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

    /// Contention passes: the event is tried again, never parked.
    fn is_transient(error: &LogMarketError) -> bool {
        matches!(error, LogMarketError::Busy(_))
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
