//! Typed configuration from the environment. Defaults are for a developer's machine: embedded
//! SQLite under `./data`, listening on loopback only.

use std::net::SocketAddr;
use std::path::PathBuf;

use agora_commands::store::{StoreConfigError, StoreLocation};

use crate::keys::{Secret, SIGNING_KEY_ENV};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
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
    /// `AGORA_BOOTSTRAP_ADMIN_KEY`: the first admin key, made on first start.
    pub bootstrap_admin_key: Option<Secret>,
    /// `AGORA_RATE_LIMIT_PER_MINUTE`: GraphQL requests per API key per minute.
    pub rate_limit_per_minute: u32,
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
        let listen_raw = get("AGORA_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.into());
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
        Ok(Self {
            store,
            data_dir,
            listen,
            log_format,
            signing_key,
            bootstrap_admin_key,
            rate_limit_per_minute,
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
    }
}
