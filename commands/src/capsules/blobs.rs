//! Content-addressed blobs (DESIGN.md §10) over the `object_store` crate: a bundle, a manifest or
//! an SBOM is stored under its SHA-256 (`sha256/<first two hex>/<hex>`) **before** the event
//! that names it is appended, and read back with its digest checked, so a changed byte is
//! never served as the original.
//!
//! Where: a local directory (`<data dir>/blobs` by default), or `AGORA_BLOB_URL` (`file:///…`,
//! `memory:///`; the cloud stores need object_store features this build does not enable).

use std::path::Path;
use std::sync::Arc;

use agora_domain::capsules::{is_sha256_hex, sha256_hex};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// Why a blob could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("{0:?} is not a lowercase hex SHA-256")]
    InvalidDigest(String),
    #[error("blob {digest} is not in the store")]
    Missing { digest: String },
    #[error("blob {expected} changed: its bytes now hash to {found}")]
    DigestMismatch { expected: String, found: String },
    #[error("blob store location {location:?} is not usable: {reason}")]
    BadLocation { location: String, reason: String },
    #[error("blob store failure: {0}")]
    Store(String),
}

impl BlobError {
    /// Whether trying again could succeed (a store failure; never a changed or missing blob).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Store(_))
    }
}

/// A content-addressed blob store. Cheap to clone.
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    location: String,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlobStore({})", self.location)
    }
}

/// The object path of `digest`.
fn path_of(digest: &str) -> Result<ObjectPath, BlobError> {
    if !is_sha256_hex(digest) {
        return Err(BlobError::InvalidDigest(digest.chars().take(80).collect()));
    }
    Ok(ObjectPath::from(format!(
        "sha256/{}/{digest}",
        &digest[..2]
    )))
}

impl BlobStore {
    /// A directory on the local file system (created if missing).
    pub fn local(dir: &Path) -> Result<Self, BlobError> {
        let bad = |reason: String| BlobError::BadLocation {
            location: dir.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
        let fs = LocalFileSystem::new_with_prefix(dir).map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(fs),
            location: dir.display().to_string(),
        })
    }

    /// In memory: unit tests only (lost with the process).
    pub fn memory() -> Self {
        Self {
            inner: Arc::new(InMemory::new()),
            location: "memory".into(),
        }
    }

    /// The store a URL names (`file:///srv/blobs`, `memory:///`).
    pub fn from_url(url: &str) -> Result<Self, BlobError> {
        let bad = |reason: String| BlobError::BadLocation {
            location: url.to_owned(),
            reason,
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if parsed.scheme() == "file" {
            let dir = parsed
                .to_file_path()
                .map_err(|()| bad("not an absolute file path".into()))?;
            return Self::local(&dir);
        }
        let (store, prefix) = object_store::parse_url(&parsed).map_err(|e| bad(e.to_string()))?;
        let store: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
            Arc::from(store)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
        };
        Ok(Self {
            inner: store,
            location: url.to_owned(),
        })
    }

    /// Where the blobs are (for logs and errors).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Stores `bytes` under their SHA-256 and returns it. Storing the same bytes again is
    /// harmless (the same content at the same address).
    pub async fn put(&self, bytes: &[u8]) -> Result<String, BlobError> {
        let digest = sha256_hex(bytes);
        let path = path_of(&digest)?;
        self.inner
            .put(&path, PutPayload::from(bytes.to_vec()))
            .await
            .map_err(|e| BlobError::Store(e.to_string()))?;
        Ok(digest)
    }

    /// The stored bytes of `digest`, as they are (the caller checks them).
    pub async fn get_raw(&self, digest: &str) -> Result<Vec<u8>, BlobError> {
        let path = path_of(digest)?;
        let result = match self.inner.get(&path).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(BlobError::Missing {
                    digest: digest.to_owned(),
                })
            }
            Err(e) => return Err(BlobError::Store(e.to_string())),
        };
        let bytes = result
            .bytes()
            .await
            .map_err(|e| BlobError::Store(e.to_string()))?;
        Ok(bytes.to_vec())
    }

    /// The bytes of `digest`, refused when they no longer hash to it.
    pub async fn get(&self, digest: &str) -> Result<Vec<u8>, BlobError> {
        let bytes = self.get_raw(digest).await?;
        let found = sha256_hex(&bytes);
        if found != digest {
            return Err(BlobError::DigestMismatch {
                expected: digest.to_owned(),
                found,
            });
        }
        Ok(bytes)
    }

    /// The file a blob is kept in, when the store is a local directory (operators and tests).
    pub fn local_file(root: &Path, digest: &str) -> Option<std::path::PathBuf> {
        is_sha256_hex(digest).then(|| root.join("sha256").join(&digest[..2]).join(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blobs_are_addressed_by_content_and_checked_on_read() {
        let blobs = BlobStore::memory();
        let digest = blobs.put(b"bundle").await.unwrap();
        assert_eq!(digest, sha256_hex(b"bundle"));
        assert_eq!(blobs.get(&digest).await.unwrap(), b"bundle");
        let other = sha256_hex(b"other");
        assert!(matches!(
            blobs.get(&other).await,
            Err(BlobError::Missing { .. })
        ));
        assert!(matches!(
            blobs.get("../etc").await,
            Err(BlobError::InvalidDigest(_))
        ));
    }

    #[tokio::test]
    async fn a_changed_local_blob_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::local(dir.path()).unwrap();
        let digest = blobs.put(b"bundle bytes").await.unwrap();
        let file = BlobStore::local_file(dir.path(), &digest).unwrap();
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&file, bytes).unwrap();
        assert!(matches!(
            blobs.get(&digest).await,
            Err(BlobError::DigestMismatch { .. })
        ));
    }

    #[tokio::test]
    async fn a_file_url_is_a_local_directory() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let blobs = BlobStore::from_url(&url).unwrap();
        let digest = blobs.put(b"x").await.unwrap();
        assert!(BlobStore::local_file(dir.path(), &digest).unwrap().exists());
        assert!(BlobStore::from_url("memory:///").is_ok());
        assert!(BlobStore::from_url("s3://bucket/x").is_err());
    }
}
