//! The `LogSeller` aggregate (the seed's sub-PKP): its registered payment key, game points and
//! achievements. Credits are idempotent per analysis, so the process manager that feeds them
//! may deliver an event twice without double counting.

use std::collections::{BTreeSet, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use ed25519_dalek::{Signature, VerifyingKey};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::analysis::SellerId;
use super::pricing::{points_for_payment, points_multiplier};
use crate::money::Money;

/// The seed's five achievements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Achievement {
    DataDetective,
    SecuritySentinel,
    PerformancePro,
    LogMaster,
    QualityChampion,
}

/// Logs over which Quality Champion's average is kept.
pub const QUALITY_CHAMPION_LOGS: usize = 50;

impl Achievement {
    pub const ALL: [Achievement; 5] = [
        Achievement::DataDetective,
        Achievement::SecuritySentinel,
        Achievement::PerformancePro,
        Achievement::LogMaster,
        Achievement::QualityChampion,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Achievement::DataDetective => "data-detective",
            Achievement::SecuritySentinel => "security-sentinel",
            Achievement::PerformancePro => "performance-pro",
            Achievement::LogMaster => "log-master",
            Achievement::QualityChampion => "quality-champion",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Achievement::DataDetective => "Data Detective",
            Achievement::SecuritySentinel => "Security Sentinel",
            Achievement::PerformancePro => "Performance Pro",
            Achievement::LogMaster => "Log Master",
            Achievement::QualityChampion => "Quality Champion",
        }
    }

    pub fn requirement(self) -> &'static str {
        match self {
            Achievement::DataDetective => "Generate 10 critical error insights",
            Achievement::SecuritySentinel => "Find 5 security vulnerabilities",
            Achievement::PerformancePro => "Identify 20 performance issues",
            Achievement::LogMaster => "Earn $1000 from log data",
            Achievement::QualityChampion => "Maintain 90+ average quality for 50 logs",
        }
    }

    /// XP awarded on unlocking.
    pub fn xp(self) -> u64 {
        match self {
            Achievement::DataDetective => 500,
            Achievement::SecuritySentinel => 1000,
            Achievement::PerformancePro => 750,
            Achievement::LogMaster => 2000,
            Achievement::QualityChampion => 1500,
        }
    }
}

/// The canonical message a seller signs to authorise a payment: three lines, UTF-8, no
/// trailing newline; the seller as its `subPKPId` (the analysis id already names one tenant's
/// seller); the amount with exactly two decimals.
pub fn pay_message(analysis_id: &str, seller: &SellerId, amount: Money) -> String {
    format!(
        "agora-logmarket-pay-v1\nanalysis:{analysis_id}\nseller:{}\namount:{}",
        seller.sub_pkp_id(),
        amount.round_to_cents_half_even()
    )
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("public key must be 32 bytes of hex and a valid ed25519 point")]
    BadPublicKey,
    #[error("signature must be 64 bytes of hex")]
    Malformed,
    #[error("signature does not verify")]
    Invalid,
}

/// Parses an ed25519 public key from hex.
pub fn parse_public_key(hex_key: &str) -> Result<VerifyingKey, SignatureError> {
    let bytes: [u8; 32] = hex::decode(hex_key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(SignatureError::BadPublicKey)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| SignatureError::BadPublicKey)
}

/// A parsed key in its stored form (trimmed, lower-case hex).
fn normalised_key(public_key_hex: &str) -> Result<String, SignatureError> {
    parse_public_key(public_key_hex)?;
    Ok(public_key_hex.trim().to_ascii_lowercase())
}

/// Verifies a seller's signature over [`pay_message`] (strict verification: no malleable or
/// small-order signatures).
pub fn verify_pay_signature(
    public_key_hex: &str,
    analysis_id: &str,
    seller: &SellerId,
    amount: Money,
    signature_hex: &str,
) -> Result<(), SignatureError> {
    let key = parse_public_key(public_key_hex)?;
    let bytes: [u8; 64] = hex::decode(signature_hex.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(SignatureError::Malformed)?;
    let signature = Signature::from_bytes(&bytes);
    let message = pay_message(analysis_id, seller, amount);
    key.verify_strict(message.as_bytes(), &signature)
        .map_err(|_| SignatureError::Invalid)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SellerCommand {
    /// An operator (admin, finance) sets the seller's payment key (onboarding, or a rotation
    /// the operator vouches for): it is active at once.
    RegisterKey {
        public_key_hex: String,
        operator: String,
        occurred_at: DateTime<Utc>,
    },
    /// The seller asks for a payment key (a first one or a rotation): pending until an operator
    /// approves it, so a seller cannot mint payouts on its own. The active key stays until then.
    RequestKey {
        public_key_hex: String,
        requested_by: String,
        occurred_at: DateTime<Utc>,
    },
    /// An operator approves the pending key; naming the key guards against approving a request
    /// made after the operator looked.
    ApproveKey {
        public_key_hex: String,
        operator: String,
        occurred_at: DateTime<Utc>,
    },
    /// Counts an analysis towards the insight and quality achievements.
    CreditAnalysis {
        analysis_id: String,
        quality: Decimal,
        critical_errors: u32,
        security_findings: u32,
        performance_findings: u32,
        occurred_at: DateTime<Utc>,
    },
    /// Awards points for a payment and counts it towards Log Master.
    CreditPayment {
        analysis_id: String,
        amount: Money,
        quality: Decimal,
        occurred_at: DateTime<Utc>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SellerEvent {
    /// The active payment key. Events stored before approvals existed have no `approved_by`
    /// (and stay active).
    SellerKeyRegistered {
        public_key_hex: String,
        #[serde(default)]
        approved_by: Option<String>,
        occurred_at: DateTime<Utc>,
    },
    /// A key the seller asked for, waiting for an operator's approval.
    SellerKeyRequested {
        public_key_hex: String,
        requested_by: String,
        occurred_at: DateTime<Utc>,
    },
    AnalysisCredited {
        analysis_id: String,
        quality: Decimal,
        critical_errors: u32,
        security_findings: u32,
        performance_findings: u32,
        occurred_at: DateTime<Utc>,
    },
    PointsAwarded {
        analysis_id: String,
        amount: Money,
        quality: Decimal,
        multiplier: Decimal,
        points: u64,
        occurred_at: DateTime<Utc>,
    },
    AchievementUnlocked {
        achievement: Achievement,
        xp: u64,
        /// The analysis whose credit crossed the threshold.
        analysis_id: String,
        occurred_at: DateTime<Utc>,
    },
}

impl DomainEvent for SellerEvent {
    fn event_type(&self) -> String {
        match self {
            Self::SellerKeyRegistered { .. } => "SellerKeyRegistered",
            Self::SellerKeyRequested { .. } => "SellerKeyRequested",
            Self::AnalysisCredited { .. } => "AnalysisCredited",
            Self::PointsAwarded { .. } => "PointsAwarded",
            Self::AchievementUnlocked { .. } => "AchievementUnlocked",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SellerError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("earnings out of range")]
    EarningsOutOfRange,
    #[error("the seller has no pending payment key to approve")]
    NoPendingKey,
    #[error("the pending payment key is {pending}, not the key named for approval")]
    PendingKeyMismatch { pending: String },
}

impl SellerError {
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// One seller. The aggregate id is the seller id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogSeller {
    public_key_hex: Option<String>,
    #[serde(default)]
    pending_key_hex: Option<String>,
    credited: HashSet<String>,
    paid: HashSet<String>,
    critical_errors: u64,
    security_findings: u64,
    performance_findings: u64,
    earnings: Money,
    recent_quality: VecDeque<Decimal>,
    unlocked: BTreeSet<Achievement>,
}

impl Default for LogSeller {
    fn default() -> Self {
        Self {
            public_key_hex: None,
            pending_key_hex: None,
            credited: HashSet::new(),
            paid: HashSet::new(),
            critical_errors: 0,
            security_findings: 0,
            performance_findings: 0,
            earnings: Money::ZERO,
            recent_quality: VecDeque::new(),
            unlocked: BTreeSet::new(),
        }
    }
}

impl LogSeller {
    pub fn public_key_hex(&self) -> Option<&str> {
        self.public_key_hex.as_deref()
    }

    /// A key the seller asked for that no operator approved yet.
    pub fn pending_key_hex(&self) -> Option<&str> {
        self.pending_key_hex.as_deref()
    }

    pub fn unlocked(&self) -> &BTreeSet<Achievement> {
        &self.unlocked
    }

    fn reached(&self, a: Achievement) -> bool {
        match a {
            Achievement::DataDetective => self.critical_errors >= 10,
            Achievement::SecuritySentinel => self.security_findings >= 5,
            Achievement::PerformancePro => self.performance_findings >= 20,
            Achievement::LogMaster => self.earnings.as_decimal() >= Decimal::from(1000),
            Achievement::QualityChampion => {
                self.recent_quality.len() >= QUALITY_CHAMPION_LOGS
                    && self.recent_quality.iter().sum::<Decimal>()
                        >= Decimal::from(90 * QUALITY_CHAMPION_LOGS as u64)
            }
        }
    }

    /// Applies `first` to a copy and returns it with the achievements it newly unlocks.
    fn with_unlocks(
        &self,
        first: SellerEvent,
        analysis_id: &str,
        occurred_at: DateTime<Utc>,
    ) -> Vec<SellerEvent> {
        let mut next = self.clone();
        next.apply(first.clone());
        let mut events = vec![first];
        for a in Achievement::ALL {
            if !self.unlocked.contains(&a) && next.reached(a) {
                events.push(SellerEvent::AchievementUnlocked {
                    achievement: a,
                    xp: a.xp(),
                    analysis_id: analysis_id.to_owned(),
                    occurred_at,
                });
            }
        }
        events
    }

    pub fn decide(&self, command: SellerCommand) -> Result<Vec<SellerEvent>, SellerError> {
        match command {
            SellerCommand::RegisterKey {
                public_key_hex,
                operator,
                occurred_at,
            } => {
                let key = normalised_key(&public_key_hex)?;
                if self.public_key_hex.as_deref() == Some(key.as_str()) {
                    return Ok(vec![]);
                }
                Ok(vec![SellerEvent::SellerKeyRegistered {
                    public_key_hex: key,
                    approved_by: Some(operator),
                    occurred_at,
                }])
            }
            SellerCommand::RequestKey {
                public_key_hex,
                requested_by,
                occurred_at,
            } => {
                let key = normalised_key(&public_key_hex)?;
                if self.public_key_hex.as_deref() == Some(key.as_str())
                    || self.pending_key_hex.as_deref() == Some(key.as_str())
                {
                    return Ok(vec![]);
                }
                Ok(vec![SellerEvent::SellerKeyRequested {
                    public_key_hex: key,
                    requested_by,
                    occurred_at,
                }])
            }
            SellerCommand::ApproveKey {
                public_key_hex,
                operator,
                occurred_at,
            } => {
                let key = normalised_key(&public_key_hex)?;
                let pending = self
                    .pending_key_hex
                    .as_deref()
                    .ok_or(SellerError::NoPendingKey)?;
                if pending != key {
                    return Err(SellerError::PendingKeyMismatch {
                        pending: pending.to_owned(),
                    });
                }
                Ok(vec![SellerEvent::SellerKeyRegistered {
                    public_key_hex: key,
                    approved_by: Some(operator),
                    occurred_at,
                }])
            }
            SellerCommand::CreditAnalysis {
                analysis_id,
                quality,
                critical_errors,
                security_findings,
                performance_findings,
                occurred_at,
            } => {
                if self.credited.contains(&analysis_id) {
                    return Ok(vec![]);
                }
                let event = SellerEvent::AnalysisCredited {
                    analysis_id: analysis_id.clone(),
                    quality,
                    critical_errors,
                    security_findings,
                    performance_findings,
                    occurred_at,
                };
                Ok(self.with_unlocks(event, &analysis_id, occurred_at))
            }
            SellerCommand::CreditPayment {
                analysis_id,
                amount,
                quality,
                occurred_at,
            } => {
                if self.paid.contains(&analysis_id) {
                    return Ok(vec![]);
                }
                self.earnings
                    .checked_add(amount)
                    .map_err(|_| SellerError::EarningsOutOfRange)?;
                let event = SellerEvent::PointsAwarded {
                    analysis_id: analysis_id.clone(),
                    amount,
                    quality,
                    multiplier: points_multiplier(quality),
                    points: points_for_payment(amount, quality),
                    occurred_at,
                };
                Ok(self.with_unlocks(event, &analysis_id, occurred_at))
            }
        }
    }
}

impl Aggregate for LogSeller {
    const TYPE: &'static str = "log_seller";
    type Command = SellerCommand;
    type Event = SellerEvent;
    type Error = SellerError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _service: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            SellerEvent::SellerKeyRegistered { public_key_hex, .. } => {
                self.pending_key_hex = None;
                self.public_key_hex = Some(public_key_hex)
            }
            SellerEvent::SellerKeyRequested { public_key_hex, .. } => {
                self.pending_key_hex = Some(public_key_hex)
            }
            SellerEvent::AnalysisCredited {
                analysis_id,
                quality,
                critical_errors,
                security_findings,
                performance_findings,
                ..
            } => {
                self.credited.insert(analysis_id);
                self.critical_errors += u64::from(critical_errors);
                self.security_findings += u64::from(security_findings);
                self.performance_findings += u64::from(performance_findings);
                self.recent_quality.push_back(quality);
                while self.recent_quality.len() > QUALITY_CHAMPION_LOGS {
                    self.recent_quality.pop_front();
                }
            }
            SellerEvent::PointsAwarded {
                analysis_id,
                amount,
                ..
            } => {
                self.paid.insert(analysis_id);
                // Checked in decide; saturate rather than panic on replay.
                self.earnings = self.earnings.checked_add(amount).unwrap_or(self.earnings);
            }
            SellerEvent::AchievementUnlocked { achievement, .. } => {
                self.unlocked.insert(achievement);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    type Framework = TestFramework<LogSeller>;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn seller() -> SellerId {
        SellerId::parse("sub-pkp-12345").unwrap()
    }

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn credited(id: &str, quality: i64, critical: u32) -> SellerEvent {
        SellerEvent::AnalysisCredited {
            analysis_id: id.into(),
            quality: Decimal::from(quality),
            critical_errors: critical,
            security_findings: 0,
            performance_findings: 0,
            occurred_at: at(),
        }
    }

    fn credit(id: &str, quality: i64, critical: u32) -> SellerCommand {
        SellerCommand::CreditAnalysis {
            analysis_id: id.into(),
            quality: Decimal::from(quality),
            critical_errors: critical,
            security_findings: 0,
            performance_findings: 0,
            occurred_at: at(),
        }
    }

    #[test]
    fn signatures_verify_over_the_canonical_message() {
        let amount = Money::parse("11.55").unwrap();
        let message = pay_message("analysis-1", &seller(), amount);
        assert_eq!(
            message,
            "agora-logmarket-pay-v1\nanalysis:analysis-1\nseller:sub-pkp-12345\namount:11.55"
        );
        let sig = hex::encode(key().sign(message.as_bytes()).to_bytes());
        let pk = hex::encode(key().verifying_key().to_bytes());
        assert_eq!(
            verify_pay_signature(&pk, "analysis-1", &seller(), amount, &sig),
            Ok(())
        );
        // Any change of the message fails: another amount, analysis or seller.
        let other = Money::parse("11.56").unwrap();
        assert_eq!(
            verify_pay_signature(&pk, "analysis-1", &seller(), other, &sig),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verify_pay_signature(&pk, "analysis-2", &seller(), amount, &sig),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verify_pay_signature(&pk, "analysis-1", &seller(), amount, "zz"),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_pay_signature("abcd", "analysis-1", &seller(), amount, &sig),
            Err(SignatureError::BadPublicKey)
        );
    }

    fn pk(seed: u8) -> String {
        hex::encode(
            SigningKey::from_bytes(&[seed; 32])
                .verifying_key()
                .to_bytes(),
        )
    }

    fn active(pk: &str, operator: &str) -> SellerEvent {
        SellerEvent::SellerKeyRegistered {
            public_key_hex: pk.to_owned(),
            approved_by: Some(operator.to_owned()),
            occurred_at: at(),
        }
    }

    fn requested(pk: &str) -> SellerEvent {
        SellerEvent::SellerKeyRequested {
            public_key_hex: pk.to_owned(),
            requested_by: "sub-pkp-1".into(),
            occurred_at: at(),
        }
    }

    fn request(pk: &str) -> SellerCommand {
        SellerCommand::RequestKey {
            public_key_hex: pk.to_owned(),
            requested_by: "sub-pkp-1".into(),
            occurred_at: at(),
        }
    }

    fn approve(pk: &str) -> SellerCommand {
        SellerCommand::ApproveKey {
            public_key_hex: pk.to_owned(),
            operator: "finance-1".into(),
            occurred_at: at(),
        }
    }

    #[test]
    fn an_operator_registers_a_key_validated_and_idempotent() {
        let pk = pk(7);
        let register = SellerCommand::RegisterKey {
            public_key_hex: pk.clone(),
            operator: "admin".into(),
            occurred_at: at(),
        };
        Framework::with(())
            .given_no_previous_events()
            .when(register.clone())
            .then_expect_events(vec![active(&pk, "admin")]);
        Framework::with(())
            .given(vec![active(&pk, "admin")])
            .when(register)
            .then_expect_events(vec![]);
        Framework::with(())
            .given_no_previous_events()
            .when(SellerCommand::RegisterKey {
                public_key_hex: "not hex".into(),
                operator: "admin".into(),
                occurred_at: at(),
            })
            .then_expect_error(SellerError::Signature(SignatureError::BadPublicKey));
    }

    #[test]
    fn a_sellers_own_key_is_pending_until_an_operator_approves_it() {
        let (old, new) = (pk(7), pk(8));
        Framework::with(())
            .given(vec![active(&old, "admin")])
            .when(request(&new))
            .then_expect_events(vec![requested(&new)]);
        let mut seller = LogSeller::default();
        seller.apply(active(&old, "admin"));
        seller.apply(requested(&new));
        assert_eq!(seller.public_key_hex(), Some(old.as_str()), "old key stays");
        assert_eq!(seller.pending_key_hex(), Some(new.as_str()));
        Framework::with(())
            .given(vec![active(&old, "admin"), requested(&new)])
            .when(approve(&new))
            .then_expect_events(vec![active(&new, "finance-1")]);
        seller.apply(active(&new, "finance-1"));
        assert_eq!(seller.public_key_hex(), Some(new.as_str()));
        assert_eq!(seller.pending_key_hex(), None);
    }

    #[test]
    fn approval_names_the_pending_key() {
        Framework::with(())
            .given_no_previous_events()
            .when(approve(&pk(8)))
            .then_expect_error(SellerError::NoPendingKey);
        Framework::with(())
            .given(vec![requested(&pk(8))])
            .when(approve(&pk(9)))
            .then_expect_error(SellerError::PendingKeyMismatch { pending: pk(8) });
        Framework::with(())
            .given(vec![requested(&pk(8))])
            .when(request(&pk(8)))
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_key_registered_before_approvals_existed_stays_active() {
        let pk = pk(7);
        let stored = serde_json::json!({
            "SellerKeyRegistered": {"public_key_hex": pk, "occurred_at": "2026-01-01T00:00:00Z"}
        });
        let event: SellerEvent = serde_json::from_value(stored).unwrap();
        let mut seller = LogSeller::default();
        seller.apply(event);
        assert_eq!(seller.public_key_hex(), Some(pk.as_str()));
    }

    #[test]
    fn data_detective_unlocks_once_at_ten_critical_errors() {
        let given: Vec<SellerEvent> = (0..3).map(|i| credited(&format!("a{i}"), 70, 3)).collect();
        Framework::with(())
            .given(given.clone())
            .when(credit("a3", 70, 1))
            .then_expect_events(vec![
                credited("a3", 70, 1),
                SellerEvent::AchievementUnlocked {
                    achievement: Achievement::DataDetective,
                    xp: 500,
                    analysis_id: "a3".into(),
                    occurred_at: at(),
                },
            ]);
        let mut after = given;
        after.push(credited("a3", 70, 1));
        after.push(SellerEvent::AchievementUnlocked {
            achievement: Achievement::DataDetective,
            xp: 500,
            analysis_id: "a3".into(),
            occurred_at: at(),
        });
        Framework::with(())
            .given(after.clone())
            .when(credit("a4", 70, 5))
            .then_expect_events(vec![credited("a4", 70, 5)]);
        // A redelivered credit changes nothing.
        Framework::with(())
            .given(after)
            .when(credit("a3", 70, 1))
            .then_expect_events(vec![]);
    }

    #[test]
    fn quality_champion_needs_fifty_logs_averaging_ninety() {
        let given: Vec<SellerEvent> = (0..49).map(|i| credited(&format!("a{i}"), 90, 0)).collect();
        let mut events = Framework::with(())
            .given(given.clone())
            .when(credit("a49", 90, 0))
            .inspect_result()
            .unwrap();
        assert_eq!(events.len(), 2);
        assert!(matches!(
            events.pop(),
            Some(SellerEvent::AchievementUnlocked {
                achievement: Achievement::QualityChampion,
                ..
            })
        ));
        Framework::with(())
            .given(given)
            .when(credit("a49", 89, 0))
            .then_expect_events(vec![credited("a49", 89, 0)]);
    }

    #[test]
    fn payments_award_points_and_log_master() {
        let amount = Money::parse("11.55").unwrap();
        Framework::with(())
            .given_no_previous_events()
            .when(SellerCommand::CreditPayment {
                analysis_id: "a1".into(),
                amount,
                quality: Decimal::new(925, 1),
                occurred_at: at(),
            })
            .then_expect_events(vec![SellerEvent::PointsAwarded {
                analysis_id: "a1".into(),
                amount,
                quality: Decimal::new(925, 1),
                multiplier: Decimal::from(2),
                points: 230,
                occurred_at: at(),
            }]);
        let rich = SellerEvent::PointsAwarded {
            analysis_id: "a0".into(),
            amount: Money::parse("995.00").unwrap(),
            quality: Decimal::from(50),
            multiplier: Decimal::new(5, 1),
            points: 4975,
            occurred_at: at(),
        };
        let events = Framework::with(())
            .given(vec![rich])
            .when(SellerCommand::CreditPayment {
                analysis_id: "a1".into(),
                amount: Money::parse("5.00").unwrap(),
                quality: Decimal::from(50),
                occurred_at: at(),
            })
            .inspect_result()
            .unwrap();
        assert!(matches!(
            events.last(),
            Some(SellerEvent::AchievementUnlocked {
                achievement: Achievement::LogMaster,
                xp: 2000,
                ..
            })
        ));
    }
}
