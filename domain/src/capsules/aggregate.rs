//! The [`Capsule`] aggregate: one per capsule name (the aggregate id), holding every version's
//! life: submitted → auto-approved or queued for review → approved / rejected / changes
//! requested → published → deprecated / yanked. Every decision is an event carrying its facts
//! (who reviewed, on which risk score, what breaks), so an auditor reads the log alone.
//!
//! Rules (each has a given/when/then test in `aggregate_tests.rs`):
//! - the first submitter owns the capsule; only the owner submits versions, and only the owner
//!   or an admin deprecates or yanks;
//! - a submitted version's content is fixed: resubmitting other content for a published version
//!   is [`CapsuleError::VersionImmutable`], for a queued, approved or rejected one
//!   [`CapsuleError::VersionAlreadySubmitted`]; only after "changes requested" may the same
//!   version be submitted again. A retry with the same digests is a no-op;
//! - **any unused version may be submitted**, also one below the highest published (a backport
//!   such as 1.4.1 after 2.0.0, as npm and crates.io allow). Its "previous version" for breaking
//!   detection is the greatest published, not yanked, version below it;
//! - breaking changes against that previous version are recorded on `VersionSubmitted` and
//!   `VersionPublished`: a major bump (a minor bump below 1.0), a removed input or output, an
//!   input that became required, a port whose type changed, a permission added or removed;
//! - auto-approval needs a risk score below 0.3, no dangerous permission, and no dangerous
//!   permission added since the previous version; otherwise the version is queued with its
//!   reasons. The aggregate decides this from the facts, not from `RiskReport::auto_approve`;
//! - only a `reviewer` reviews, never their own submission, only a queued version, and only on the
//!   risk score recorded for it (a stale score is refused); rejecting or requesting changes
//!   needs notes;
//! - only an approved version is published, with an envelope whose statement names this
//!   version's digests and which carries the platform key's signature; publishing again is a
//!   no-op; only a published version is deprecated or yanked.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;
use semver::Version;
use serde::{Deserialize, Serialize};

use super::manifest::{Manifest, PortType};
use super::permissions::Permission;
use super::risk::RiskReport;
use super::signature::{CapsuleStatement, Envelope, SignatureError};
use super::CapsuleName;
use crate::access::Role;

/// Longest review note, in characters.
pub const MAX_NOTES_CHARS: usize = 4_000;
/// Longest deprecation message or yank reason, in characters.
pub const MAX_MESSAGE_CHARS: usize = 1_000;

/// Who acts, as authenticated by the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub id: String,
    pub role: Role,
}

/// Submit a version. Every fact is computed before: manifest parsed, bundle inspected and
/// stored, SBOM built, signature verified (`signer_keyid`), risk scored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitVersion {
    pub manifest: Manifest,
    /// SHA-256 of the manifest bytes as uploaded.
    pub manifest_sha256: String,
    pub bundle_sha256: String,
    pub bundle_size_bytes: u64,
    pub sbom_sha256: String,
    pub risk: RiskReport,
    /// The key id of the verified author signature, `None` when unsigned.
    pub signer_keyid: Option<String>,
    pub submitted_by: String,
    pub occurred_at: DateTime<Utc>,
}

/// What a reviewer decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    Approve,
    Reject,
    RequestChanges,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewVersion {
    pub version: Version,
    pub reviewer: Actor,
    pub decision: ReviewDecision,
    pub notes: String,
    /// The risk score the reviewer was shown.
    pub risk_score_seen: Decimal,
    pub occurred_at: DateTime<Utc>,
}

/// Publish an approved version with the platform's signature (made by the commands layer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishVersion {
    pub version: Version,
    pub envelope: Envelope,
    pub platform_keyid: String,
    pub occurred_at: DateTime<Utc>,
}

/// Deprecate (with a message) or yank (with a reason) a published version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetireVersion {
    pub version: Version,
    pub message: String,
    pub by: Actor,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CapsuleCommand {
    Submit(Box<SubmitVersion>),
    Review(ReviewVersion),
    Publish(PublishVersion),
    Deprecate(RetireVersion),
    Yank(RetireVersion),
}

/// What changed incompatibly since the previous published version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BreakingChange {
    MajorVersion {
        from: Version,
        to: Version,
    },
    InputRemoved {
        name: String,
    },
    OutputRemoved {
        name: String,
    },
    InputRequired {
        name: String,
    },
    PortTypeChanged {
        name: String,
        from: PortType,
        to: PortType,
    },
    PermissionAdded {
        permission: Permission,
    },
    PermissionRemoved {
        permission: Permission,
    },
}

/// Why a version waits for a reviewer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReviewReason {
    RiskScore { score: Decimal },
    DangerousPermissions { permissions: BTreeSet<Permission> },
    DangerousPermissionsAdded { permissions: BTreeSet<Permission> },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CapsuleEvent {
    VersionSubmitted {
        version: Version,
        manifest: Box<Manifest>,
        manifest_sha256: String,
        bundle_sha256: String,
        bundle_size_bytes: u64,
        sbom_sha256: String,
        risk: RiskReport,
        signer_keyid: Option<String>,
        submitted_by: String,
        previous_version: Option<Version>,
        breaking_changes: Vec<BreakingChange>,
        dangerous_permissions_added: BTreeSet<Permission>,
        occurred_at: DateTime<Utc>,
    },
    AutoApproved {
        version: Version,
        risk_score: Decimal,
        occurred_at: DateTime<Utc>,
    },
    QueuedForReview {
        version: Version,
        risk_score: Decimal,
        reasons: Vec<ReviewReason>,
        occurred_at: DateTime<Utc>,
    },
    /// Approved, rejected or changes requested, by whom, on which score, why.
    Reviewed {
        version: Version,
        decision: ReviewDecision,
        reviewer_id: String,
        notes: String,
        risk_score_seen: Decimal,
        occurred_at: DateTime<Utc>,
    },
    VersionPublished {
        version: Version,
        manifest_sha256: String,
        bundle_sha256: String,
        platform_keyid: String,
        envelope: Envelope,
        breaking_changes: Vec<BreakingChange>,
        occurred_at: DateTime<Utc>,
    },
    VersionDeprecated {
        version: Version,
        message: String,
        by: String,
        occurred_at: DateTime<Utc>,
    },
    VersionYanked {
        version: Version,
        reason: String,
        by: String,
        occurred_at: DateTime<Utc>,
    },
}

impl DomainEvent for CapsuleEvent {
    fn event_type(&self) -> String {
        match self {
            Self::VersionSubmitted { .. } => "CapsuleVersionSubmitted",
            Self::AutoApproved { .. } => "CapsuleVersionAutoApproved",
            Self::QueuedForReview { .. } => "CapsuleVersionQueuedForReview",
            Self::Reviewed { .. } => "CapsuleVersionReviewed",
            Self::VersionPublished { .. } => "CapsuleVersionPublished",
            Self::VersionDeprecated { .. } => "CapsuleVersionDeprecated",
            Self::VersionYanked { .. } => "CapsuleVersionYanked",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        crate::versioning::FIRST_VERSION.to_string()
    }
}

/// Where a version stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionStatus {
    Queued,
    ChangesRequested,
    Rejected,
    Approved,
    Published,
}

/// Why a capsule command was refused. None is retryable as is: each names a rule of the
/// aggregate's state or of the command itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapsuleError {
    #[error("{field} is not a lowercase hex SHA-256")]
    InvalidDigest { field: &'static str },
    #[error("manifest names capsule {found}, this is {expected}")]
    NameMismatch {
        expected: CapsuleName,
        found: CapsuleName,
    },
    #[error("only the capsule's owner ({owner}) may do this")]
    NotOwner { owner: String },
    #[error("version {version} is published and immutable")]
    VersionImmutable { version: Version },
    #[error("version {version} was already submitted with other content ({status:?})")]
    VersionAlreadySubmitted {
        version: Version,
        status: VersionStatus,
    },
    #[error("version {version} does not exist")]
    UnknownVersion { version: Version },
    #[error("only a reviewer may review")]
    NotAReviewer,
    #[error("a reviewer may not review their own submission")]
    SelfReview,
    #[error("version {version} is not queued for review ({status:?})")]
    NotQueued {
        version: Version,
        status: VersionStatus,
    },
    #[error("rejecting or requesting changes needs notes")]
    NotesRequired,
    #[error("notes or message longer than {max_chars} characters")]
    TextTooLong { max_chars: usize },
    #[error("a deprecation message or yank reason is required")]
    MessageRequired,
    #[error("the reviewer saw risk score {seen}; the version's score is {current}")]
    RiskScoreChanged { seen: Decimal, current: Decimal },
    #[error("version {version} is not approved ({status:?})")]
    NotApproved {
        version: Version,
        status: VersionStatus,
    },
    #[error("platform signature does not match the version: {0}")]
    PlatformSignatureMismatch(SignatureError),
    #[error("envelope has no signature by the platform key {keyid}")]
    MissingPlatformSignature { keyid: String },
    #[error("version {version} is not published ({status:?})")]
    NotPublished {
        version: Version,
        status: VersionStatus,
    },
}

impl CapsuleError {
    /// No capsule error is retryable: the same command fails the same way.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// One version's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionState {
    pub status: VersionStatus,
    pub manifest: Manifest,
    pub manifest_sha256: String,
    pub bundle_sha256: String,
    pub risk_score: Decimal,
    pub submitted_by: String,
    pub deprecated: Option<String>,
    pub yanked: bool,
    /// Whether it breaks the version before it (`breaking_changes` of its submission not
    /// empty): installations of older versions are told when it is published.
    #[serde(default)]
    pub breaking: bool,
}

/// A capsule and all its versions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capsule {
    name: Option<CapsuleName>,
    owner: Option<String>,
    versions: BTreeMap<Version, VersionState>,
}

impl Capsule {
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    pub fn version(&self, version: &Version) -> Option<&VersionState> {
        self.versions.get(version)
    }

    /// Every version, lowest first.
    pub fn versions(&self) -> impl Iterator<Item = (&Version, &VersionState)> {
        self.versions.iter()
    }

    /// The greatest published, not yanked, version below `version`.
    pub fn previous_published(&self, version: &Version) -> Option<(&Version, &VersionState)> {
        self.versions
            .range(..version.clone())
            .rev()
            .find(|(_, v)| v.status == VersionStatus::Published && !v.yanked)
    }

    pub fn decide(&self, command: CapsuleCommand) -> Result<Vec<CapsuleEvent>, CapsuleError> {
        match command {
            CapsuleCommand::Submit(c) => self.submit(*c),
            CapsuleCommand::Review(c) => self.review(c),
            CapsuleCommand::Publish(c) => self.publish(c),
            CapsuleCommand::Deprecate(c) => self.retire(c, false),
            CapsuleCommand::Yank(c) => self.retire(c, true),
        }
    }
}

#[path = "decide.rs"]
mod decide;
pub use decide::breaking_changes;

impl Aggregate for Capsule {
    const TYPE: &'static str = "capsule";
    type Command = CapsuleCommand;
    type Event = CapsuleEvent;
    type Error = CapsuleError;
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
        decide::apply(self, event)
    }
}

#[cfg(test)]
#[path = "aggregate_tests.rs"]
mod tests;

/// The statement a version's envelopes must carry.
pub fn statement_of(
    name: &CapsuleName,
    version: &Version,
    state: &VersionState,
) -> CapsuleStatement {
    CapsuleStatement::new(
        name.as_str(),
        &version.to_string(),
        &state.manifest_sha256,
        &state.bundle_sha256,
    )
}
