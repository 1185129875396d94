//! Installs over GraphQL: `installCapsule`, `upgradeCapsule`, `uninstallCapsule` (idempotent
//! under the client's key; refusals carry `extensions.code` and `extensions.reason`) and the
//! `capsuleInstallations` query. The rules are [`super::installs`]'.

use agora_commands::capsules::installs::InstallReceipt;
use agora_domain::access::Role;
use agora_projections::capsule_installs::InstallRow;
use async_graphql::{Context, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::gql::refusal_error;
use super::installs::{self, InstallInput, InstallOp};
use super::{actor_id, read_error};
use crate::graphql::error::ApiError;
use crate::graphql::schema::{caller, counted, metadata, resolve_key, state};

type Res<T> = Result<T, async_graphql::Error>;

const ANY_ROLE: &[Role] = &Role::ALL;
/// Default and largest page of `capsuleInstallations`.
pub const DEFAULT_PAGE: i32 = 20;
pub const MAX_PAGE: i32 = 100;

/// What an install or upgrade asks for.
#[derive(InputObject, Default)]
pub struct InstallCapsuleInput {
    /// A semantic-version requirement (`^1.2`, `>=1.0, <2`, `=1.4.0`); none: the highest
    /// published version.
    pub version: Option<String>,
    /// The dangerous permissions the user approved (`network.egress`, …).
    pub approved_permissions: Option<Vec<String>>,
    /// The permissions the client's dialog showed; none: the version's declared ones.
    pub shown_permissions: Option<Vec<String>>,
    /// Tokens allocated (install only); none: 100 runs of the version's estimate.
    pub token_budget: Option<i64>,
    /// `user` (default) or `tenant` (admins).
    #[graphql(name = "for")]
    pub scope: Option<String>,
    /// With `for: "tenant"`, a platform admin may name the tenant.
    pub tenant: Option<String>,
}

impl InstallCapsuleInput {
    fn into_input(self) -> Result<InstallInput, ApiError> {
        let token_budget = self
            .token_budget
            .map(|b| {
                u64::try_from(b)
                    .map_err(|_| ApiError::BadUserInput("tokenBudget must be positive".into()))
            })
            .transpose()?;
        Ok(InstallInput {
            version: self.version,
            approved_permissions: self.approved_permissions.unwrap_or_default(),
            shown_permissions: self.shown_permissions,
            token_budget,
            scope: self.scope,
            tenant: self.tenant,
        })
    }
}

/// An installation after a command.
#[derive(SimpleObject)]
pub struct CapsuleInstallReceipt {
    pub installation_id: String,
    /// `user:<tenant/principal>` or `tenant:<id>`.
    pub subject: String,
    pub name: String,
    /// Null after an uninstall.
    pub version: Option<String>,
    pub permissions: Vec<String>,
    pub token_budget: Option<String>,
    /// `name@version`, dependencies first.
    pub dependencies: Vec<String>,
    pub deprecation_warning: Option<String>,
}

impl From<InstallReceipt> for CapsuleInstallReceipt {
    fn from(r: InstallReceipt) -> Self {
        Self {
            installation_id: r.installation_id,
            subject: r.subject,
            name: r.name,
            version: r.version,
            permissions: r.permissions,
            token_budget: r.token_budget_tokens.map(|b| b.to_string()),
            dependencies: r.dependencies,
            deprecation_warning: r.deprecation_warning,
        }
    }
}

/// An installation as the read model holds it.
#[derive(SimpleObject)]
pub struct CapsuleInstallation {
    pub installation_id: String,
    pub subject: String,
    pub tenant: String,
    pub name: String,
    pub version: Option<String>,
    pub permissions: Vec<String>,
    pub token_budget: String,
    pub dependencies: Vec<String>,
    pub deprecation_warning: Option<String>,
    /// The breaking versions this installation was told of, in order.
    pub breaking_version_notices: Vec<String>,
    pub installed_by: String,
    pub installed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<InstallRow> for CapsuleInstallation {
    fn from(r: InstallRow) -> Self {
        Self {
            installation_id: r.installation_id,
            subject: format!("{}:{}", r.subject_kind, r.subject_id),
            tenant: r.tenant,
            name: r.capsule,
            version: r.version,
            permissions: r.permissions,
            token_budget: r.token_budget_tokens.to_string(),
            dependencies: r.dependencies,
            deprecation_warning: r.deprecation_warning,
            breaking_version_notices: r.notices,
            installed_by: r.installed_by,
            installed_at: r.installed_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Default)]
pub struct CapsuleInstallQuery;

#[Object]
impl CapsuleInstallQuery {
    /// The caller's live installations (`for: "user"`, default) or its tenant's
    /// (`for: "tenant"`, admins), by capsule name after `after`.
    async fn capsule_installations(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "for")] scope: Option<String>,
        tenant: Option<String>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Res<Vec<CapsuleInstallation>> {
        let p = caller(ctx, ANY_ROLE)?;
        let first = first.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&first) {
            return Err(ApiError::BadUserInput(format!("first must be 1..={MAX_PAGE}")).into());
        }
        let input = InstallInput {
            scope,
            tenant,
            ..InstallInput::default()
        };
        let (kind, id) = match installs::subject_for(p, &input)? {
            agora_domain::capsules::install::Subject::Tenant(t) => ("tenant", t),
            agora_domain::capsules::install::Subject::User(_) => ("user", actor_id(p)),
        };
        let rows = state(ctx)
            .capsules
            .installs
            .of_subject(kind, &id, after.as_deref(), i64::from(first))
            .await
            .map_err(read_error)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

#[derive(Default)]
pub struct CapsuleInstallMutation;

async fn once(
    ctx: &Context<'_>,
    op: InstallOp,
    name: String,
    input: InstallInput,
    key: Option<String>,
) -> Res<CapsuleInstallReceipt> {
    let p = caller(ctx, ANY_ROLE)?;
    let key = resolve_key(ctx, key)?;
    let meta = metadata(ctx, p, &key)?;
    let s = state(ctx);
    let result = installs::run(s, p, &key, meta, op, &name, input).await;
    counted(s, "capsule_install", result)?
        .map(Into::into)
        .map_err(refusal_error)
}

#[Object]
impl CapsuleInstallMutation {
    /// Installs the highest published version of `name` matching `input.version`, with its
    /// capsule dependencies resolved; every dangerous permission it declares must be in
    /// `approvedPermissions`. Installing the installed version again is a no-op.
    async fn install_capsule(
        &self,
        ctx: &Context<'_>,
        name: String,
        input: Option<InstallCapsuleInput>,
        idempotency_key: Option<String>,
    ) -> Res<CapsuleInstallReceipt> {
        let input = input.unwrap_or_default().into_input()?;
        once(ctx, InstallOp::Install, name, input, idempotency_key).await
    }

    /// Upgrades an installation; a version adding a dangerous permission needs it approved
    /// (code `BAD_USER_INPUT`, reason `ReapprovalRequired`, until then).
    async fn upgrade_capsule(
        &self,
        ctx: &Context<'_>,
        name: String,
        input: Option<InstallCapsuleInput>,
        idempotency_key: Option<String>,
    ) -> Res<CapsuleInstallReceipt> {
        let input = input.unwrap_or_default().into_input()?;
        once(ctx, InstallOp::Upgrade, name, input, idempotency_key).await
    }

    /// Uninstalls `name` for the caller (or, `for: "tenant"`, its tenant).
    async fn uninstall_capsule(
        &self,
        ctx: &Context<'_>,
        name: String,
        #[graphql(name = "for")] scope: Option<String>,
        tenant: Option<String>,
        idempotency_key: Option<String>,
    ) -> Res<CapsuleInstallReceipt> {
        let input = InstallInput {
            scope,
            tenant,
            ..InstallInput::default()
        };
        once(ctx, InstallOp::Uninstall, name, input, idempotency_key).await
    }
}
