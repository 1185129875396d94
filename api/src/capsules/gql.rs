//! The capsule registry over GraphQL: the catalogue, the review queue and offline verification
//! (queries); key registration, submission, review, deprecation and yanking (mutations, each
//! idempotent under the client's key). Refusals carry `extensions.code`, `extensions.reason`
//! (the rule's name) and, for a manifest, `extensions.problems` (JSON Pointer and message).

use agora_commands::capsules::{
    capsule_name, parse_version, CapsuleServiceError, ReviewReceipt, Submission, SubmitReceipt,
};
use agora_domain::access::Role;
use agora_domain::capsules::aggregate::ReviewDecision;
use agora_domain::capsules::sha256_hex;
use agora_projections::capsules::{CapsuleRow, ListFilter, VersionRow};
use async_graphql::{Context, ErrorExtensions, InputObject, Json, Object, SimpleObject};
use base64::Engine;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{actor, actor_id, outcome, read_error, Outcome, Refusal};
use crate::graphql::error::ApiError;
use crate::graphql::schema::{caller, counted, metadata, platform_caller, resolve_key, state};

type Res<T> = Result<T, async_graphql::Error>;

const ANY_ROLE: &[Role] = &Role::ALL;
/// Who submits, registers keys, deprecates and yanks.
pub const AUTHORS: &[Role] = &[Role::Author, Role::Admin];
/// Who sees the review queue (platform keys only).
pub const QUEUE_READERS: &[Role] = &[Role::Reviewer, Role::Admin, Role::Auditor];
/// Default and largest page of `capsules` and `reviewQueue`.
pub const DEFAULT_PAGE: i32 = 20;
pub const MAX_PAGE: i32 = 100;

/// A refusal as a GraphQL error with its code, reason and problems.
pub fn refusal_error(r: Refusal) -> async_graphql::Error {
    let problems = r
        .problems
        .as_ref()
        .and_then(|p| serde_json::to_value(p).ok())
        .and_then(|v| async_graphql::Value::from_json(v).ok());
    ApiError::from_stored(&r.code, r.message)
        .extend()
        .extend_with(|_, e| {
            e.set("reason", r.reason.clone());
            if let Some(p) = &problems {
                e.set("problems", p.clone());
            }
        })
}

fn settled<T>(o: Outcome<T>) -> Res<T> {
    o.map_err(refusal_error)
}

fn service_error(e: CapsuleServiceError) -> async_graphql::Error {
    match super::refusal(e) {
        Ok(r) => refusal_error(r),
        Err(api) => api.into(),
    }
}

fn page(first: Option<i32>) -> Result<i64, ApiError> {
    let n = first.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&n) {
        return Err(ApiError::BadUserInput(format!(
            "`first` must be 1..={MAX_PAGE}"
        )));
    }
    Ok(i64::from(n))
}

/// A capsule in the catalogue.
#[derive(SimpleObject)]
pub struct CapsuleSummary {
    pub name: String,
    /// `tenant/principal` of the author who first submitted it.
    pub owner: String,
    pub description: String,
    pub category: Option<String>,
    pub latest_version: String,
    pub published_version: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<CapsuleRow> for CapsuleSummary {
    fn from(r: CapsuleRow) -> Self {
        Self {
            name: r.name,
            owner: r.owner,
            description: r.description,
            category: r.category,
            latest_version: r.latest_version,
            published_version: r.published_version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// One version: its status, risk and review.
#[derive(SimpleObject)]
pub struct CapsuleVersionGql {
    pub name: String,
    pub version: String,
    /// queued, approved, published, rejected, changes_requested.
    pub status: String,
    /// The risk score, 0..=1, as a decimal string.
    pub risk_score: String,
    /// Every factor: name, weight, value, contribution, explanation.
    pub risk_factors: Json<serde_json::Value>,
    pub review_reasons: Json<serde_json::Value>,
    pub permissions: Vec<String>,
    pub breaking_changes: Json<serde_json::Value>,
    pub manifest_sha256: String,
    pub bundle_sha256: String,
    pub bundle_size_bytes: i64,
    pub sbom_sha256: String,
    pub signer_keyid: Option<String>,
    pub submitted_by: String,
    pub submitted_at: DateTime<Utc>,
    pub dependency_depth: i64,
    pub reviewed_by: Option<String>,
    pub review_decision: Option<String>,
    pub review_notes: Option<String>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub published_at: Option<DateTime<Utc>>,
    pub platform_keyid: Option<String>,
    pub deprecated: Option<String>,
    pub yanked: Option<String>,
}

impl From<VersionRow> for CapsuleVersionGql {
    fn from(r: VersionRow) -> Self {
        Self {
            name: r.name,
            version: r.version,
            status: r.status,
            risk_score: r.risk_score,
            risk_factors: Json(r.risk_factors),
            review_reasons: Json(r.review_reasons),
            permissions: r.permissions,
            breaking_changes: Json(r.breaking_changes),
            manifest_sha256: r.manifest_sha256,
            bundle_sha256: r.bundle_sha256,
            bundle_size_bytes: r.bundle_size_bytes,
            sbom_sha256: r.sbom_sha256,
            signer_keyid: r.signer_keyid,
            submitted_by: r.submitted_by,
            submitted_at: r.submitted_at,
            dependency_depth: r.dependency_depth,
            reviewed_by: r.reviewed_by,
            review_decision: r.review_decision,
            review_notes: r.review_notes,
            reviewed_at: r.reviewed_at,
            published_at: r.published_at,
            platform_keyid: r.platform_keyid,
            deprecated: r.deprecated,
            yanked: r.yanked,
        }
    }
}

/// A capsule with its versions, newest first.
#[derive(SimpleObject)]
pub struct CapsuleDetail {
    pub capsule: CapsuleSummary,
    pub versions: Vec<CapsuleVersionGql>,
}

/// The outcome of `verifyCapsule`.
#[derive(SimpleObject)]
pub struct CapsuleVerification {
    pub name: String,
    pub version: String,
    pub ok: bool,
    /// Why it failed, naming what changed or which signature is missing.
    pub failure: Option<String>,
    pub bundle_sha256: Option<String>,
    pub platform_keyid: Option<String>,
    pub author_keyid: Option<String>,
}

#[derive(SimpleObject, Serialize, Deserialize)]
pub struct CapsuleKey {
    pub author: String,
    /// Lowercase hex SHA-256 of the 32-byte public key (the DSSE `keyid`).
    pub keyid: String,
}

#[derive(SimpleObject)]
pub struct CapsuleSubmission {
    pub name: String,
    pub version: String,
    pub status: String,
    pub risk_score: String,
    pub auto_approved: bool,
    pub manifest_sha256: String,
    pub bundle_sha256: String,
    pub sbom_sha256: String,
    pub signer_keyid: Option<String>,
}

impl From<SubmitReceipt> for CapsuleSubmission {
    fn from(r: SubmitReceipt) -> Self {
        Self {
            name: r.name,
            version: r.version,
            status: r.status,
            risk_score: r.risk_score.to_string(),
            auto_approved: r.auto_approved,
            manifest_sha256: r.manifest_sha256,
            bundle_sha256: r.bundle_sha256,
            sbom_sha256: r.sbom_sha256,
            signer_keyid: r.signer_keyid,
        }
    }
}

#[derive(SimpleObject)]
pub struct CapsuleVersionStatus {
    pub name: String,
    pub version: String,
    pub status: String,
}

impl From<ReviewReceipt> for CapsuleVersionStatus {
    fn from(r: ReviewReceipt) -> Self {
        Self {
            name: r.name,
            version: r.version,
            status: r.status,
        }
    }
}

#[derive(InputObject)]
pub struct SubmitCapsuleInput {
    /// The manifest's YAML text.
    pub manifest: String,
    /// The `.tar.gz` bundle, standard base64 (small bundles; large ones go through the REST
    /// multipart route).
    pub bundle_base64: String,
    /// A DSSE envelope (JSON) by the author over the manifest and bundle digests.
    pub envelope: Option<String>,
}

#[derive(Default)]
pub struct CapsuleQuery;

#[Object]
impl CapsuleQuery {
    /// A capsule and its versions (any key); null when no such capsule.
    async fn capsule(&self, ctx: &Context<'_>, name: String) -> Res<Option<CapsuleDetail>> {
        caller(ctx, ANY_ROLE)?;
        let q = &state(ctx).capsules.queries;
        let Some(row) = q.capsule(&name).await.map_err(read_error)? else {
            return Ok(None);
        };
        let versions = q.versions(&name).await.map_err(read_error)?;
        Ok(Some(CapsuleDetail {
            capsule: row.into(),
            versions: versions.into_iter().map(Into::into).collect(),
        }))
    }

    /// Published capsules by name (any key): `q` a plain case-insensitive substring of the name
    /// or description, `category` exact; `after` a name. Reviewers, auditors and admins may
    /// add `includeUnpublished`.
    async fn capsules(
        &self,
        ctx: &Context<'_>,
        q: Option<String>,
        category: Option<String>,
        include_unpublished: Option<bool>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Res<Vec<CapsuleSummary>> {
        let p = caller(ctx, ANY_ROLE)?;
        let include_unpublished = include_unpublished.unwrap_or(false);
        if include_unpublished && !(QUEUE_READERS.contains(&p.role) && p.is_platform()) {
            return Err(ApiError::Forbidden(
                "only platform reviewers, auditors and admins list unpublished capsules".into(),
            )
            .into());
        }
        let filter = ListFilter {
            q,
            category,
            include_unpublished,
        };
        let rows = state(ctx)
            .capsules
            .queries
            .list(&filter, after.as_deref(), page(first)?)
            .await
            .map_err(read_error)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Versions waiting for a reviewer, oldest first (platform reviewers, auditors, admins).
    async fn review_queue(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
    ) -> Res<Vec<CapsuleVersionGql>> {
        platform_caller(ctx, QUEUE_READERS)?;
        let rows = state(ctx)
            .capsules
            .queries
            .review_queue(page(first)?)
            .await
            .map_err(read_error)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Re-hashes a published version's stored bundle and manifest and checks the author's and
    /// the platform's signatures (any key), as `agora verify-capsule` does offline.
    async fn verify_capsule(
        &self,
        ctx: &Context<'_>,
        name: String,
        version: String,
    ) -> Res<CapsuleVerification> {
        caller(ctx, ANY_ROLE)?;
        let n = capsule_name(&name).map_err(service_error)?;
        let v = parse_version(&version).map_err(service_error)?;
        let result = state(ctx).capsules.service.verify(&n, &v).await;
        Ok(match result {
            Ok(ok) => CapsuleVerification {
                name,
                version,
                ok: true,
                failure: None,
                bundle_sha256: Some(ok.bundle_sha256),
                platform_keyid: Some(ok.platform_keyid),
                author_keyid: ok.author_keyid,
            },
            Err(agora_commands::capsules::verify::VerifyFailure::Storage(e)) => {
                return Err(ApiError::internal("capsule verification", e).into())
            }
            Err(e) => CapsuleVerification {
                name,
                version,
                ok: false,
                failure: Some(e.to_string()),
                bundle_sha256: None,
                platform_keyid: None,
                author_keyid: None,
            },
        })
    }
}

#[derive(Default)]
pub struct CapsuleMutation;

/// Runs `f` once per idempotency key for the caller, keeping refusals as outcomes.
async fn once<T, F, Fut>(
    ctx: &Context<'_>,
    roles: &[Role],
    op: &str,
    key: Option<String>,
    request: serde_json::Value,
    f: F,
) -> Res<T>
where
    T: Serialize + serde::de::DeserializeOwned,
    F: FnOnce(agora_commands::CommandMetadata) -> Fut,
    Fut: std::future::Future<Output = Result<T, CapsuleServiceError>>,
{
    let p = caller(ctx, roles)?;
    let key = resolve_key(ctx, key)?;
    let s = state(ctx);
    let result: Result<Outcome<T>, ApiError> = s
        .idempotency
        .once(p, &key, &request, || async {
            let meta = metadata(ctx, p, &key)?;
            outcome(f(meta)).await
        })
        .await;
    settled(counted(s, op, result)?)
}

#[Object]
impl CapsuleMutation {
    /// Registers an ed25519 public key (64 hex characters) for the calling author; submissions
    /// signed with it verify. Registering it again is a no-op.
    async fn register_capsule_key(
        &self,
        ctx: &Context<'_>,
        public_key: String,
        idempotency_key: Option<String>,
    ) -> Res<CapsuleKey> {
        let p = caller(ctx, AUTHORS)?;
        let author = actor_id(p);
        let request = json!({"registerCapsuleKey": {"publicKey": &public_key}});
        let service = &state(ctx).capsules.service;
        once(
            ctx,
            AUTHORS,
            "capsule_key",
            idempotency_key,
            request,
            |meta| async move {
                let keyid = service.register_key(&author, &public_key, &meta).await?;
                Ok(CapsuleKey { author, keyid })
            },
        )
        .await
    }

    /// Submits a capsule version: the manifest's YAML, the bundle as base64 and an optional
    /// DSSE envelope. Answers its status (`published` when auto-approved, else `queued`).
    async fn submit_capsule(
        &self,
        ctx: &Context<'_>,
        input: SubmitCapsuleInput,
        idempotency_key: Option<String>,
    ) -> Res<CapsuleSubmission> {
        let p = caller(ctx, AUTHORS)?;
        let bundle = base64::engine::general_purpose::STANDARD
            .decode(input.bundle_base64.trim())
            .map_err(|e| ApiError::BadUserInput(format!("bundleBase64: {e}")))?;
        let request = json!({"submitCapsule": {
            "manifest_sha256": sha256_hex(input.manifest.as_bytes()),
            "bundle_sha256": sha256_hex(&bundle),
            "envelope": &input.envelope,
        }});
        let author = actor_id(p);
        let submission = Submission {
            manifest: input.manifest.into_bytes(),
            bundle,
            envelope: input.envelope.map(String::into_bytes),
        };
        let service = &state(ctx).capsules.service;
        let receipt: SubmitReceipt = once(
            ctx,
            AUTHORS,
            "capsule",
            idempotency_key,
            request,
            |meta| async move { service.submit(&author, submission, &meta).await },
        )
        .await?;
        Ok(receipt.into())
    }

    /// A platform reviewer's decision on a queued version (`approve`, `reject`,
    /// `request_changes`; the last two need notes), on the risk score the reviewer saw.
    /// An approval publishes the version with the platform's signature.
    #[allow(clippy::too_many_arguments)]
    async fn review_capsule_version(
        &self,
        ctx: &Context<'_>,
        name: String,
        version: String,
        decision: String,
        notes: Option<String>,
        risk_score: String,
        idempotency_key: Option<String>,
    ) -> Res<CapsuleVersionStatus> {
        let p = platform_caller(ctx, &[Role::Reviewer])?;
        let decision_value = match decision.as_str() {
            "approve" => ReviewDecision::Approve,
            "reject" => ReviewDecision::Reject,
            "request_changes" => ReviewDecision::RequestChanges,
            other => {
                return Err(ApiError::BadUserInput(format!(
                    "decision {other:?}: approve, reject or request_changes"
                ))
                .into())
            }
        };
        let score: Decimal = risk_score
            .parse()
            .map_err(|_| ApiError::BadUserInput(format!("riskScore {risk_score:?}")))?;
        let n = capsule_name(&name).map_err(service_error)?;
        let v = parse_version(&version).map_err(service_error)?;
        let notes = notes.unwrap_or_default();
        let request = json!({"reviewCapsuleVersion": {"name": &name, "version": &version,
            "decision": &decision, "notes": &notes, "riskScore": &risk_score}});
        let s = state(ctx);
        let submitted_at = s
            .capsules
            .queries
            .version(&name, &version)
            .await
            .ok()
            .flatten()
            .map(|row| row.submitted_at);
        let who = actor(p);
        let receipt: ReviewReceipt = once(
            ctx,
            &[Role::Reviewer],
            "capsule",
            idempotency_key,
            request,
            |meta| async move {
                s.capsules
                    .service
                    .review(
                        &n,
                        &v,
                        who,
                        decision_value,
                        &notes,
                        score,
                        submitted_at,
                        &meta,
                    )
                    .await
            },
        )
        .await?;
        Ok(receipt.into())
    }

    /// Deprecates a published version with a message (its owner, or a platform admin).
    async fn deprecate_capsule_version(
        &self,
        ctx: &Context<'_>,
        name: String,
        version: String,
        message: String,
        idempotency_key: Option<String>,
    ) -> Res<CapsuleVersionStatus> {
        retire(ctx, name, version, message, false, idempotency_key).await
    }

    /// Yanks a published version with a reason (its owner, or a platform admin).
    async fn yank_capsule_version(
        &self,
        ctx: &Context<'_>,
        name: String,
        version: String,
        reason: String,
        idempotency_key: Option<String>,
    ) -> Res<CapsuleVersionStatus> {
        retire(ctx, name, version, reason, true, idempotency_key).await
    }
}

async fn retire(
    ctx: &Context<'_>,
    name: String,
    version: String,
    message: String,
    yank: bool,
    key: Option<String>,
) -> Res<CapsuleVersionStatus> {
    let p = caller(ctx, AUTHORS)?;
    let n = capsule_name(&name).map_err(service_error)?;
    let v = parse_version(&version).map_err(service_error)?;
    let op = if yank { "yank" } else { "deprecate" };
    let request = json!({op: {"name": &name, "version": &version, "message": &message}});
    let who = actor(p);
    let service = &state(ctx).capsules.service;
    let receipt: ReviewReceipt = once(ctx, AUTHORS, "capsule", key, request, |meta| async move {
        service.retire(&n, &v, who, &message, yank, &meta).await
    })
    .await?;
    Ok(receipt.into())
}
