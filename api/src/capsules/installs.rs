//! Installs, upgrades and uninstalls, shared by GraphQL ([`super::gql_installs`]) and REST
//! ([`super::rest_installs`]): who the installation is for, the request's checks, and the
//! idempotent run.
//!
//! An installation is for the calling principal (`user`, id `tenant/principal`, the default)
//! or for its whole tenant (`tenant`, admins only). A platform admin may name another tenant.

use std::collections::BTreeSet;

use agora_commands::capsules::capsule_name;
use agora_commands::capsules::installs::{InstallReceipt, InstallRequest};
use agora_commands::CommandMetadata;
use agora_domain::access::Role;
use agora_domain::capsules::install::Subject;
use agora_domain::capsules::permissions::Permission;
use semver::VersionReq;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{actor_id, outcome, Outcome};
use crate::app::AppState;
use crate::graphql::auth::Principal;
use crate::graphql::error::ApiError;

/// Longest version requirement accepted.
pub const MAX_REQUIREMENT_LEN: usize = 100;
/// Most permissions one request may list.
pub const MAX_PERMISSIONS: usize = 64;

/// What to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallOp {
    Install,
    Upgrade,
    Uninstall,
}

impl InstallOp {
    fn as_str(self) -> &'static str {
        match self {
            Self::Install => "install",
            Self::Upgrade => "upgrade",
            Self::Uninstall => "uninstall",
        }
    }
}

/// An install or upgrade as the client sends it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstallInput {
    /// A semantic-version requirement (`^1.2`, `>=1.0, <2`, `=1.4.0`); none: the highest
    /// published version. A bare `1.2.3` means `^1.2.3`, as in Cargo.
    pub version: Option<String>,
    /// The dangerous permissions the user approved.
    #[serde(default)]
    pub approved_permissions: Vec<String>,
    /// The permissions the client's dialog showed; none: the version's declared ones.
    pub shown_permissions: Option<Vec<String>>,
    /// Tokens allocated to the installation (install only); none: 100 runs of its estimate.
    pub token_budget: Option<u64>,
    /// `user` (default) or `tenant`.
    #[serde(rename = "for")]
    pub scope: Option<String>,
    /// With `for: tenant`, a platform admin may name the tenant; others act on their own.
    pub tenant: Option<String>,
}

fn permissions(list: &[String], field: &str) -> Result<BTreeSet<Permission>, ApiError> {
    if list.len() > MAX_PERMISSIONS {
        return Err(ApiError::BadUserInput(format!(
            "{field}: at most {MAX_PERMISSIONS} permissions"
        )));
    }
    list.iter()
        .map(|p| {
            Permission::parse(p)
                .ok_or_else(|| ApiError::BadUserInput(format!("{field}: unknown permission {p:?}")))
        })
        .collect()
}

/// Who the installation is for.
pub fn subject_for(p: &Principal, input: &InstallInput) -> Result<Subject, ApiError> {
    match input.scope.as_deref().unwrap_or("user") {
        "user" => {
            if input.tenant.is_some() {
                return Err(ApiError::BadUserInput(
                    "tenant is only for an installation `for: tenant`".into(),
                ));
            }
            Ok(Subject::User(actor_id(p)))
        }
        "tenant" => {
            p.require(&[Role::Admin])?;
            let tenant = input.tenant.clone().unwrap_or_else(|| p.tenant.clone());
            p.may_reach(&tenant, &[Role::Admin])?;
            Ok(Subject::Tenant(tenant))
        }
        other => Err(ApiError::BadUserInput(format!(
            "for must be `user` or `tenant`, not {other:?}"
        ))),
    }
}

fn requirement(version: Option<&str>) -> Result<Option<VersionReq>, ApiError> {
    let Some(v) = version.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.len() > MAX_REQUIREMENT_LEN {
        return Err(ApiError::BadUserInput(format!(
            "version: at most {MAX_REQUIREMENT_LEN} characters"
        )));
    }
    VersionReq::parse(v)
        .map(Some)
        .map_err(|e| ApiError::BadUserInput(format!("version {v:?}: {e}")))
}

/// Runs `op` on `name` for the caller once per `key` (the idempotency key as stored), its
/// events stamped with `meta`.
pub async fn run(
    s: &AppState,
    p: &Principal,
    key: &str,
    meta: CommandMetadata,
    op: InstallOp,
    name: &str,
    input: InstallInput,
) -> Result<Outcome<InstallReceipt>, ApiError> {
    let capsule = capsule_name(name).map_err(|e| ApiError::BadUserInput(e.to_string()))?;
    let subject = subject_for(p, &input)?;
    let request = InstallRequest {
        subject: subject.clone(),
        name: capsule.clone(),
        requirement: requirement(input.version.as_deref())?,
        shown_permissions: input
            .shown_permissions
            .as_deref()
            .map(|l| permissions(l, "shownPermissions"))
            .transpose()?,
        approved_permissions: permissions(&input.approved_permissions, "approvedPermissions")?,
        token_budget_tokens: input.token_budget,
        by: actor_id(p),
    };
    if op != InstallOp::Install && input.token_budget.is_some() {
        return Err(ApiError::BadUserInput(
            "tokenBudget is set at install".into(),
        ));
    }
    let fingerprint = json!({"capsuleInstall": {"op": op.as_str(), "name": name, "input": &input}});
    let meta = &meta;
    let service = &s.capsules.service;
    s.idempotency
        .once(p, key, &fingerprint, || async {
            outcome(async {
                match op {
                    InstallOp::Install => service.install(request, meta).await,
                    InstallOp::Upgrade => service.upgrade(request, meta).await,
                    InstallOp::Uninstall => {
                        service
                            .uninstall(&subject, &capsule, &actor_id(p), meta)
                            .await
                    }
                }
            })
            .await
        })
        .await
}

/// A receipt's JSON (REST body, GraphQL `Json`).
pub fn receipt_json(r: &InstallReceipt) -> serde_json::Value {
    json!({
        "installationId": r.installation_id,
        "subject": r.subject,
        "name": r.name,
        "version": r.version,
        "installed": r.version.is_some(),
        "permissions": r.permissions,
        "tokenBudget": r.token_budget_tokens,
        "dependencies": r.dependencies,
        "deprecationWarning": r.deprecation_warning,
    })
}
