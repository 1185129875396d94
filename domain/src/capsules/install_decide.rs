//! The [`Installation`] aggregate's decisions, kept apart from the types.

use super::*;

impl Installation {
    pub(super) fn install(&self, c: Install) -> Result<Vec<InstallationEvent>, InstallError> {
        if let (Some(capsule), Some(subject)) = (&self.capsule, &self.subject) {
            if capsule != &c.capsule || subject != &c.subject {
                return Err(InstallError::WrongInstallation {
                    installed: capsule.clone(),
                    subject: subject.clone(),
                });
            }
        }
        if let Some(installed) = &self.installed {
            if installed.version == c.release.version {
                return Ok(vec![]);
            }
            return Err(InstallError::AlreadyInstalled {
                version: installed.version.clone(),
            });
        }
        check_release(&c.release, &c.shown_permissions)?;
        let not_declared: BTreeSet<Permission> = c
            .approved_permissions
            .difference(&c.release.declared_permissions)
            .copied()
            .collect();
        if !not_declared.is_empty() {
            return Err(InstallError::ApprovedPermissionsNotDeclared {
                permissions: not_declared,
            });
        }
        let missing: BTreeSet<Permission> = c
            .release
            .dangerous()
            .difference(&c.approved_permissions)
            .copied()
            .collect();
        if !missing.is_empty() {
            return Err(InstallError::PermissionsNotApproved {
                permissions: missing,
            });
        }
        if c.token_budget_tokens < c.release.token_estimate_tokens.max(1) {
            return Err(InstallError::TokenBudgetBelowEstimate {
                budget_tokens: c.token_budget_tokens,
                estimate_tokens: c.release.token_estimate_tokens,
            });
        }
        if c.token_budget_tokens > MAX_TOKEN_BUDGET_TOKENS {
            return Err(InstallError::TokenBudgetTooLarge {
                max_tokens: MAX_TOKEN_BUDGET_TOKENS,
            });
        }
        Ok(vec![InstallationEvent::Installed {
            subject: c.subject,
            capsule: c.capsule,
            approved_dangerous: c.release.dangerous(),
            version: c.release.version,
            permissions: c.release.declared_permissions,
            token_budget_tokens: c.token_budget_tokens,
            dependencies: c.dependencies,
            deprecation_warning: c.release.deprecated,
            by: c.by,
            occurred_at: c.occurred_at,
        }])
    }

    pub(super) fn upgrade(&self, c: Upgrade) -> Result<Vec<InstallationEvent>, InstallError> {
        let Some(installed) = &self.installed else {
            return Err(InstallError::NotInstalled);
        };
        if c.release.version == installed.version {
            return Ok(vec![]);
        }
        if c.release.version < installed.version {
            return Err(InstallError::NotAnUpgrade {
                installed: installed.version.clone(),
                requested: c.release.version,
            });
        }
        check_release(&c.release, &c.shown_permissions)?;
        let held = dangerous(&installed.permissions);
        let to_approve: BTreeSet<Permission> =
            c.release.dangerous().difference(&held).copied().collect();
        let missing: BTreeSet<Permission> = to_approve
            .difference(&c.approved_permissions)
            .copied()
            .collect();
        if !missing.is_empty() {
            return Err(InstallError::ReapprovalRequired {
                permissions: missing,
            });
        }
        let stray: BTreeSet<Permission> = c
            .approved_permissions
            .difference(&c.release.declared_permissions)
            .copied()
            .collect();
        if !stray.is_empty() {
            return Err(InstallError::ApprovedPermissionsNotDeclared { permissions: stray });
        }
        Ok(vec![InstallationEvent::Upgraded {
            from: installed.version.clone(),
            to: c.release.version,
            permissions: c.release.declared_permissions,
            newly_approved: to_approve,
            dependencies: c.dependencies,
            deprecation_warning: c.release.deprecated,
            by: c.by,
            occurred_at: c.occurred_at,
        }])
    }

    pub(super) fn uninstall(&self, c: Uninstall) -> Result<Vec<InstallationEvent>, InstallError> {
        let Some(installed) = &self.installed else {
            return Err(InstallError::NotInstalled);
        };
        Ok(vec![InstallationEvent::Uninstalled {
            version: installed.version.clone(),
            by: c.by,
            occurred_at: c.occurred_at,
        }])
    }

    pub(super) fn notify(&self, c: NotifyNewVersion) -> Vec<InstallationEvent> {
        let Some(installed) = &self.installed else {
            return vec![];
        };
        if self.notified.contains(&c.new_version)
            || !is_breaking_notice(&installed.version, &c.new_version, c.breaking)
        {
            return vec![];
        }
        vec![InstallationEvent::BreakingVersionNotified {
            installed_version: installed.version.clone(),
            installed_major: installed.version.major,
            new_version: c.new_version,
            occurred_at: c.occurred_at,
        }]
    }
}

/// The version may be installed, and the dialog showed exactly what it declares.
fn check_release(release: &VersionFacts, shown: &BTreeSet<Permission>) -> Result<(), InstallError> {
    if release.yanked {
        return Err(InstallError::VersionYanked {
            version: release.version.clone(),
        });
    }
    if shown != &release.declared_permissions {
        return Err(InstallError::PermissionsShownMismatch {
            not_shown: release
                .declared_permissions
                .difference(shown)
                .copied()
                .collect(),
            not_declared: shown
                .difference(&release.declared_permissions)
                .copied()
                .collect(),
        });
    }
    Ok(())
}
