//! Typed configuration from the environment. Defaults are for a developer's machine: embedded
//! SQLite under `./data`, listening on loopback only.

use std::net::SocketAddr;
use std::path::PathBuf;

use agora_commands::store::{StoreConfigError, StoreLocation};

use agora_domain::logmarket::insight::Agent;
use agora_domain::money::Money;

use crate::keys::{Secret, SIGNING_KEY_ENV};
use crate::logmarket::MarketSettings;
use agora_commands::lapverse::LapVerseSettings;

/// The seed's port (`PORT=3000`), on loopback.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
pub const DEFAULT_DATA_DIR: &str = "./data";
/// Shortest accepted `AGORA_BOOTSTRAP_ADMIN_KEY`.
pub const MIN_BOOTSTRAP_KEY_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("AGORA_LISTEN={value:?} is not a socket address like 127.0.0.1:8080")]
    BadListen { value: String },
    #[error("DATABASE_URL: {0}")]
    BadDatabaseUrl(#[from] StoreConfigError),
    #[error("AGORA_RATE_LIMIT_PER_MINUTE={value:?} must be a positive whole number")]
    BadRateLimit { value: String },
    #[error("AGORA_BOOTSTRAP_ADMIN_KEY must be {MIN_BOOTSTRAP_KEY_LEN}..=512 characters")]
    WeakBootstrapKey,
    #[error("AGORA_LOG_FORMAT={value:?} must be `text` or `json`")]
    BadLogFormat { value: String },
    #[error("{name}={value:?} must be a positive whole number")]
    BadNumber { name: &'static str, value: String },
    #[error("{name}={value:?} must be a decimal amount such as 0.10")]
    BadAmount { name: &'static str, value: String },
    #[error("{name}={value:?} must be true or false")]
    BadFlag { name: &'static str, value: String },
    #[error("log marketplace pricing: {0}")]
    BadPricing(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub store: StoreLocation,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub log_format: LogFormat,
    /// The ledger's signing key seed, if configured (else kept in `data_dir`).
    pub signing_key: Option<Secret>,
    /// `AGORA_API_TOKEN_SECRET`: the secret API tokens are derived from (else kept in
    /// `data_dir`); independent of the signing key. Give every process of a deployment the same.
    pub api_token_secret: Option<Secret>,
    /// `AGORA_BOOTSTRAP_ADMIN_KEY`: the first admin key, made on first start.
    pub bootstrap_admin_key: Option<Secret>,
    /// `AGORA_RATE_LIMIT_PER_MINUTE`: GraphQL requests per API key per minute.
    pub rate_limit_per_minute: u32,
    /// The log marketplace's limits and prices.
    pub market: MarketSettings,
    /// Lap-Verse FinOps tag defaults and worker settings (`LAPVERSE_*`).
    pub lapverse: LapVerseSettings,
    /// `AGORA_LAPVERSE_WORKERS`: run the task and self-compete workers in this process.
    pub workers: bool,
    /// `AGORA_REDIS_URL`: keep rate limits and submission quotas in this Redis (else in the
    /// database); a secret, since the URL may hold a password.
    pub redis_url: Option<Secret>,
    /// `AGORA_DEMO_TENANT`: register the demo tenant `acme` and load the demo capsule
    /// catalogue on start (default on for the embedded SQLite store, off for PostgreSQL).
    pub demo_tenant: bool,
}

/// Reads `LAPVERSE_APPLICATION`, `LAPVERSE_ENVIRONMENT` (else `NODE_ENV`, else `dev`),
/// `LAPVERSE_WORKER_CONCURRENCY` (10) and `LAPVERSE_LEASE_SECONDS` (60).
fn lapverse_settings(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<LapVerseSettings, ConfigError> {
    let mut s = LapVerseSettings::default();
    if let Some(app) = get("LAPVERSE_APPLICATION").filter(|v| !v.is_empty()) {
        s.application = app;
    }
    if let Some(env) = get("LAPVERSE_ENVIRONMENT")
        .or_else(|| get("NODE_ENV"))
        .filter(|v| !v.is_empty())
    {
        s.environment = env;
    }
    s.concurrency =
        positive(get, "LAPVERSE_WORKER_CONCURRENCY", s.concurrency as u64)?.min(1_000) as usize;
    s.lease =
        std::time::Duration::from_secs(positive(get, "LAPVERSE_LEASE_SECONDS", s.lease.as_secs())?);
    Ok(s)
}

fn positive(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    match get(name).as_deref() {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ConfigError::BadNumber {
                name,
                value: v.to_string(),
            }),
    }
}

fn amount(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: Money,
) -> Result<Money, ConfigError> {
    match get(name).as_deref() {
        None | Some("") => Ok(default),
        Some(v) => Money::parse(v).map_err(|_| ConfigError::BadAmount {
            name,
            value: v.to_string(),
        }),
    }
}

fn flag(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(name).as_deref() {
        None | Some("") => Ok(default),
        Some("true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(v) => Err(ConfigError::BadFlag {
            name,
            value: v.to_string(),
        }),
    }
}

/// Reads the log marketplace settings: the seed's `LOG_MARKETPLACE_ENABLED`,
/// `LOG_MARKETPLACE_MIN_PAYMENT`, `LOG_MARKETPLACE_MAX_PAYMENT`, `AI_MONITOR_*`, and
/// `AGORA_LOGMARKET_MAX_LOG_BYTES`, `AGORA_LOGMARKET_RATE_LIMIT_PER_MINUTE`,
/// `AGORA_LOGMARKET_SUBMISSIONS_PER_HOUR`.
fn market_settings(get: &impl Fn(&str) -> Option<String>) -> Result<MarketSettings, ConfigError> {
    let d = MarketSettings::default();
    let mut m = d.clone();
    m.enabled = flag(get, "LOG_MARKETPLACE_ENABLED", d.enabled)?;
    m.config.pricing.min_payment = amount(
        get,
        "LOG_MARKETPLACE_MIN_PAYMENT",
        d.config.pricing.min_payment,
    )?;
    m.config.pricing.max_payment = amount(
        get,
        "LOG_MARKETPLACE_MAX_PAYMENT",
        d.config.pricing.max_payment,
    )?;
    m.config
        .pricing
        .validate()
        .map_err(|e| ConfigError::BadPricing(e.to_string()))?;
    m.config.max_log_bytes = positive(
        get,
        "AGORA_LOGMARKET_MAX_LOG_BYTES",
        d.config.max_log_bytes as u64,
    )? as usize;
    m.rate_limit_per_minute = positive(
        get,
        "AGORA_LOGMARKET_RATE_LIMIT_PER_MINUTE",
        u64::from(d.rate_limit_per_minute),
    )?
    .min(u64::from(u32::MAX)) as u32;
    m.submissions_per_hour = positive(
        get,
        "AGORA_LOGMARKET_SUBMISSIONS_PER_HOUR",
        u64::from(d.submissions_per_hour),
    )?
    .min(u64::from(u32::MAX)) as u32;
    for (name, agent) in [
        ("AI_MONITOR_ERROR_DETECTIVE", Agent::ErrorDetective),
        ("AI_MONITOR_PERFORMANCE", Agent::PerformanceAnalyzer),
        ("AI_MONITOR_SECURITY", Agent::SecurityGuardian),
        ("AI_MONITOR_QUALITY", Agent::QualityInspector),
    ] {
        if !flag(get, name, true)? {
            m.config.disabled_agents.push(agent);
        }
    }
    Ok(m)
}

impl Config {
    /// Reads `DATABASE_URL`, `AGORA_DATA_DIR`, `AGORA_LISTEN`, `AGORA_LOG_FORMAT`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let data_dir =
            PathBuf::from(get("AGORA_DATA_DIR").unwrap_or_else(|| DEFAULT_DATA_DIR.into()));
        let store = StoreLocation::parse(get("DATABASE_URL").as_deref(), &data_dir)?;
        let listen_raw = get("AGORA_LISTEN")
            .or_else(|| get("PORT").map(|p| format!("127.0.0.1:{p}")))
            .unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen = listen_raw
            .parse()
            .map_err(|_| ConfigError::BadListen { value: listen_raw })?;
        let log_format = match get("AGORA_LOG_FORMAT").as_deref() {
            None | Some("text") | Some("") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::BadLogFormat {
                    value: other.to_string(),
                })
            }
        };
        let signing_key = get(SIGNING_KEY_ENV)
            .filter(|k| !k.is_empty())
            .map(Secret::new);
        let api_token_secret = get(crate::graphql::auth::TOKEN_SECRET_ENV)
            .filter(|k| !k.is_empty())
            .map(Secret::new);
        let bootstrap_admin_key = match get("AGORA_BOOTSTRAP_ADMIN_KEY").filter(|k| !k.is_empty()) {
            Some(k) if k.len() < MIN_BOOTSTRAP_KEY_LEN || k.len() > 512 => {
                return Err(ConfigError::WeakBootstrapKey)
            }
            other => other.map(Secret::new),
        };
        let rate_raw = get("AGORA_RATE_LIMIT_PER_MINUTE");
        let rate_limit_per_minute = match rate_raw.as_deref() {
            None | Some("") => crate::ratelimit::DEFAULT_PER_MINUTE,
            Some(v) => v.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                ConfigError::BadRateLimit {
                    value: v.to_string(),
                }
            })?,
        };
        let redis_url = get("AGORA_REDIS_URL")
            .filter(|u| !u.is_empty())
            .map(Secret::new);
        let market = market_settings(&get)?;
        let lapverse = lapverse_settings(&get)?;
        let workers = flag(&get, "AGORA_LAPVERSE_WORKERS", true)?;
        let embedded = matches!(store, StoreLocation::Sqlite { .. });
        let demo_tenant = flag(&get, "AGORA_DEMO_TENANT", embedded)?;
        Ok(Self {
            store,
            data_dir,
            listen,
            log_format,
            signing_key,
            api_token_secret,
            bootstrap_admin_key,
            rate_limit_per_minute,
            market,
            lapverse,
            workers,
            redis_url,
            demo_tenant,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_embedded_and_loopback() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(
            c.store,
            StoreLocation::Sqlite {
                path: PathBuf::from("./data/agora.db")
            }
        );
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn bad_values_are_named() {
        assert!(matches!(
            cfg(&[("AGORA_LISTEN", "nope")]),
            Err(ConfigError::BadListen { .. })
        ));
        assert!(matches!(
            cfg(&[("DATABASE_URL", "redis://x")]),
            Err(ConfigError::BadDatabaseUrl(_))
        ));
        assert!(matches!(
            cfg(&[("AGORA_LOG_FORMAT", "xml")]),
            Err(ConfigError::BadLogFormat { .. })
        ));
        assert!(matches!(
            cfg(&[("LOG_MARKETPLACE_MAX_PAYMENT", "twenty")]),
            Err(ConfigError::BadAmount { .. })
        ));
        assert!(matches!(
            cfg(&[("LOG_MARKETPLACE_MIN_PAYMENT", "30.00")]),
            Err(ConfigError::BadPricing(_))
        ));
        assert!(matches!(
            cfg(&[("AGORA_LOGMARKET_MAX_LOG_BYTES", "0")]),
            Err(ConfigError::BadNumber { .. })
        ));
        assert!(matches!(
            cfg(&[("AI_MONITOR_SECURITY", "maybe")]),
            Err(ConfigError::BadFlag { .. })
        ));
    }

    #[test]
    fn marketplace_settings_follow_the_seed_names() {
        let c = cfg(&[
            ("LOG_MARKETPLACE_MIN_PAYMENT", "0.25"),
            ("LOG_MARKETPLACE_MAX_PAYMENT", "15.00"),
            ("AI_MONITOR_QUALITY", "false"),
            ("AGORA_LOGMARKET_MAX_LOG_BYTES", "2048"),
        ])
        .unwrap();
        assert_eq!(c.market.config.pricing.min_payment.to_string(), "0.25");
        assert_eq!(c.market.config.pricing.max_payment.to_string(), "15.00");
        assert_eq!(
            c.market.config.disabled_agents,
            vec![Agent::QualityInspector]
        );
        assert_eq!(c.market.config.max_log_bytes, 2048);
        let d = cfg(&[]).unwrap().market;
        assert_eq!(
            (d.rate_limit_per_minute, d.submissions_per_hour),
            (100, 1000)
        );
        assert!(d.enabled);
    }
}
