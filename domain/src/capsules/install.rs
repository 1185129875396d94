//! The [`Installation`] aggregate: one per (tenant or user, capsule), aggregate id
//! [`installation_id`]. Install, upgrade, uninstall, and the notice of a breaking version.
//!
//! Facts are looked up before the command: the version's declared permissions, yanked and
//! deprecated state and token estimate ([`VersionFacts::of`] reads them from the capsule's
//! [`VersionState`]), the permissions the dialog showed and those the user approved, the
//! dependencies resolved by [`super::resolve`].
//!
//! Rules (each has a given/when/then test in `install_tests.rs`):
//! - the permissions shown must equal the version's declared permissions
//!   ([`InstallError::PermissionsShownMismatch`]): the user approves what the capsule asks for;
//! - installing needs every declared **dangerous** permission approved, and nothing approved
//!   that is not declared; normal and elevated permissions are granted with the install;
//! - an upgrade to a version declaring a dangerous permission the installation does not hold
//!   is [`InstallError::ReapprovalRequired`] until an upgrade carrying that approval (as
//!   browsers do for extensions); the installed version keeps running meanwhile;
//! - a yanked version is never installed nor upgraded to; a deprecated one is, with its
//!   deprecation message recorded on the event as a warning;
//! - the token budget covers at least one run (the version's token estimate) and at most
//!   [`MAX_TOKEN_BUDGET_TOKENS`];
//! - installing the installed version again, or upgrading to it, is a no-op; an upgrade only
//!   goes up; uninstalling needs an installation;
//! - a published version notifies the installation ([`InstallationEvent::BreakingVersionNotified`])
//!   when it is flagged breaking and is above the installed version ([`is_breaking_notice`]),
//!   once per new version.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use semver::Version;
use serde::{Deserialize, Serialize};

use super::aggregate::VersionState;
use super::permissions::Permission;
use super::resolve::Pin;
use super::CapsuleName;

/// Largest token budget an installation may be given.
pub const MAX_TOKEN_BUDGET_TOKENS: u64 = 1_000_000_000;

/// Who a capsule is installed for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Subject {
    Tenant(String),
    User(String),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Tenant(id) => write!(f, "tenant:{id}"),
            Subject::User(id) => write!(f, "user:{id}"),
        }
    }
}

/// The aggregate id of `subject`'s installation of `capsule`: `tenant:acme/csv-summary`.
pub fn installation_id(subject: &Subject, capsule: &CapsuleName) -> String {
    format!("{subject}/{capsule}")
}

/// What the registry says of a version, looked up before the command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionFacts {
    pub version: Version,
    pub declared_permissions: BTreeSet<Permission>,
    pub token_estimate_tokens: u64,
    pub yanked: bool,
    /// The deprecation message, when deprecated.
    pub deprecated: Option<String>,
}

impl VersionFacts {
    /// The facts of `version` as the capsule aggregate holds them.
    pub fn of(version: &Version, state: &VersionState) -> VersionFacts {
        VersionFacts {
            version: version.clone(),
            declared_permissions: state.manifest.permissions.clone(),
            token_estimate_tokens: state.manifest.token_estimate.total,
            yanked: state.yanked,
            deprecated: state.deprecated.clone(),
        }
    }

    fn dangerous(&self) -> BTreeSet<Permission> {
        dangerous(&self.declared_permissions)
    }
}

fn dangerous(permissions: &BTreeSet<Permission>) -> BTreeSet<Permission> {
    permissions
        .iter()
        .copied()
        .filter(|p| p.is_dangerous())
        .collect()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Install {
    pub subject: Subject,
    pub capsule: CapsuleName,
    pub release: VersionFacts,
    /// The permissions the approval dialog listed.
    pub shown_permissions: BTreeSet<Permission>,
    /// The permissions the user approved.
    pub approved_permissions: BTreeSet<Permission>,
    pub token_budget_tokens: u64,
    /// The dependencies resolved for this version, in install order.
    pub dependencies: Vec<Pin>,
    pub by: String,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upgrade {
    pub release: VersionFacts,
    pub shown_permissions: BTreeSet<Permission>,
    /// Dangerous permissions the user approved for this upgrade (empty when none was asked).
    pub approved_permissions: BTreeSet<Permission>,
    pub dependencies: Vec<Pin>,
    pub by: String,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uninstall {
    pub by: String,
    pub occurred_at: DateTime<Utc>,
}

/// A version of the capsule was published; `breaking` is its `breaking_changes` being non-empty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyNewVersion {
    pub new_version: Version,
    pub breaking: bool,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstallationCommand {
    Install(Box<Install>),
    Upgrade(Box<Upgrade>),
    Uninstall(Uninstall),
    NotifyNewVersion(NotifyNewVersion),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstallationEvent {
    Installed {
        subject: Subject,
        capsule: CapsuleName,
        version: Version,
        /// Every permission granted: the version's declared permissions.
        permissions: BTreeSet<Permission>,
        /// The dangerous ones among them, approved by the user.
        approved_dangerous: BTreeSet<Permission>,
        token_budget_tokens: u64,
        dependencies: Vec<Pin>,
        deprecation_warning: Option<String>,
        by: String,
        occurred_at: DateTime<Utc>,
    },
    Upgraded {
        from: Version,
        to: Version,
        permissions: BTreeSet<Permission>,
        /// Dangerous permissions approved in this upgrade.
        newly_approved: BTreeSet<Permission>,
        dependencies: Vec<Pin>,
        deprecation_warning: Option<String>,
        by: String,
        occurred_at: DateTime<Utc>,
    },
    Uninstalled {
        version: Version,
        by: String,
        occurred_at: DateTime<Utc>,
    },
    BreakingVersionNotified {
        installed_version: Version,
        installed_major: u64,
        new_version: Version,
        occurred_at: DateTime<Utc>,
    },
}

impl DomainEvent for InstallationEvent {
    fn event_type(&self) -> String {
        match self {
            Self::Installed { .. } => "CapsuleInstalled",
            Self::Upgraded { .. } => "CapsuleUpgraded",
            Self::Uninstalled { .. } => "CapsuleUninstalled",
            Self::BreakingVersionNotified { .. } => "CapsuleBreakingVersionNotified",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        crate::versioning::FIRST_VERSION.to_string()
    }
}

/// Why an installation command was refused. None is retryable as is: the user must act
/// (approve, pick another version) or the command must change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallError {
    #[error("version {version} is yanked and cannot be installed")]
    VersionYanked { version: Version },
    #[error("the permissions shown differ from those declared (not shown: {not_shown:?}, not declared: {not_declared:?})")]
    PermissionsShownMismatch {
        not_shown: BTreeSet<Permission>,
        not_declared: BTreeSet<Permission>,
    },
    #[error("dangerous permissions not approved: {permissions:?}")]
    PermissionsNotApproved { permissions: BTreeSet<Permission> },
    #[error("approved permissions the version does not declare: {permissions:?}")]
    ApprovedPermissionsNotDeclared { permissions: BTreeSet<Permission> },
    #[error("the new version adds dangerous permissions that need approval: {permissions:?}")]
    ReapprovalRequired { permissions: BTreeSet<Permission> },
    #[error("a token budget of {budget_tokens} does not cover one run ({estimate_tokens} tokens)")]
    TokenBudgetBelowEstimate {
        budget_tokens: u64,
        estimate_tokens: u64,
    },
    #[error("a token budget is at most {max_tokens} tokens")]
    TokenBudgetTooLarge { max_tokens: u64 },
    #[error("version {version} is already installed; upgrade instead")]
    AlreadyInstalled { version: Version },
    #[error("the capsule is not installed")]
    NotInstalled,
    #[error("{requested} is not above the installed version {installed}")]
    NotAnUpgrade {
        installed: Version,
        requested: Version,
    },
    #[error("this installation is of {installed} for {subject}")]
    WrongInstallation {
        installed: CapsuleName,
        subject: Subject,
    },
}

impl InstallError {
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// What is installed now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    pub version: Version,
    pub permissions: BTreeSet<Permission>,
    pub token_budget_tokens: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installation {
    subject: Option<Subject>,
    capsule: Option<CapsuleName>,
    installed: Option<Installed>,
    notified: BTreeSet<Version>,
}

/// Whether a newly published version warrants a breaking-version notice to an installation of
/// `installed`: it is flagged breaking and it is above the installed version.
pub fn is_breaking_notice(installed: &Version, new_version: &Version, breaking: bool) -> bool {
    breaking && new_version > installed
}

impl Installation {
    pub fn installed(&self) -> Option<&Installed> {
        self.installed.as_ref()
    }

    /// Whether the capsule is or was ever installed here (an uninstalled user may still review).
    pub fn ever_installed(&self) -> bool {
        self.capsule.is_some()
    }

    pub fn decide(
        &self,
        command: InstallationCommand,
    ) -> Result<Vec<InstallationEvent>, InstallError> {
        match command {
            InstallationCommand::Install(c) => self.install(*c),
            InstallationCommand::Upgrade(c) => self.upgrade(*c),
            InstallationCommand::Uninstall(c) => self.uninstall(c),
            InstallationCommand::NotifyNewVersion(c) => Ok(self.notify(c)),
        }
    }
}

#[path = "install_decide.rs"]
mod decide;

impl Aggregate for Installation {
    const TYPE: &'static str = "capsule_installation";
    type Command = InstallationCommand;
    type Event = InstallationEvent;
    type Error = InstallError;
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
            InstallationEvent::Installed {
                subject,
                capsule,
                version,
                permissions,
                token_budget_tokens,
                ..
            } => {
                self.subject = Some(subject);
                self.capsule = Some(capsule);
                self.installed = Some(Installed {
                    version,
                    permissions,
                    token_budget_tokens,
                });
            }
            InstallationEvent::Upgraded {
                to, permissions, ..
            } => {
                if let Some(installed) = &mut self.installed {
                    installed.version = to;
                    installed.permissions = permissions;
                }
            }
            InstallationEvent::Uninstalled { .. } => self.installed = None,
            InstallationEvent::BreakingVersionNotified { new_version, .. } => {
                self.notified.insert(new_version);
            }
        }
    }
}

#[cfg(test)]
#[path = "install_tests.rs"]
mod tests;
