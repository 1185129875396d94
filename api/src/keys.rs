//! The ledger's ed25519 signing key: given by `AGORA_LEDGER_SIGNING_KEY` (64 hex characters, the
//! 32-byte seed), or generated on first start and kept in the data directory.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use ed25519_dalek::SigningKey;

pub const SIGNING_KEY_ENV: &str = "AGORA_LEDGER_SIGNING_KEY";
pub const SIGNING_KEY_FILE: &str = "ledger-ed25519.seed";

/// A secret string that never prints.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The configured key, else the one in `data_dir`, else a new one written there (mode 0600).
/// Only `agora serve` may create the key; the auditor's commands use [`load_existing`].
pub fn load_or_create(configured: Option<&Secret>, data_dir: &Path) -> anyhow::Result<SigningKey> {
    if let Some(key) = load_existing(configured, data_dir)? {
        return Ok(key);
    }
    let path = data_dir.join(SIGNING_KEY_FILE);
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let seed: [u8; 32] = rand::random();
    write_private(&path, &hex::encode(seed))?;
    tracing::info!(path = %path.display(), "generated the ledger signing key");
    Ok(SigningKey::from_bytes(&seed))
}

/// The configured key, else the one in `data_dir`, else `None`. Never creates or writes
/// anything.
pub fn load_existing(
    configured: Option<&Secret>,
    data_dir: &Path,
) -> anyhow::Result<Option<SigningKey>> {
    if let Some(secret) = configured {
        return parse_seed(secret.expose())
            .map(Some)
            .with_context(|| format!("{SIGNING_KEY_ENV} must be 64 hex characters"));
    }
    let path = data_dir.join(SIGNING_KEY_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse_seed(text.trim())
        .map(Some)
        .with_context(|| format!("{} is not a valid key", path.display()))
}

fn parse_seed(text: &str) -> anyhow::Result<SigningKey> {
    let bytes = hex::decode(text.trim())?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("expected 32 bytes"))?;
    Ok(SigningKey::from_bytes(&seed))
}

pub(crate) fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_existing_never_creates_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        assert!(load_existing(None, &data).unwrap().is_none());
        assert!(!data.exists(), "no directory or key file was created");
        let made = load_or_create(None, &data).unwrap();
        let found = load_existing(None, &data).unwrap().unwrap();
        assert_eq!(made.to_bytes(), found.to_bytes());
    }

    #[test]
    fn generated_key_is_kept_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(None, dir.path()).unwrap();
        let b = load_or_create(None, dir.path()).unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
        let configured = Secret::new(hex::encode([7u8; 32]));
        let c = load_or_create(Some(&configured), dir.path()).unwrap();
        assert_eq!(c.to_bytes(), [7u8; 32]);
        assert!(load_or_create(Some(&Secret::new("zz".into())), dir.path()).is_err());
        assert_eq!(format!("{configured:?}"), "Secret(***)");
    }
}
