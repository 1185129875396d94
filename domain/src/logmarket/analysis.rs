//! One log in, one priced analysis out: the four agents (those that monitor the log's stage),
//! redaction, template mining for uniqueness, quality, value, bonuses, price and improvement
//! potential. Pure: the templates the marketplace has already seen come in as a lookup.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::analysers::{self, AnalyserConfig, LogText};
use super::insight::{Agent, Insight};
use super::pricing::{Bonuses, PricingConfig};
use super::redact::{lines_redact_may_change, redact};
use super::scoring::{self, ImprovementPotential, LogFacts, Novelty, Quality, RoiConfig};
use crate::money::{Money, MoneyError};
use crate::templates::{Drain, DrainConfig};

/// Largest log accepted by default (1 MiB).
pub const DEFAULT_MAX_LOG_BYTES: usize = 1024 * 1024;
/// Most templates an analysis records (new ones first).
pub const MAX_TEMPLATES_RECORDED: usize = 500;
/// Longest template text kept.
pub const MAX_TEMPLATE_CHARS: usize = 300;

/// The pipeline stage a log comes from (the seed's `source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Build,
    Test,
    Deploy,
    Runtime,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Build, Stage::Test, Stage::Deploy, Stage::Runtime];

    pub fn parse(input: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.as_str() == input)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Build => "build",
            Stage::Test => "test",
            Stage::Deploy => "deploy",
            Stage::Runtime => "runtime",
        }
    }

    /// The agents that monitor this stage (the seed's "Monitors" lists).
    pub fn agents(self) -> Vec<Agent> {
        Agent::ALL
            .into_iter()
            .filter(|a| a.monitored_stages().contains(&self.as_str()))
            .collect()
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A data seller (the seed's sub-PKP), scoped by tenant: a sub-PKP id is 1–64 chars of
/// `[a-z0-9_-]` without `__`. The id of a platform-tenant seller is its sub-PKP id (as before
/// tenants scoped sellers, so stored events keep their meaning); the id of another tenant's
/// seller is `<tag>__<sub-PKP id>`, the tag being the first 8 bytes of SHA-256 of the tenant id
/// in hex. Either way the id is a ledger account segment (`seller:<id>:payable`) and an
/// aggregate id, and two tenants' `sub-pkp-1` are two sellers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SellerId(String);

/// Most characters in a sub-PKP id.
pub const MAX_SELLER_ID_CHARS: usize = 64;
/// The tenant whose sellers' ids are their bare sub-PKP ids.
pub const PLATFORM_SELLER_TENANT: &str = "platform";
/// Separates a tenant's tag from the sub-PKP id.
pub const TENANT_SEPARATOR: &str = "__";
/// Hex characters of a tenant's tag.
const TENANT_TAG_CHARS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "seller id must be 1–{MAX_SELLER_ID_CHARS} characters of a-z, 0-9, '-' and '_', without '__'"
)]
pub struct SellerIdError;

fn is_sub_pkp_id(input: &str, allow_separator: bool) -> bool {
    !input.is_empty()
        && input.len() <= MAX_SELLER_ID_CHARS
        && input
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && (allow_separator || !input.contains(TENANT_SEPARATOR))
}

/// The prefix of the ids of `tenant`'s sellers (`None` for the platform tenant, whose ids are
/// bare).
pub fn tenant_prefix(tenant: &str) -> Option<String> {
    if tenant == PLATFORM_SELLER_TENANT {
        return None;
    }
    let tag = hex::encode(&Sha256::digest(tenant.as_bytes())[..TENANT_TAG_CHARS / 2]);
    Some(format!("{tag}{TENANT_SEPARATOR}"))
}

impl SellerId {
    /// A stored seller id: a bare sub-PKP id (platform tenant; stored before tenants scoped
    /// sellers, it may hold `__`) or `<tag>__<sub-PKP id>`.
    pub fn parse(input: &str) -> Result<SellerId, SellerIdError> {
        let tagged = input
            .split_once(TENANT_SEPARATOR)
            .is_some_and(|(tag, sub)| {
                tag.len() == TENANT_TAG_CHARS
                    && tag
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                    && is_sub_pkp_id(sub, false)
            });
        if tagged || is_sub_pkp_id(input, true) {
            Ok(SellerId(input.to_owned()))
        } else {
            Err(SellerIdError)
        }
    }

    /// The seller `sub_pkp_id` of `tenant` (a client's input: no `__`).
    pub fn for_tenant(tenant: &str, sub_pkp_id: &str) -> Result<SellerId, SellerIdError> {
        if !is_sub_pkp_id(sub_pkp_id, false) {
            return Err(SellerIdError);
        }
        Ok(SellerId(match tenant_prefix(tenant) {
            Some(prefix) => format!("{prefix}{sub_pkp_id}"),
            None => sub_pkp_id.to_owned(),
        }))
    }

    /// Whether this seller belongs to `tenant`.
    pub fn belongs_to(&self, tenant: &str) -> bool {
        match tenant_prefix(tenant) {
            Some(prefix) => self.0.starts_with(&prefix),
            None => !self.is_tagged(),
        }
    }

    fn is_tagged(&self) -> bool {
        self.0
            .split_once(TENANT_SEPARATOR)
            .is_some_and(|(tag, _)| tag.len() == TENANT_TAG_CHARS)
    }

    /// The seed's `subPKPId`: the id without its tenant's tag.
    pub fn sub_pkp_id(&self) -> &str {
        if self.is_tagged() {
            self.0
                .split_once(TENANT_SEPARATOR)
                .map_or(self.0.as_str(), |(_, sub)| sub)
        } else {
            &self.0
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SellerId {
    type Error = SellerIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        SellerId::parse(&value)
    }
}

impl From<SellerId> for String {
    fn from(value: SellerId) -> String {
        value.0
    }
}

impl fmt::Display for SellerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything configurable about analysis and price.
#[derive(Clone, Debug, PartialEq)]
pub struct MarketConfig {
    pub analysers: AnalyserConfig,
    pub pricing: PricingConfig,
    pub roi: RoiConfig,
    /// `AGORA_LOGMARKET_MAX_LOG_BYTES`.
    pub max_log_bytes: usize,
    /// Agents switched off (the seed's `AI_MONITOR_*=false`).
    pub disabled_agents: Vec<Agent>,
}

impl Default for MarketConfig {
    fn default() -> Self {
        Self {
            analysers: AnalyserConfig::default(),
            pricing: PricingConfig::default(),
            roi: RoiConfig::default(),
            max_log_bytes: DEFAULT_MAX_LOG_BYTES,
            disabled_agents: Vec::new(),
        }
    }
}

/// Why a log could not be analysed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnalyseError {
    #[error("log is empty")]
    EmptyLog,
    #[error("log is {bytes} bytes; the limit is {limit} bytes")]
    LogTooLarge { bytes: usize, limit: usize },
    #[error("amount out of range: {0}")]
    Money(#[from] MoneyError),
}

/// A template of the submitted log, identified by the hash of its text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSeen {
    /// First 16 bytes of SHA-256 of the template text, hex.
    pub hash: String,
    /// The template (of redacted lines, so it holds no secret); truncated.
    pub template: String,
    /// Lines of this log with this template.
    pub lines: u32,
    /// Never seen by the marketplace before this log.
    pub new: bool,
}

/// The priced result of analysing one log (what a `LogAnalysisRecorded` event carries).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub log_sha256: String,
    pub log_bytes: u64,
    pub line_count: u32,
    pub agents: Vec<Agent>,
    pub insights: Vec<Insight>,
    /// Absent from read-model documents (kept in the templates table instead).
    #[serde(default)]
    pub templates: Vec<TemplateSeen>,
    /// All templates of the log, including those beyond [`MAX_TEMPLATES_RECORDED`].
    pub template_count: u32,
    pub facts: LogFacts,
    pub quality: Quality,
    pub overall_quality: Decimal,
    pub value_score: u8,
    pub bonuses: Bonuses,
    pub payment: Money,
    pub improvement: ImprovementPotential,
}

/// Masks for template mining of logs of unknown origin: double-quoted strings; and, without a
/// regex, every piece of a whitespace-free run (split at `=,()[]{}|;`) that holds a digit
/// (timestamps, numbers with units, ids, hex, IPs, paths with line numbers, versions, the values
/// of `k=v,k=v` lists: `DrainConfig::digit_chunks_as_wildcards`). Deliberately coarse:
/// templates here only judge whether a pattern is new, and one cheap pass keeps the priced
/// analysis fast.
pub const GENERAL_MASKS: &[&str] = &[r#""[^"]*""#];

/// Similarity threshold of the general configuration, over a template's constant part (see
/// `templates::best_match`): two of three constants equal is not enough, four of five is.
pub const GENERAL_SIMILARITY: f64 = 0.7;

/// In the general configuration, a template that this many lines have joined is settled: a
/// line that differs from it in a constant token starts a template of its own (a word that
/// stayed the same for 20 lines is taken for part of the message, not a parameter).
pub const GENERAL_SETTLED_AFTER_LINES: usize = 20;

static TEMPLATE_CONFIG: LazyLock<DrainConfig> = LazyLock::new(|| DrainConfig {
    digit_chunks_as_wildcards: true,
    settled_after_lines: Some(GENERAL_SETTLED_AFTER_LINES),
    compare_constant_part: true,
    ..DrainConfig::new(4, GENERAL_SIMILARITY, GENERAL_MASKS).expect("general masks compile")
});

/// The template miner settings used for every submitted log (the marketplace's general
/// configuration: no per-system settings).
pub fn template_config() -> &'static DrainConfig {
    &TEMPLATE_CONFIG
}

static METRIC: LazyLock<Regex> = LazyLock::new(|| {
    // ASCII word boundaries: a Unicode `\b` stops the fast DFA on any non-ASCII text, and this
    // runs over the whole log.
    Regex::new(r"(?-u:\b)\d+(?:\.\d+)?\s?(?:ms|s|sec|seconds|MB|GB|KB|MiB|GiB|%)(?:\W|$)")
        .expect("metric regex")
});

static LEVEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u:\b)(?:INFO|WARN|WARNING|ERROR|DEBUG|FATAL|CRITICAL|TRACE)(?-u:\b)|\[(?:build|test|deploy|runtime)\]")
        .expect("level regex")
});

/// The template hash: first 16 bytes of SHA-256 of the text, hex.
pub fn template_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..16])
}

fn has_clock_time(line: &str) -> bool {
    let b = &line.as_bytes()[..line.len().min(64)];
    b.windows(8).any(|w| {
        w[2] == b':' && w[5] == b':' && [0, 1, 3, 4, 6, 7].iter().all(|&i| w[i].is_ascii_digit())
    })
}

/// Keeps the first `max` characters of `s`.
fn truncate_to_chars(s: &mut String, max: usize) {
    if let Some((i, _)) = s.char_indices().nth(max) {
        s.truncate(i);
    }
}

/// Hex digits of a [`template_hash`].
const TEMPLATE_HASH_HEX: usize = 32;

/// [`template_hash`] without allocating: the same lowercase hex digits, in a buffer.
fn template_hash_hex(text: &str) -> [u8; TEMPLATE_HASH_HEX] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = [0u8; TEMPLATE_HASH_HEX];
    for (pair, byte) in hex
        .chunks_exact_mut(2)
        .zip(&digest[..TEMPLATE_HASH_HEX / 2])
    {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
    hex
}

fn hash_str(hex: &[u8; TEMPLATE_HASH_HEX]) -> &str {
    std::str::from_utf8(hex).expect("hex digits are ASCII")
}

/// One mined template while the recorded ones are chosen.
struct Record {
    text: String,
    hash: [u8; TEMPLATE_HASH_HEX],
    new: bool,
    lines: u32,
    cluster: usize,
}

/// Redacts every text field of an insight.
pub fn redact_insight(mut insight: Insight) -> Insight {
    let r = |s: &mut String| {
        if let std::borrow::Cow::Owned(o) = redact(s) {
            *s = o;
        }
    };
    r(&mut insight.title);
    r(&mut insight.excerpt);
    r(&mut insight.impact);
    r(&mut insight.fix);
    if let Some(c) = insight.root_cause.as_mut() {
        r(c);
    }
    if let Some(l) = insight.location.as_mut() {
        r(l);
    }
    for v in insight.details.values_mut() {
        r(v);
    }
    insight
}

/// Analyses and prices one log. `known` says whether the marketplace has seen a template hash.
pub fn analyse(
    content: &str,
    stage: Stage,
    config: &MarketConfig,
    known: &dyn Fn(&str) -> bool,
) -> Result<Analysis, AnalyseError> {
    if content.trim().is_empty() {
        return Err(AnalyseError::EmptyLog);
    }
    if content.len() > config.max_log_bytes {
        return Err(AnalyseError::LogTooLarge {
            bytes: content.len(),
            limit: config.max_log_bytes,
        });
    }
    let log = LogText::new(content);
    let agents: Vec<Agent> = stage
        .agents()
        .into_iter()
        .filter(|a| !config.disabled_agents.contains(a))
        .collect();
    let insights: Vec<Insight> = analysers::analyse_all(&log, &config.analysers)
        .into_iter()
        .filter(|i| agents.contains(&i.agent()))
        .map(redact_insight)
        .collect();

    let (templates, line_template, template_count) = mine_templates(&log, known);
    let insight_is_new = insights
        .iter()
        .map(|i| {
            let line = (i.log_line as usize).saturating_sub(1);
            line_template
                .get(line)
                .and_then(|t| *t)
                .is_some_and(|t| templates_new(&templates, t))
        })
        .collect();
    let novelty = Novelty {
        insight_is_new,
        new_templates: templates.iter().filter(|(t, _)| t.new).count() as u32,
        templates: template_count,
    };

    let facts = LogFacts {
        lines: log.lines.iter().filter(|l| !l.trim().is_empty()).count() as u32,
        timestamped_lines: log.lines.iter().filter(|l| has_clock_time(l)).count() as u32,
        has_metrics: METRIC.is_match(content),
        has_levels: LEVEL.is_match(content),
    };
    let quality = Quality {
        completeness: scoring::completeness(&facts, true, &insights),
        relevance: scoring::relevance(&insights),
        actionability: scoring::actionability(&insights),
        uniqueness: scoring::uniqueness(&novelty),
    };
    let overall = quality.overall();
    let any_new = novelty.insight_is_new.iter().any(|n| *n);
    let value = scoring::value_score(&insights, any_new);
    let bonuses = scoring::bonuses(&insights, &novelty);
    let payment = config.pricing.payment(overall, value, bonuses)?;
    let improvement = scoring::improvement_potential(&insights, &config.roi)?;
    Ok(Analysis {
        log_sha256: hex::encode(Sha256::digest(content.as_bytes())),
        log_bytes: content.len() as u64,
        line_count: log.lines.len() as u32,
        agents,
        insights,
        templates: templates.into_iter().map(|(t, _)| t).collect(),
        template_count,
        facts,
        quality,
        overall_quality: overall,
        value_score: value,
        bonuses,
        payment,
        improvement,
    })
}

fn templates_new(templates: &[(TemplateSeen, usize)], cluster: usize) -> bool {
    templates
        .iter()
        .find(|(_, c)| *c == cluster)
        .is_some_and(|(t, _)| t.new)
}

type Mined = (Vec<(TemplateSeen, usize)>, Vec<Option<usize>>, u32);

/// Mines the log's templates from its redacted lines; returns the recorded templates (new ones
/// first, at most [`MAX_TEMPLATES_RECORDED`]) with their cluster ids, each line's cluster, and
/// the number of distinct templates.
fn mine_templates(log: &LogText<'_>, known: &dyn Fn(&str) -> bool) -> Mined {
    let mut drain = Drain::new(TEMPLATE_CONFIG.clone());
    // `redact(line)` on the lines it may change, the line itself elsewhere: the same text.
    let may_change = lines_redact_may_change(log.text, &log.lines);
    let line_cluster: Vec<Option<usize>> = log
        .lines
        .iter()
        .zip(&may_change)
        .map(|(line, &may_change)| {
            if line.trim().is_empty() {
                None
            } else if may_change {
                Some(drain.add(&redact(line)))
            } else {
                Some(drain.add(line))
            }
        })
        .collect();
    // Cluster ids are indices into `clusters()`.
    let mut counts = vec![0u32; drain.clusters().len()];
    for c in line_cluster.iter().flatten() {
        if let Some(n) = counts.get_mut(*c) {
            *n += 1;
        }
    }
    // Every template is hashed (whether it is new counts for all), but only those recorded
    // get their hash as a `String`.
    let mut records: Vec<Record> = drain
        .clusters()
        .iter()
        .map(|cluster| {
            let mut text = cluster.template_text();
            truncate_to_chars(&mut text, MAX_TEMPLATE_CHARS);
            let hash = template_hash_hex(&text);
            let new = !known(hash_str(&hash));
            Record {
                text,
                hash,
                new,
                lines: counts.get(cluster.id).copied().unwrap_or(0),
                cluster: cluster.id,
            }
        })
        .collect();
    let total = records.len() as u32;
    // New templates first, then by size: what is kept under the cap matters most. (Stable,
    // so ties keep the clusters' order.)
    records.sort_by(|a, b| b.new.cmp(&a.new).then(b.lines.cmp(&a.lines)));
    records.truncate(MAX_TEMPLATES_RECORDED);
    let templates = records
        .into_iter()
        .map(|r| {
            (
                TemplateSeen {
                    hash: hash_str(&r.hash).to_owned(),
                    template: r.text,
                    lines: r.lines,
                    new: r.new,
                },
                r.cluster,
            )
        })
        .collect();
    (templates, line_cluster, total)
}

#[cfg(test)]
mod seller_id_tests {
    use super::*;

    #[test]
    fn two_tenants_sub_pkp_ids_are_two_sellers() {
        let a = SellerId::for_tenant("acme", "sub-pkp-1").unwrap();
        let b = SellerId::for_tenant("globex", "sub-pkp-1").unwrap();
        let platform = SellerId::for_tenant("platform", "sub-pkp-1").unwrap();
        assert_ne!(a, b);
        assert_ne!(a, platform);
        assert_eq!(
            platform.as_str(),
            "sub-pkp-1",
            "platform sellers keep their ids"
        );
        for (id, tenant) in [(&a, "acme"), (&b, "globex"), (&platform, "platform")] {
            assert_eq!(id.sub_pkp_id(), "sub-pkp-1");
            assert!(id.belongs_to(tenant));
            assert_eq!(SellerId::parse(id.as_str()).as_ref(), Ok(id), "round trip");
        }
        assert!(!a.belongs_to("globex") && !a.belongs_to("platform"));
        assert!(!platform.belongs_to("acme"));
        assert!(crate::ledger::AccountId::seller_payable(a.as_str()).is_ok());
    }

    #[test]
    fn a_client_cannot_name_another_tenants_seller() {
        let a = SellerId::for_tenant("acme", "sub-pkp-1").unwrap();
        assert_eq!(
            SellerId::for_tenant("platform", a.as_str()),
            Err(SellerIdError),
            "'__' is refused in a sub-PKP id"
        );
        assert_eq!(SellerId::for_tenant("acme", "Bad"), Err(SellerIdError));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seller_ids_are_account_segments() {
        assert!(SellerId::parse("sub-pkp-12345").is_ok());
        assert!(SellerId::parse("").is_err());
        assert!(SellerId::parse("Sub-PKP").is_err());
        assert!(SellerId::parse("a:b").is_err());
        assert!(SellerId::parse(&"a".repeat(65)).is_err());
    }

    /// `mine_templates` as it was before redaction was skipped on clean lines and records were
    /// built without a `String` per hash: the reference the faster one must equal.
    fn mine_templates_reference(log: &LogText<'_>, known: &dyn Fn(&str) -> bool) -> Mined {
        let mut drain = Drain::new(TEMPLATE_CONFIG.clone());
        let line_cluster: Vec<Option<usize>> = log
            .lines
            .iter()
            .map(|line| (!line.trim().is_empty()).then(|| drain.add(&redact(line))))
            .collect();
        let mut counts: std::collections::HashMap<usize, u32> = Default::default();
        for c in line_cluster.iter().flatten() {
            *counts.entry(*c).or_default() += 1;
        }
        let mut templates: Vec<(TemplateSeen, usize)> = drain
            .clusters()
            .iter()
            .map(|cluster| {
                let text: String = cluster
                    .template_text()
                    .chars()
                    .take(MAX_TEMPLATE_CHARS)
                    .collect();
                let hash = template_hash(&text);
                let new = !known(&hash);
                let lines = counts.get(&cluster.id).copied().unwrap_or(0);
                let seen = TemplateSeen {
                    hash,
                    template: text,
                    lines,
                    new,
                };
                (seen, cluster.id)
            })
            .collect();
        let total = templates.len() as u32;
        templates.sort_by(|(a, _), (b, _)| b.new.cmp(&a.new).then(b.lines.cmp(&a.lines)));
        templates.truncate(MAX_TEMPLATES_RECORDED);
        (templates, line_cluster, total)
    }

    #[test]
    fn mined_templates_equal_the_reference() {
        // More templates than are recorded, line counts with ties, long templates, and lines
        // with addresses, e-mails, card numbers and credentials to redact.
        let word = |mut k: usize| {
            let mut w = String::new();
            loop {
                w.push(char::from(b'a' + (k % 26) as u8));
                k /= 26;
                if k == 0 {
                    return w;
                }
            }
        };
        let mut log = String::new();
        for k in 0..1_200 {
            for _ in 0..(k % 3 + 1) {
                let extra = match k % 5 {
                    0 => format!("from 10.0.{}.{} by bob{k}@example.com", k % 250, k % 200),
                    1 => "password=Zr8vQ2mX9k! card 4111 1111 1111 1111".to_string(),
                    2 => "é✖ ".repeat(120),
                    _ => String::new(),
                };
                log.push_str(&format!("{} {} step {k} {extra}\r\n", word(k), word(k + 7)));
            }
            if k % 11 == 0 {
                log.push_str("   \n");
            }
        }
        let log = LogText::new(&log);
        let knowns: [&dyn Fn(&str) -> bool; 3] =
            [&|_| false, &|_| true, &|h| h.as_bytes()[0] < b'8'];
        for known in knowns {
            let (templates, lines, total) = mine_templates(&log, known);
            let (ref_templates, ref_lines, ref_total) = mine_templates_reference(&log, known);
            assert!(total as usize > MAX_TEMPLATES_RECORDED, "{total}");
            assert_eq!(total, ref_total);
            assert_eq!(lines, ref_lines);
            assert_eq!(templates, ref_templates);
        }
    }

    #[test]
    fn template_hashes_in_a_buffer_are_the_stored_hashes() {
        for text in ["", "build <*> started", "héllo ✖ <*>", &"x".repeat(400)] {
            assert_eq!(hash_str(&template_hash_hex(text)), template_hash(text));
        }
        let mut s = "aé✖bc".to_string();
        truncate_to_chars(&mut s, 3);
        assert_eq!(s, "aé✖");
        truncate_to_chars(&mut s, 10);
        assert_eq!(s, "aé✖");
    }

    #[test]
    fn stages_select_the_seed_agents() {
        assert_eq!(
            Stage::Build.agents(),
            vec![
                Agent::ErrorDetective,
                Agent::SecurityGuardian,
                Agent::QualityInspector
            ]
        );
        assert_eq!(Stage::Deploy.agents().len(), 2);
        assert_eq!(Stage::parse("runtime"), Some(Stage::Runtime));
        assert_eq!(Stage::parse("prod"), None);
    }

    #[test]
    fn empty_and_oversized_logs_are_rejected() {
        let config = MarketConfig {
            max_log_bytes: 10,
            ..MarketConfig::default()
        };
        let none = |_: &str| false;
        assert_eq!(
            analyse("  \n", Stage::Build, &config, &none).unwrap_err(),
            AnalyseError::EmptyLog
        );
        assert_eq!(
            analyse("0123456789a", Stage::Build, &config, &none).unwrap_err(),
            AnalyseError::LogTooLarge {
                bytes: 11,
                limit: 10
            }
        );
    }

    #[test]
    fn repeat_logs_score_lower_uniqueness() {
        let log = "[2025-11-06 10:30:15] INFO build started\n\
                   [2025-11-06 10:30:16] INFO compiled 12 crates in 4.2s\n\
                   [2025-11-06 10:30:17] INFO build finished\n";
        let config = MarketConfig::default();
        let first = analyse(log, Stage::Build, &config, &|_| false).unwrap();
        assert_eq!(first.quality.uniqueness, 100);
        assert!(first.templates.iter().all(|t| t.new));
        let seen: Vec<String> = first.templates.iter().map(|t| t.hash.clone()).collect();
        let again = analyse(log, Stage::Build, &config, &|h| seen.iter().any(|s| s == h)).unwrap();
        assert_eq!(again.quality.uniqueness, 0);
        // Same shape, other numbers: still the same templates.
        let other = log
            .replace("12 crates", "31 crates")
            .replace("4.2s", "9.9s");
        let third = analyse(&other, Stage::Build, &config, &|h| {
            seen.iter().any(|s| s == h)
        });
        assert_eq!(third.unwrap().quality.uniqueness, 0);
        assert_eq!(first.log_bytes, log.len() as u64);
        assert_eq!(first.line_count, 3);
        assert!(first.facts.has_levels && first.facts.has_metrics);
        assert_eq!(first.facts.timestamped_lines, 3);
    }
}
