//! `agora bench --capsules`: the capsule registry's three timed paths, per backend.
//!
//! - **submit**: a 1 MiB bundle end to end through the capsule service (manifest validation,
//!   bundle inspection, SBOM, risk score, blob storage, events, the platform's signature), each
//!   submission a new capsule, timed from the call to its receipt.
//! - **resolve**: dependency resolution of generated 200-node, 6-level graphs (the domain's
//!   resolver over an in-memory catalogue; the install path loads the same releases from the
//!   capsule aggregates first).
//! - **search**: 10,000 generated capsules in the search documents read model, then queries of
//!   one or two words with one typo each, through [`CapsuleSearch`] (index catch-up, fuzzy
//!   candidates, filters and sort in SQL). The index build on the first query is reported
//!   apart.

use std::sync::Arc;
use std::time::Instant;

use agora_commands::capsules::blobs::BlobStore;
use agora_commands::capsules::{CapsuleService, CapsuleSettings, Submission};
use agora_commands::{CommandMetadata, CommitSignal, Store};
use agora_domain::capsules::resolve::generate::{bench_graph, Lcg};
use agora_domain::capsules::resolve::resolve;
use agora_projections::capsule_installs::CapsuleInstallProjection;
use agora_projections::capsule_reviews::CapsuleReviewProjection;
use agora_projections::capsule_search::{
    CapsuleSearch, CapsuleSearchProjection, SearchRequest, SearchSort,
};
use agora_projections::capsules::{CapsuleProjection, CapsuleQueries};
use agora_projections::{Projection, ProjectionRunner};
use chrono::Utc;
use ed25519_dalek::SigningKey;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Serialize;

use super::percentiles;

/// Submissions timed per backend.
pub const SUBMISSIONS: usize = 20;
/// Size of each submitted bundle (compressed), bytes.
pub const BUNDLE_BYTES: usize = 1024 * 1024;
/// Resolutions timed (each of a differently seeded graph).
pub const RESOLUTIONS: u64 = 200;
/// Capsules in the search bench's catalogue.
pub const SEARCH_DOCS: usize = 10_000;
/// Searches timed per backend.
pub const SEARCHES: usize = 300;

/// One measured row.
#[derive(Clone, Debug, Serialize)]
pub struct CapsuleRow {
    pub backend: String,
    pub scenario: &'static str,
    pub runs: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
    pub target_ms: f64,
    pub note: String,
}

fn row(
    backend: &str,
    scenario: &'static str,
    times: Vec<f64>,
    target_ms: f64,
    note: String,
) -> CapsuleRow {
    let runs = times.len();
    let p95 = p95(&times);
    let (p50, _, max) = percentiles(times);
    CapsuleRow {
        backend: backend.to_owned(),
        scenario,
        runs,
        p50_ms: p50,
        p95_ms: p95,
        max_ms: max,
        target_ms,
        note,
    }
}

fn p95(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(((0.95 * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1)) - 1)
        .copied()
        .unwrap_or(0.0)
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// Lowercase letters for `i` (distinct per `i`).
fn word(mut i: usize) -> String {
    let mut w = String::new();
    loop {
        w.push(char::from(b'a' + (i % 26) as u8));
        i /= 26;
        if i == 0 {
            return w;
        }
    }
}

/// A text file of `bytes` pseudo-random hex lines (4 bits of entropy a byte: gzip halves it).
fn noise(rng: &mut Lcg, bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 80);
    while out.len() < bytes {
        for _ in 0..8 {
            out.extend_from_slice(format!("{:016x}", rng.next_u64()).as_bytes());
        }
        out.push(b'\n');
    }
    out.truncate(bytes);
    out
}

fn bundle(rng: &mut Lcg) -> anyhow::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    let mut add = |path: &str, body: &[u8]| -> std::io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, body)
    };
    add("README.md", b"# bench capsule\n")?;
    add("src/main.py", b"print('bench')\n")?;
    // Two data files of ~1.4 MiB of hex text each (gzip keeps ~37 %): about 1 MiB.
    add("data/a.txt", &noise(rng, BUNDLE_BYTES * 11 / 8))?;
    add("data/b.txt", &noise(rng, BUNDLE_BYTES * 11 / 8))?;
    Ok(tar.into_inner()?.finish()?)
}

fn manifest(name: &str) -> String {
    format!(
        "apiVersion: soma.dev/v1
kind: TaskCapsule
metadata:
  name: {name}
  version: 1.0.0
  author: bench
  category: Data Engineering
  tags: [bench, csv]
spec:
  description: A generated capsule for the submission benchmark
  permissions: [filesystem.read]
  tokenEstimate:
    total: 1000
"
    )
}

async fn bench_submit(backend: &str, store: &Store) -> anyhow::Result<CapsuleRow> {
    // The catalogue's tables (the risk score's facts); empty: no projection runs here.
    prepare(store, Arc::new(CapsuleProjection::default())).await?;
    let dir = std::env::temp_dir().join(format!("agora_bench_blobs_{}", std::process::id()));
    let service = CapsuleService::new(
        store,
        CommitSignal::new(),
        BlobStore::local(&dir)?,
        Arc::new(SigningKey::from_bytes(&[3; 32])),
        CapsuleSettings::default(),
        Arc::new(CapsuleQueries::new(store.read_models().clone())),
    );
    let mut rng = Lcg::new(7);
    let mut times = Vec::with_capacity(SUBMISSIONS);
    let mut sizes = Vec::with_capacity(SUBMISSIONS);
    for i in 0..SUBMISSIONS {
        let name = format!("bench-{}-capsule", word(i * 7919 + 1000));
        let submission = Submission {
            manifest: manifest(&name).into_bytes(),
            bundle: bundle(&mut rng)?,
            envelope: None,
        };
        sizes.push(submission.bundle.len());
        let meta = CommandMetadata::new("bench/author", "bench", Utc::now())?;
        let started = Instant::now();
        service.submit("bench/author", submission, &meta).await?;
        times.push(ms(started));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mean_kib = sizes.iter().sum::<usize>() as f64 / sizes.len().max(1) as f64 / 1024.0;
    Ok(row(
        backend,
        "capsule_submit_1mib",
        times,
        300.0,
        format!("bundles of {mean_kib:.0} KiB gzip"),
    ))
}

fn bench_resolve() -> anyhow::Result<CapsuleRow> {
    let mut times = Vec::new();
    let mut shape = (0, 0);
    for seed in 0..RESOLUTIONS {
        let g = bench_graph(seed);
        let started = Instant::now();
        let resolution = resolve(&g.root, &g.catalogue)
            .map_err(|e| anyhow::anyhow!("generated graph {seed}: {e}"))?;
        times.push(ms(started));
        shape = (resolution.picked.len(), resolution.depth);
    }
    Ok(row(
        "memory",
        "capsule_resolve_200x6",
        times,
        50.0,
        format!(
            "{} capsules picked, depth {}, per resolution",
            shape.0, shape.1
        ),
    ))
}

const VOCABULARY: &[&str] = &[
    "pipeline",
    "extract",
    "transform",
    "loader",
    "warehouse",
    "schema",
    "parquet",
    "kafka",
    "stream",
    "batch",
    "report",
    "dashboard",
    "metrics",
    "anomaly",
    "forecast",
    "cluster",
    "classifier",
    "embedding",
    "tokenizer",
    "summary",
    "translate",
    "invoice",
    "billing",
    "ledger",
    "scanner",
    "secrets",
    "vulnerability",
    "firewall",
    "kubernetes",
    "terraform",
    "deploy",
    "rollback",
    "incident",
    "alerting",
    "logging",
    "tracing",
    "webhook",
    "slack",
    "calendar",
    "email",
    "crawler",
    "markdown",
    "documentation",
    "changelog",
    "release",
    "migration",
    "postgres",
    "sqlite",
    "backup",
    "archive",
    "compliance",
    "privacy",
    "redact",
    "sentiment",
    "chatbot",
    "scheduler",
    "workflow",
    "approval",
    "notebook",
    "spreadsheet",
];
const CATEGORIES: &[&str] = &[
    "Automation",
    "Data Engineering",
    "Integration",
    "Security",
    "DevOps",
    "Analytics",
    "Machine Learning",
    "Documentation",
];

fn pick<'a>(rng: &mut Lcg, words: &'a [&'a str]) -> &'a str {
    words[rng.below(words.len() as u64) as usize]
}

/// One typo: two neighbouring letters swapped, or one dropped.
fn typo(rng: &mut Lcg, w: &str) -> String {
    let mut chars: Vec<char> = w.chars().collect();
    let i = 1 + rng.below(chars.len() as u64 - 2) as usize;
    if rng.below(2) == 0 {
        chars.swap(i, i + 1);
    } else {
        chars.remove(i);
    }
    chars.into_iter().collect()
}

async fn prepare(store: &Store, projection: Arc<dyn Projection>) -> anyhow::Result<()> {
    ProjectionRunner::new(store.clone(), projection)
        .prepare()
        .await?;
    Ok(())
}

async fn bench_search(backend: &str, store: &Store) -> anyhow::Result<Vec<CapsuleRow>> {
    prepare(store, Arc::new(CapsuleSearchProjection::default())).await?;
    prepare(store, Arc::new(CapsuleInstallProjection::default())).await?;
    prepare(store, Arc::new(CapsuleReviewProjection::default())).await?;
    let pool = store.read_models();
    let mut rng = Lcg::new(11);
    let mut tx = pool.begin().await?;
    for i in 0..SEARCH_DOCS {
        let (a, b, c) = (
            pick(&mut rng, VOCABULARY),
            pick(&mut rng, VOCABULARY),
            pick(&mut rng, VOCABULARY),
        );
        let name = format!("{a}-{b}-{}", word(i));
        let description = format!(
            "Runs the {b} {c} step of a {a} workflow and writes a {} for the team",
            pick(&mut rng, VOCABULARY)
        );
        sqlx::query(
            "INSERT INTO rm_capsule_search_docs (name, version, description, tags, category, \
             permissions, published_at_us, listed, seq) VALUES ($1, '1.0.0', $2, $3, $4, \
             ' filesystem.read ', $5, 1, $6)",
        )
        .bind(&name)
        .bind(&description)
        .bind(format!("{c} {}", pick(&mut rng, VOCABULARY)))
        .bind(pick(&mut rng, CATEGORIES))
        .bind(1_700_000_000_000_000_i64 + i as i64)
        .bind(i as i64 + 1)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO rm_capsule_install_counts (capsule, installs, installs_ever) \
             VALUES ($1, $2, $2)",
        )
        .bind(&name)
        .bind(rng.below(1_000) as i64)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    let search = CapsuleSearch::new(pool.clone())?;
    let started = Instant::now();
    search.index().catch_up().await?;
    let build_ms = ms(started);
    let mut relevance = Vec::with_capacity(SEARCHES);
    let mut sorted = Vec::with_capacity(SEARCHES);
    let mut found = 0;
    for i in 0..SEARCHES {
        let w = pick(&mut rng, VOCABULARY);
        let q = if i % 2 == 0 {
            typo(&mut rng, w)
        } else {
            format!("{} {}", typo(&mut rng, w), pick(&mut rng, VOCABULARY))
        };
        let (times, sort) = if i % 3 == 0 {
            (&mut sorted, Some(SearchSort::Popularity))
        } else {
            (&mut relevance, None)
        };
        let request = SearchRequest {
            q: Some(q),
            category: (i % 5 == 0).then(|| pick(&mut rng, CATEGORIES).to_owned()),
            sort: sort.map(|_| "popularity".to_owned()),
            first: Some(20),
            ..SearchRequest::default()
        };
        let started = Instant::now();
        let page = search.search(&request).await?;
        times.push(ms(started));
        found += usize::from(!page.hits.is_empty());
    }
    let note = format!(
        "{SEARCH_DOCS} capsules, index built in {build_ms:.0} ms on the first query; \
         {found}/{SEARCHES} typo queries found capsules"
    );
    Ok(vec![
        row(
            backend,
            "capsule_search_typo_relevance",
            relevance,
            50.0,
            note.clone(),
        ),
        row(
            backend,
            "capsule_search_typo_popularity",
            sorted,
            50.0,
            note,
        ),
    ])
}

/// Every capsule scenario on `store` (fresh, migrated).
pub async fn bench_capsules(backend: &str, store: &Store) -> anyhow::Result<Vec<CapsuleRow>> {
    let mut rows = vec![bench_submit(backend, store).await?];
    rows.extend(bench_search(backend, store).await?);
    Ok(rows)
}

/// The store-free scenario.
pub fn bench_memory() -> anyhow::Result<Vec<CapsuleRow>> {
    Ok(vec![bench_resolve()?])
}

pub fn print(rows: &[CapsuleRow]) {
    println!("\nagora bench --capsules: milliseconds per operation\n");
    println!("| backend | scenario | runs | p50 ms | p95 ms | max ms | target p95 ms | note |");
    println!("|---|---|---:|---:|---:|---:|---:|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | < {:.0} | {} |",
            r.backend, r.scenario, r.runs, r.p50_ms, r.p95_ms, r.max_ms, r.target_ms, r.note
        );
    }
}
