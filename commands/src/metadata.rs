//! Command metadata: who asked, for which tenant, why, and when. cqrs-es copies it onto every
//! event of the commit; the repository adds each event's own id.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

/// Longest accepted actor, tenant or idempotency key.
pub const MAX_METADATA_FIELD_LEN: usize = 200;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandMetadata {
    pub actor: String,
    pub tenant: String,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    pub occurred_at: DateTime<Utc>,
    /// Extra labels stored as `tag.<name>` on every event of the commit (the FinOps tags of
    /// costed work: `tag.application`, `tag.tenantId`, `tag.costCenter`, …).
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetadataError {
    #[error("{field} must be 1..={MAX_METADATA_FIELD_LEN} printable characters")]
    InvalidField { field: &'static str },
}

impl CommandMetadata {
    /// Metadata for a new, uncorrelated request stamped `occurred_at`. The correlation id is a
    /// fresh UUIDv7.
    pub fn new(
        actor: &str,
        tenant: &str,
        occurred_at: DateTime<Utc>,
    ) -> Result<Self, MetadataError> {
        check_field("actor", actor)?;
        check_field("tenant", tenant)?;
        Ok(Self {
            actor: actor.to_string(),
            tenant: tenant.to_string(),
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            idempotency_key: None,
            occurred_at,
            tags: BTreeMap::new(),
        })
    }

    pub fn with_idempotency_key(mut self, key: &str) -> Result<Self, MetadataError> {
        check_field("idempotency_key", key)?;
        self.idempotency_key = Some(key.to_string());
        Ok(self)
    }

    pub fn with_correlation(mut self, correlation_id: Uuid, causation_id: Option<Uuid>) -> Self {
        self.correlation_id = correlation_id;
        self.causation_id = causation_id;
        self
    }

    /// Adds `tag.<name> = value` to every event of the commit.
    pub fn with_tag(mut self, name: &str, value: &str) -> Self {
        self.tags.insert(name.to_owned(), value.to_owned());
        self
    }

    /// The map cqrs-es stores with each event.
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut map = HashMap::with_capacity(6);
        map.insert("actor".into(), self.actor.clone());
        map.insert("tenant".into(), self.tenant.clone());
        map.insert("correlation_id".into(), self.correlation_id.to_string());
        map.insert(
            "occurred_at".into(),
            self.occurred_at
                .to_rfc3339_opts(SecondsFormat::Micros, true),
        );
        if let Some(causation) = self.causation_id {
            map.insert("causation_id".into(), causation.to_string());
        }
        if let Some(key) = &self.idempotency_key {
            map.insert("idempotency_key".into(), key.clone());
        }
        for (name, value) in &self.tags {
            map.insert(format!("tag.{name}"), value.clone());
        }
        map
    }
}

fn check_field(field: &'static str, value: &str) -> Result<(), MetadataError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_METADATA_FIELD_LEN
        && value.chars().all(|c| !c.is_control());
    if ok {
        Ok(())
    } else {
        Err(MetadataError::InvalidField { field })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_carries_every_field() {
        let at = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .to_utc();
        let cause = Uuid::now_v7();
        let meta = CommandMetadata::new("alice", "acme", at)
            .unwrap()
            .with_idempotency_key("k-1")
            .unwrap()
            .with_correlation(Uuid::nil(), Some(cause));
        let map = meta.to_map();
        assert_eq!(map["actor"], "alice");
        assert_eq!(map["tenant"], "acme");
        assert_eq!(map["correlation_id"], Uuid::nil().to_string());
        assert_eq!(map["causation_id"], cause.to_string());
        assert_eq!(map["idempotency_key"], "k-1");
        assert_eq!(map["occurred_at"], "2026-01-02T03:04:05.000000Z");
        let tagged = CommandMetadata::new("a", "t", at)
            .unwrap()
            .with_tag("costCenter", "cc-1")
            .to_map();
        assert_eq!(tagged["tag.costCenter"], "cc-1");
    }

    #[test]
    fn rejects_empty_and_control_characters() {
        let at = Utc::now();
        assert_eq!(
            CommandMetadata::new("", "t", at).unwrap_err(),
            MetadataError::InvalidField { field: "actor" }
        );
        assert_eq!(
            CommandMetadata::new("a", "t\n", at).unwrap_err(),
            MetadataError::InvalidField { field: "tenant" }
        );
        let long = "k".repeat(MAX_METADATA_FIELD_LEN + 1);
        assert!(CommandMetadata::new("a", "t", at)
            .unwrap()
            .with_idempotency_key(&long)
            .is_err());
    }
}
