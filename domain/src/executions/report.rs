//! An execution report as a client sends it, and the valid, anonymised record it becomes.
//!
//! [`validate`] checks every field against its limit and reports every problem at once, each
//! named by its JSON field (`durationMs`, `tokens/0/model`); the raw user agent, IP address and
//! error message never leave it un-anonymised.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::anonymise::{client_agent, ip_prefix, sanitise_message, ClientAgent};

/// Longest id (execution, agent, user, session), in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Longest run a report may describe, in milliseconds (a day).
pub const MAX_DURATION_MS: i64 = 86_400_000;
/// Most credits one execution may consume.
pub const MAX_CREDITS: i64 = 1_000_000_000;
/// Most decimal places of credits.
pub const MAX_CREDIT_SCALE: u32 = 6;
/// Largest input or output size, in bytes (1 TiB).
pub const MAX_SIZE_BYTES: i64 = 1 << 40;
/// Longest input/output type and error code.
pub const MAX_LABEL_CHARS: usize = 32;
/// Most token-usage lines per execution.
pub const MAX_TOKEN_LINES: usize = 16;
/// Most tokens in one usage line.
pub const MAX_TOKENS: i64 = 1_000_000_000;
/// How far in the future a report's times may lie (clock skew).
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 300;
/// Oldest start a report may have, in days.
pub const MAX_AGE_DAYS: i64 = 400;

/// How a run ended (seed 002).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    Success,
    Failed,
    Timeout,
    Error,
}

impl ExecutionStatus {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "success" => Self::Success,
            "failed" => Self::Failed,
            "timeout" => Self::Timeout,
            "error" => Self::Error,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
            Self::Error => "error",
        }
    }
}

/// Tokens one model used in the run (rated later by billing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenUsage {
    pub provider: String,
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

/// A report as received (JSON, camelCase as the seed's schema).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecutionReport {
    pub execution_id: String,
    pub user_id: String,
    pub status: String,
    pub duration_ms: i64,
    #[serde(default)]
    pub credits_consumed: Decimal,
    pub http_status: Option<i64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub input_size: Option<i64>,
    pub output_size: Option<i64>,
    pub input_type: Option<String>,
    pub output_type: Option<String>,
    pub response_time_ms: Option<i64>,
    pub processing_time_ms: Option<i64>,
    pub queue_time_ms: Option<i64>,
    pub session_id: Option<String>,
    pub user_agent: Option<String>,
    pub ip_address: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub tokens: Vec<TokenUsage>,
}

/// One problem of a report: the JSON field and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionProblem {
    pub field: String,
    pub message: String,
}

/// What an execution says that analytics count: the same for everyone, nothing personal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionFacts {
    pub execution_id: String,
    pub agent_id: String,
    pub status: ExecutionStatus,
    pub duration_ms: i64,
    pub credits_consumed: Decimal,
    pub http_status: Option<i64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub input_size: Option<i64>,
    pub output_size: Option<i64>,
    pub input_type: Option<String>,
    pub output_type: Option<String>,
    pub response_time_ms: Option<i64>,
    pub processing_time_ms: Option<i64>,
    pub queue_time_ms: Option<i64>,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub tokens: Vec<TokenUsage>,
}

/// What of an execution is the user's own (sealed with the user's key when stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonalFields {
    pub user_id: String,
    pub session_id: Option<String>,
    pub ip_prefix: Option<String>,
    pub client: Option<ClientAgent>,
}

/// A valid, anonymised execution: what may be stored, once `personal` is sealed with the
/// user's key (DESIGN.md §9).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    pub facts: ExecutionFacts,
    pub personal: PersonalFields,
}

struct Checks {
    problems: Vec<ExecutionProblem>,
}

impl Checks {
    fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.problems.push(ExecutionProblem {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// An id: 1..=128 bytes of letters, digits and `._:-`.
    fn id(&mut self, field: &str, value: &str) {
        let ok = !value.is_empty()
            && value.len() <= MAX_ID_BYTES
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
        if !ok {
            self.fail(
                field,
                format!("must be 1 to {MAX_ID_BYTES} letters, digits or `._:-`"),
            );
        }
    }

    fn range(&mut self, field: &str, value: Option<i64>, min: i64, max: i64) {
        if let Some(v) = value {
            if !(min..=max).contains(&v) {
                self.fail(field, format!("must be {min}..={max}, not {v}"));
            }
        }
    }

    /// A label (`json`, `TIMEOUT`): 1..=32 characters of letters, digits and `_-./`.
    fn label(&mut self, field: &str, value: Option<&str>) -> Option<String> {
        let v = value?.trim();
        let ok = !v.is_empty()
            && v.chars().count() <= MAX_LABEL_CHARS
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c));
        if !ok {
            self.fail(
                field,
                format!("must be 1 to {MAX_LABEL_CHARS} letters, digits or `_-./`"),
            );
        }
        Some(v.to_owned())
    }
}

/// Validates and anonymises `report` of agent `agent_id`, received at `now`. Every problem is
/// reported, each with its field.
pub fn validate(
    agent_id: &str,
    report: &ExecutionReport,
    now: DateTime<Utc>,
) -> Result<Execution, Vec<ExecutionProblem>> {
    let mut c = Checks {
        problems: Vec::new(),
    };
    c.id("agentId", agent_id);
    c.id("executionId", &report.execution_id);
    c.id("userId", &report.user_id);
    if let Some(s) = &report.session_id {
        c.id("sessionId", s);
    }
    let status = ExecutionStatus::parse(&report.status);
    if status.is_none() {
        c.fail("status", "must be success, failed, timeout or error");
    }
    c.range("durationMs", Some(report.duration_ms), 0, MAX_DURATION_MS);
    for (field, v) in [
        ("responseTimeMs", report.response_time_ms),
        ("processingTimeMs", report.processing_time_ms),
        ("queueTimeMs", report.queue_time_ms),
    ] {
        c.range(field, v, 0, MAX_DURATION_MS);
    }
    c.range("httpStatus", report.http_status, 100, 599);
    c.range("inputSize", report.input_size, 0, MAX_SIZE_BYTES);
    c.range("outputSize", report.output_size, 0, MAX_SIZE_BYTES);
    let credits = report.credits_consumed;
    if credits.is_sign_negative()
        || credits > Decimal::from(MAX_CREDITS)
        || credits.normalize().scale() > MAX_CREDIT_SCALE
    {
        c.fail(
            "creditsConsumed",
            format!("must be 0..={MAX_CREDITS} with at most {MAX_CREDIT_SCALE} decimal places"),
        );
    }
    let input_type = c.label("inputType", report.input_type.as_deref());
    let output_type = c.label("outputType", report.output_type.as_deref());
    let error_code = c
        .label("errorCode", report.error_code.as_deref())
        .map(|e| e.to_ascii_uppercase());
    if status == Some(ExecutionStatus::Success)
        && (report.error_code.is_some() || report.error_message.is_some())
    {
        c.fail(
            "errorCode",
            "a successful execution has no errorCode or errorMessage",
        );
    }
    let started_at = report.started_at.unwrap_or(now);
    let skew = Duration::seconds(MAX_CLOCK_SKEW_SECONDS);
    if started_at > now + skew {
        c.fail("startedAt", "lies in the future");
    }
    if started_at < now - Duration::days(MAX_AGE_DAYS) {
        c.fail("startedAt", format!("is more than {MAX_AGE_DAYS} days old"));
    }
    if let Some(done) = report.completed_at {
        if done < started_at {
            c.fail("completedAt", "is before startedAt");
        }
        if done > now + skew {
            c.fail("completedAt", "lies in the future");
        }
    }
    let ip = report
        .ip_address
        .as_deref()
        .filter(|ip| !ip.trim().is_empty())
        .and_then(|ip| match ip_prefix(ip) {
            Ok(p) => Some(p),
            Err(e) => {
                c.fail("ipAddress", e.to_string());
                None
            }
        });
    let client = report
        .user_agent
        .as_deref()
        .filter(|ua| !ua.trim().is_empty())
        .and_then(|ua| match client_agent(ua) {
            Ok(a) => Some(a),
            Err(e) => {
                c.fail("userAgent", e.to_string());
                None
            }
        });
    if report.tokens.len() > MAX_TOKEN_LINES {
        c.fail("tokens", format!("at most {MAX_TOKEN_LINES} lines"));
    }
    for (i, t) in report.tokens.iter().take(MAX_TOKEN_LINES).enumerate() {
        c.label(&format!("tokens/{i}/provider"), Some(&t.provider));
        if t.model.is_empty()
            || t.model.chars().count() > 64
            || t.model
                .chars()
                .any(|ch| ch.is_control() || ch.is_whitespace())
        {
            c.fail(
                &format!("tokens/{i}/model"),
                "must be 1 to 64 characters without spaces",
            );
        }
        c.range(
            &format!("tokens/{i}/inputTokens"),
            Some(t.input_tokens),
            0,
            MAX_TOKENS,
        );
        c.range(
            &format!("tokens/{i}/outputTokens"),
            Some(t.output_tokens),
            0,
            MAX_TOKENS,
        );
    }
    let Some(status) = status else {
        return Err(c.problems);
    };
    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    Ok(Execution {
        facts: ExecutionFacts {
            execution_id: report.execution_id.clone(),
            agent_id: agent_id.to_owned(),
            status,
            duration_ms: report.duration_ms,
            credits_consumed: credits.normalize(),
            http_status: report.http_status,
            error_code,
            error_message: report
                .error_message
                .as_deref()
                .map(sanitise_message)
                .filter(|m| !m.is_empty()),
            input_size: report.input_size,
            output_size: report.output_size,
            input_type,
            output_type,
            response_time_ms: report.response_time_ms,
            processing_time_ms: report.processing_time_ms,
            queue_time_ms: report.queue_time_ms,
            started_at,
            completed_at: report.completed_at,
            tokens: report.tokens.clone(),
        },
        personal: PersonalFields {
            user_id: report.user_id.clone(),
            session_id: report.session_id.clone(),
            ip_prefix: ip,
            client,
        },
    })
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
