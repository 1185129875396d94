//! Installations (issue 13, item 8): install with the capsule's dependencies resolved, upgrade,
//! uninstall, over the [`Installation`] aggregate (one per subject and capsule).
//!
//! The facts a command carries are read from the capsule aggregates at the time of the request
//! (never from a read model that may lag): the version picked, its declared permissions, token
//! estimate, deprecation and yank, and the dependency graph. Which declared dependencies are
//! capsules is decided here: a dependency whose name is a capsule of the registry is resolved
//! as one; any other (the seed's `pandas>=2.0.0`) is a package of the capsule's runtime and is
//! not installed by the registry.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use agora_domain::capsules::aggregate::{Capsule, VersionStatus};
use agora_domain::capsules::install::{
    installation_id, Install, InstallError, Installation, InstallationCommand, Subject, Uninstall,
    Upgrade, VersionFacts, MAX_TOKEN_BUDGET_TOKENS,
};
use agora_domain::capsules::permissions::Permission;
use agora_domain::capsules::resolve::{self, Release, Resolution, ResolveError, Root, MAX_NODES};
use agora_domain::capsules::CapsuleName;
use semver::VersionReq;
use serde::{Deserialize, Serialize};

use super::{command_error, install_error, CapsuleService, CapsuleServiceError};
use crate::metadata::CommandMetadata;

/// Runs an installation's token budget covers when the request names none.
pub const DEFAULT_BUDGET_RUNS: u64 = 100;

/// What an install or upgrade asks for.
#[derive(Clone, Debug)]
pub struct InstallRequest {
    pub subject: Subject,
    pub name: CapsuleName,
    /// The versions accepted; `None`: the highest published one.
    pub requirement: Option<VersionReq>,
    /// The permissions the client's approval dialog showed; `None`: the client showed the
    /// version's declared permissions, as the catalogue lists them.
    pub shown_permissions: Option<BTreeSet<Permission>>,
    /// The dangerous permissions the user approved.
    pub approved_permissions: BTreeSet<Permission>,
    /// `None`: [`DEFAULT_BUDGET_RUNS`] runs of the version's token estimate (install only).
    pub token_budget_tokens: Option<u64>,
    pub by: String,
}

/// What an installation holds after a command (stored as the idempotent outcome).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstallReceipt {
    pub installation_id: String,
    pub subject: String,
    pub name: String,
    /// `None` after an uninstall.
    pub version: Option<String>,
    pub permissions: Vec<String>,
    pub token_budget_tokens: Option<u64>,
    /// The capsules this version depends on, `name@version`, dependencies first.
    pub dependencies: Vec<String>,
    /// The deprecation message of the version installed, if it is deprecated.
    pub deprecation_warning: Option<String>,
}

/// The capsules reachable from a root, loaded from their aggregates.
struct Graph {
    capsules: BTreeMap<String, Capsule>,
}

impl Graph {
    /// Published, not yanked releases of every loaded capsule; dependencies on names that are
    /// not capsules are left out.
    fn catalogue(&self) -> BTreeMap<String, Vec<Release>> {
        self.capsules
            .iter()
            .map(|(name, capsule)| {
                let releases = capsule
                    .versions()
                    .filter(|(_, v)| v.status == VersionStatus::Published && !v.yanked)
                    .map(|(version, v)| Release {
                        version: version.clone(),
                        dependencies: v
                            .manifest
                            .dependencies
                            .iter()
                            .filter(|d| self.capsules.contains_key(&d.name))
                            .cloned()
                            .collect(),
                    })
                    .collect();
                (name.clone(), releases)
            })
            .collect()
    }
}

impl CapsuleService {
    /// The installation of `name` for `subject`.
    pub async fn installation(
        &self,
        subject: &Subject,
        name: &CapsuleName,
    ) -> Result<Installation, CapsuleServiceError> {
        self.installs
            .load(&installation_id(subject, name))
            .await
            .map_err(|e| command_error(e, install_error))
    }

    /// Loads `root` and every capsule its versions' dependencies name, breadth first, at most
    /// [`MAX_NODES`] capsules.
    async fn graph(&self, root: &CapsuleName) -> Result<Graph, CapsuleServiceError> {
        let mut capsules = BTreeMap::new();
        let mut seen = BTreeSet::from([root.to_string()]);
        let mut queue = VecDeque::from([root.clone()]);
        while let Some(name) = queue.pop_front() {
            let capsule = self.capsule(&name).await?;
            if capsule.owner().is_none() {
                if &name == root {
                    return Err(CapsuleServiceError::NotFound(format!("capsule {name}")));
                }
                continue;
            }
            for (_, v) in capsule.versions() {
                for dep in &v.manifest.dependencies {
                    let Ok(dep_name) = CapsuleName::parse(&dep.name) else {
                        continue;
                    };
                    if seen.insert(dep.name.clone()) {
                        if seen.len() > MAX_NODES {
                            return Err(CapsuleServiceError::Resolve(ResolveError::TooManyNodes {
                                max_nodes: MAX_NODES,
                            }));
                        }
                        queue.push_back(dep_name);
                    }
                }
            }
            capsules.insert(name.to_string(), capsule);
        }
        Ok(Graph { capsules })
    }

    /// Resolves `request` to a version of the root and its dependencies.
    async fn resolve(
        &self,
        request: &InstallRequest,
    ) -> Result<(Graph, Resolution), CapsuleServiceError> {
        let graph = self.graph(&request.name).await?;
        let requirement = request.requirement.clone().unwrap_or(VersionReq::STAR);
        let root = Root::matching(request.name.as_str(), requirement.clone());
        match resolve::resolve(&root, &graph.catalogue()) {
            Ok(resolution) => Ok((graph, resolution)),
            Err(ResolveError::NoMatchingVersion { path, .. }) if path.is_empty() => {
                // Say why the root has no version: every match is yanked, or none is published.
                let capsule = &graph.capsules[request.name.as_str()];
                let yanked = capsule
                    .versions()
                    .filter(|(v, s)| s.yanked && requirement.matches(v))
                    .map(|(v, _)| v.clone())
                    .max();
                Err(match yanked {
                    Some(version) => install_error(InstallError::VersionYanked { version }),
                    None => CapsuleServiceError::NotFound(format!(
                        "a published version of {} matching {requirement}",
                        request.name
                    )),
                })
            }
            Err(e) => Err(CapsuleServiceError::Resolve(e)),
        }
    }

    /// Installs the highest published version of `request.name` matching its requirement, with
    /// its dependencies resolved. Installing the installed version again is a no-op.
    pub async fn install(
        &self,
        request: InstallRequest,
        meta: &CommandMetadata,
    ) -> Result<InstallReceipt, CapsuleServiceError> {
        let (graph, resolution) = self.resolve(&request).await?;
        let release = facts(&graph, &resolution)?;
        let budget = request.token_budget_tokens.unwrap_or_else(|| {
            release
                .token_estimate_tokens
                .max(1)
                .saturating_mul(DEFAULT_BUDGET_RUNS)
                .min(MAX_TOKEN_BUDGET_TOKENS)
        });
        let command = Install {
            subject: request.subject.clone(),
            capsule: request.name.clone(),
            shown_permissions: request
                .shown_permissions
                .clone()
                .unwrap_or_else(|| release.declared_permissions.clone()),
            release,
            approved_permissions: request.approved_permissions.clone(),
            token_budget_tokens: budget,
            dependencies: dependencies_of(&resolution),
            by: request.by.clone(),
            occurred_at: meta.occurred_at,
        };
        let id = installation_id(&request.subject, &request.name);
        self.installs
            .execute(&id, InstallationCommand::Install(Box::new(command)), meta)
            .await
            .map_err(|e| command_error(e, install_error))?;
        if let Some(o) = &self.observer {
            o.installed();
        }
        self.receipt(&request.subject, &request.name, &resolution)
            .await
    }

    /// Upgrades an installation to the highest published version matching the requirement.
    /// A version adding a dangerous permission needs it in `approved_permissions`.
    pub async fn upgrade(
        &self,
        request: InstallRequest,
        meta: &CommandMetadata,
    ) -> Result<InstallReceipt, CapsuleServiceError> {
        if self
            .installation(&request.subject, &request.name)
            .await?
            .installed()
            .is_none()
        {
            return Err(install_error(InstallError::NotInstalled));
        }
        let (graph, resolution) = self.resolve(&request).await?;
        let release = facts(&graph, &resolution)?;
        let command = Upgrade {
            shown_permissions: request
                .shown_permissions
                .clone()
                .unwrap_or_else(|| release.declared_permissions.clone()),
            release,
            approved_permissions: request.approved_permissions.clone(),
            dependencies: dependencies_of(&resolution),
            by: request.by.clone(),
            occurred_at: meta.occurred_at,
        };
        let id = installation_id(&request.subject, &request.name);
        self.installs
            .execute(&id, InstallationCommand::Upgrade(Box::new(command)), meta)
            .await
            .map_err(|e| command_error(e, install_error))?;
        self.receipt(&request.subject, &request.name, &resolution)
            .await
    }

    /// Uninstalls `name` for `subject`.
    pub async fn uninstall(
        &self,
        subject: &Subject,
        name: &CapsuleName,
        by: &str,
        meta: &CommandMetadata,
    ) -> Result<InstallReceipt, CapsuleServiceError> {
        let id = installation_id(subject, name);
        let command = Uninstall {
            by: by.to_owned(),
            occurred_at: meta.occurred_at,
        };
        self.installs
            .execute(&id, InstallationCommand::Uninstall(command), meta)
            .await
            .map_err(|e| command_error(e, install_error))?;
        Ok(InstallReceipt {
            installation_id: id,
            subject: subject.to_string(),
            name: name.to_string(),
            version: None,
            permissions: vec![],
            token_budget_tokens: None,
            dependencies: vec![],
            deprecation_warning: None,
        })
    }

    async fn receipt(
        &self,
        subject: &Subject,
        name: &CapsuleName,
        resolution: &Resolution,
    ) -> Result<InstallReceipt, CapsuleServiceError> {
        let installation = self.installation(subject, name).await?;
        let installed = installation
            .installed()
            .ok_or(install_error(InstallError::NotInstalled))?;
        let capsule = self.capsule(name).await?;
        let deprecation_warning = capsule
            .version(&installed.version)
            .and_then(|v| v.deprecated.clone());
        // The dependencies recorded are those of the version installed; a no-op install of the
        // same version resolved them the same way unless the catalogue moved since.
        Ok(InstallReceipt {
            installation_id: installation_id(subject, name),
            subject: subject.to_string(),
            name: name.to_string(),
            version: Some(installed.version.to_string()),
            permissions: installed
                .permissions
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
            token_budget_tokens: Some(installed.token_budget_tokens),
            dependencies: dependencies_of(resolution)
                .iter()
                .map(ToString::to_string)
                .collect(),
            deprecation_warning,
        })
    }
}

/// The facts of the root version a resolution picked.
fn facts(graph: &Graph, resolution: &Resolution) -> Result<VersionFacts, CapsuleServiceError> {
    let root = &resolution.root;
    graph
        .capsules
        .get(&root.name)
        .and_then(|c| c.version(&root.version))
        .map(|state| VersionFacts::of(&root.version, state))
        .ok_or_else(|| CapsuleServiceError::NotFound(format!("capsule {root}")))
}

/// The resolution's capsules other than the root, dependencies first.
fn dependencies_of(resolution: &Resolution) -> Vec<resolve::Pin> {
    resolution
        .install_order
        .iter()
        .filter(|p| p.name != resolution.root.name)
        .cloned()
        .collect()
}
