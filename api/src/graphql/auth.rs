//! API keys: `Authorization: Bearer <token>`. A token is `agora_<key id>_<secret>` (or, for the
//! bootstrap admin key, any string given in `AGORA_BOOTSTRAP_ADMIN_KEY`). The key's SHA-256 is
//! kept in its `ApiKey` aggregate; the token itself is never stored. Generated tokens are derived
//! from a server secret and the key id, so an idempotent retry of `createApiKey` can return the
//! same token without it being stored anywhere.

use std::sync::Arc;

use agora_commands::{CommandBus, CommandMetadata};
use agora_domain::access::{AccessCommand, ApiKey, KeyStatus, Role};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::error::ApiError;

/// Tenant of platform-wide staff keys: the only keys that may reach across tenants.
pub const PLATFORM_TENANT: &str = "platform";

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

    /// A platform key (tenant [`PLATFORM_TENANT`]): staff whose role may reach across tenants.
    /// Every other key is bound to its tenant, whatever its role.
    pub fn is_platform(&self) -> bool {
        self.tenant == PLATFORM_TENANT
    }

    /// Ok when this key may read or act on `tenant`'s data: its own tenant, or any tenant for a
    /// platform key whose role is one of `cross_tenant_roles`.
    pub fn may_reach(&self, tenant: &str, cross_tenant_roles: &[Role]) -> Result<(), ApiError> {
        if self.tenant == tenant || (self.is_platform() && cross_tenant_roles.contains(&self.role))
        {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this key belongs to tenant {}, not {tenant}",
                self.tenant
            )))
        }
    }

    /// Whether this key may see every tenant at once (a platform key in one of `roles`).
    pub fn sees_all_tenants(&self, roles: &[Role]) -> bool {
        self.is_platform() && roles.contains(&self.role)
    }
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The secret generated API tokens are derived from. Independent of the ledger signing key, so
/// it can be rotated without touching the audit seal; rotating it leaves every issued key
/// working (only a token's hash is checked) and only stops a retried `createApiKey` from showing
/// a token made under the previous secret.
#[derive(Clone)]
pub struct TokenSecret {
    bytes: [u8; 32],
}

/// Environment variable holding the API-token secret (64 hex characters).
pub const TOKEN_SECRET_ENV: &str = "AGORA_API_TOKEN_SECRET";
/// File in the data directory holding a generated API-token secret.
pub const TOKEN_SECRET_FILE: &str = "api-token.secret";

impl TokenSecret {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self { bytes }
    }

    /// A fresh random secret.
    pub fn random() -> Self {
        Self::from_bytes(rand::random())
    }

    /// 64 hex characters.
    pub fn parse_hex(text: &str) -> anyhow::Result<Self> {
        let bytes: [u8; 32] = hex::decode(text.trim())?
            .try_into()
            .map_err(|_| anyhow::anyhow!("expected 32 bytes"))?;
        Ok(Self::from_bytes(bytes))
    }

    /// The configured secret, else the one in `data_dir`, else a new one written there (0600).
    pub fn load_or_create(
        configured: Option<&crate::keys::Secret>,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        if let Some(secret) = configured {
            return Self::parse_hex(secret.expose())
                .with_context(|| format!("{TOKEN_SECRET_ENV} must be 64 hex characters"));
        }
        let path = data_dir.join(TOKEN_SECRET_FILE);
        if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            return Self::parse_hex(&text)
                .with_context(|| format!("{} is not a valid secret", path.display()));
        }
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let secret = Self::random();
        crate::keys::write_private(&path, &hex::encode(secret.bytes))?;
        tracing::info!(path = %path.display(), "generated the API-token secret");
        Ok(secret)
    }

    /// A public fingerprint of the secret (recorded with each key it derived a token for).
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"agora-api-token-secret-id-v1");
        h.update(self.bytes);
        hex::encode(&h.finalize()[..8])
    }
}

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSecret(***)")
    }
}

/// What a new key is.
pub struct NewKey<'a> {
    pub key_id: &'a str,
    pub principal: &'a str,
    pub role: Role,
    pub tenant: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Issues and checks API keys.
#[derive(Clone)]
pub struct Keys {
    bus: Arc<CommandBus<ApiKey>>,
    token_secret: Arc<TokenSecret>,
    subscriptions: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
}

/// Most GraphQL subscriptions one API key holds open at once in one process; one more is
/// refused with `THROTTLED`.
pub const MAX_SUBSCRIPTIONS_PER_KEY: usize = 4;

/// One open subscription of a key: counted until dropped (the stream ends or the client goes).
pub struct SubscriptionSlot {
    key_id: String,
    open: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
}

impl Drop for SubscriptionSlot {
    fn drop(&mut self) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.key_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key_id);
            }
        }
    }
}

impl Keys {
    pub fn new(bus: Arc<CommandBus<ApiKey>>, token_secret: TokenSecret) -> Self {
        Self {
            bus,
            token_secret: Arc::new(token_secret),
            subscriptions: Arc::default(),
        }
    }

    /// Takes one of key `key_id`'s [`MAX_SUBSCRIPTIONS_PER_KEY`] subscription slots.
    pub fn open_subscription(&self, key_id: &str) -> Result<SubscriptionSlot, ApiError> {
        let mut open = self
            .subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = open.entry(key_id.to_owned()).or_insert(0);
        if *n >= MAX_SUBSCRIPTIONS_PER_KEY {
            return Err(ApiError::Limited {
                message: format!(
                    "this API key already holds {MAX_SUBSCRIPTIONS_PER_KEY} open subscriptions"
                ),
                retry_after_secs: 1,
            });
        }
        *n += 1;
        Ok(SubscriptionSlot {
            key_id: key_id.to_owned(),
            open: Arc::clone(&self.subscriptions),
        })
    }

    /// Subscriptions key `key_id` holds open in this process now.
    pub fn open_subscriptions(&self, key_id: &str) -> usize {
        self.subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key_id)
            .copied()
            .unwrap_or(0)
    }

    /// Whether key `key_id` is still active now (issued, not revoked, not expired): what a
    /// long-lived subscription re-checks.
    pub async fn still_active(&self, key_id: &str) -> Result<bool, ApiError> {
        let key = self.bus.load(key_id).await?;
        Ok(matches!(key.status(Utc::now()), KeyStatus::Active(_)))
    }

    /// The fingerprint of the secret this process derives tokens from.
    pub fn token_secret_id(&self) -> String {
        self.token_secret.id()
    }

    /// The token of a generated key: `agora_<id>_<hex(sha256(secret || id))>`.
    pub fn token_for(&self, key_id: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"agora-api-key-token-v1");
        h.update(self.token_secret.bytes);
        h.update(key_id.as_bytes());
        format!("{TOKEN_PREFIX}{key_id}_{}", hex::encode(h.finalize()))
    }

    /// Issues a key (its id random, chosen by the caller) and returns its token.
    pub async fn issue(
        &self,
        key: &NewKey<'_>,
        meta: &CommandMetadata,
    ) -> Result<String, ApiError> {
        let token = self.token_for(key.key_id);
        self.issue_with_token(key, &token, Some(self.token_secret.id()), meta)
            .await?;
        Ok(token)
    }

    async fn issue_with_token(
        &self,
        key: &NewKey<'_>,
        token: &str,
        token_secret_id: Option<String>,
        meta: &CommandMetadata,
    ) -> Result<(), ApiError> {
        let command = AccessCommand::Issue {
            principal: key.principal.to_string(),
            role: key.role,
            tenant: key.tenant.to_string(),
            secret_sha256: sha256_hex(token),
            expires_at: key.expires_at,
            token_secret_id,
            occurred_at: meta.occurred_at,
        };
        self.bus.execute(key.key_id, command, meta).await?;
        Ok(())
    }

    /// The tenant of key `key_id`, if it was ever issued.
    pub async fn tenant_of(&self, key_id: &str) -> Result<Option<String>, ApiError> {
        Ok(self
            .bus
            .load(key_id)
            .await?
            .issued()
            .map(|k| k.tenant.clone()))
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
        let meta = CommandMetadata::new("system", PLATFORM_TENANT, Utc::now())
            .map_err(|e| ApiError::internal("bootstrap metadata", e))?;
        let (token, secret_id) = match configured {
            Some(t) => (t.to_string(), None),
            None => (
                self.token_for(BOOTSTRAP_KEY_ID),
                Some(self.token_secret.id()),
            ),
        };
        let key = NewKey {
            key_id: BOOTSTRAP_KEY_ID,
            principal: "bootstrap-admin",
            role: Role::Admin,
            tenant: PLATFORM_TENANT,
            expires_at: None,
        };
        self.issue_with_token(&key, &token, secret_id, &meta)
            .await?;
        Ok(configured.is_none().then_some(token))
    }

    /// The principal behind an `Authorization` header value, or `UNAUTHENTICATED` saying
    /// whether the key is missing, malformed, unknown, revoked or expired.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Principal, ApiError> {
        let token = bearer_token(header)?;
        let key_id = token
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|rest| rest.rsplit_once('_'))
            .map(|(id, _)| id)
            .filter(|id| !id.is_empty())
            .unwrap_or(BOOTSTRAP_KEY_ID);
        let key = self.bus.load(key_id).await?;
        let unknown = || ApiError::Unauthenticated("unknown API key".into());
        let grant = match key.status(Utc::now()) {
            KeyStatus::Active(grant) => grant,
            KeyStatus::Unknown => return Err(unknown()),
            // A revoked or expired key is named as such only to the holder of its token.
            KeyStatus::Revoked | KeyStatus::Expired if !token_matches(&key, token) => {
                return Err(unknown())
            }
            KeyStatus::Revoked => {
                return Err(ApiError::Unauthenticated("this API key was revoked".into()))
            }
            KeyStatus::Expired => {
                return Err(ApiError::Unauthenticated("this API key has expired".into()))
            }
        };
        if !constant_time_eq(grant.secret_sha256.as_bytes(), sha256_hex(token).as_bytes()) {
            return Err(unknown());
        }
        Ok(Principal {
            key_id: key_id.to_string(),
            name: grant.principal.clone(),
            role: grant.role,
            tenant: grant.tenant.clone(),
        })
    }
}

/// Longest accepted bearer token.
pub const MAX_TOKEN_LEN: usize = 512;

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case).
fn bearer_token(header: Option<&str>) -> Result<&str, ApiError> {
    let header = header.ok_or_else(|| {
        ApiError::Unauthenticated("missing API key: send `Authorization: Bearer <api key>`".into())
    })?;
    let malformed = || {
        ApiError::Unauthenticated(format!(
            "malformed Authorization header: expected `Bearer <api key>` (at most \
             {MAX_TOKEN_LEN} characters)"
        ))
    };
    let (scheme, token) = header.trim().split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(malformed());
    }
    Ok(token)
}

fn token_matches(key: &ApiKey, token: &str) -> bool {
    key.issued()
        .is_some_and(|k| constant_time_eq(k.secret_sha256.as_bytes(), sha256_hex(token).as_bytes()))
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
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token(Some("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(Some("bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(Some("BEARER  abc ")).unwrap(), "abc");
        let code = |h| bearer_token(h).unwrap_err();
        assert!(code(None).message().starts_with("missing API key"));
        assert!(code(Some("Basic abc")).message().starts_with("malformed"));
        assert!(code(Some("Bearer")).message().starts_with("malformed"));
        assert!(code(Some(&format!("Bearer {}", "x".repeat(513))))
            .message()
            .starts_with("malformed"));
    }

    #[test]
    fn the_token_secret_is_its_own_and_fingerprinted() {
        let a = TokenSecret::from_bytes([1; 32]);
        let b = TokenSecret::from_bytes([2; 32]);
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id().len(), 16);
        assert_eq!(format!("{a:?}"), "TokenSecret(***)");
        let dir = tempfile::tempdir().unwrap();
        let first = TokenSecret::load_or_create(None, dir.path()).unwrap();
        let again = TokenSecret::load_or_create(None, dir.path()).unwrap();
        assert_eq!(first.id(), again.id());
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
