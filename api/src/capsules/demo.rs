//! The demo catalogue: 24 capsules we wrote (`api/fixtures/capsules/*.capsule`, in the seed's
//! categories, some depending on others) submitted through the capsule service on a demo start,
//! so a fresh `cargo run` shows a living marketplace: most are auto-approved and published, the
//! ones asking for dangerous permissions wait in the review queue, as any submission would.
//!
//! A fixture file is the manifest YAML, then each bundle file introduced by a line
//! `--- file: <relative path>`. The bundle is built deterministically (fixed times and modes),
//! so every start submits byte-identical bundles. A capsule that already has a version is left
//! alone: the catalogue is loaded once.

use std::time::Duration;

use agora_commands::capsules::{CapsuleService, CapsuleServiceError, Submission};
use agora_commands::CommandMetadata;
use agora_domain::capsules::CapsuleName;
use chrono::Utc;
use flate2::write::GzEncoder;
use flate2::Compression;

use super::demo_fixtures::FIXTURES;

/// The tenant the demo authors belong to (`demo/<author>`).
pub const DEMO_AUTHOR_TENANT: &str = "demo";
const FILE_MARKER: &str = "--- file: ";
/// How long the loader waits for the read models after each submission (the next capsule's
/// risk score reads the names and dependencies published so far).
const SETTLE: Duration = Duration::from_secs(5);

/// A fixture split into its manifest and bundle files.
#[derive(Debug, PartialEq, Eq)]
pub struct Fixture {
    pub manifest: String,
    pub files: Vec<(String, String)>,
}

/// Splits a fixture file; an error names what is malformed.
pub fn split(text: &str) -> Result<Fixture, String> {
    let marker = format!("\n{FILE_MARKER}");
    let mut parts = text.split(marker.as_str());
    let manifest = parts.next().unwrap_or_default().to_owned() + "\n";
    let mut files = Vec::new();
    for part in parts {
        let (path, body) = part.split_once('\n').unwrap_or((part, ""));
        let path = path.trim();
        if path.is_empty() || path.starts_with('/') || path.split('/').any(|c| c == "..") {
            return Err(format!("bad bundle path `{path}`"));
        }
        files.push((path.to_owned(), body.to_owned()));
    }
    if files.is_empty() {
        return Err("no bundle files".into());
    }
    Ok(Fixture { manifest, files })
}

/// The bundle as a `.tar.gz`, byte-identical on every call.
pub fn bundle(fixture: &Fixture) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    tar.mode(tar::HeaderMode::Deterministic);
    for (path, body) in &fixture.files {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, path, body.as_bytes())?;
    }
    tar.into_inner()?.finish()
}

/// The author id a fixture is submitted as: `demo/<metadata.author>`.
fn author_of(manifest: &str) -> String {
    let author = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("author:"))
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .unwrap_or("agora-labs");
    format!("{DEMO_AUTHOR_TENANT}/{author}")
}

/// What loading did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    pub submitted: usize,
    pub published: usize,
    pub queued: usize,
    pub already_there: usize,
}

/// Submits every fixture capsule that has no version yet, in order; `settle` waits for the
/// read models between submissions.
pub async fn ensure_demo_catalogue<F, Fut>(
    service: &CapsuleService,
    settle: F,
) -> anyhow::Result<Loaded>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut loaded = Loaded::default();
    for (name, text) in FIXTURES {
        let capsule_name = CapsuleName::parse(name).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let existing = service.capsule(&capsule_name).await?;
        if existing.versions().next().is_some() {
            loaded.already_there += 1;
            continue;
        }
        let fixture = split(text).map_err(|e| anyhow::anyhow!("fixture {name}: {e}"))?;
        let author = author_of(&fixture.manifest);
        let meta = CommandMetadata::new(&author, DEMO_AUTHOR_TENANT, Utc::now())?;
        let submission = Submission {
            manifest: fixture.manifest.clone().into_bytes(),
            bundle: bundle(&fixture)?,
            envelope: None,
        };
        match service.submit(&author, submission, &meta).await {
            Ok(r) => {
                loaded.submitted += 1;
                match r.status.as_str() {
                    "published" => loaded.published += 1,
                    "queued" => loaded.queued += 1,
                    _ => {}
                }
            }
            Err(e @ CapsuleServiceError::Busy) => return Err(e.into()),
            Err(e) => anyhow::bail!("demo capsule {name} was refused: {e}"),
        }
        let _ = tokio::time::timeout(SETTLE, settle()).await;
    }
    tracing::info!(?loaded, "demo capsule catalogue");
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_splits_and_bundles_reproducibly() {
        assert!(FIXTURES.len() >= 20);
        for (name, text) in FIXTURES {
            let f = split(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(f.manifest.contains(&format!("name: {name}")), "{name}");
            assert_eq!(bundle(&f).unwrap(), bundle(&f).unwrap(), "{name}");
        }
    }

    #[test]
    fn every_fixture_manifest_is_valid() {
        for (name, text) in FIXTURES {
            let f = split(text).unwrap();
            let parsed = agora_domain::capsules::manifest::parse(f.manifest.as_bytes());
            assert!(parsed.is_ok(), "{name}: {parsed:?}");
        }
    }

    #[test]
    fn a_path_leaving_the_bundle_is_refused() {
        assert!(split("a: 1\n--- file: ../etc/passwd\nx").is_err());
        assert!(split("a: 1\n--- file: /abs\nx").is_err());
        assert!(split("a: 1\n").is_err());
    }
}
