//! The seed's marketplace metrics that apply to this slice: `marketplace_submissions_total`
//! (by outcome), `marketplace_capsules_total` (versions published by this process since it
//! started; the catalogue read model holds the durable count) and
//! `marketplace_approval_duration_seconds` (from submission to publication) and
//! `marketplace_installs_total` (install requests that left the capsule installed) and
//! `marketplace_search_queries_total` (catalogue searches, by outcome).

use agora_commands::capsules::CapsuleObserver;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

/// Approval duration buckets, seconds: auto-approval takes milliseconds, a review hours.
pub const APPROVAL_BUCKETS_S: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1_800.0, 3_600.0, 14_400.0, 86_400.0,
    259_200.0,
];

#[derive(Clone)]
pub struct CapsuleMetrics {
    submissions: IntCounterVec,
    published: IntCounter,
    approval: Histogram,
    installs: IntCounter,
    searches: IntCounterVec,
}

impl CapsuleMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let submissions = IntCounterVec::new(
            Opts::new(
                "marketplace_submissions_total",
                "Capsule submissions, by outcome (auto_approved, queued, refused)",
            ),
            &["outcome"],
        )?;
        let published = IntCounter::new(
            "marketplace_capsules_total",
            "Capsule versions published by this process",
        )?;
        let approval = Histogram::with_opts(
            HistogramOpts::new(
                "marketplace_approval_duration_seconds",
                "Time from a capsule version's submission to its publication, seconds",
            )
            .buckets(APPROVAL_BUCKETS_S.to_vec()),
        )?;
        registry.register(Box::new(submissions.clone()))?;
        registry.register(Box::new(published.clone()))?;
        let installs = IntCounter::new(
            "marketplace_installs_total",
            "Capsule install requests that left the capsule installed (repeats included)",
        )?;
        registry.register(Box::new(approval.clone()))?;
        registry.register(Box::new(installs.clone()))?;
        let searches = IntCounterVec::new(
            Opts::new(
                "marketplace_search_queries_total",
                "Catalogue searches, by outcome (ok, error)",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(searches.clone()))?;
        Ok(Self {
            submissions,
            published,
            approval,
            installs,
            searches,
        })
    }

    /// Counts one search.
    pub fn searched(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.searches.with_label_values(&[outcome]).inc();
    }
}

impl CapsuleObserver for CapsuleMetrics {
    fn submitted(&self, outcome: &str) {
        self.submissions.with_label_values(&[outcome]).inc();
    }

    fn published(&self, seconds: f64) {
        self.published.inc();
        self.approval.observe(seconds);
    }

    fn installed(&self) {
        self.installs.inc();
    }
}
