//! The capsule registry's write side (issue 13): blobs, author keys, and the submission →
//! review → publication flow over the pure [`agora_domain::capsules`] rules.
//!
//! A submission is handled in this order, and a refusal before step 6 stores nothing:
//! 1. the manifest is parsed and validated (every problem with its JSON Pointer);
//! 2. the bundle is inspected under the configured [`BundleLimits`] (on the blocking pool);
//! 3. an optional DSSE envelope is verified against the author's registered keys
//!    ([`keys::AuthorKeys`]); a bad one is refused (`FORBIDDEN`);
//! 4. the risk score is computed from the catalogue's facts ([`CatalogueFacts`]);
//! 5. the SBOM is written, and the decision is dry-run on the current aggregate;
//! 6. bundle, manifest, SBOM (and envelope) are stored content-addressed ([`blobs`]);
//! 7. `CapsuleCommand::Submit` is appended; an auto-approved version is published at once with
//!    the platform's signature added to the author's envelope (or a new one).
//!
//! The author's envelope is not on `VersionSubmitted` (the domain event has no field for it):
//! its blob digest travels as the event metadata tag `tag.author_envelope_sha256`, which the
//! publication reads back from the log.

pub mod blobs;
pub mod collections;
pub mod installs;
pub mod keys;
pub mod notices;
pub mod reviews;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use agora_domain::access::Role;
use agora_domain::capsules::aggregate::{
    statement_of, Actor, Capsule, CapsuleCommand, CapsuleError, PublishVersion, RetireVersion,
    ReviewDecision, ReviewVersion, SubmitVersion, VersionStatus,
};
use agora_domain::capsules::bundle::{self, BundleError, BundleLimits};
use agora_domain::capsules::collection::{Collection, CollectionError};
use agora_domain::capsules::community::{CapsuleReview, ReviewError};
use agora_domain::capsules::install::{InstallError, Installation};
use agora_domain::capsules::manifest::{self, ManifestError};
use agora_domain::capsules::resolve::ResolveError;
use agora_domain::capsules::risk::{self, AuthorHistory, RiskInput, RiskReport};
use agora_domain::capsules::sbom::{self, SbomInput};
use agora_domain::capsules::signature::{self, CapsuleStatement, Envelope, SignatureError};
use agora_domain::capsules::CapsuleName;
use async_trait::async_trait;
use ed25519_dalek::SigningKey;
use rust_decimal::Decimal;
use semver::Version;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::bus::{CommandBus, CommandError, CommitSignal};
use crate::metadata::CommandMetadata;
use crate::store::Store;
use blobs::{BlobError, BlobStore};
use keys::{AuthorKeyCommand, AuthorKeyError, AuthorKeys};

/// The metadata tag naming the author's envelope blob on a submission's events.
pub const ENVELOPE_TAG: &str = "author_envelope_sha256";
/// Namespace of SBOM serial numbers (UUIDv5 of `name@version:bundle digest`).
const SBOM_NAMESPACE: Uuid = Uuid::from_u128(0x6361_7073_756c_652d_7362_6f6d_2d6e_7331);
/// Most events of one capsule read back when looking for a submission's envelope.
const MAX_CAPSULE_EVENTS: i64 = 10_000;

/// Why a capsule request failed. Each maps to one GraphQL code / HTTP status in the API.
#[derive(Debug, thiserror::Error)]
pub enum CapsuleServiceError {
    /// `BAD_USER_INPUT`, with the JSON Pointer problems when the manifest was invalid.
    #[error("{0}")]
    Manifest(ManifestError),
    /// `BAD_USER_INPUT`, naming the bundle rule broken.
    #[error("{0}")]
    Bundle(BundleError),
    /// `FORBIDDEN`: the envelope does not verify against the author's registered keys.
    #[error("signature refused: {0}")]
    Signature(SignatureError),
    /// `BAD_USER_INPUT`.
    #[error("{0}")]
    Key(AuthorKeyError),
    /// The aggregate's rules refused the command.
    #[error("{0}")]
    Rejected(CapsuleError),
    /// The installation's rules refused the command.
    #[error("{0}")]
    Install(InstallError),
    /// The review's rules refused the command.
    #[error("{0}")]
    Review(ReviewError),
    /// The collection's rules refused the command.
    #[error("{0}")]
    Collection(CollectionError),
    /// No set of versions satisfies the dependency requirements (a cycle, a conflict, a name
    /// or version that does not exist, a graph too large).
    #[error("{0}")]
    Resolve(ResolveError),
    /// `BAD_USER_INPUT`.
    #[error("{0}")]
    BadInput(String),
    /// `NOT_FOUND`.
    #[error("{0} not found")]
    NotFound(String),
    /// `CONFLICT`, retryable.
    #[error("the capsule kept changing under concurrent writers; retry")]
    Busy,
    /// Internal: the store or the blob store failed.
    #[error("storage failure: {0}")]
    Storage(String),
}

impl CapsuleServiceError {
    /// The stable code (GraphQL `extensions.code`, REST `error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Manifest(_) | Self::Bundle(_) | Self::Key(_) | Self::BadInput(_) => {
                "BAD_USER_INPUT"
            }
            Self::Signature(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Busy => "CONFLICT",
            Self::Storage(_) => "INTERNAL",
            Self::Rejected(e) => match e {
                CapsuleError::NotOwner { .. }
                | CapsuleError::NotAReviewer
                | CapsuleError::SelfReview => "FORBIDDEN",
                CapsuleError::UnknownVersion { .. } => "NOT_FOUND",
                CapsuleError::InvalidDigest { .. }
                | CapsuleError::NameMismatch { .. }
                | CapsuleError::NotesRequired
                | CapsuleError::TextTooLong { .. }
                | CapsuleError::MessageRequired => "BAD_USER_INPUT",
                _ => "CONFLICT",
            },
            Self::Install(e) => match e {
                InstallError::NotInstalled => "NOT_FOUND",
                InstallError::PermissionsShownMismatch { .. }
                | InstallError::PermissionsNotApproved { .. }
                | InstallError::ApprovedPermissionsNotDeclared { .. }
                | InstallError::ReapprovalRequired { .. }
                | InstallError::TokenBudgetBelowEstimate { .. }
                | InstallError::TokenBudgetTooLarge { .. } => "BAD_USER_INPUT",
                InstallError::VersionYanked { .. }
                | InstallError::AlreadyInstalled { .. }
                | InstallError::NotAnUpgrade { .. }
                | InstallError::WrongInstallation { .. } => "CONFLICT",
            },
            Self::Review(e) => match e {
                ReviewError::StarsOutOfRange { .. }
                | ReviewError::TextTooLong { .. }
                | ReviewError::NoteRequired { .. } => "BAD_USER_INPUT",
                ReviewError::NotInstalled
                | ReviewError::NotAuthor
                | ReviewError::NotAReviewer
                | ReviewError::OwnReview => "FORBIDDEN",
                ReviewError::NoReview => "NOT_FOUND",
                ReviewError::RateLimited { .. } => "THROTTLED",
                ReviewError::AlreadyReviewed
                | ReviewError::DuplicateText { .. }
                | ReviewError::AlreadyVoted
                | ReviewError::ReviewHidden => "CONFLICT",
            },
            Self::Collection(e) => match e {
                CollectionError::InvalidTitle { .. }
                | CollectionError::DescriptionTooLong { .. } => "BAD_USER_INPUT",
                CollectionError::AdminOnly | CollectionError::NotOwner { .. } => "FORBIDDEN",
                CollectionError::NotCreated => "NOT_FOUND",
                CollectionError::AlreadyCreated
                | CollectionError::CollectionFull { .. }
                | CollectionError::CapsuleNotInCollection { .. }
                | CollectionError::EmptyCollection => "CONFLICT",
            },
            Self::Resolve(e) => match e {
                ResolveError::UnknownCapsule { .. } | ResolveError::NoMatchingVersion { .. } => {
                    "NOT_FOUND"
                }
                _ => "CONFLICT",
            },
        }
    }

    /// The rule's name (`ParentTraversal`, `VersionImmutable`, ...), for clients that branch on it.
    pub fn reason(&self) -> String {
        let debug = match self {
            Self::Manifest(e) => format!("{e:?}"),
            Self::Bundle(e) => format!("{e:?}"),
            Self::Signature(e) => format!("{e:?}"),
            Self::Key(e) => format!("{e:?}"),
            Self::Rejected(e) => format!("{e:?}"),
            Self::Install(e) => format!("{e:?}"),
            Self::Review(e) => format!("{e:?}"),
            Self::Collection(e) => format!("{e:?}"),
            Self::Resolve(e) => format!("{e:?}"),
            Self::BadInput(_) => "BadInput".into(),
            Self::NotFound(_) => "NotFound".into(),
            Self::Busy => "Busy".into(),
            Self::Storage(_) => "Storage".into(),
        };
        debug
            .split(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// The manifest's problems (JSON Pointer and message), if that is what failed.
    pub fn problems(&self) -> Option<&[manifest::Problem]> {
        match self {
            Self::Manifest(ManifestError::Invalid { problems }) => Some(problems),
            _ => None,
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Busy | Self::Storage(_))
    }
}

impl From<BlobError> for CapsuleServiceError {
    fn from(e: BlobError) -> Self {
        Self::Storage(e.to_string())
    }
}

fn command_error<E: std::error::Error>(
    e: CommandError<E>,
    rejected: impl FnOnce(E) -> CapsuleServiceError,
) -> CapsuleServiceError {
    match e {
        CommandError::Rejected(e) => rejected(e),
        CommandError::Conflict => CapsuleServiceError::Busy,
        CommandError::Storage(s) => CapsuleServiceError::Storage(s),
    }
}

fn install_error(e: InstallError) -> CapsuleServiceError {
    CapsuleServiceError::Install(e)
}

/// Facts about the catalogue the risk score needs, read from the catalogue read model.
#[async_trait]
pub trait CatalogueFacts: Send + Sync {
    /// Every capsule name in the catalogue.
    async fn existing_names(&self) -> Result<BTreeSet<String>, String>;
    /// The author's published capsules and rejected submissions.
    async fn author_history(&self, author: &str) -> Result<AuthorHistory, String>;
    /// The dependency depth recorded for each of `names` that exists (latest version).
    async fn dependency_depths(&self, names: &[String]) -> Result<BTreeMap<String, u32>, String>;
}

/// Told about submissions and publications (metrics).
pub trait CapsuleObserver: Send + Sync {
    /// `outcome`: `auto_approved`, `queued`, `refused`.
    fn submitted(&self, outcome: &str);
    /// A version was published, `seconds` after its submission was received.
    fn published(&self, seconds: f64);
    /// A capsule was installed (or the install repeated).
    fn installed(&self) {}
}

/// What a submission sends.
#[derive(Clone, Debug)]
pub struct Submission {
    pub manifest: Vec<u8>,
    pub bundle: Vec<u8>,
    /// A DSSE envelope (JSON) by the author over the manifest and bundle digests.
    pub envelope: Option<Vec<u8>>,
}

/// What a submission answers (stored as the idempotent outcome).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubmitReceipt {
    pub name: String,
    pub version: String,
    /// `queued`, `approved`, `published`, `rejected`, `changes_requested`.
    pub status: String,
    pub risk_score: Decimal,
    pub auto_approved: bool,
    pub manifest_sha256: String,
    pub bundle_sha256: String,
    pub sbom_sha256: String,
    pub signer_keyid: Option<String>,
}

/// What a review answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReviewReceipt {
    pub name: String,
    pub version: String,
    pub status: String,
}

pub fn status_str(status: VersionStatus) -> &'static str {
    match status {
        VersionStatus::Queued => "queued",
        VersionStatus::ChangesRequested => "changes_requested",
        VersionStatus::Rejected => "rejected",
        VersionStatus::Approved => "approved",
        VersionStatus::Published => "published",
    }
}

/// Settings of the registry.
#[derive(Clone, Debug, Default)]
pub struct CapsuleSettings {
    pub bundle_limits: BundleLimits,
}

/// The capsule registry service.
pub struct CapsuleService {
    store: Store,
    capsules: CommandBus<Capsule>,
    keys: CommandBus<AuthorKeys>,
    installs: CommandBus<Installation>,
    reviews: CommandBus<CapsuleReview>,
    collections: CommandBus<Collection>,
    review_facts: Option<Arc<dyn reviews::ReviewFacts>>,
    blobs: BlobStore,
    platform_key: Arc<SigningKey>,
    settings: CapsuleSettings,
    catalogue: Arc<dyn CatalogueFacts>,
    observer: Option<Arc<dyn CapsuleObserver>>,
}

/// A capsule name from user input.
pub fn capsule_name(name: &str) -> Result<CapsuleName, CapsuleServiceError> {
    CapsuleName::parse(name).map_err(|e| CapsuleServiceError::BadInput(format!("name: {e}")))
}

/// A semantic version from user input.
pub fn parse_version(version: &str) -> Result<Version, CapsuleServiceError> {
    Version::parse(version)
        .map_err(|e| CapsuleServiceError::BadInput(format!("version {version:?}: {e}")))
}

impl CapsuleService {
    pub fn new(
        store: &Store,
        signal: CommitSignal,
        blobs: BlobStore,
        platform_key: Arc<SigningKey>,
        settings: CapsuleSettings,
        catalogue: Arc<dyn CatalogueFacts>,
    ) -> Self {
        Self {
            store: store.clone(),
            capsules: CommandBus::new(store, signal.clone(), ()),
            keys: CommandBus::new(store, signal.clone(), ()),
            installs: CommandBus::new(store, signal.clone(), ()),
            reviews: CommandBus::new(store, signal.clone(), ()),
            collections: CommandBus::new(store, signal, ()),
            review_facts: None,
            blobs,
            platform_key,
            settings,
            catalogue,
            observer: None,
        }
    }

    /// Reads the spam facts of reviews from `facts` (without: no rate or duplicate check).
    pub fn with_review_facts(mut self, facts: Arc<dyn reviews::ReviewFacts>) -> Self {
        self.review_facts = Some(facts);
        self
    }

    pub fn with_observer(mut self, observer: Arc<dyn CapsuleObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    pub fn settings(&self) -> &CapsuleSettings {
        &self.settings
    }

    /// The platform's public key (hex), which signs every publication.
    pub fn platform_public_key(&self) -> ed25519_dalek::VerifyingKey {
        self.platform_key.verifying_key()
    }

    /// The capsule's current state, from its events.
    pub async fn capsule(&self, name: &CapsuleName) -> Result<Capsule, CapsuleServiceError> {
        self.capsules
            .load(name.as_str())
            .await
            .map_err(|e| command_error(e, CapsuleServiceError::Rejected))
    }

    /// An author's registered keys, from their events.
    pub async fn author_keys(&self, author: &str) -> Result<AuthorKeys, CapsuleServiceError> {
        self.keys
            .load(author)
            .await
            .map_err(|e| command_error(e, CapsuleServiceError::Key))
    }

    /// Registers an ed25519 public key (hex) for `author`; registering it again is a no-op.
    /// Returns the key id.
    #[tracing::instrument(skip_all, fields(author))]
    pub async fn register_key(
        &self,
        author: &str,
        public_key_hex: &str,
        meta: &CommandMetadata,
    ) -> Result<String, CapsuleServiceError> {
        let key = keys::parse_public_key(public_key_hex).map_err(CapsuleServiceError::Key)?;
        let command = AuthorKeyCommand::Register {
            public_key_hex: public_key_hex.trim().to_owned(),
            occurred_at: meta.occurred_at,
        };
        self.keys
            .execute(author, command, meta)
            .await
            .map_err(|e| command_error(e, CapsuleServiceError::Key))?;
        Ok(signature::key_id(&key))
    }

    /// The submission flow of the module docs.
    #[tracing::instrument(skip_all, fields(author))]
    pub async fn submit(
        &self,
        author: &str,
        submission: Submission,
        meta: &CommandMetadata,
    ) -> Result<SubmitReceipt, CapsuleServiceError> {
        let started = Instant::now();
        let result = self.submit_inner(author, submission, meta).await;
        if let Some(o) = &self.observer {
            match &result {
                Ok(r) if r.auto_approved => {
                    o.submitted("auto_approved");
                    if r.status == "published" {
                        o.published(started.elapsed().as_secs_f64());
                    }
                }
                Ok(_) => o.submitted("queued"),
                Err(e) if !e.is_retryable() => o.submitted("refused"),
                Err(_) => {}
            }
        }
        result
    }

    async fn submit_inner(
        &self,
        author: &str,
        submission: Submission,
        meta: &CommandMetadata,
    ) -> Result<SubmitReceipt, CapsuleServiceError> {
        let parsed =
            manifest::parse(&submission.manifest).map_err(CapsuleServiceError::Manifest)?;
        let limits = self.settings.bundle_limits;
        let bundle_bytes = Arc::new(submission.bundle);
        let inspected = {
            let bytes = bundle_bytes.clone();
            tokio::task::spawn_blocking(move || bundle::inspect(&bytes, &limits))
                .await
                .map_err(|e| CapsuleServiceError::Storage(format!("bundle inspection: {e}")))?
                .map_err(CapsuleServiceError::Bundle)?
        };
        let name = parsed.manifest.name.clone();
        let version = parsed.manifest.version.clone();
        let statement = CapsuleStatement::new(
            name.as_str(),
            &version.to_string(),
            &parsed.source_sha256,
            &inspected.sha256,
        );
        let signed = match &submission.envelope {
            Some(bytes) => Some(self.verify_author(author, bytes, &statement).await?),
            None => None,
        };
        let risk = self
            .risk(author, &parsed.manifest, &inspected, signed.is_some())
            .await?;
        let serial = format!(
            "urn:uuid:{}",
            Uuid::new_v5(
                &SBOM_NAMESPACE,
                format!("{name}@{version}:{}", inspected.sha256).as_bytes()
            )
        );
        let sbom_value = sbom::build(&SbomInput {
            manifest: &parsed.manifest,
            manifest_sha256: &parsed.source_sha256,
            bundle: &inspected,
            serial_number: &serial,
            timestamp: meta.occurred_at,
            tool_version: env!("CARGO_PKG_VERSION"),
        })
        .map_err(|e| CapsuleServiceError::Storage(format!("sbom: {e}")))?;
        let (sbom_bytes, sbom_sha256) = sbom::to_bytes(&sbom_value);
        let command = SubmitVersion {
            manifest: parsed.manifest.clone(),
            manifest_sha256: parsed.source_sha256.clone(),
            bundle_sha256: inspected.sha256.clone(),
            bundle_size_bytes: inspected.size_bytes,
            sbom_sha256: sbom_sha256.clone(),
            risk: risk.clone(),
            signer_keyid: signed.as_ref().map(|(keyid, _)| keyid.clone()),
            submitted_by: author.to_owned(),
            occurred_at: meta.occurred_at,
        };
        // Dry run: a refusal (an immutable version, another owner) stores nothing.
        let current = self.capsule(&name).await?;
        current
            .decide(CapsuleCommand::Submit(Box::new(command.clone())))
            .map_err(CapsuleServiceError::Rejected)?;
        // Blobs first, then the event that names them.
        self.blobs.put(&bundle_bytes).await?;
        self.blobs.put(&submission.manifest).await?;
        self.blobs.put(&sbom_bytes).await?;
        let mut meta = meta.clone();
        if let Some((_, envelope)) = &signed {
            let digest = self.blobs.put(&envelope.to_json()).await?;
            meta = meta.with_tag(ENVELOPE_TAG, &digest);
        }
        self.capsules
            .execute(
                name.as_str(),
                CapsuleCommand::Submit(Box::new(command)),
                &meta,
            )
            .await
            .map_err(|e| command_error(e, CapsuleServiceError::Rejected))?;
        let mut status = self.status_of(&name, &version).await?;
        let auto_approved = status == VersionStatus::Approved;
        if auto_approved {
            status = self.publish(&name, &version, &meta).await?;
        }
        Ok(SubmitReceipt {
            name: name.to_string(),
            version: version.to_string(),
            status: status_str(status).into(),
            risk_score: risk.score,
            auto_approved,
            manifest_sha256: parsed.source_sha256,
            bundle_sha256: inspected.sha256,
            sbom_sha256,
            signer_keyid: signed.map(|(keyid, _)| keyid),
        })
    }

    async fn verify_author(
        &self,
        author: &str,
        envelope: &[u8],
        statement: &CapsuleStatement,
    ) -> Result<(String, Envelope), CapsuleServiceError> {
        let envelope = Envelope::from_json(envelope).map_err(CapsuleServiceError::Signature)?;
        let keys = self.author_keys(author).await?.verifying_keys();
        let verified = signature::verify(&envelope, statement, &keys)
            .map_err(CapsuleServiceError::Signature)?;
        let keyid = verified
            .into_iter()
            .next()
            .ok_or(CapsuleServiceError::Signature(SignatureError::NoSignatures))?;
        Ok((keyid, envelope))
    }

    async fn risk(
        &self,
        author: &str,
        manifest: &manifest::Manifest,
        inspected: &bundle::BundleReport,
        signed: bool,
    ) -> Result<RiskReport, CapsuleServiceError> {
        let facts = |e: String| CapsuleServiceError::Storage(format!("catalogue: {e}"));
        let existing = self.catalogue.existing_names().await.map_err(facts)?;
        let history = self.catalogue.author_history(author).await.map_err(facts)?;
        let names: Vec<String> = manifest
            .dependencies
            .iter()
            .map(|d| d.name.clone())
            .collect();
        let depths = self
            .catalogue
            .dependency_depths(&names)
            .await
            .map_err(facts)?;
        let dependency_depth = if names.is_empty() {
            0
        } else {
            1 + depths.values().copied().max().unwrap_or(0)
        };
        Ok(risk::score(&RiskInput {
            manifest,
            dependency_depth,
            existing_names: &existing,
            bundle: &inspected.flags,
            author: history,
            signed,
        }))
    }

    async fn status_of(
        &self,
        name: &CapsuleName,
        version: &Version,
    ) -> Result<VersionStatus, CapsuleServiceError> {
        let capsule = self.capsule(name).await?;
        capsule
            .version(version)
            .map(|v| v.status)
            .ok_or_else(|| CapsuleServiceError::NotFound(format!("capsule {name}@{version}")))
    }

    /// The author's envelope of the latest submission of `version`, if it was signed.
    async fn author_envelope(
        &self,
        name: &CapsuleName,
        version: &Version,
    ) -> Result<Option<Envelope>, CapsuleServiceError> {
        // The submission was just appended: read its stream, not the global log's readable
        // prefix, which may not reach it yet while another transaction is open.
        let events = self
            .store
            .stream_events("capsule", name.as_str(), MAX_CAPSULE_EVENTS)
            .await
            .map_err(|e| CapsuleServiceError::Storage(e.to_string()))?;
        let wanted = version.to_string();
        let submitted = events.iter().rev().find(|e| {
            e.event_type == "CapsuleVersionSubmitted"
                && e.payload
                    .pointer("/VersionSubmitted/version")
                    .and_then(|v| v.as_str())
                    == Some(wanted.as_str())
        });
        let Some(digest) = submitted.and_then(|e| e.meta(&format!("tag.{ENVELOPE_TAG}"))) else {
            return Ok(None);
        };
        let bytes = self.blobs.get(digest).await?;
        Envelope::from_json(&bytes)
            .map(Some)
            .map_err(|e| CapsuleServiceError::Storage(format!("stored envelope: {e}")))
    }

    /// Publishes an approved version with the platform's signature; publishing a published
    /// version again is a no-op. Returns the version's status afterwards.
    pub async fn publish(
        &self,
        name: &CapsuleName,
        version: &Version,
        meta: &CommandMetadata,
    ) -> Result<VersionStatus, CapsuleServiceError> {
        let capsule = self.capsule(name).await?;
        let state = capsule
            .version(version)
            .ok_or_else(|| CapsuleServiceError::NotFound(format!("capsule {name}@{version}")))?;
        if state.status == VersionStatus::Published {
            return Ok(VersionStatus::Published);
        }
        let statement = statement_of(name, version, state);
        let envelope = match self.author_envelope(name, version).await? {
            Some(mut envelope) => {
                signature::add_signature(&mut envelope, &self.platform_key)
                    .map_err(CapsuleServiceError::Signature)?;
                envelope
            }
            None => signature::sign(&statement, &self.platform_key),
        };
        let command = PublishVersion {
            version: version.clone(),
            envelope,
            platform_keyid: signature::key_id(&self.platform_key.verifying_key()),
            occurred_at: meta.occurred_at,
        };
        self.capsules
            .execute(name.as_str(), CapsuleCommand::Publish(command), meta)
            .await
            .map_err(|e| command_error(e, CapsuleServiceError::Rejected))?;
        self.status_of(name, version).await
    }

    /// A reviewer's decision; an approval publishes the version at once. `submitted_at` (when
    /// known) times the approval for the metrics.
    #[tracing::instrument(skip_all, fields(name = %name, version = %version))]
    #[allow(clippy::too_many_arguments)]
    pub async fn review(
        &self,
        name: &CapsuleName,
        version: &Version,
        reviewer: Actor,
        decision: ReviewDecision,
        notes: &str,
        risk_score_seen: Decimal,
        submitted_at: Option<chrono::DateTime<chrono::Utc>>,
        meta: &CommandMetadata,
    ) -> Result<ReviewReceipt, CapsuleServiceError> {
        let command = ReviewVersion {
            version: version.clone(),
            reviewer,
            decision,
            notes: notes.to_owned(),
            risk_score_seen,
            occurred_at: meta.occurred_at,
        };
        self.capsules
            .execute(name.as_str(), CapsuleCommand::Review(command), meta)
            .await
            .map_err(|e| command_error(e, CapsuleServiceError::Rejected))?;
        let mut status = self.status_of(name, version).await?;
        if status == VersionStatus::Approved {
            status = self.publish(name, version, meta).await?;
            if let (Some(o), Some(at)) = (&self.observer, submitted_at) {
                let seconds = (meta.occurred_at - at).num_milliseconds().max(0) as f64 / 1000.0;
                o.published(seconds);
            }
        }
        Ok(ReviewReceipt {
            name: name.to_string(),
            version: version.to_string(),
            status: status_str(status).into(),
        })
    }

    /// Deprecates (`yank` false, with a message) or yanks (with a reason) a published version.
    pub async fn retire(
        &self,
        name: &CapsuleName,
        version: &Version,
        by: Actor,
        message: &str,
        yank: bool,
        meta: &CommandMetadata,
    ) -> Result<ReviewReceipt, CapsuleServiceError> {
        // A capsule nobody submitted has no owner: say it does not exist (the domain would
        // answer "not the owner").
        if self.capsule(name).await?.owner().is_none() {
            return Err(CapsuleServiceError::NotFound(format!("capsule {name}")));
        }
        let command = RetireVersion {
            version: version.clone(),
            message: message.to_owned(),
            by,
            occurred_at: meta.occurred_at,
        };
        let command = if yank {
            CapsuleCommand::Yank(command)
        } else {
            CapsuleCommand::Deprecate(command)
        };
        self.capsules
            .execute(name.as_str(), command, meta)
            .await
            .map_err(|e| command_error(e, CapsuleServiceError::Rejected))?;
        let status = self.status_of(name, version).await?;
        Ok(ReviewReceipt {
            name: name.to_string(),
            version: version.to_string(),
            status: status_str(status).into(),
        })
    }

    /// Checks a version as `agora verify-capsule` does, from this process's store and blobs.
    pub async fn verify(
        &self,
        name: &CapsuleName,
        version: &Version,
    ) -> Result<verify::Verified, verify::VerifyFailure> {
        let facts = verify::facts_from_log(&self.store, name, version).await?;
        verify::verify(&facts, &self.blobs, &self.platform_key.verifying_key()).await
    }
}

/// The actor of a reviewer or admin command.
pub fn actor(id: &str, role: Role) -> Actor {
    Actor {
        id: id.to_owned(),
        role,
    }
}
