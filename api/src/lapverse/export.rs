//! The self-compete dataset: one CSV row per finished round × strategy, and JSON metadata that
//! describes the columns (in the spirit of a Kaggle `dataset-metadata.json`), for offline study.

use agora_projections::lapverse::WorkRow;
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use super::views::entries;

/// The CSV columns, in order, with their type and meaning.
pub const COLUMNS: [(&str, &str, &str); 16] = [
    ("competition_id", "string", "the round's id"),
    ("tenant", "string", "tenant id"),
    ("cost_center", "string", "FinOps cost center charged"),
    (
        "accepted_at",
        "datetime",
        "when the round was accepted (UTC, RFC 3339)",
    ),
    (
        "finished_at",
        "datetime",
        "when the round completed (UTC, RFC 3339)",
    ),
    ("holdout", "integer", "points held out for the backtest"),
    ("horizon", "integer", "forecast steps beyond the series"),
    (
        "strategy",
        "string",
        "aggressive | conservative | balanced | experimental",
    ),
    (
        "method",
        "string",
        "the forecasting method the strategy used",
    ),
    (
        "competed",
        "boolean",
        "whether the strategy was a requested competitor (all four are scored)",
    ),
    (
        "rank",
        "integer",
        "1 = champion among the competitors; empty when it did not compete",
    ),
    (
        "mase",
        "number",
        "backtest MASE on the held-out tail (lower is better)",
    ),
    ("smape", "number", "backtest sMAPE in percent, 0..200"),
    ("champion", "string", "the round's champion"),
    (
        "production",
        "string",
        "the tenant's production variant when the round was accepted",
    ),
    (
        "win_rate_delta",
        "decimal",
        "(MASE_production − MASE_champion) / MASE_production, 4 places",
    ),
];

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The CSV text of `rows`.
pub fn csv(rows: &[WorkRow]) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS.iter().map(|c| c.0))?;
    for row in rows {
        let tournament = row.result.as_ref().map(|r| r["tournament"].clone());
        let holdout = tournament
            .as_ref()
            .map(|t| cell(&t["holdout"]))
            .unwrap_or_default();
        let horizon = tournament
            .as_ref()
            .map(|t| cell(&t["horizon"]))
            .unwrap_or_default();
        for e in entries(row).unwrap_or_default() {
            w.write_record([
                row.id.clone(),
                row.tenant.clone(),
                row.cost_center.clone(),
                row.accepted_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                row.finished_at
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
                    .unwrap_or_default(),
                holdout.clone(),
                horizon.clone(),
                cell(&e["strategy"]),
                cell(&e["method"]),
                cell(&e["competed"]),
                cell(&e["rank"]),
                cell(&e["mase"]),
                cell(&e["smape"]),
                row.champion.clone().unwrap_or_default(),
                row.production.clone().unwrap_or_default(),
                row.win_rate_delta.clone().unwrap_or_default(),
            ])?;
        }
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8(bytes).unwrap_or_default())
}

/// The dataset's metadata for `rows` (what the CSV holds and how it was made).
pub fn metadata(rows: &[WorkRow], tenant: Option<&str>) -> Value {
    let lines: usize = rows.iter().map(|r| entries(r).map_or(0, |e| e.len())).sum();
    json!({
        "name": "lapverse-self-compete-results",
        "title": "Lap-Verse self-compete rounds: backtest scores per strategy",
        "description": "One row per finished self-compete round and forecasting strategy. Each \
            strategy is fitted on the series minus a held-out tail and scored on that tail by \
            MASE (scaled by the in-sample one-step naive error, seasonal naive when the series \
            declares a season) and sMAPE; the champion is the best requested competitor by MASE, \
            then sMAPE. Download the rows with format=csv.",
        "tenant": tenant,
        "rounds": rows.len(),
        "rows": lines,
        "columns": COLUMNS
            .iter()
            .map(|(name, kind, description)| json!({"name": name, "type": kind, "description": description}))
            .collect::<Vec<_>>(),
        "generatedAt": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        "license": "tenant data; for the tenant's own offline study",
        "source": "Agora event log (CompetitionCompleted events), via the rm_lv_work read model",
    })
}
