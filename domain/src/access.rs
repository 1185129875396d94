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
        occurred_at: DateTime<Utc>,
    },
    Revoke {
        occurred_at: DateTime<Utc>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessEvent {
    ApiKeyIssued {
        principal: String,
        role: Role,
        tenant: String,
        secret_sha256: String,
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
        "1.0".to_string()
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
}

impl ApiKey {
    /// The key's grant, if issued and not revoked.
    pub fn active(&self) -> Option<&IssuedKey> {
        self.issued.as_ref().filter(|_| !self.revoked)
    }

    pub fn exists(&self) -> bool {
        self.issued.is_some()
    }

    pub fn decide(&self, command: AccessCommand) -> Result<Vec<AccessEvent>, AccessError> {
        match command {
            AccessCommand::Issue {
                principal,
                role,
                tenant,
                secret_sha256,
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
                if self.issued.is_some() {
                    return Err(AccessError::KeyAlreadyExists);
                }
                Ok(vec![AccessEvent::ApiKeyIssued {
                    principal,
                    role,
                    tenant,
                    secret_sha256,
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
                ..
            } => {
                self.issued = Some(IssuedKey {
                    principal,
                    role,
                    tenant,
                    secret_sha256,
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
            occurred_at: at(),
        }
    }

    fn issued(role: Role) -> AccessEvent {
        AccessEvent::ApiKeyIssued {
            principal: "alice@example.com".into(),
            role,
            tenant: "acme".into(),
            secret_sha256: HASH.into(),
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
