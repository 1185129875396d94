//! The [`Capsule`] aggregate's decisions and its `apply`, kept apart from the types.

use std::collections::BTreeSet;

use semver::Version;

use super::super::is_sha256_hex;
use super::super::manifest::Manifest;
use super::super::permissions::Permission;
use super::super::risk::AUTO_APPROVE_BELOW;
use super::*;

/// What breaks for users of `prev` who move to `next`.
pub fn breaking_changes(prev: &Manifest, next: &Manifest) -> Vec<BreakingChange> {
    let mut changes = Vec::new();
    let (a, b) = (&prev.version, &next.version);
    if b.major > a.major || (a.major == 0 && b.major == 0 && b.minor > a.minor) {
        changes.push(BreakingChange::MajorVersion {
            from: a.clone(),
            to: b.clone(),
        });
    }
    for old in &prev.inputs {
        match next.inputs.iter().find(|p| p.name == old.name) {
            None => changes.push(BreakingChange::InputRemoved {
                name: old.name.clone(),
            }),
            Some(new) if new.kind != old.kind => changes.push(BreakingChange::PortTypeChanged {
                name: old.name.clone(),
                from: old.kind,
                to: new.kind,
            }),
            Some(new) if new.required && !old.required => {
                changes.push(BreakingChange::InputRequired {
                    name: old.name.clone(),
                })
            }
            Some(_) => {}
        }
    }
    for new in next.inputs.iter().filter(|p| p.required) {
        if !prev.inputs.iter().any(|p| p.name == new.name) {
            changes.push(BreakingChange::InputRequired {
                name: new.name.clone(),
            });
        }
    }
    for old in &prev.outputs {
        match next.outputs.iter().find(|p| p.name == old.name) {
            None => changes.push(BreakingChange::OutputRemoved {
                name: old.name.clone(),
            }),
            Some(new) if new.kind != old.kind => changes.push(BreakingChange::PortTypeChanged {
                name: old.name.clone(),
                from: old.kind,
                to: new.kind,
            }),
            Some(_) => {}
        }
    }
    for &permission in next.permissions.difference(&prev.permissions) {
        changes.push(BreakingChange::PermissionAdded { permission });
    }
    for &permission in prev.permissions.difference(&next.permissions) {
        changes.push(BreakingChange::PermissionRemoved { permission });
    }
    changes
}

fn check_text(text: &str, max_chars: usize) -> Result<(), CapsuleError> {
    if text.chars().count() > max_chars {
        return Err(CapsuleError::TextTooLong { max_chars });
    }
    Ok(())
}

impl Capsule {
    fn existing(&self, version: &Version) -> Result<&VersionState, CapsuleError> {
        self.versions
            .get(version)
            .ok_or_else(|| CapsuleError::UnknownVersion {
                version: version.clone(),
            })
    }

    pub(super) fn submit(&self, c: SubmitVersion) -> Result<Vec<CapsuleEvent>, CapsuleError> {
        for (field, digest) in [
            ("manifest_sha256", &c.manifest_sha256),
            ("bundle_sha256", &c.bundle_sha256),
            ("sbom_sha256", &c.sbom_sha256),
        ] {
            if !is_sha256_hex(digest) {
                return Err(CapsuleError::InvalidDigest { field });
            }
        }
        if let Some(expected) = self.name.as_ref().filter(|n| **n != c.manifest.name) {
            return Err(CapsuleError::NameMismatch {
                expected: expected.clone(),
                found: c.manifest.name.clone(),
            });
        }
        if let Some(owner) = self.owner.as_ref().filter(|o| **o != c.submitted_by) {
            return Err(CapsuleError::NotOwner {
                owner: owner.clone(),
            });
        }
        let version = c.manifest.version.clone();
        if let Some(existing) = self.versions.get(&version) {
            let same = existing.manifest_sha256 == c.manifest_sha256
                && existing.bundle_sha256 == c.bundle_sha256;
            match existing.status {
                VersionStatus::ChangesRequested => {}
                _ if same => return Ok(vec![]),
                VersionStatus::Published => return Err(CapsuleError::VersionImmutable { version }),
                status => return Err(CapsuleError::VersionAlreadySubmitted { version, status }),
            }
        }
        let previous = self.previous_published(&version);
        let breaking = previous.map_or_else(Vec::new, |(_, p)| {
            breaking_changes(&p.manifest, &c.manifest)
        });
        let dangerous = c.manifest.dangerous_permissions();
        let added: BTreeSet<Permission> = match previous {
            Some((_, p)) => dangerous
                .difference(&p.manifest.dangerous_permissions())
                .copied()
                .collect(),
            None => BTreeSet::new(),
        };
        let mut reasons = Vec::new();
        if c.risk.score >= AUTO_APPROVE_BELOW {
            reasons.push(ReviewReason::RiskScore {
                score: c.risk.score,
            });
        }
        if !dangerous.is_empty() {
            reasons.push(ReviewReason::DangerousPermissions {
                permissions: dangerous,
            });
        }
        if !added.is_empty() {
            reasons.push(ReviewReason::DangerousPermissionsAdded {
                permissions: added.clone(),
            });
        }
        let risk_score = c.risk.score;
        let occurred_at = c.occurred_at;
        let routed = if reasons.is_empty() {
            CapsuleEvent::AutoApproved {
                version: version.clone(),
                risk_score,
                occurred_at,
            }
        } else {
            CapsuleEvent::QueuedForReview {
                version: version.clone(),
                risk_score,
                reasons,
                occurred_at,
            }
        };
        let submitted = CapsuleEvent::VersionSubmitted {
            version,
            previous_version: previous.map(|(v, _)| v.clone()),
            manifest: Box::new(c.manifest),
            manifest_sha256: c.manifest_sha256,
            bundle_sha256: c.bundle_sha256,
            bundle_size_bytes: c.bundle_size_bytes,
            sbom_sha256: c.sbom_sha256,
            risk: c.risk,
            signer_keyid: c.signer_keyid,
            submitted_by: c.submitted_by,
            breaking_changes: breaking,
            dangerous_permissions_added: added,
            occurred_at,
        };
        Ok(vec![submitted, routed])
    }

    pub(super) fn review(&self, c: ReviewVersion) -> Result<Vec<CapsuleEvent>, CapsuleError> {
        if c.reviewer.role != Role::Reviewer {
            return Err(CapsuleError::NotAReviewer);
        }
        let state = self.existing(&c.version)?;
        if state.submitted_by == c.reviewer.id {
            return Err(CapsuleError::SelfReview);
        }
        if state.status != VersionStatus::Queued {
            return Err(CapsuleError::NotQueued {
                version: c.version,
                status: state.status,
            });
        }
        if c.decision != ReviewDecision::Approve && c.notes.trim().is_empty() {
            return Err(CapsuleError::NotesRequired);
        }
        check_text(&c.notes, MAX_NOTES_CHARS)?;
        if c.risk_score_seen != state.risk_score {
            return Err(CapsuleError::RiskScoreChanged {
                seen: c.risk_score_seen,
                current: state.risk_score,
            });
        }
        Ok(vec![CapsuleEvent::Reviewed {
            version: c.version,
            decision: c.decision,
            reviewer_id: c.reviewer.id,
            notes: c.notes,
            risk_score_seen: c.risk_score_seen,
            occurred_at: c.occurred_at,
        }])
    }

    pub(super) fn publish(&self, c: PublishVersion) -> Result<Vec<CapsuleEvent>, CapsuleError> {
        let state = self.existing(&c.version)?;
        match state.status {
            VersionStatus::Published => return Ok(vec![]),
            VersionStatus::Approved => {}
            status => {
                return Err(CapsuleError::NotApproved {
                    version: c.version,
                    status,
                })
            }
        }
        let Some(name) = &self.name else {
            return Err(CapsuleError::UnknownVersion { version: c.version });
        };
        let found = c
            .envelope
            .statement()
            .map_err(CapsuleError::PlatformSignatureMismatch)?;
        let expected = statement_of(name, &c.version, state);
        if found != expected {
            let field = if found.manifest_sha256 != expected.manifest_sha256 {
                "manifest_sha256"
            } else if found.bundle_sha256 != expected.bundle_sha256 {
                "bundle_sha256"
            } else {
                "name or version"
            };
            return Err(CapsuleError::PlatformSignatureMismatch(
                SignatureError::DigestMismatch { field },
            ));
        }
        if !c
            .envelope
            .signatures
            .iter()
            .any(|s| s.keyid == c.platform_keyid)
        {
            return Err(CapsuleError::MissingPlatformSignature {
                keyid: c.platform_keyid,
            });
        }
        let breaking = self
            .previous_published(&c.version)
            .map_or_else(Vec::new, |(_, p)| {
                breaking_changes(&p.manifest, &state.manifest)
            });
        Ok(vec![CapsuleEvent::VersionPublished {
            version: c.version,
            manifest_sha256: state.manifest_sha256.clone(),
            bundle_sha256: state.bundle_sha256.clone(),
            platform_keyid: c.platform_keyid,
            envelope: c.envelope,
            breaking_changes: breaking,
            occurred_at: c.occurred_at,
        }])
    }

    pub(super) fn retire(
        &self,
        c: RetireVersion,
        yank: bool,
    ) -> Result<Vec<CapsuleEvent>, CapsuleError> {
        let owner = self.owner.clone().unwrap_or_default();
        if c.by.role != Role::Admin && c.by.id != owner {
            return Err(CapsuleError::NotOwner { owner });
        }
        let state = self.existing(&c.version)?;
        if state.status != VersionStatus::Published {
            return Err(CapsuleError::NotPublished {
                version: c.version,
                status: state.status,
            });
        }
        if c.message.trim().is_empty() {
            return Err(CapsuleError::MessageRequired);
        }
        check_text(&c.message, MAX_MESSAGE_CHARS)?;
        if yank {
            if state.yanked {
                return Ok(vec![]);
            }
            return Ok(vec![CapsuleEvent::VersionYanked {
                version: c.version,
                reason: c.message,
                by: c.by.id,
                occurred_at: c.occurred_at,
            }]);
        }
        if state.deprecated.as_deref() == Some(c.message.as_str()) {
            return Ok(vec![]);
        }
        Ok(vec![CapsuleEvent::VersionDeprecated {
            version: c.version,
            message: c.message,
            by: c.by.id,
            occurred_at: c.occurred_at,
        }])
    }
}

fn set_status(capsule: &mut Capsule, version: &Version, status: VersionStatus) {
    if let Some(v) = capsule.versions.get_mut(version) {
        v.status = status;
    }
}

pub(super) fn apply(capsule: &mut Capsule, event: CapsuleEvent) {
    match event {
        CapsuleEvent::VersionSubmitted {
            version,
            manifest,
            manifest_sha256,
            bundle_sha256,
            risk,
            submitted_by,
            breaking_changes,
            ..
        } => {
            capsule.name.get_or_insert_with(|| manifest.name.clone());
            capsule.owner.get_or_insert_with(|| submitted_by.clone());
            capsule.versions.insert(
                version,
                VersionState {
                    status: VersionStatus::Queued,
                    manifest: *manifest,
                    manifest_sha256,
                    bundle_sha256,
                    risk_score: risk.score,
                    submitted_by,
                    deprecated: None,
                    yanked: false,
                    breaking: !breaking_changes.is_empty(),
                },
            );
        }
        CapsuleEvent::AutoApproved { version, .. } => {
            set_status(capsule, &version, VersionStatus::Approved)
        }
        CapsuleEvent::QueuedForReview { version, .. } => {
            set_status(capsule, &version, VersionStatus::Queued)
        }
        CapsuleEvent::Reviewed {
            version, decision, ..
        } => {
            let status = match decision {
                ReviewDecision::Approve => VersionStatus::Approved,
                ReviewDecision::Reject => VersionStatus::Rejected,
                ReviewDecision::RequestChanges => VersionStatus::ChangesRequested,
            };
            set_status(capsule, &version, status)
        }
        CapsuleEvent::VersionPublished { version, .. } => {
            set_status(capsule, &version, VersionStatus::Published)
        }
        CapsuleEvent::VersionDeprecated {
            version, message, ..
        } => {
            if let Some(v) = capsule.versions.get_mut(&version) {
                v.deprecated = Some(message);
            }
        }
        CapsuleEvent::VersionYanked { version, .. } => {
            if let Some(v) = capsule.versions.get_mut(&version) {
                v.yanked = true;
            }
        }
    }
}
