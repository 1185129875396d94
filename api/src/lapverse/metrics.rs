//! The seed's Prometheus metrics (`lapverse_*`), fed by the workers and the SLO checks.
//! Amounts and rates are exact decimals in the ledger and events; here they become `f64`
//! gauges, as Prometheus requires.

use agora_commands::lapverse::WorkObserver;
use agora_domain::money::Money;
use agora_domain::tenancy::work::TaskType;
use prometheus::{Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

/// Task duration buckets, milliseconds.
pub const DURATION_BUCKETS_MS: &[f64] = &[
    1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0,
];

#[derive(Clone)]
pub struct LapVerseMetrics {
    tasks: IntCounterVec,
    competitions: IntCounterVec,
    duration: HistogramVec,
    cost_per_competition: GaugeVec,
    burn_rate: GaugeVec,
    win_rate: Gauge,
}

impl LapVerseMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let tasks = IntCounterVec::new(
            Opts::new(
                "lapverse_tasks_total",
                "Tasks processed (completed or failed)",
            ),
            &["type", "tenant"],
        )?;
        let competitions = IntCounterVec::new(
            Opts::new(
                "lapverse_competitions_total",
                "Self-compete rounds completed",
            ),
            &["tenant"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new("lapverse_task_duration_ms", "Task attempt run time, ms")
                .buckets(DURATION_BUCKETS_MS.to_vec()),
            &["type"],
        )?;
        let cost_per_competition = GaugeVec::new(
            Opts::new(
                "lapverse_cost_per_competition",
                "Cost of the tenant's latest round, USD",
            ),
            &["tenant"],
        )?;
        let burn_rate = GaugeVec::new(
            Opts::new(
                "lapverse_budget_burn_rate",
                "The tenant's 1-hour SLO burn rate at its latest check",
            ),
            &["tenant"],
        )?;
        let win_rate = Gauge::new(
            "lapverse_win_rate",
            "Latest champion's win-rate delta over the production variant",
        )?;
        registry.register(Box::new(tasks.clone()))?;
        registry.register(Box::new(competitions.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(cost_per_competition.clone()))?;
        registry.register(Box::new(burn_rate.clone()))?;
        registry.register(Box::new(win_rate.clone()))?;
        Ok(Self {
            tasks,
            competitions,
            duration,
            cost_per_competition,
            burn_rate,
            win_rate,
        })
    }
}

fn f(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

impl WorkObserver for LapVerseMetrics {
    fn task_finished(&self, tenant: &str, task_type: TaskType, completed: bool, duration_ms: u64) {
        self.tasks
            .with_label_values(&[task_type.as_str(), tenant])
            .inc();
        if completed {
            self.duration
                .with_label_values(&[task_type.as_str()])
                .observe(duration_ms as f64);
        }
    }

    fn competition_finished(&self, tenant: &str, cost: Money, win_rate_delta: Decimal) {
        self.competitions.with_label_values(&[tenant]).inc();
        self.cost_per_competition
            .with_label_values(&[tenant])
            .set(f(cost.as_decimal()));
        self.win_rate.set(f(win_rate_delta));
    }

    fn burn_rate(&self, tenant: &str, one_hour: Decimal) {
        self.burn_rate.with_label_values(&[tenant]).set(f(one_hour));
    }
}
