//! The permission vocabulary a manifest may declare, and each permission's tier.
//!
//! A permission outside this list is a validation problem (the schema's `#/$defs/permission`
//! enum is this list; a test keeps them equal). Tiers drive the risk score and review:
//! - **normal**: reads that stay inside the capsule's sandbox;
//! - **elevated**: writes to tenant data, reads of configuration, calls to the tenant's own
//!   services;
//! - **dangerous**: anything that can leak data or act outside the sandbox. A version that
//!   declares one is never auto-approved, and an update that adds one is flagged so installed
//!   users re-approve it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How much a permission lets a capsule do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PermissionTier {
    Normal,
    Elevated,
    Dangerous,
}

/// A permission a capsule asks for, spelled in manifests as `area.action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    /// `network.none`: declares that the capsule makes no network calls.
    #[serde(rename = "network.none")]
    NetworkNone,
    /// `filesystem.read`: reads files in its workspace.
    #[serde(rename = "filesystem.read")]
    FilesystemRead,
    /// `database.read`: reads the tenant's connected databases.
    #[serde(rename = "database.read")]
    DatabaseRead,
    /// `env.read`: reads environment/configuration values (not secrets).
    #[serde(rename = "env.read")]
    EnvRead,
    /// `database.write`: writes to the tenant's connected databases.
    #[serde(rename = "database.write")]
    DatabaseWrite,
    /// `network.internal`: calls the tenant's own services.
    #[serde(rename = "network.internal")]
    NetworkInternal,
    /// `network.egress`: calls any host on the internet.
    #[serde(rename = "network.egress")]
    NetworkEgress,
    /// `filesystem.write`: writes files outside its scratch space.
    #[serde(rename = "filesystem.write")]
    FilesystemWrite,
    /// `process.exec`: starts processes.
    #[serde(rename = "process.exec")]
    ProcessExec,
    /// `secrets.read`: reads the tenant's secrets.
    #[serde(rename = "secrets.read")]
    SecretsRead,
}

impl Permission {
    /// Every known permission, in tier order.
    pub const ALL: [Permission; 10] = [
        Permission::NetworkNone,
        Permission::FilesystemRead,
        Permission::DatabaseRead,
        Permission::EnvRead,
        Permission::DatabaseWrite,
        Permission::NetworkInternal,
        Permission::NetworkEgress,
        Permission::FilesystemWrite,
        Permission::ProcessExec,
        Permission::SecretsRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::NetworkNone => "network.none",
            Permission::FilesystemRead => "filesystem.read",
            Permission::DatabaseRead => "database.read",
            Permission::EnvRead => "env.read",
            Permission::DatabaseWrite => "database.write",
            Permission::NetworkInternal => "network.internal",
            Permission::NetworkEgress => "network.egress",
            Permission::FilesystemWrite => "filesystem.write",
            Permission::ProcessExec => "process.exec",
            Permission::SecretsRead => "secrets.read",
        }
    }

    pub fn parse(s: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == s)
    }

    pub fn tier(self) -> PermissionTier {
        match self {
            Permission::NetworkNone | Permission::FilesystemRead | Permission::DatabaseRead => {
                PermissionTier::Normal
            }
            Permission::EnvRead | Permission::DatabaseWrite | Permission::NetworkInternal => {
                PermissionTier::Elevated
            }
            Permission::NetworkEgress
            | Permission::FilesystemWrite
            | Permission::ProcessExec
            | Permission::SecretsRead => PermissionTier::Dangerous,
        }
    }

    pub fn is_dangerous(self) -> bool {
        self.tier() == PermissionTier::Dangerous
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_parse_and_serde() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
        }
        assert_eq!(Permission::parse("network.everything"), None);
    }

    #[test]
    fn the_seeds_dangerous_permissions_are_dangerous() {
        assert!(Permission::NetworkEgress.is_dangerous());
        assert!(Permission::FilesystemWrite.is_dangerous());
        assert!(Permission::ProcessExec.is_dangerous());
        assert!(Permission::SecretsRead.is_dangerous());
        assert_eq!(Permission::DatabaseRead.tier(), PermissionTier::Normal);
        assert_eq!(Permission::DatabaseWrite.tier(), PermissionTier::Elevated);
    }
}
