//! Stored event shapes and their upcasters (DESIGN.md §2, STYLE 8).
//!
//! A stored event is a contract: when an event's shape changes, its `event_version` goes up
//! and an entry here turns every older stored shape into the current one as it is loaded
//! (cqrs-es `SemanticVersionEventUpcaster`, applied when an aggregate is loaded, on both
//! backends). The log itself is never rewritten: readers of the raw log (projections, the audit
//! seal) see the shape as stored, and the domain types still deserialize every registered older
//! shape (the fields an upcaster adds are optional or defaulted).
//!
//! Registered evolutions, oldest first per event type:
//!
//! | aggregate | event | version | change |
//! |---|---|---|---|
//! | `log_analysis` | `LogAnalysisRecorded` | 1.1 | `analysis.templates` always present (`[]` when absent in 1.0) |
//! | `tenant` | `SeriesRecorded` | 1.1 | `series.seasonLength` always present (`null` when absent in 1.0) |
//! | `api_key` | `ApiKeyIssued` | 1.1 | `expires_at` and `token_secret_id` (`null`: no expiry, a token whose secret was not recorded) |

use cqrs_es::persist::{EventUpcaster, SemanticVersionEventUpcaster};
use serde_json::Value;

/// One change of a stored event's shape.
#[derive(Clone, Copy, Debug)]
pub struct Evolution {
    pub aggregate_type: &'static str,
    pub event_type: &'static str,
    /// The version this step produces (stored events below it are upcast).
    pub to_version: &'static str,
    /// Turns the older payload into this version's.
    pub upcast: fn(Value) -> Value,
}

/// Version of event shapes that never changed.
pub const FIRST_VERSION: &str = "1.0";

/// Every registered evolution, oldest first per event type.
pub const EVOLUTIONS: &[Evolution] = &[
    Evolution {
        aggregate_type: "log_analysis",
        event_type: "LogAnalysisRecorded",
        to_version: "1.1",
        upcast: log_analysis_recorded_1_1,
    },
    Evolution {
        aggregate_type: "tenant",
        event_type: "SeriesRecorded",
        to_version: "1.1",
        upcast: series_recorded_1_1,
    },
    Evolution {
        aggregate_type: "api_key",
        event_type: "ApiKeyIssued",
        to_version: "1.1",
        upcast: api_key_issued_1_1,
    },
];

/// The version events of `event_type` are written with now.
pub fn current_version(aggregate_type: &str, event_type: &str) -> &'static str {
    EVOLUTIONS
        .iter()
        .rev()
        .find(|e| e.aggregate_type == aggregate_type && e.event_type == event_type)
        .map_or(FIRST_VERSION, |e| e.to_version)
}

/// The cqrs-es upcasters for one aggregate type, in the order they must run.
pub fn upcasters_for(aggregate_type: &str) -> Vec<Box<dyn EventUpcaster>> {
    EVOLUTIONS
        .iter()
        .filter(|e| e.aggregate_type == aggregate_type)
        .map(|e| {
            let f = e.upcast;
            Box::new(SemanticVersionEventUpcaster::new(
                e.event_type,
                e.to_version,
                Box::new(f),
            )) as Box<dyn EventUpcaster>
        })
        .collect()
}

/// Sets `object[outer][inner]…[key]` to `default` when it is absent. `path` names the
/// objects to walk into; the payload is an externally tagged enum (`{"Variant": {...}}`).
fn default_field(mut payload: Value, path: &[&str], key: &str, default: Value) -> Value {
    let mut node = &mut payload;
    for step in path {
        match node.get_mut(*step) {
            Some(next) => node = next,
            None => return payload,
        }
    }
    if let Value::Object(map) = node {
        map.entry(key.to_string()).or_insert(default);
    }
    payload
}

fn log_analysis_recorded_1_1(payload: Value) -> Value {
    default_field(
        payload,
        &["LogAnalysisRecorded", "analysis"],
        "templates",
        Value::Array(Vec::new()),
    )
}

fn series_recorded_1_1(payload: Value) -> Value {
    default_field(
        payload,
        &["SeriesRecorded", "series"],
        "seasonLength",
        Value::Null,
    )
}

fn api_key_issued_1_1(payload: Value) -> Value {
    let payload = default_field(payload, &["ApiKeyIssued"], "expires_at", Value::Null);
    default_field(payload, &["ApiKeyIssued"], "token_secret_id", Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::persist::SerializedEvent;
    use serde_json::json;

    fn stored(event_type: &str, version: &str, payload: Value) -> SerializedEvent {
        SerializedEvent::new(
            "id".into(),
            1,
            "t".into(),
            event_type.into(),
            version.into(),
            payload,
            json!({}),
        )
    }

    fn upcast(aggregate_type: &str, event: SerializedEvent) -> SerializedEvent {
        upcasters_for(aggregate_type).iter().fold(event, |e, u| {
            match u.can_upcast(&e.event_type, &e.event_version) {
                true => u.upcast(e),
                false => e,
            }
        })
    }

    #[test]
    fn a_1_0_api_key_gains_its_expiry_and_secret_id() {
        let v1 = stored(
            "ApiKeyIssued",
            "1.0",
            json!({"ApiKeyIssued": {"principal": "p", "role": "admin", "tenant": "platform",
                "secret_sha256": "00", "occurred_at": "2026-01-01T00:00:00Z"}}),
        );
        let up = upcast("api_key", v1);
        assert_eq!(up.event_version, "1.1.0");
        assert_eq!(up.payload["ApiKeyIssued"]["expires_at"], Value::Null);
        assert_eq!(up.payload["ApiKeyIssued"]["token_secret_id"], Value::Null);
        let event: crate::access::AccessEvent = serde_json::from_value(up.payload).unwrap();
        assert!(matches!(
            event,
            crate::access::AccessEvent::ApiKeyIssued {
                expires_at: None,
                ..
            }
        ));
    }

    #[test]
    fn a_1_0_series_gains_its_season_length_and_the_current_version() {
        let v1 = stored(
            "SeriesRecorded",
            "1.0",
            json!({"SeriesRecorded": {"points": 2, "series": {"values": [1.0, 2.0]},
                "occurred_at": "2026-01-01T00:00:00Z"}}),
        );
        let up = upcast("tenant", v1);
        // cqrs-es writes the upcast version in full (major.minor.patch).
        assert_eq!(up.event_version, "1.1.0");
        assert_eq!(
            up.payload["SeriesRecorded"]["series"]["seasonLength"],
            Value::Null
        );
        let parsed: crate::tenancy::tenant::TenantEvent =
            serde_json::from_value(up.payload).unwrap();
        assert!(matches!(
            parsed,
            crate::tenancy::tenant::TenantEvent::SeriesRecorded { points: 2, .. }
        ));
    }

    #[test]
    fn a_1_0_analysis_gains_its_templates_and_current_shapes_are_left_alone() {
        let v1 = stored(
            "LogAnalysisRecorded",
            "1.0",
            json!({"LogAnalysisRecorded": {"analysis": {"log_sha256": "ab"}}}),
        );
        let up = upcast("log_analysis", v1);
        assert_eq!(up.event_version, "1.1.0");
        assert_eq!(
            up.payload["LogAnalysisRecorded"]["analysis"]["templates"],
            json!([])
        );
        let current = stored(
            "LogAnalysisRecorded",
            "1.1",
            json!({"LogAnalysisRecorded": {"analysis": {"templates": [1]}}}),
        );
        assert_eq!(upcast("log_analysis", current.clone()), current);
        let other = stored("AnalysisPaid", "1.0", json!({"AnalysisPaid": {}}));
        assert_eq!(upcast("log_analysis", other.clone()), other);
    }

    #[test]
    fn current_versions_follow_the_registry() {
        assert_eq!(
            current_version("log_analysis", "LogAnalysisRecorded"),
            "1.1"
        );
        assert_eq!(current_version("tenant", "SeriesRecorded"), "1.1");
        assert_eq!(current_version("tenant", "TenantRegistered"), FIRST_VERSION);
        assert!(upcasters_for("journal_entry").is_empty());
    }
}
