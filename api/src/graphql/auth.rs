//! API keys: `Authorization: Bearer <token>`. A token is `agora_<key id>_<secret>` (or, for the
//! bootstrap admin key, any string given in `AGORA_BOOTSTRAP_ADMIN_KEY`). The key's SHA-256 is
//! kept in its `ApiKey` aggregate; the token itself is never stored. Generated tokens are derived
//! from a server secret and the key id, so an idempotent retry of `createApiKey` can return the
//! same token without it being stored anywhere.

use std::sync::Arc;

use agora_commands::{CommandBus, CommandMetadata};
use agora_domain::access::{AccessCommand, ApiKey, Role};
use chrono::Utc;
use sha2::{Digest, Sha256};

use super::error::ApiError;

/// Key id of the first admin key.
pub const BOOTSTRAP_KEY_ID: &str = "bootstrap";
const TOKEN_PREFIX: &str = "agora_";

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub name: String,
    pub role: Role,
    pub tenant: String,
}

impl Principal {
    /// Ok when the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<&Self, ApiError> {
        if roles.contains(&self.role) {
            Ok(self)
        } else {
            Err(ApiError::Forbidden(format!(
                "role {} may not do this",
                self.role.as_str()
            )))
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Issues and checks API keys.
#[derive(Clone)]
pub struct Keys {
    bus: Arc<CommandBus<ApiKey>>,
    token_secret: Arc<[u8; 32]>,
}

impl Keys {
    pub fn new(bus: Arc<CommandBus<ApiKey>>, token_secret: [u8; 32]) -> Self {
        Self {
            bus,
            token_secret: Arc::new(token_secret),
        }
    }

    /// The token of a generated key: `agora_<id>_<hex(sha256(secret || id))>`.
    pub fn token_for(&self, key_id: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"agora-api-key-token-v1");
        h.update(self.token_secret.as_slice());
        h.update(key_id.as_bytes());
        format!("{TOKEN_PREFIX}{key_id}_{}", hex::encode(h.finalize()))
    }

    /// Issues key `key_id` (random, chosen by the caller) and returns its token.
    pub async fn issue(
        &self,
        key_id: &str,
        principal: &str,
        role: Role,
        tenant: &str,
        meta: &CommandMetadata,
    ) -> Result<String, ApiError> {
        let token = self.token_for(key_id);
        self.issue_with_token(key_id, &token, principal, role, tenant, meta)
            .await?;
        Ok(token)
    }

    async fn issue_with_token(
        &self,
        key_id: &str,
        token: &str,
        principal: &str,
        role: Role,
        tenant: &str,
        meta: &CommandMetadata,
    ) -> Result<(), ApiError> {
        let command = AccessCommand::Issue {
            principal: principal.to_string(),
            role,
            tenant: tenant.to_string(),
            secret_sha256: sha256_hex(token),
            occurred_at: meta.occurred_at,
        };
        self.bus.execute(key_id, command, meta).await?;
        Ok(())
    }

    pub async fn revoke(&self, key_id: &str, meta: &CommandMetadata) -> Result<(), ApiError> {
        let command = AccessCommand::Revoke {
            occurred_at: meta.occurred_at,
        };
        self.bus.execute(key_id, command, meta).await?;
        Ok(())
    }

    /// On first start, makes the bootstrap admin key: the configured token, else a generated
    /// one that is returned (to be printed once). `None` when it exists already.
    pub async fn ensure_bootstrap(
        &self,
        configured: Option<&str>,
    ) -> Result<Option<String>, ApiError> {
        let existing = self.bus.load(BOOTSTRAP_KEY_ID).await?;
        if existing.exists() {
            return Ok(None);
        }
        let meta = CommandMetadata::new("system", "platform", Utc::now())
            .map_err(|e| ApiError::internal("bootstrap metadata", e))?;
        let token = match configured {
            Some(t) => t.to_string(),
            None => self.token_for(BOOTSTRAP_KEY_ID),
        };
        self.issue_with_token(
            BOOTSTRAP_KEY_ID,
            &token,
            "bootstrap-admin",
            Role::Admin,
            "platform",
            &meta,
        )
        .await?;
        Ok(configured.is_none().then_some(token))
    }

    /// The principal behind an `Authorization` header value, or `UNAUTHENTICATED`.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Principal, ApiError> {
        let token = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 512)
            .ok_or(ApiError::Unauthenticated)?;
        let key_id = token
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|rest| rest.rsplit_once('_'))
            .map(|(id, _)| id)
            .filter(|id| !id.is_empty())
            .unwrap_or(BOOTSTRAP_KEY_ID);
        let key = self.bus.load(key_id).await?;
        let grant = key.active().ok_or(ApiError::Unauthenticated)?;
        if !constant_time_eq(grant.secret_sha256.as_bytes(), sha256_hex(token).as_bytes()) {
            return Err(ApiError::Unauthenticated);
        }
        Ok(Principal {
            key_id: key_id.to_string(),
            name: grant.principal.clone(),
            role: grant.role,
            tenant: grant.tenant.clone(),
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn roles_are_checked() {
        let p = Principal {
            key_id: "k".into(),
            name: "n".into(),
            role: Role::Auditor,
            tenant: "t".into(),
        };
        assert!(p.require(&[Role::Auditor, Role::Admin]).is_ok());
        assert_eq!(p.require(&[Role::Admin]).unwrap_err().code(), "FORBIDDEN");
    }
}
