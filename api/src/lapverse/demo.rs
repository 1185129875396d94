//! The demo tenant `acme` that makes the seed's smoke test run against a fresh embedded store
//! (`AGORA_DEMO_TENANT`, on by default for SQLite, off for PostgreSQL).
//!
//! Its series is SYNTHETIC, made here and labelled so: 48 months of revenue with a linear trend,
//! a 12-month season and deterministic pseudo-random noise (a fixed linear congruential
//! generator), so that the four strategies have something real to compete on.

use agora_commands::lapverse::{LapVerse, LapVerseError};
use agora_commands::CommandMetadata;
use agora_domain::money::Money;
use agora_domain::tenancy::cost::TagValue;
use agora_domain::tenancy::guardrail::MarginThreshold;
use agora_domain::tenancy::slo::{SloTarget, DEFAULT_PERIOD_DAYS};
use agora_domain::tenancy::tenant::{TenantCommand, TenantName, TenantSlo};
use agora_domain::tenancy::work::SeriesInput;
use chrono::Utc;
use rust_decimal::Decimal;

pub const DEMO_TENANT: &str = "acme";
pub const DEMO_ACTOR: &str = "system:demo";

/// 48 months: `100 + 2.5·t + 15·sin(2πt/12) + noise`, noise uniform in ±4.
pub fn demo_series() -> SeriesInput {
    let mut state: u64 = 0x5eed;
    let values = (0..48)
        .map(|t| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let noise = ((state >> 33) as f64 / (1u64 << 31) as f64) * 8.0 - 4.0;
            let t = f64::from(t);
            let v = 100.0 + 2.5 * t + 15.0 * (2.0 * std::f64::consts::PI * t / 12.0).sin() + noise;
            (v * 100.0).round() / 100.0
        })
        .collect();
    SeriesInput {
        values,
        season_length: Some(12),
    }
}

/// Registers `acme` (MRR 1,000.00, cost center `general`, SLO 99 % over 30 days, guardrail
/// 70 %) with the demo series, unless it exists.
pub async fn ensure_demo_tenant(service: &LapVerse) -> Result<(), LapVerseError> {
    if service.tenant(DEMO_TENANT).await.is_ok() {
        return Ok(());
    }
    let meta = CommandMetadata::new(DEMO_ACTOR, DEMO_TENANT, Utc::now())
        .map_err(|e| LapVerseError::BadInput(e.to_string()))?;
    let bad = |e: &dyn std::fmt::Display| LapVerseError::BadInput(e.to_string());
    let register = TenantCommand::Register {
        name: TenantName::parse("Acme (demo)").map_err(|e| bad(&e))?,
        mrr: Money::parse("1000.00").map_err(|e| bad(&e))?,
        cost_center: TagValue::parse("general").map_err(|e| bad(&e))?,
        slo: TenantSlo::try_new(
            SloTarget::try_new(Decimal::new(99, 2)).map_err(|e| bad(&e))?,
            DEFAULT_PERIOD_DAYS,
        )
        .map_err(|e| bad(&e))?,
        margin_threshold: MarginThreshold::try_new(Decimal::new(70, 2)).map_err(|e| bad(&e))?,
        occurred_at: meta.occurred_at,
    };
    service.tenant_command(DEMO_TENANT, register, &meta).await?;
    let series = TenantCommand::SetSeries {
        series: demo_series(),
        occurred_at: meta.occurred_at,
    };
    service.tenant_command(DEMO_TENANT, series, &meta).await?;
    tracing::info!(
        tenant = DEMO_TENANT,
        "registered the demo tenant (synthetic series)"
    );
    Ok(())
}
