//! A CycloneDX 1.6 JSON SBOM for a capsule version: the capsule as the metadata component (with
//! its bundle's SHA-256), each declared dependency as an external `library` component with its
//! requirement (`versionRange` in the `vers:semver` syntax, and the requirement as written in the
//! `agora:requirement` property), and every bundle file as a `file` component with its SHA-256.
//!
//! Deterministic: no clock, no randomness. The timestamp and the serial number
//! (`urn:uuid:...`, e.g. a UUIDv5 of the bundle digest) come in with [`SbomInput`]; components
//! keep the manifest's and the bundle report's order (files are sorted by path).
//!
//! Pre-release parts of requirements are ignored when a range is written as `vers`.

use chrono::{DateTime, SecondsFormat, Utc};
use semver::{Comparator, Op, Version, VersionReq};
use serde_json::{json, Value};

use super::bundle::BundleReport;
use super::manifest::Manifest;

/// The CycloneDX spec version written.
pub const SPEC_VERSION: &str = "1.6";

/// Why an SBOM could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SbomError {
    #[error("serial number must be urn:uuid: followed by a lowercase UUID")]
    InvalidSerialNumber,
}

/// What the SBOM describes, and the facts it cannot compute itself.
#[derive(Clone, Copy, Debug)]
pub struct SbomInput<'a> {
    pub manifest: &'a Manifest,
    pub manifest_sha256: &'a str,
    pub bundle: &'a BundleReport,
    pub serial_number: &'a str,
    pub timestamp: DateTime<Utc>,
    /// The version of the `agora` tool writing it.
    pub tool_version: &'a str,
}

fn valid_serial(serial: &str) -> bool {
    let Some(uuid) = serial.strip_prefix("urn:uuid:") else {
        return false;
    };
    let groups: Vec<&str> = uuid.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| {
            g.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

fn property(name: &str, value: impl ToString) -> Value {
    json!({ "name": name, "value": value.to_string() })
}

/// The SBOM as a JSON value.
pub fn build(input: &SbomInput<'_>) -> Result<Value, SbomError> {
    if !valid_serial(input.serial_number) {
        return Err(SbomError::InvalidSerialNumber);
    }
    let m = input.manifest;
    let capsule_ref = format!("capsule:{}@{}", m.name, m.version);
    let mut capsule = json!({
        "type": "application",
        "bom-ref": capsule_ref,
        "name": m.name.as_str(),
        "version": m.version.to_string(),
        "description": m.description,
        "hashes": [{ "alg": "SHA-256", "content": input.bundle.sha256 }],
        "properties": [
            property("agora:manifest_sha256", input.manifest_sha256),
            property("agora:bundle_size_bytes", input.bundle.size_bytes),
            property(
                "agora:permissions",
                m.permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(","),
            ),
        ],
    });
    if let Some(author) = &m.author {
        capsule["authors"] = json!([{ "name": author }]);
    }
    if let Some(license) = &m.license {
        capsule["licenses"] = json!([{ "license": { "name": license } }]);
    }
    let dependencies: Vec<Value> = m
        .dependencies
        .iter()
        .map(|d| {
            json!({
                "type": "library",
                "bom-ref": format!("dependency:{}", d.name),
                "name": d.name,
                "isExternal": true,
                "versionRange": vers_range(&d.requirement),
                "properties": [property("agora:requirement", &d.requirement)],
            })
        })
        .collect();
    let files = input.bundle.files.iter().map(|f| {
        json!({
            "type": "file",
            "bom-ref": format!("file:{}", f.path),
            "name": f.path,
            "hashes": [{ "alg": "SHA-256", "content": f.sha256 }],
            "properties": [
                property("agora:size_bytes", f.size_bytes),
                property("agora:mode", format!("{:04o}", f.mode)),
            ],
        })
    });
    let depends_on: Vec<&Value> = dependencies.iter().map(|d| &d["bom-ref"]).collect();
    let dependency_graph = json!([{ "ref": capsule_ref, "dependsOn": depends_on }]);
    let components: Vec<Value> = dependencies.iter().cloned().chain(files).collect();
    Ok(json!({
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": input.serial_number,
        "version": 1,
        "metadata": {
            "timestamp": input.timestamp.to_rfc3339_opts(SecondsFormat::Secs, true),
            "tools": { "components": [
                { "type": "application", "name": "agora", "version": input.tool_version }
            ] },
            "component": capsule,
        },
        "components": components,
        "dependencies": dependency_graph,
    }))
}

/// The SBOM's bytes (compact JSON) and their SHA-256, as stored and recorded on the event.
pub fn to_bytes(sbom: &Value) -> (Vec<u8>, String) {
    let bytes = serde_json::to_vec(sbom).unwrap_or_default();
    let digest = super::sha256_hex(&bytes);
    (bytes, digest)
}

/// A bound of an interval: the version and whether it is included.
type Bound = Option<(Version, bool)>;

/// The interval `[lower, upper]` one comparator allows (partial versions filled in as Cargo does).
fn interval(c: &Comparator) -> (Bound, Bound) {
    let (major, minor, patch) = (c.major, c.minor, c.patch);
    let floor = Version::new(major, minor.unwrap_or(0), patch.unwrap_or(0));
    // The first version past the partial one (1.2 -> 1.3.0, 1 -> 2.0.0).
    let past = match (minor, patch) {
        (Some(mi), Some(pa)) => Version::new(major, mi, pa + 1),
        (Some(mi), None) => Version::new(major, mi + 1, 0),
        _ => Version::new(major + 1, 0, 0),
    };
    let caret_upper = match (major, minor, patch) {
        (0, Some(0), Some(pa)) => Version::new(0, 0, pa + 1),
        (0, Some(mi), _) if mi > 0 || patch.is_none() => Version::new(0, mi + 1, 0),
        (0, None, _) => Version::new(1, 0, 0),
        _ => Version::new(major + 1, 0, 0),
    };
    let tilde_upper = match minor {
        Some(mi) => Version::new(major, mi + 1, 0),
        None => Version::new(major + 1, 0, 0),
    };
    match c.op {
        Op::Exact if patch.is_some() => (Some((floor.clone(), true)), Some((floor, true))),
        Op::Exact | Op::Wildcard => (Some((floor, true)), Some((past, false))),
        Op::Greater if patch.is_some() => (Some((floor, false)), None),
        Op::Greater => (Some((past, true)), None),
        Op::GreaterEq => (Some((floor, true)), None),
        Op::Less => (None, Some((floor, false))),
        Op::LessEq if patch.is_some() => (None, Some((floor, true))),
        Op::LessEq => (None, Some((past, false))),
        Op::Tilde => (Some((floor, true)), Some((tilde_upper, false))),
        Op::Caret => (Some((floor, true)), Some((caret_upper, false))),
        _ => (None, None),
    }
}

/// A requirement (an intersection of comparators) as one `vers:semver/...` range.
pub fn vers_range(requirement: &VersionReq) -> String {
    let mut lower: Bound = None;
    let mut upper: Bound = None;
    for c in &requirement.comparators {
        let (lo, hi) = interval(c);
        if let Some(lo) = lo {
            if lower
                .as_ref()
                .is_none_or(|cur| (&lo.0, !lo.1) > (&cur.0, !cur.1))
            {
                lower = Some(lo);
            }
        }
        if let Some(hi) = hi {
            if upper
                .as_ref()
                .is_none_or(|cur| (&hi.0, hi.1) < (&cur.0, cur.1))
            {
                upper = Some(hi);
            }
        }
    }
    let constraints: Vec<String> = match (lower, upper) {
        (None, None) => vec!["*".to_owned()],
        (Some((lo, true)), Some((hi, true))) if lo == hi => vec![lo.to_string()],
        (lo, hi) => lo
            .map(|(v, incl)| format!("{}{v}", if incl { ">=" } else { ">" }))
            .into_iter()
            .chain(hi.map(|(v, incl)| format!("{}{v}", if incl { "<=" } else { "<" })))
            .collect(),
    };
    format!("vers:semver/{}", constraints.join("|"))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::capsules::bundle::{self, BundleLimits};
    use crate::capsules::fixtures::{tar_gz, Entry, SEED_MANIFEST};
    use crate::capsules::manifest;

    const SERIAL: &str = "urn:uuid:0192a3b4-c5d6-7e8f-9012-3456789abcde";

    fn range(req: &str) -> String {
        vers_range(&VersionReq::parse(req).unwrap())
    }

    #[test]
    fn requirements_become_vers_ranges() {
        assert_eq!(range(">=2.0.0"), "vers:semver/>=2.0.0");
        assert_eq!(range("^1.2"), "vers:semver/>=1.2.0|<2.0.0");
        assert_eq!(range("^0.2.3"), "vers:semver/>=0.2.3|<0.3.0");
        assert_eq!(range("^0.0.3"), "vers:semver/>=0.0.3|<0.0.4");
        assert_eq!(range("~1.4"), "vers:semver/>=1.4.0|<1.5.0");
        assert_eq!(range(">=1.0, <2"), "vers:semver/>=1.0.0|<2.0.0");
        assert_eq!(range("=1.2.3"), "vers:semver/1.2.3");
        assert_eq!(range("1.*"), "vers:semver/>=1.0.0|<2.0.0");
        assert_eq!(range(">1.2"), "vers:semver/>=1.3.0");
        assert_eq!(range("<=1.2"), "vers:semver/<1.3.0");
        assert_eq!(range("*"), "vers:semver/*");
        assert_eq!(range(">=1.5, ^1.2"), "vers:semver/>=1.5.0|<2.0.0");
    }

    #[test]
    fn the_seed_capsule_sbom_lists_dependencies_and_files() {
        let parsed = manifest::parse(SEED_MANIFEST.as_bytes()).unwrap();
        let bytes = tar_gz(&[
            Entry::file("main.py", b"print(1)\n"),
            Entry::file("lib/util.py", b"x = 2\n"),
        ]);
        let report = bundle::inspect(&bytes, &BundleLimits::default()).unwrap();
        let input = SbomInput {
            manifest: &parsed.manifest,
            manifest_sha256: &parsed.source_sha256,
            bundle: &report,
            serial_number: SERIAL,
            timestamp: Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap(),
            tool_version: "0.1.0",
        };
        let sbom = build(&input).unwrap();
        assert_eq!(sbom["bomFormat"], "CycloneDX");
        assert_eq!(sbom["specVersion"], "1.6");
        assert_eq!(sbom["metadata"]["timestamp"], "2026-12-03T12:00:00Z");
        let capsule = &sbom["metadata"]["component"];
        assert_eq!(capsule["name"], "data-pipeline-builder");
        assert_eq!(capsule["version"], "1.2.3");
        assert_eq!(capsule["hashes"][0]["content"], report.sha256);
        let components = sbom["components"].as_array().unwrap();
        assert_eq!(components.len(), 4);
        assert_eq!(components[0]["name"], "pandas");
        assert_eq!(components[0]["versionRange"], "vers:semver/>=2.0.0");
        assert_eq!(components[2]["type"], "file");
        assert_eq!(components[2]["name"], "lib/util.py");
        assert_eq!(
            components[2]["hashes"][0]["content"],
            crate::capsules::sha256_hex(b"x = 2\n")
        );
        assert_eq!(
            sbom["dependencies"][0]["dependsOn"],
            json!(["dependency:pandas", "dependency:sqlalchemy"])
        );
        // Deterministic: the same input gives the same bytes.
        assert_eq!(to_bytes(&sbom), to_bytes(&build(&input).unwrap()));
        let bad = SbomInput {
            serial_number: "urn:uuid:nope",
            ..input
        };
        assert_eq!(build(&bad), Err(SbomError::InvalidSerialNumber));
    }
}
