//! Delivering notifications (competition completed, champion promoted) to tenant webhooks: an
//! HTTP POST per subscribed webhook, retried with exponential backoff, behind one circuit
//! breaker per destination (`scheme://host:port`). Every outcome is an event of the
//! [`Delivery`] aggregate: each attempt, the success, the give-up after the last attempt, and
//! the skip (circuit open, host resolving to nothing) with its reason. Nothing is dropped
//! silently.
//!
//! Guarantees and limits:
//! - **Idempotent per notification**: a settled delivery (succeeded, skipped, abandoned) is
//!   never sent again; a pending one (the process died between attempts) resumes at the next
//!   attempt number.
//! - **At least once, not exactly once**: a crash after the webhook answered but before the
//!   attempt was recorded sends it again on resume, and two dispatchers racing on the same
//!   notification may both send; receivers deduplicate on `X-Agora-Delivery`.
//! - Breakers live in this process's memory: a restart closes them all.
//! - Redirects are not followed (a 3xx is a failed attempt).
//! - **SSRF**: no address filtering is done here; loopback and private ranges are reachable
//!   (the tests use 127.0.0.1). Deployments that must not reach internal networks filter
//!   egress in configuration (an egress proxy or network policy). Webhook URLs are never
//!   logged, only their destination, since paths and queries often hold secrets.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use agora_domain::tenancy::breaker::{
    BreakerConfig, BreakerState, CircuitBreaker, Decision, SkipReason,
};
use agora_domain::tenancy::delivery::{
    delivery_id, AttemptOutcome, Delivery, DeliveryCommand, DeliveryError, DeliveryStatus,
    Notification, MAX_DELIVERY_ATTEMPTS, MAX_REASON_LEN,
};
use agora_domain::tenancy::tenant::{Webhook, WebhookId, WebhookUrl};
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Url;

use crate::bus::{CommandBus, CommandError, CommitSignal};
use crate::metadata::CommandMetadata;
use crate::store::Store;

/// Attempts per delivery, by default.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Pause after the first failed attempt, by default; doubles after each.
pub const DEFAULT_BACKOFF_BASE_MS: u64 = 1_000;
/// Longest wait for one attempt (connect, send, response head), by default. Also bounds the
/// host lookup.
pub const DEFAULT_TIMEOUT_MS: u64 = 3_000;
/// Longest pause between two attempts, whatever the base.
pub const MAX_BACKOFF_MS: u64 = 300_000;
/// Destinations whose breaker is kept; past it, healthy (closed, no failures) ones are
/// forgotten.
pub const MAX_TRACKED_DESTINATIONS: usize = 10_000;

/// How to deliver. `max_attempts` is clamped to `1..=MAX_DELIVERY_ATTEMPTS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DispatchConfig {
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub timeout: Duration,
    pub breaker: BreakerConfig,
}

impl Default for DispatchConfig {
    /// Three attempts, 1 s then 2 s apart, 3 s each; the breaker's defaults.
    fn default() -> Self {
        Self {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff_base: Duration::from_millis(DEFAULT_BACKOFF_BASE_MS),
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            breaker: BreakerConfig::default(),
        }
    }
}

impl DispatchConfig {
    fn attempts_allowed(&self) -> u32 {
        self.max_attempts.clamp(1, MAX_DELIVERY_ATTEMPTS)
    }

    /// The pause after failed attempt `attempt` (1-based): base × 2^(attempt−1), capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.backoff_base
            .saturating_mul(factor)
            .min(Duration::from_millis(MAX_BACKOFF_MS))
    }
}

/// Why a dispatch stopped before reporting every webhook.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The event store failed; what was recorded before stays recorded.
    #[error("event store failure: {0}")]
    Storage(String),
    /// The delivery aggregate refused a command (an invalid notification id, say).
    #[error("delivery refused: {0}")]
    Rejected(#[source] DeliveryError),
    /// Other writers kept appending to the same delivery.
    #[error("the delivery kept changing under the dispatcher")]
    Conflict,
    /// The HTTP client could not be built (TLS set-up).
    #[error("HTTP client could not be built: {0}")]
    Client(String),
}

impl WebhookError {
    /// Whether dispatching the same notification again could succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Storage(_) | Self::Conflict)
    }
}

impl From<CommandError<DeliveryError>> for WebhookError {
    fn from(error: CommandError<DeliveryError>) -> Self {
        match error {
            CommandError::Rejected(e) => Self::Rejected(e),
            CommandError::Conflict => Self::Conflict,
            CommandError::Storage(e) => Self::Storage(e),
        }
    }
}

/// Where one webhook's delivery stands after a dispatch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryReport {
    pub webhook_id: WebhookId,
    pub url: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// The skip or give-up reason, or the last failure of a pending delivery.
    pub reason: Option<String>,
}

/// Sends notifications to webhooks and records every outcome.
pub struct WebhookDispatcher {
    bus: CommandBus<Delivery>,
    /// The error when it could not be built.
    client: Result<reqwest::Client, String>,
    config: DispatchConfig,
    breakers: Mutex<HashMap<String, CircuitBreaker>>,
}

/// What a webhook's URL comes to once parsed.
struct Target {
    url: Url,
    /// `scheme://host:port`, the breaker's key.
    destination: String,
}

/// One webhook's delivery of one notification.
struct Job<'a> {
    notification: &'a Notification,
    webhook_id: &'a WebhookId,
    url: &'a WebhookUrl,
    delivery_id: String,
    meta: &'a CommandMetadata,
}

impl WebhookDispatcher {
    /// A dispatcher with closed breakers. Should the HTTP client fail to build (TLS set-up),
    /// the failure is logged and every [`WebhookDispatcher::dispatch`] returns
    /// [`WebhookError::Client`] without recording anything.
    pub fn new(store: &Store, signal: CommitSignal, config: DispatchConfig) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.timeout)
            .timeout(config.timeout)
            .user_agent(concat!("agora-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| error_chain(&e));
        if let Err(reason) = &client {
            tracing::error!(%reason, "webhook HTTP client could not be built");
        }
        Self {
            bus: CommandBus::new(store, signal, ()),
            client,
            config,
            breakers: Mutex::new(HashMap::new()),
        }
    }

    /// Delivers `notification` to every webhook of `webhooks` subscribed to its event, one
    /// after another; returns one report per subscribed webhook, in order.
    #[tracing::instrument(skip_all, fields(notification = %notification.id, event = notification.event.as_str()))]
    pub async fn dispatch(
        &self,
        notification: &Notification,
        webhooks: &[(WebhookId, Webhook)],
        meta: &CommandMetadata,
    ) -> Result<Vec<DeliveryReport>, WebhookError> {
        notification.check().map_err(WebhookError::Rejected)?;
        let client = self
            .client
            .as_ref()
            .map_err(|e| WebhookError::Client(e.clone()))?;
        let mut reports = Vec::new();
        for (webhook_id, webhook) in webhooks {
            if !webhook.events.contains(&notification.event) {
                continue;
            }
            let job = Job {
                notification,
                webhook_id,
                url: &webhook.url,
                delivery_id: delivery_id(&notification.id, webhook_id),
                meta,
            };
            reports.push(self.deliver(client, &job).await?);
        }
        Ok(reports)
    }

    /// The breaker state of `destination` (`scheme://host:port`), if it was ever called.
    pub fn breaker_state(&self, destination: &str) -> Option<BreakerState> {
        self.lock_breakers().get(destination).map(|b| b.state())
    }

    #[tracing::instrument(skip_all, fields(webhook = %job.webhook_id))]
    async fn deliver(
        &self,
        client: &reqwest::Client,
        job: &Job<'_>,
    ) -> Result<DeliveryReport, WebhookError> {
        let delivery = self.bus.load(&job.delivery_id).await?;
        if delivery.is_settled() {
            tracing::debug!("already settled; nothing sent");
            return Ok(report(job, &delivery));
        }
        let target = match self.resolve(job.url).await {
            Ok(target) => target,
            Err(reason) => {
                self.record_skipped(job, reason).await?;
                return self.reload(job).await;
            }
        };
        let mut attempt = delivery.attempts().saturating_add(1);
        loop {
            let permit = match self.permit(&target.destination, Utc::now()) {
                Ok(permit) => permit,
                Err(reason) => {
                    self.record_skipped(job, reason).await?;
                    break;
                }
            };
            let outcome = self.post(client, job, &target.url).await;
            let delivered = matches!(outcome, AttemptOutcome::Delivered { .. });
            if delivered {
                permit.succeed();
            } else {
                permit.fail(Utc::now());
            }
            log_outcome(&target.destination, attempt, &outcome);
            let final_attempt = delivered || attempt >= self.config.attempts_allowed();
            if !self
                .record_attempt(job, attempt, outcome, final_attempt)
                .await?
                || final_attempt
            {
                break;
            }
            tokio::time::sleep(self.config.backoff(attempt)).await;
            attempt += 1;
        }
        self.reload(job).await
    }

    /// Parses the URL and checks that its host resolves to at least one address.
    async fn resolve(&self, url: &WebhookUrl) -> Result<Target, String> {
        let url = Url::parse(url.as_str()).map_err(|e| format!("URL is not usable: {e}"))?;
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Err("URL has no host or port".to_string());
        };
        let destination = format!("{}://{host}:{port}", url.scheme());
        // IP literals need no lookup.
        if let Some(name) = url.domain() {
            let lookup = tokio::net::lookup_host((name, port));
            let detail = match tokio::time::timeout(self.config.timeout, lookup).await {
                Ok(Ok(mut addresses)) => match addresses.next() {
                    Some(_) => None,
                    None => Some("no records".to_string()),
                },
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, host = name, "webhook host lookup failed");
                    Some("lookup failed".to_string())
                }
                Err(_) => Some(format!(
                    "lookup timed out after {} ms",
                    self.config.timeout.as_millis()
                )),
            };
            if let Some(detail) = detail {
                return Err(format!("host {name} resolves to no address ({detail})"));
            }
        }
        Ok(Target { url, destination })
    }

    /// Asks the destination's breaker for a call; the skip reason when it refuses.
    fn permit<'a>(
        &'a self,
        destination: &'a str,
        now: DateTime<Utc>,
    ) -> Result<Permit<'a>, String> {
        let mut breakers = self.lock_breakers();
        if !breakers.contains_key(destination) && breakers.len() >= MAX_TRACKED_DESTINATIONS {
            breakers.retain(|_, b| b.state() != BreakerState::default());
        }
        let breaker = breakers
            .entry(destination.to_string())
            .or_insert_with(|| CircuitBreaker::new(self.config.breaker));
        match breaker.on_attempt(now) {
            Decision::Allow => Ok(Permit {
                dispatcher: self,
                destination,
                reported: false,
            }),
            Decision::Skip {
                reason: SkipReason::CircuitOpen,
                retry_at,
            } => Err(match retry_at {
                Some(until) => format!(
                    "circuit open for {destination} until {}",
                    until.to_rfc3339_opts(SecondsFormat::Secs, true)
                ),
                None => format!("circuit open for {destination}"),
            }),
            Decision::Skip {
                reason: SkipReason::ProbeInFlight,
                ..
            } => Err(format!(
                "circuit half-open for {destination}: a probe is in flight"
            )),
        }
    }

    fn lock_breakers(&self) -> std::sync::MutexGuard<'_, HashMap<String, CircuitBreaker>> {
        // The map holds plain values, consistent even if a holder panicked.
        self.breakers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One POST; never fails, the failure is the outcome.
    async fn post(&self, client: &reqwest::Client, job: &Job<'_>, url: &Url) -> AttemptOutcome {
        let notification = job.notification;
        let body = serde_json::json!({
            "id": notification.id,
            "event": notification.event.as_str(),
            "tenant": notification.tenant,
            "occurredAt": notification.occurred_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            "data": notification.payload,
        });
        let sent = client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Agora-Event", notification.event.as_str())
            .header("X-Agora-Delivery", job.delivery_id.as_str())
            .timeout(self.config.timeout)
            .json(&body)
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => AttemptOutcome::Delivered {
                status: response.status().as_u16(),
            },
            Ok(response) => AttemptOutcome::Failed {
                status: Some(response.status().as_u16()),
                reason: format!("HTTP {}", response.status()),
            },
            Err(e) => AttemptOutcome::Failed {
                status: None,
                reason: truncate(self.describe(e)),
            },
        }
    }

    /// The recorded reason of a failed request: a category only. The error chain (addresses,
    /// OS error numbers, resolver details) goes to the log, never into an event a tenant reads.
    fn describe(&self, error: reqwest::Error) -> String {
        let error = error.without_url();
        let chain = error_chain(&error);
        tracing::debug!(error = %chain, "webhook request failed");
        if error.is_timeout() {
            format!("no answer within {} ms", self.config.timeout.as_millis())
        } else if error.is_connect() {
            format!("connection failed: {}", failure_category(&chain))
        } else {
            format!("request failed: {}", failure_category(&chain))
        }
    }

    /// Records an attempt; `false` when another dispatcher recorded it first.
    async fn record_attempt(
        &self,
        job: &Job<'_>,
        attempt: u32,
        outcome: AttemptOutcome,
        final_attempt: bool,
    ) -> Result<bool, WebhookError> {
        let command = DeliveryCommand::RecordAttempt {
            notification: job.notification.clone(),
            webhook_id: job.webhook_id.clone(),
            url: job.url.clone(),
            attempt,
            outcome,
            final_attempt,
            occurred_at: Utc::now(),
        };
        self.execute(job, command).await
    }

    async fn record_skipped(&self, job: &Job<'_>, reason: String) -> Result<bool, WebhookError> {
        tracing::warn!(%reason, "delivery skipped");
        let command = DeliveryCommand::RecordSkipped {
            notification: job.notification.clone(),
            webhook_id: job.webhook_id.clone(),
            url: job.url.clone(),
            reason: truncate(reason),
            occurred_at: Utc::now(),
        };
        self.execute(job, command).await
    }

    async fn execute(&self, job: &Job<'_>, command: DeliveryCommand) -> Result<bool, WebhookError> {
        match self.bus.execute(&job.delivery_id, command, job.meta).await {
            Ok(()) => Ok(true),
            Err(CommandError::Rejected(
                DeliveryError::AlreadySettled | DeliveryError::AttemptOutOfOrder { .. },
            )) => {
                tracing::warn!("another dispatcher recorded this delivery first");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn reload(&self, job: &Job<'_>) -> Result<DeliveryReport, WebhookError> {
        let delivery = self.bus.load(&job.delivery_id).await?;
        Ok(report(job, &delivery))
    }
}

/// An allowed call through a breaker. Dropped unreported (the dispatch was cancelled
/// mid-call), it counts as a failure, so a half-open breaker never waits forever on a probe
/// that will not report.
struct Permit<'a> {
    dispatcher: &'a WebhookDispatcher,
    destination: &'a str,
    reported: bool,
}

impl Permit<'_> {
    fn succeed(mut self) {
        self.reported = true;
        if let Some(breaker) = self.dispatcher.lock_breakers().get_mut(self.destination) {
            breaker.on_success();
        }
    }

    fn fail(mut self, now: DateTime<Utc>) {
        self.reported = true;
        self.report_failure(now);
    }

    fn report_failure(&self, now: DateTime<Utc>) {
        if let Some(breaker) = self.dispatcher.lock_breakers().get_mut(self.destination) {
            breaker.on_failure(now);
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.report_failure(Utc::now());
        }
    }
}

fn report(job: &Job<'_>, delivery: &Delivery) -> DeliveryReport {
    DeliveryReport {
        webhook_id: job.webhook_id.clone(),
        url: job.url.as_str().to_string(),
        status: delivery.status().unwrap_or(DeliveryStatus::Pending),
        attempts: delivery.attempts(),
        reason: delivery.reason().map(str::to_string),
    }
}

fn log_outcome(destination: &str, attempt: u32, outcome: &AttemptOutcome) {
    match outcome {
        AttemptOutcome::Delivered { status } => {
            tracing::info!(destination, attempt, status, "webhook delivered");
        }
        AttemptOutcome::Failed { status, reason } => {
            tracing::warn!(destination, attempt, ?status, %reason, "webhook attempt failed");
        }
    }
}

/// `error: cause: cause…`.
/// A transport failure as a category that names no address, port or OS detail.
fn failure_category(chain: &str) -> &'static str {
    let c = chain.to_ascii_lowercase();
    if c.contains("refused") {
        "connection refused"
    } else if c.contains("reset") || c.contains("closed") {
        "connection closed by the destination"
    } else if c.contains("certificate") || c.contains("tls") || c.contains("handshake") {
        "TLS handshake failed"
    } else if c.contains("dns") || c.contains("lookup") || c.contains("resolve") {
        "name resolution failed"
    } else if c.contains("unreachable") {
        "destination unreachable"
    } else if c.contains("timed out") || c.contains("timeout") {
        "timed out"
    } else {
        "transport error"
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// At most [`MAX_REASON_LEN`] characters, never empty.
fn truncate(reason: String) -> String {
    if reason.is_empty() {
        return "unknown failure".to_string();
    }
    match reason.char_indices().nth(MAX_REASON_LEN) {
        Some((cut, _)) => reason[..cut].to_string(),
        None => reason,
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::Arc;

    use agora_domain::tenancy::delivery::{notification_id, DeliveryEvent};
    use agora_domain::tenancy::tenant::WebhookEvent;
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use cqrs_es::DomainEvent;

    use super::*;
    use crate::store::{LogPosition, PoolSizes, StoreLocation};

    /// What the test webhook received.
    struct Received {
        headers: HeaderMap,
        body: serde_json::Value,
    }

    /// A webhook that fails the next `fail_next` requests with 500, or never answers in time
    /// while `hang` is set.
    #[derive(Default)]
    struct Hook {
        fail_next: AtomicU32,
        hang: AtomicBool,
        received: Mutex<Vec<Received>>,
    }

    impl Hook {
        fn count(&self) -> usize {
            self.received.lock().unwrap().len()
        }
    }

    async fn receive(State(hook): State<Arc<Hook>>, headers: HeaderMap, body: Bytes) -> StatusCode {
        let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        hook.received
            .lock()
            .unwrap()
            .push(Received { headers, body });
        if hook.hang.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let failing = hook
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::NO_CONTENT
        }
    }

    /// Serves `hook` on 127.0.0.1 at a free port.
    async fn serve(hook: Arc<Hook>) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(hook);
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        dispatcher: WebhookDispatcher,
        hook: Arc<Hook>,
        addr: SocketAddr,
    }

    impl Fixture {
        async fn new(config: DispatchConfig) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let location = StoreLocation::Sqlite {
                path: dir.path().join("agora.db"),
            };
            let store = Store::connect(&location, &PoolSizes::default())
                .await
                .unwrap();
            store.migrate().await.unwrap();
            let dispatcher = WebhookDispatcher::new(&store, CommitSignal::new(), config);
            let hook = Arc::new(Hook::default());
            let addr = serve(hook.clone()).await;
            Self {
                _dir: dir,
                store,
                dispatcher,
                hook,
                addr,
            }
        }

        fn destination(&self) -> String {
            format!("http://{}", self.addr)
        }

        fn webhooks(&self) -> Vec<(WebhookId, Webhook)> {
            vec![webhook("h1", &format!("{}/hook", self.destination()))]
        }

        async fn dispatch(&self, notification: &Notification) -> DeliveryReport {
            let mut reports = self
                .dispatcher
                .dispatch(notification, &self.webhooks(), &meta())
                .await
                .unwrap();
            assert_eq!(reports.len(), 1);
            reports.remove(0)
        }

        /// The delivery events of `notification` to `h1`, in order.
        async fn events(&self, notification: &Notification) -> Vec<DeliveryEvent> {
            let id = delivery_id(&notification.id, &hook_id("h1"));
            self.store
                .read_global(LogPosition::START, 1_000)
                .await
                .unwrap()
                .into_iter()
                .filter(|e| e.aggregate_type == "webhook_delivery" && e.aggregate_id == id)
                .map(|e| {
                    let event: DeliveryEvent = serde_json::from_value(e.payload).unwrap();
                    assert_eq!(event.event_type(), e.event_type);
                    event
                })
                .collect()
        }
    }

    fn config() -> DispatchConfig {
        DispatchConfig {
            max_attempts: 3,
            backoff_base: Duration::from_millis(10),
            timeout: Duration::from_millis(500),
            breaker: BreakerConfig::try_new(5, 1).unwrap(),
        }
    }

    fn meta() -> CommandMetadata {
        CommandMetadata::new("webhook-dispatcher", "acme", Utc::now()).unwrap()
    }

    fn hook_id(id: &str) -> WebhookId {
        WebhookId::parse(id).unwrap()
    }

    fn webhook(id: &str, url: &str) -> (WebhookId, Webhook) {
        (
            hook_id(id),
            Webhook {
                url: WebhookUrl::parse(url).unwrap(),
                events: WebhookEvent::ALL.into_iter().collect(),
            },
        )
    }

    fn notification(competition: &str) -> Notification {
        Notification {
            id: notification_id(WebhookEvent::CompetitionCompleted, competition),
            tenant: "acme".into(),
            event: WebhookEvent::CompetitionCompleted,
            payload: serde_json::json!({"competitionId": competition, "champion": "m-7"}),
            occurred_at: DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                .unwrap()
                .to_utc(),
        }
    }

    fn attempts(events: &[DeliveryEvent]) -> Vec<(u32, AttemptOutcome)> {
        events
            .iter()
            .filter_map(|e| match e {
                DeliveryEvent::DeliveryAttempted {
                    attempt, outcome, ..
                } => Some((*attempt, outcome.clone())),
                _ => None,
            })
            .collect()
    }

    fn http_500() -> AttemptOutcome {
        AttemptOutcome::Failed {
            status: Some(500),
            reason: "HTTP 500 Internal Server Error".into(),
        }
    }

    #[tokio::test]
    async fn success_on_the_first_try_sends_one_request_with_headers_and_body() {
        let fx = Fixture::new(config()).await;
        let n = notification("c-1");
        let mut only_promotions = webhook("h2", &format!("{}/hook", fx.destination()));
        only_promotions.1.events = [WebhookEvent::ChampionPromoted].into_iter().collect();
        let mut webhooks = fx.webhooks();
        webhooks.push(only_promotions);

        let reports = fx
            .dispatcher
            .dispatch(&n, &webhooks, &meta())
            .await
            .unwrap();

        assert_eq!(
            reports,
            vec![DeliveryReport {
                webhook_id: hook_id("h1"),
                url: format!("{}/hook", fx.destination()),
                status: DeliveryStatus::Succeeded,
                attempts: 1,
                reason: None,
            }]
        );
        {
            let received = fx.hook.received.lock().unwrap();
            assert_eq!(received.len(), 1);
            let request = &received[0];
            assert_eq!(request.headers["content-type"], "application/json");
            assert_eq!(request.headers["x-agora-event"], "competition_completed");
            assert_eq!(
                request.headers["x-agora-delivery"],
                "competition-completed:c-1:h1"
            );
            assert_eq!(
                request.body,
                serde_json::json!({
                    "id": "competition-completed:c-1",
                    "event": "competition_completed",
                    "tenant": "acme",
                    "occurredAt": "2026-01-01T00:00:00Z",
                    "data": {"competitionId": "c-1", "champion": "m-7"},
                })
            );
        }
        let events = fx.events(&n).await;
        assert_eq!(
            attempts(&events),
            vec![(1, AttemptOutcome::Delivered { status: 204 })]
        );
        assert!(matches!(
            events.last(),
            Some(DeliveryEvent::DeliverySucceeded {
                attempts: 1,
                status: 204,
                ..
            })
        ));
        assert_eq!(
            fx.dispatcher.breaker_state(&fx.destination()),
            Some(BreakerState::default())
        );
    }

    #[tokio::test]
    async fn two_failures_then_a_success() {
        let fx = Fixture::new(config()).await;
        fx.hook.fail_next.store(2, Ordering::SeqCst);
        let n = notification("c-1");

        let report = fx.dispatch(&n).await;

        assert_eq!(report.status, DeliveryStatus::Succeeded);
        assert_eq!(report.attempts, 3);
        assert_eq!(fx.hook.count(), 3);
        let events = fx.events(&n).await;
        assert_eq!(events.len(), 4);
        assert_eq!(
            attempts(&events),
            vec![
                (1, http_500()),
                (2, http_500()),
                (3, AttemptOutcome::Delivered { status: 204 }),
            ]
        );
        assert!(matches!(
            events[3],
            DeliveryEvent::DeliverySucceeded { attempts: 3, .. }
        ));
    }

    #[tokio::test]
    async fn always_failing_is_abandoned_after_max_attempts() {
        let fx = Fixture::new(config()).await;
        fx.hook.fail_next.store(u32::MAX, Ordering::SeqCst);
        let n = notification("c-1");

        let report = fx.dispatch(&n).await;

        assert_eq!(report.status, DeliveryStatus::Abandoned);
        assert_eq!(report.attempts, 3);
        assert_eq!(
            report.reason.as_deref(),
            Some("HTTP 500 Internal Server Error")
        );
        assert_eq!(fx.hook.count(), 3);
        let events = fx.events(&n).await;
        assert_eq!(attempts(&events).len(), 3);
        assert!(matches!(
            events.last(),
            Some(DeliveryEvent::DeliveryAbandoned { attempts: 3, .. })
        ));
    }

    #[tokio::test]
    async fn a_webhook_that_never_answers_times_out() {
        let mut config = config();
        config.max_attempts = 2;
        config.timeout = Duration::from_millis(200);
        let fx = Fixture::new(config).await;
        fx.hook.hang.store(true, Ordering::SeqCst);
        let n = notification("c-1");

        let report = fx.dispatch(&n).await;

        assert_eq!(report.status, DeliveryStatus::Abandoned);
        assert_eq!(report.reason.as_deref(), Some("no answer within 200 ms"));
        let events = fx.events(&n).await;
        assert_eq!(
            attempts(&events)
                .into_iter()
                .map(|(_, outcome)| outcome)
                .collect::<Vec<_>>(),
            vec![
                AttemptOutcome::Failed {
                    status: None,
                    reason: "no answer within 200 ms".into(),
                };
                2
            ]
        );
    }

    #[tokio::test]
    async fn the_breaker_opens_across_deliveries_skips_then_closes_after_a_probe() {
        let mut config = config();
        config.breaker = BreakerConfig::try_new(4, 1).unwrap();
        let fx = Fixture::new(config).await;
        fx.hook.fail_next.store(u32::MAX, Ordering::SeqCst);

        // Three failures: abandoned, the breaker is still closed.
        let first = fx.dispatch(&notification("c-1")).await;
        assert_eq!(first.status, DeliveryStatus::Abandoned);
        assert_eq!(
            fx.dispatcher.breaker_state(&fx.destination()),
            Some(BreakerState::Closed {
                consecutive_failures: 3
            })
        );

        // The fourth failure opens it: the second attempt is skipped, not sent.
        let second = fx.dispatch(&notification("c-2")).await;
        assert_eq!(second.status, DeliveryStatus::Skipped);
        assert_eq!(second.attempts, 1);
        assert!(matches!(
            fx.dispatcher.breaker_state(&fx.destination()),
            Some(BreakerState::Open { .. })
        ));

        // The next notification is skipped without a request, with the reason recorded.
        let n3 = notification("c-3");
        let third = fx.dispatch(&n3).await;
        assert_eq!(third.status, DeliveryStatus::Skipped);
        assert_eq!(third.attempts, 0);
        assert_eq!(fx.hook.count(), 4);
        let events = fx.events(&n3).await;
        let [DeliveryEvent::DeliverySkipped { reason, .. }] = events.as_slice() else {
            panic!("expected one DeliverySkipped, got {events:?}");
        };
        let prefix = format!("circuit open for {} until ", fx.destination());
        assert!(reason.starts_with(&prefix), "{reason}");
        assert_eq!(third.reason.as_deref(), Some(reason.as_str()));
        let loaded = fx
            .dispatcher
            .bus
            .load(&delivery_id(&n3.id, &hook_id("h1")))
            .await
            .unwrap();
        assert_eq!(loaded.status(), Some(DeliveryStatus::Skipped));

        // After the open timeout one probe goes through; it succeeds and closes the circuit.
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        fx.hook.fail_next.store(0, Ordering::SeqCst);
        let fourth = fx.dispatch(&notification("c-4")).await;
        assert_eq!(fourth.status, DeliveryStatus::Succeeded);
        assert_eq!(fourth.attempts, 1);
        assert_eq!(fx.hook.count(), 5);
        assert_eq!(
            fx.dispatcher.breaker_state(&fx.destination()),
            Some(BreakerState::default())
        );
    }

    #[tokio::test]
    async fn re_dispatching_a_settled_notification_sends_nothing() {
        let fx = Fixture::new(config()).await;
        let n = notification("c-1");
        let first = fx.dispatch(&n).await;
        assert_eq!(first.status, DeliveryStatus::Succeeded);

        let again = fx.dispatch(&n).await;

        assert_eq!(again, first);
        assert_eq!(fx.hook.count(), 1);
        assert_eq!(fx.events(&n).await.len(), 2);
    }

    #[tokio::test]
    async fn a_resumed_delivery_continues_from_the_recorded_attempts() {
        let fx = Fixture::new(config()).await;
        let n = notification("c-1");
        let id = delivery_id(&n.id, &hook_id("h1"));
        let (webhook_id, webhook) = fx.webhooks().remove(0);
        fx.dispatcher
            .bus
            .execute(
                &id,
                DeliveryCommand::RecordAttempt {
                    notification: n.clone(),
                    webhook_id,
                    url: webhook.url,
                    attempt: 1,
                    outcome: http_500(),
                    final_attempt: false,
                    occurred_at: Utc::now(),
                },
                &meta(),
            )
            .await
            .unwrap();

        let report = fx.dispatch(&n).await;

        assert_eq!(report.status, DeliveryStatus::Succeeded);
        assert_eq!(report.attempts, 2);
        assert_eq!(fx.hook.count(), 1);
        assert_eq!(
            attempts(&fx.events(&n).await),
            vec![
                (1, http_500()),
                (2, AttemptOutcome::Delivered { status: 204 })
            ]
        );
    }

    #[tokio::test]
    async fn a_host_that_resolves_to_nothing_is_skipped() {
        let fx = Fixture::new(config()).await;
        let n = notification("c-1");
        let webhooks = vec![webhook("h1", "http://no-such-host.invalid/hook")];

        let reports = fx
            .dispatcher
            .dispatch(&n, &webhooks, &meta())
            .await
            .unwrap();

        assert_eq!(reports[0].status, DeliveryStatus::Skipped);
        assert_eq!(reports[0].attempts, 0);
        let reason = reports[0].reason.as_deref().unwrap_or_default();
        assert!(
            reason.starts_with("host no-such-host.invalid resolves to no address"),
            "{reason}"
        );
        assert!(matches!(
            fx.events(&n).await.as_slice(),
            [DeliveryEvent::DeliverySkipped { .. }]
        ));
    }

    #[test]
    fn failure_reasons_name_no_address() {
        let chain = "client error (Connect): tcp connect error: 10.1.2.3:8443: Connection refused \
                     (os error 111)";
        assert_eq!(failure_category(chain), "connection refused");
        assert_eq!(
            failure_category("invalid peer certificate: UnknownIssuer"),
            "TLS handshake failed"
        );
        assert_eq!(
            failure_category("something odd at 192.168.0.1"),
            "transport error"
        );
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let fx = Fixture::new(config()).await;
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(|| async {
                (StatusCode::TEMPORARY_REDIRECT, [("location", "/elsewhere")])
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let n = notification("c-1");
        let webhooks = vec![webhook("h1", &format!("http://{addr}/hook"))];

        let reports = fx
            .dispatcher
            .dispatch(&n, &webhooks, &meta())
            .await
            .unwrap();

        assert_eq!(reports[0].status, DeliveryStatus::Abandoned);
        assert_eq!(
            reports[0].reason.as_deref(),
            Some("HTTP 307 Temporary Redirect")
        );
    }

    #[tokio::test]
    async fn an_invalid_notification_id_is_refused_before_sending() {
        let fx = Fixture::new(config()).await;
        let mut n = notification("c-1");
        n.id = "bad id".into();

        let error = fx
            .dispatcher
            .dispatch(&n, &fx.webhooks(), &meta())
            .await
            .unwrap_err();

        assert!(matches!(
            error,
            WebhookError::Rejected(DeliveryError::InvalidNotificationId)
        ));
        assert_eq!(fx.hook.count(), 0);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let config = config();
        assert_eq!(config.backoff(1), Duration::from_millis(10));
        assert_eq!(config.backoff(2), Duration::from_millis(20));
        assert_eq!(config.backoff(3), Duration::from_millis(40));
        assert_eq!(
            DispatchConfig::default().backoff(MAX_DELIVERY_ATTEMPTS),
            Duration::from_millis(MAX_BACKOFF_MS)
        );
    }

    #[test]
    fn reasons_are_bounded() {
        assert_eq!(truncate(String::new()), "unknown failure");
        assert_eq!(
            truncate("é".repeat(MAX_REASON_LEN + 5)).chars().count(),
            MAX_REASON_LEN
        );
    }
}
