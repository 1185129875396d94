//! The one mapping from failures to GraphQL `extensions.code`. Internal details are logged with
//! a reference, never returned.

use agora_commands::CommandError;
use agora_domain::access::AccessError;
use agora_domain::ledger::LedgerError;
use async_graphql::ErrorExtensions;

/// Deliberately not `Display`: async-graphql converts any `Display` error into one without a
/// code, so an `ApiError` can only become a GraphQL error through [`ErrorExtensions`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// No usable key: the message says whether it is missing, malformed, unknown, revoked or
    /// expired.
    Unauthenticated(String),
    Forbidden(String),
    BadUserInput(String),
    NotFound(String),
    /// A rule refuses the request as it stands: sending it again will not help.
    Conflict(String),
    /// 409 `CONFLICT` with `retryable: true`: the target kept changing, or the first request
    /// with this idempotency key is still running. Never stored as an idempotent outcome.
    Busy(String),
    IdempotencyConflict,
    Throttled,
    /// A quota other than the request rate (e.g. log submissions per hour), with when to retry.
    Limited {
        message: String,
        retry_after_secs: u64,
    },
    /// The input is over a size limit.
    PayloadTooLarge(String),
    /// 404 `TENANT_NOT_FOUND`: the tenant is not registered.
    TenantNotFound(String),
    /// 404 `FEATURE_NOT_AVAILABLE`: a feature flag is off for this tenant and key.
    FeatureNotAvailable(String),
    /// 402 `MARGIN_GUARDRAIL_EXCEEDED`: the tenant's projected spend would pass its limit.
    MarginGuardrailExceeded(String),
    /// 503 `ERROR_BUDGET_EXHAUSTED`: the tenant's SLO error budget is spent.
    ErrorBudgetExhausted(String),
    /// `BALANCE_OUT_OF_BOUNDS`: a journal entry would move a balance past ±10^15.
    BalanceOutOfBounds(String),
    /// The detail is logged where the error is made, never returned.
    Internal(String),
}

impl ApiError {
    /// The message returned to the client.
    pub fn message(&self) -> String {
        match self {
            Self::Unauthenticated(m) => m.clone(),
            Self::Forbidden(m) => format!("forbidden: {m}"),
            Self::BadUserInput(m) | Self::NotFound(m) | Self::Conflict(m) | Self::Busy(m) => {
                m.clone()
            }
            Self::IdempotencyConflict => {
                "this idempotency key was already used with a different request".into()
            }
            Self::Throttled => "too many requests".into(),
            Self::Limited { message, .. } => message.clone(),
            Self::PayloadTooLarge(m)
            | Self::TenantNotFound(m)
            | Self::FeatureNotAvailable(m)
            | Self::MarginGuardrailExceeded(m)
            | Self::ErrorBudgetExhausted(m)
            | Self::BalanceOutOfBounds(m) => m.clone(),
            Self::Internal(_) => "internal error".into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::BadUserInput(_) => "BAD_USER_INPUT",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Conflict(_) | Self::Busy(_) => "CONFLICT",
            Self::IdempotencyConflict => "IDEMPOTENCY_CONFLICT",
            Self::Throttled | Self::Limited { .. } => "THROTTLED",
            Self::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            Self::TenantNotFound(_) => "TENANT_NOT_FOUND",
            Self::FeatureNotAvailable(_) => "FEATURE_NOT_AVAILABLE",
            Self::MarginGuardrailExceeded(_) => "MARGIN_GUARDRAIL_EXCEEDED",
            Self::ErrorBudgetExhausted(_) => "ERROR_BUDGET_EXHAUSTED",
            Self::BalanceOutOfBounds(_) => "BALANCE_OUT_OF_BOUNDS",
            Self::Internal(_) => "INTERNAL",
        }
    }

    /// The same error with `prefix: ` before a bad-input message (to name the field).
    pub fn prefixed(self, prefix: &str) -> Self {
        match self {
            Self::BadUserInput(m) => Self::BadUserInput(format!("{prefix}: {m}")),
            other => other,
        }
    }

    /// Seconds to wait before retrying, for throttling errors.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Limited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Self::Throttled | Self::ErrorBudgetExhausted(_) => Some(60),
            Self::Busy(_) => Some(1),
            _ => None,
        }
    }

    /// Whether the same request may succeed later (contention, throttling, an exhausted error
    /// budget, an internal failure). A retryable outcome is never stored under an idempotency
    /// key: the retry runs again.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Busy(_)
                | Self::Throttled
                | Self::Limited { .. }
                | Self::ErrorBudgetExhausted(_)
                | Self::Internal(_)
        )
    }

    /// An internal failure: logged in full here, returned as `INTERNAL` only.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!(%context, error = %error, "internal error");
        Self::Internal(context.to_string())
    }

    /// Rebuilds an error from its stored code and message (idempotent replays).
    pub fn from_stored(code: &str, message: String) -> Self {
        match code {
            "UNAUTHENTICATED" => Self::Unauthenticated(message),
            "FORBIDDEN" => Self::Forbidden(message.trim_start_matches("forbidden: ").to_string()),
            "BAD_USER_INPUT" => Self::BadUserInput(message),
            "NOT_FOUND" => Self::NotFound(message),
            "CONFLICT" => Self::Conflict(message),
            "IDEMPOTENCY_CONFLICT" => Self::IdempotencyConflict,
            "THROTTLED" => Self::Throttled,
            "PAYLOAD_TOO_LARGE" => Self::PayloadTooLarge(message),
            "TENANT_NOT_FOUND" => Self::TenantNotFound(message),
            "FEATURE_NOT_AVAILABLE" => Self::FeatureNotAvailable(message),
            "MARGIN_GUARDRAIL_EXCEEDED" => Self::MarginGuardrailExceeded(message),
            "ERROR_BUDGET_EXHAUSTED" => Self::ErrorBudgetExhausted(message),
            "BALANCE_OUT_OF_BOUNDS" => Self::BalanceOutOfBounds(message),
            _ => Self::Internal(message),
        }
    }
}

impl ErrorExtensions for ApiError {
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(self.message()).extend_with(|_, e| {
            e.set("code", self.code());
            if self.is_retryable() {
                e.set("retryable", true);
            }
        })
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(e: ApiError) -> Self {
        e.extend()
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::EntryNotFound => Self::NotFound(e.to_string()),
            LedgerError::EntryAlreadyExistsWithDifferentContent
            | LedgerError::EntryIsNotAHold
            | LedgerError::HoldAlreadyPosted
            | LedgerError::HoldAlreadyVoided => Self::Conflict(e.to_string()),
            LedgerError::ReservedEntryId { .. } => Self::Forbidden(e.to_string()),
            LedgerError::BalanceOutOfBounds { .. } => Self::BalanceOutOfBounds(e.to_string()),
            _ => Self::BadUserInput(e.to_string()),
        }
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::KeyNotFound => Self::NotFound(e.to_string()),
            AccessError::KeyAlreadyExists => Self::Conflict(e.to_string()),
            _ => Self::BadUserInput(e.to_string()),
        }
    }
}

impl<E: std::error::Error + Into<ApiError>> From<CommandError<E>> for ApiError {
    fn from(e: CommandError<E>) -> Self {
        match e {
            CommandError::Rejected(inner) => inner.into(),
            CommandError::Conflict => {
                Self::Busy("the target kept changing; retry the request".into())
            }
            CommandError::Storage(detail) => Self::internal("event store", detail),
        }
    }
}
