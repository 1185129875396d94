//! Authors' ed25519 public keys, event-sourced: one `capsule_author_key` aggregate per author
//! (id: the author's actor id), each registration an `AuthorKeyRegistered` event. Keys are never
//! removed, so a signature made with an older key stays verifiable offline.
//!
//! This aggregate would sit in `agora_domain::capsules` with the others; it lives here for now
//! because that crate was being changed in parallel. Its decision is pure all the same.

use std::collections::BTreeMap;

use agora_domain::capsules::signature::key_id;
use chrono::{DateTime, Utc};
use cqrs_es::{Aggregate, DomainEvent};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

/// Most keys one author may register.
pub const MAX_KEYS_PER_AUTHOR: usize = 16;
/// The aggregate type.
pub const AUTHOR_KEY_TYPE: &str = "capsule_author_key";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthorKeyCommand {
    Register {
        public_key_hex: String,
        occurred_at: DateTime<Utc>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthorKeyEvent {
    AuthorKeyRegistered {
        keyid: String,
        public_key_hex: String,
        occurred_at: DateTime<Utc>,
    },
}

impl DomainEvent for AuthorKeyEvent {
    fn event_type(&self) -> String {
        "AuthorKeyRegistered".into()
    }

    fn event_version(&self) -> String {
        agora_domain::versioning::FIRST_VERSION.to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorKeyError {
    #[error("a public key is 64 hex characters naming a valid ed25519 point")]
    InvalidKey,
    #[error("an author may register at most {MAX_KEYS_PER_AUTHOR} keys")]
    TooManyKeys,
}

/// Parses a hex ed25519 public key.
pub fn parse_public_key(hex_key: &str) -> Result<VerifyingKey, AuthorKeyError> {
    let bytes: [u8; 32] = hex::decode(hex_key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(AuthorKeyError::InvalidKey)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| AuthorKeyError::InvalidKey)
}

/// An author's registered keys, by key id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorKeys {
    keys: BTreeMap<String, String>,
}

impl AuthorKeys {
    /// The keys, by key id (entries that do not parse are skipped: none can, see `decide`).
    pub fn verifying_keys(&self) -> BTreeMap<String, VerifyingKey> {
        self.keys
            .iter()
            .filter_map(|(id, hex_key)| parse_public_key(hex_key).ok().map(|k| (id.clone(), k)))
            .collect()
    }

    pub fn decide(&self, command: AuthorKeyCommand) -> Result<Vec<AuthorKeyEvent>, AuthorKeyError> {
        let AuthorKeyCommand::Register {
            public_key_hex,
            occurred_at,
        } = command;
        let key = parse_public_key(&public_key_hex)?;
        let keyid = key_id(&key);
        if self.keys.contains_key(&keyid) {
            return Ok(vec![]);
        }
        if self.keys.len() >= MAX_KEYS_PER_AUTHOR {
            return Err(AuthorKeyError::TooManyKeys);
        }
        Ok(vec![AuthorKeyEvent::AuthorKeyRegistered {
            keyid,
            public_key_hex: hex::encode(key.as_bytes()),
            occurred_at,
        }])
    }
}

impl Aggregate for AuthorKeys {
    const TYPE: &'static str = AUTHOR_KEY_TYPE;
    type Command = AuthorKeyCommand;
    type Event = AuthorKeyEvent;
    type Error = AuthorKeyError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        let AuthorKeyEvent::AuthorKeyRegistered {
            keyid,
            public_key_hex,
            ..
        } = event;
        self.keys.insert(keyid, public_key_hex);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn register(hex_key: &str) -> AuthorKeyCommand {
        AuthorKeyCommand::Register {
            public_key_hex: hex_key.into(),
            occurred_at: Utc::now(),
        }
    }

    #[test]
    fn a_key_is_registered_once_and_bad_keys_are_refused() {
        let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
        let hex_key = hex::encode(key.as_bytes());
        let mut keys = AuthorKeys::default();
        let events = keys.decide(register(&hex_key)).unwrap();
        assert_eq!(events.len(), 1);
        for e in events {
            keys.apply(e);
        }
        assert_eq!(keys.decide(register(&hex_key)), Ok(vec![]));
        assert_eq!(keys.verifying_keys().get(&key_id(&key)), Some(&key));
        assert_eq!(keys.decide(register("zz")), Err(AuthorKeyError::InvalidKey));
    }

    #[test]
    fn an_author_has_at_most_sixteen_keys() {
        let mut keys = AuthorKeys::default();
        for i in 0..MAX_KEYS_PER_AUTHOR {
            let k = SigningKey::from_bytes(&[i as u8 + 1; 32]).verifying_key();
            for e in keys.decide(register(&hex::encode(k.as_bytes()))).unwrap() {
                keys.apply(e);
            }
        }
        let k = SigningKey::from_bytes(&[200; 32]).verifying_key();
        assert_eq!(
            keys.decide(register(&hex::encode(k.as_bytes()))),
            Err(AuthorKeyError::TooManyKeys)
        );
    }
}
