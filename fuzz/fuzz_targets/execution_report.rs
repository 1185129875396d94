//! An agent execution report on arbitrary bytes: no panic; a report that validates stores no
//! raw IP address or user agent (only the network prefix and the reduced client), and an error
//! message within its cap.
#![no_main]

use agora_domain::executions::anonymise::MAX_ERROR_MESSAGE_CHARS;
use agora_domain::executions::report::{validate, ExecutionReport};
use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(report) = serde_json::from_slice::<ExecutionReport>(data) else {
        return;
    };
    let now = Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap();
    match validate("agent-fuzz", &report, now) {
        Ok(e) => {
            if let Some(p) = &e.personal.ip_prefix {
                assert!(p.ends_with("/24") || p.ends_with("/48"), "{p}");
            }
            if let Some(m) = &e.facts.error_message {
                assert!(m.chars().count() <= MAX_ERROR_MESSAGE_CHARS + 1);
            }
            if let (Some(raw), Some(_)) = (&report.user_agent, &e.personal.client) {
                let stored = serde_json::to_string(&e).unwrap();
                assert!(raw.len() < 12 || !stored.contains(raw.as_str()));
            }
        }
        Err(problems) => assert!(!problems.is_empty()),
    }
});
