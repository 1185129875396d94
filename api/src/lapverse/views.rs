//! JSON views shared by the REST adapters (and the export): camelCase, money as strings.

use agora_commands::lapverse::SloStatus;
use agora_projections::lapverse::WorkRow;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

fn time(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| {
        Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true))
    })
}

/// Fields common to tasks and rounds.
fn common(row: &WorkRow) -> serde_json::Map<String, Value> {
    let v = json!({
        "id": row.id,
        "tenant": row.tenant,
        "status": row.status,
        "priority": row.priority,
        "attempts": row.attempts,
        "cost": row.cost.to_string(),
        "tags": row.tags,
        "lastError": row.last_error,
        "retryAt": time(row.retry_at),
        "acceptedAt": time(Some(row.accepted_at)),
        "startedAt": time(row.started_at),
        "finishedAt": time(row.finished_at),
        "durationMs": row.duration_ms,
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!("json! object"),
    }
}

/// `GET /api/v2/tasks/{id}`.
pub fn task_view(row: &WorkRow) -> Value {
    let mut m = common(row);
    m.insert("type".into(), json!(row.task_type));
    m.insert("description".into(), json!(row.description));
    m.insert("variant".into(), json!(row.variant));
    m.insert("result".into(), row.result.clone().unwrap_or(Value::Null));
    Value::Object(m)
}

/// One strategy's line of a finished round.
pub fn entries(row: &WorkRow) -> Option<Vec<Value>> {
    let result = row.result.as_ref()?;
    let ranking: Vec<&str> = result["ranking"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let entries = result["tournament"]["entries"].as_array()?;
    Some(
        entries
            .iter()
            .filter_map(|e| {
                let strategy = e["strategy"].as_str()?;
                let rank = ranking.iter().position(|r| *r == strategy).map(|i| i + 1);
                Some(json!({
                    "strategy": strategy,
                    "method": e["method"],
                    "mase": e["backtest"]["mase"],
                    "smape": e["backtest"]["smape"],
                    "rank": rank,
                    "competed": rank.is_some(),
                }))
            })
            .collect(),
    )
}

/// `GET /api/v2/self-compete/{id}` (the seed's fields plus the round's detail).
pub fn competition_view(row: &WorkRow) -> Value {
    let mut m = common(row);
    m.insert("content".into(), json!(row.description));
    m.insert("champion".into(), json!(row.champion));
    m.insert(
        "competitors".into(),
        row.competitors.clone().unwrap_or(Value::Null),
    );
    m.insert("production".into(), json!(row.production));
    m.insert("winRateDelta".into(), json!(row.win_rate_delta));
    m.insert("promoted".into(), json!(row.promoted));
    let ranking = row
        .result
        .as_ref()
        .map(|r| r["ranking"].clone())
        .unwrap_or(Value::Null);
    m.insert("ranking".into(), ranking);
    m.insert("entries".into(), json!(entries(row)));
    let holdout = row
        .result
        .as_ref()
        .map(|r| r["tournament"]["holdout"].clone())
        .unwrap_or(Value::Null);
    m.insert("holdout".into(), holdout);
    Value::Object(m)
}

/// A tenant's SLO position.
pub fn slo_view(s: &SloStatus) -> Value {
    json!({
        "target": s.target.to_string(),
        "periodDays": s.period_days,
        "good": s.counts.period.good(),
        "total": s.counts.period.total(),
        "remaining": s.remaining.to_string(),
        "exhausted": s.exhausted,
        "burnRates": {
            "5m": s.burn_5m.to_string(),
            "30m": s.burn_30m.to_string(),
            "1h": s.burn_1h.to_string(),
            "6h": s.burn_6h.to_string(),
            "period": s.burn_period.to_string(),
        },
        "alert": s.alert,
    })
}
