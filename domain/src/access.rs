//! API keys as an aggregate: issued to a principal with a role and a tenant, revoked once.
//! The key's secret never reaches the domain: commands carry only its SHA-256 hash.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

/// Longest principal or tenant name.
pub const MAX_NAME_LEN: usize = 100;

/// What a key may do. Checked by every resolver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Client,
    Seller,
    Author,
    Reviewer,
    Finance,
    Auditor,
    Admin,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Client,
        Role::Seller,
        Role::Author,
        Role::Reviewer,
        Role::Finance,
        Role::Auditor,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Seller => "seller",
            Role::Author => "author",
            Role::Reviewer => "reviewer",
            Role::Finance => "finance",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Role, AccessError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or(AccessError::UnknownRole)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("role must be one of client, seller, author, reviewer, finance, auditor, admin")]
    UnknownRole,
    #[error("principal and tenant must be 1..={MAX_NAME_LEN} characters of [A-Za-z0-9._@-]")]
    InvalidName,
    #[error("secret hash must be 64 lowercase hex characters")]
    InvalidSecretHash,
    #[error("an API key with this id already exists")]
    KeyAlreadyExists,
    #[error("no API key with this id")]
    KeyNotFound,
    #[error("a key's expiry must be after the moment it is issued")]
    ExpiryNotInFuture,
    #[error("token secret id must be 1..=64 characters of [a-z0-9]")]
    InvalidTokenSecretId,
}

impl AccessError {
    pub fn is_retryable(&self) -> bool {
        false
    }
}

fn check_name(s: &str) -> Result<(), AccessError> {
    let ok = !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
    ok.then_some(()).ok_or(AccessError::InvalidName)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessCommand {
    Issue {
        principal: String,
        role: Role,
        tenant: String,
        secret_sha256: String,
        /// After this instant the key no longer authenticates; `None` = until revoked.
        expires_at: Option<DateTime<Utc>>,
        /// Which API-token secret derived the token (so a retry after a rotation can tell it
        /// cannot show the token again); `None` for a token chosen by the operator.
        token_secret_id: Option<String>,
        occurred_at: DateTime<Utc>,
    },
    Revoke {
        occurred_at: DateTime<Utc>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessEvent {
    /// `expires_at` and `token_secret_id` were added later: events stored before read as
    /// `None` (a key without expiry, a token whose secret is not recorded).
    ApiKeyIssued {
        principal: String,
        role: Role,
        tenant: String,
        secret_sha256: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<DateTime<Utc>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_secret_id: Option<String>,
        occurred_at: DateTime<Utc>,
    },
    ApiKeyRevoked {
        occurred_at: DateTime<Utc>,
    },
}

impl DomainEvent for AccessEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ApiKeyIssued { .. } => "ApiKeyIssued",
            Self::ApiKeyRevoked { .. } => "ApiKeyRevoked",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        crate::versioning::current_version(ApiKey::TYPE, &self.event_type()).to_string()
    }
}

/// One API key. The aggregate id is the key id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    issued: Option<IssuedKey>,
    revoked: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedKey {
    pub principal: String,
    pub role: Role,
    pub tenant: String,
    pub secret_sha256: String,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub token_secret_id: Option<String>,
}

/// Whether a key authenticates at an instant, and if not, why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyStatus<'a> {
    Active(&'a IssuedKey),
    Unknown,
    Revoked,
    Expired,
}

impl ApiKey {
    /// The key's grant, if issued and not revoked (expiry is checked by [`ApiKey::status`]).
    pub fn active(&self) -> Option<&IssuedKey> {
        self.issued.as_ref().filter(|_| !self.revoked)
    }

    /// The key's standing at `now`.
    pub fn status(&self, now: DateTime<Utc>) -> KeyStatus<'_> {
        match &self.issued {
            None => KeyStatus::Unknown,
            Some(_) if self.revoked => KeyStatus::Revoked,
            Some(k) if k.expires_at.is_some_and(|e| e <= now) => KeyStatus::Expired,
            Some(k) => KeyStatus::Active(k),
        }
    }

    pub fn exists(&self) -> bool {
        self.issued.is_some()
    }

    /// The key as issued, whatever its standing now.
    pub fn issued(&self) -> Option<&IssuedKey> {
        self.issued.as_ref()
    }

    pub fn decide(&self, command: AccessCommand) -> Result<Vec<AccessEvent>, AccessError> {
        match command {
            AccessCommand::Issue {
                principal,
                role,
                tenant,
                secret_sha256,
                expires_at,
                token_secret_id,
                occurred_at,
            } => {
                check_name(&principal)?;
                check_name(&tenant)?;
                let hex_ok = secret_sha256.len() == 64
                    && secret_sha256
                        .chars()
                        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
                if !hex_ok {
                    return Err(AccessError::InvalidSecretHash);
                }
                if expires_at.is_some_and(|e| e <= occurred_at) {
                    return Err(AccessError::ExpiryNotInFuture);
                }
                let id_ok = |id: &String| {
                    (1..=64).contains(&id.len())
                        && id
                            .chars()
                            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
                };
                if token_secret_id.as_ref().is_some_and(|id| !id_ok(id)) {
                    return Err(AccessError::InvalidTokenSecretId);
                }
                if self.issued.is_some() {
                    return Err(AccessError::KeyAlreadyExists);
                }
                Ok(vec![AccessEvent::ApiKeyIssued {
                    principal,
                    role,
                    tenant,
                    secret_sha256,
                    expires_at,
                    token_secret_id,
                    occurred_at,
                }])
            }
            AccessCommand::Revoke { occurred_at } => match (&self.issued, self.revoked) {
                (None, _) => Err(AccessError::KeyNotFound),
                (Some(_), true) => Ok(vec![]),
                (Some(_), false) => Ok(vec![AccessEvent::ApiKeyRevoked { occurred_at }]),
            },
        }
    }
}

impl Aggregate for ApiKey {
    const TYPE: &'static str = "api_key";
    type Command = AccessCommand;
    type Event = AccessEvent;
    type Error = AccessError;
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
            AccessEvent::ApiKeyIssued {
                principal,
                role,
                tenant,
                secret_sha256,
                expires_at,
                token_secret_id,
                ..
            } => {
                self.issued = Some(IssuedKey {
                    principal,
                    role,
                    tenant,
                    secret_sha256,
                    expires_at,
                    token_secret_id,
                })
            }
            AccessEvent::ApiKeyRevoked { .. } => self.revoked = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    const HASH: &str = "0000000000000000000000000000000000000000000000000000000000000abc";

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn issue(role: Role) -> AccessCommand {
        AccessCommand::Issue {
            principal: "alice@example.com".into(),
            role,
            tenant: "acme".into(),
            secret_sha256: HASH.into(),
            expires_at: None,
            token_secret_id: Some("abc123".into()),
            occurred_at: at(),
        }
    }

    fn issued(role: Role) -> AccessEvent {
        AccessEvent::ApiKeyIssued {
            principal: "alice@example.com".into(),
            role,
            tenant: "acme".into(),
            secret_sha256: HASH.into(),
            expires_at: None,
            token_secret_id: Some("abc123".into()),
            occurred_at: at(),
        }
    }

    #[test]
    fn issue_then_revoke_once() {
        TestFramework::<ApiKey>::with(())
            .given_no_previous_events()
            .when(issue(Role::Finance))
            .then_expect_events(vec![issued(Role::Finance)]);
        TestFramework::<ApiKey>::with(())
            .given(vec![issued(Role::Finance)])
            .when(AccessCommand::Revoke { occurred_at: at() })
            .then_expect_events(vec![AccessEvent::ApiKeyRevoked { occurred_at: at() }]);
        TestFramework::<ApiKey>::with(())
            .given(vec![
                issued(Role::Finance),
                AccessEvent::ApiKeyRevoked { occurred_at: at() },
            ])
            .when(AccessCommand::Revoke { occurred_at: at() })
            .then_expect_events(vec![]);
    }

    #[test]
    fn rejections_are_typed() {
        TestFramework::<ApiKey>::with(())
            .given(vec![issued(Role::Admin)])
            .when(issue(Role::Admin))
            .then_expect_error(AccessError::KeyAlreadyExists);
        TestFramework::<ApiKey>::with(())
            .given_no_previous_events()
            .when(AccessCommand::Revoke { occurred_at: at() })
            .then_expect_error(AccessError::KeyNotFound);
        let mut bad = issue(Role::Client);
        if let AccessCommand::Issue { tenant, .. } = &mut bad {
            *tenant = "a b".into();
        }
        TestFramework::<ApiKey>::with(())
            .given_no_previous_events()
            .when(bad)
            .then_expect_error(AccessError::InvalidName);
        let mut bad = issue(Role::Client);
        if let AccessCommand::Issue { secret_sha256, .. } = &mut bad {
            *secret_sha256 = "XYZ".into();
        }
        TestFramework::<ApiKey>::with(())
            .given_no_previous_events()
            .when(bad)
            .then_expect_error(AccessError::InvalidSecretHash);
    }

    #[test]
    fn an_expiring_key_is_active_until_its_expiry() {
        let expiry = at() + chrono::Duration::hours(1);
        let mut command = issue(Role::Client);
        let mut event = issued(Role::Client);
        if let (
            AccessCommand::Issue { expires_at, .. },
            AccessEvent::ApiKeyIssued { expires_at: e, .. },
        ) = (&mut command, &mut event)
        {
            *expires_at = Some(expiry);
            *e = Some(expiry);
        }
        TestFramework::<ApiKey>::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_events(vec![event.clone()]);
        let mut key = ApiKey::default();
        assert_eq!(key.status(at()), KeyStatus::Unknown);
        key.apply(event);
        assert!(matches!(key.status(at()), KeyStatus::Active(_)));
        assert_eq!(key.status(expiry), KeyStatus::Expired);
        key.apply(AccessEvent::ApiKeyRevoked { occurred_at: at() });
        assert_eq!(key.status(at()), KeyStatus::Revoked);
    }

    #[test]
    fn an_expiry_in_the_past_is_refused() {
        let mut command = issue(Role::Client);
        if let AccessCommand::Issue { expires_at, .. } = &mut command {
            *expires_at = Some(at());
        }
        TestFramework::<ApiKey>::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(AccessError::ExpiryNotInFuture);
    }

    #[test]
    fn an_event_stored_before_expiry_existed_still_loads() {
        let stored = serde_json::json!({"ApiKeyIssued": {
            "principal": "p", "role": "admin", "tenant": "platform",
            "secret_sha256": HASH, "occurred_at": "2026-01-01T00:00:00Z"}});
        let event: AccessEvent = serde_json::from_value(stored).unwrap();
        let AccessEvent::ApiKeyIssued {
            expires_at,
            token_secret_id,
            ..
        } = event
        else {
            panic!("decoded as {event:?}");
        };
        assert_eq!((expires_at, token_secret_id), (None, None));
    }

    #[test]
    fn active_only_until_revoked() {
        let mut key = ApiKey::default();
        assert!(key.active().is_none());
        key.apply(issued(Role::Auditor));
        assert_eq!(key.active().map(|k| k.role), Some(Role::Auditor));
        key.apply(AccessEvent::ApiKeyRevoked { occurred_at: at() });
        assert!(key.active().is_none() && key.exists());
        assert_eq!(Role::parse("finance"), Ok(Role::Finance));
        assert_eq!(Role::parse("root"), Err(AccessError::UnknownRole));
    }
}
