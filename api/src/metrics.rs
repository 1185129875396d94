//! Prometheus metrics at `/metrics` (text format, histograms with explicit buckets) and the
//! per-request middleware: trace id, request count and latency.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use tracing::Instrument;
use uuid::Uuid;

use crate::app::AppState;

/// Request latency buckets, seconds.
pub const LATENCY_BUCKETS_S: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Response header carrying the request's trace id.
pub const TRACE_HEADER: &str = "x-trace-id";

/// Every metric Agora exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pub commands: IntCounterVec,
    events_appended: IntCounter,
    lag_events: IntGaugeVec,
    lag_seconds: GaugeVec,
    applied: IntGaugeVec,
    parked: IntGaugeVec,
    append: IntCounterVec,
    ingest: IntCounterVec,
    append_gauges: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "agora_http_requests_total",
                "HTTP requests by route and status",
            ),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "agora_http_request_duration_seconds",
                "HTTP request latency",
            )
            .buckets(LATENCY_BUCKETS_S.to_vec()),
            &["method", "route"],
        )?;
        let commands = IntCounterVec::new(
            Opts::new("agora_commands_total", "Commands by aggregate and outcome"),
            &["aggregate", "outcome"],
        )?;
        let events_appended = IntCounter::new(
            "agora_events_appended_total",
            "Events appended by this process",
        )?;
        let lag_events = IntGaugeVec::new(
            Opts::new(
                "agora_projection_lag_events",
                "Events committed but not yet projected",
            ),
            &["projection"],
        )?;
        let lag_seconds = GaugeVec::new(
            Opts::new(
                "agora_projection_lag_seconds",
                "Age of the oldest event not yet projected",
            ),
            &["projection"],
        )?;
        let applied = IntGaugeVec::new(
            Opts::new(
                "agora_projection_events_applied",
                "Events applied by this process's projection runner",
            ),
            &["projection"],
        )?;
        let parked = IntGaugeVec::new(
            Opts::new(
                "agora_parked_events",
                "Events parked by a projection or process manager and not yet retried or skipped",
            ),
            &["runner"],
        )?;
        let append = IntCounterVec::new(
            Opts::new(
                "agora_append_total",
                "The group-commit append path: batches (transactions), commits, events, \
                 conflicts, failures and batches settled again",
            ),
            &["kind"],
        )?;
        let ingest = IntCounterVec::new(
            Opts::new(
                "agora_ingest_total",
                "Batched ingest: calls (outcome=call) and records by outcome",
            ),
            &["outcome"],
        )?;
        let append_gauges = IntGaugeVec::new(
            Opts::new(
                "agora_append_state",
                "The append queue now (queued) and the largest batch so far (max_batch)",
            ),
            &["kind"],
        )?;
        registry.register(Box::new(append.clone()))?;
        registry.register(Box::new(ingest.clone()))?;
        registry.register(Box::new(append_gauges.clone()))?;
        registry.register(Box::new(parked.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(commands.clone()))?;
        registry.register(Box::new(events_appended.clone()))?;
        registry.register(Box::new(lag_events.clone()))?;
        registry.register(Box::new(lag_seconds.clone()))?;
        registry.register(Box::new(applied.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            commands,
            events_appended,
            lag_events,
            lag_seconds,
            applied,
            parked,
            append,
            ingest,
            append_gauges,
        })
    }

    /// Brings the append-path metrics up to the store's counters.
    fn sync_append(&self, store: &agora_commands::Store) {
        let a = store.append_stats();
        let bump = |c: prometheus::IntCounter, to: u64| {
            let seen = c.get();
            if to > seen {
                c.inc_by(to - seen);
            }
        };
        for (kind, value) in [
            ("batches", a.batches),
            ("commits", a.commits),
            ("events", a.events),
            ("conflicts", a.conflicts),
            ("failures", a.failures),
            ("resettled", a.resettled),
        ] {
            bump(self.append.with_label_values(&[kind]), value);
        }
        for (outcome, value) in [
            ("call", a.ingest_batches),
            ("stored", a.ingest_stored),
            ("duplicate", a.ingest_duplicates),
            ("conflict", a.ingest_conflicts),
            ("invalid", a.ingest_invalid),
        ] {
            bump(self.ingest.with_label_values(&[outcome]), value);
        }
        self.append_gauges
            .with_label_values(&["queued"])
            .set(store.append_queued() as i64);
        self.append_gauges
            .with_label_values(&["max_batch"])
            .set(a.max_batch as i64);
    }

    /// The registry (other modules register their metrics here).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Counts one command outcome (`ok`, or the error code).
    pub fn command(&self, aggregate: &str, outcome: &str) {
        self.commands.with_label_values(&[aggregate, outcome]).inc();
    }
}

/// `GET /metrics`: refreshes the gauges that are read at scrape time, then encodes.
pub async fn metrics_handler(State(state): State<AppState>) -> Response {
    let m = &state.metrics;
    let appended = state.signal.events_appended();
    let seen = m.events_appended.get();
    if appended > seen {
        m.events_appended.inc_by(appended - seen);
    }
    m.sync_append(&state.store);
    for status in state.projections.statuses().await.into_iter().flatten() {
        m.lag_events
            .with_label_values(&[&status.name])
            .set(status.lag_events);
        m.lag_seconds
            .with_label_values(&[&status.name])
            .set(status.lag_seconds);
        m.applied
            .with_label_values(&[&status.name])
            .set(status.events_applied as i64);
    }
    match state.parked.store.open_counts().await {
        Ok(counts) => {
            m.parked.reset();
            for (runner, n) in counts {
                m.parked.with_label_values(&[&runner]).set(n);
            }
        }
        Err(e) => tracing::warn!(error = %e, "counting parked events failed"),
    }
    let mut body = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&m.registry.gather(), &mut body) {
        tracing::error!(error = %e, "encoding metrics");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Gives every request a trace id (in its span and the `x-trace-id` response header) and
/// records its count and latency under its route template (bounded label values).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let trace_id = Uuid::now_v7();
    let span = tracing::info_span!("request", %trace_id, %method, %route);
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16().to_string();
    let elapsed = started.elapsed().as_secs_f64();
    state
        .metrics
        .requests
        .with_label_values(&[&method, &route, &status])
        .inc();
    state
        .metrics
        .latency
        .with_label_values(&[&method, &route])
        .observe(elapsed);
    span.in_scope(|| tracing::info!(%status, elapsed_ms = elapsed * 1000.0, "request"));
    if let Ok(value) = HeaderValue::from_str(&trace_id.to_string()) {
        response.headers_mut().insert(TRACE_HEADER, value);
    }
    response
}
