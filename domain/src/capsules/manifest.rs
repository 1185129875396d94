//! The capsule manifest (the seed's `apiVersion: soma.dev/v1`, `kind: TaskCapsule` YAML):
//! size limit, YAML under limits ([`super::yaml`]), JSON Schema draft 2020-12
//! (`docs/schemas/capsule-manifest.schema.json`, `$id` [`SCHEMA_ID`], embedded here and served
//! by the API), then the checks a schema cannot express, then the typed [`Manifest`].
//!
//! Every problem is reported, each with its JSON Pointer (`/spec/permissions/0`), in one
//! [`ManifestError::Invalid`], at most [`MAX_PROBLEMS`] of them.
//!
//! Two digests name a manifest: the SHA-256 of the bytes as uploaded (`source_sha256`, the blob's
//! address and what a DSSE statement signs, so an author computes it with `sha256sum`) and the
//! SHA-256 of its canonical JSON (`canonical_sha256`: the typed manifest serialized by serde_json
//! in declaration order, no whitespace; equal for two texts that mean the same thing).

use std::collections::{BTreeSet, HashSet};
use std::sync::OnceLock;

use jsonschema::Validator;
use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::permissions::Permission;
use super::yaml::{self, YamlError, YamlLimits};
use super::{sha256_hex, CapsuleName};

/// The schema's `$id`: a stable identifier, also the path the API serves it under
/// (`/schemas/capsule-manifest/v1.json`). A new major shape gets a new id (`v2.json`).
pub const SCHEMA_ID: &str = "https://agora.example/schemas/capsule-manifest/v1.json";
/// The schema document itself (`docs/schemas/capsule-manifest.schema.json`).
pub const SCHEMA_JSON: &str = include_str!("../../../docs/schemas/capsule-manifest.schema.json");
/// Largest manifest accepted, in bytes, checked before parsing.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;
/// Most problems reported for one manifest; a last problem at `""` says how many were left out.
pub const MAX_PROBLEMS: usize = 100;
/// Longest dependency name (the schema bounds the whole dependency string).
pub const MAX_DEPENDENCY_NAME_CHARS: usize = 64;

/// One thing wrong with a manifest, where it is (RFC 6901 JSON Pointer, `""` for the root).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub pointer: String,
    pub message: String,
}

impl Problem {
    fn new(pointer: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

/// Why a manifest was refused. None is retryable: the same bytes fail the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is {size_bytes} bytes; the limit is {max_bytes}")]
    TooLarge { size_bytes: usize, max_bytes: usize },
    #[error("manifest is not UTF-8 (valid up to byte {valid_up_to})")]
    NotUtf8 { valid_up_to: usize },
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("manifest is invalid: {} problem(s)", problems.len())]
    Invalid { problems: Vec<Problem> },
    #[error("the manifest schema could not be compiled: {message}")]
    SchemaUnavailable { message: String },
}

/// Type of a capsule input or output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortType {
    String,
    Number,
    Integer,
    Boolean,
    Json,
    Object,
    Array,
    File,
}

/// A named input or output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: PortType,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Tokens the capsule expects to use per run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEstimate {
    pub planning: Option<u64>,
    pub execution: Option<u64>,
    pub total: u64,
}

/// A declared dependency on another capsule (or package) and the versions it accepts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub name: String,
    pub requirement: VersionReq,
}

/// A valid manifest. Permissions are a set (declaration order means nothing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: CapsuleName,
    pub version: Version,
    pub description: String,
    pub author: Option<String>,
    pub category: Option<String>,
    pub tags: Vec<String>,
    pub license: Option<String>,
    pub homepage: Option<String>,
    pub permissions: BTreeSet<Permission>,
    pub dependencies: Vec<Dependency>,
    pub token_estimate: TokenEstimate,
    pub inputs: Vec<Port>,
    pub outputs: Vec<Port>,
}

impl Manifest {
    /// Canonical JSON bytes: serde_json of the typed manifest, fields in declaration order.
    pub fn canonical_json(&self) -> Vec<u8> {
        // Serializing plain structs, strings, numbers and sets into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The dangerous permissions this manifest declares.
    pub fn dangerous_permissions(&self) -> BTreeSet<Permission> {
        self.permissions
            .iter()
            .copied()
            .filter(|p| p.is_dangerous())
            .collect()
    }
}

/// A parsed manifest with its digests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedManifest {
    pub manifest: Manifest,
    /// SHA-256 of the uploaded bytes: the blob address, and what a signature statement names.
    pub source_sha256: String,
    pub canonical_json: Vec<u8>,
    pub canonical_sha256: String,
}

/// Parses and validates manifest bytes.
pub fn parse(bytes: &[u8]) -> Result<ParsedManifest, ManifestError> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge {
            size_bytes: bytes.len(),
            max_bytes: MAX_MANIFEST_BYTES,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| ManifestError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    let document = yaml::to_json(text, YamlLimits::default())?;
    let manifest = validate(&document)?;
    let canonical_json = manifest.canonical_json();
    Ok(ParsedManifest {
        manifest,
        source_sha256: sha256_hex(bytes),
        canonical_sha256: sha256_hex(&canonical_json),
        canonical_json,
    })
}

fn validator() -> Result<&'static Validator, ManifestError> {
    static VALIDATOR: OnceLock<Result<Validator, String>> = OnceLock::new();
    VALIDATOR
        .get_or_init(|| {
            let schema: Value = serde_json::from_str(SCHEMA_JSON).map_err(|e| e.to_string())?;
            jsonschema::draft202012::options()
                .build(&schema)
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|message| ManifestError::SchemaUnavailable {
            message: message.clone(),
        })
}

/// Validates a manifest already read as JSON: schema, then the rules beyond it.
pub fn validate(document: &Value) -> Result<Manifest, ManifestError> {
    let mut problems: Vec<Problem> = validator()?
        .iter_errors(document)
        .map(|e| Problem::new(e.instance_path().as_str(), e.masked().to_string()))
        .collect();
    problems.extend(semantic_problems(document));
    if problems.is_empty() {
        if let Some(manifest) = typed(document, &mut problems) {
            return Ok(manifest);
        }
    }
    problems.sort_by(|a, b| a.pointer.cmp(&b.pointer));
    problems.dedup();
    if problems.len() > MAX_PROBLEMS {
        let left_out = problems.len() - (MAX_PROBLEMS - 1);
        problems.truncate(MAX_PROBLEMS - 1);
        problems.push(Problem::new(
            "",
            format!("{left_out} more problem(s) not shown"),
        ));
    }
    Err(ManifestError::Invalid { problems })
}

/// Splits `pandas>=2.0.0` / `csv-tools ^1.2` / `json-kit` into a name and a requirement.
pub fn parse_dependency(spec: &str) -> Result<Dependency, String> {
    let spec = spec.trim();
    let split = spec
        .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c)))
        .unwrap_or(spec.len());
    let (name, requirement) = spec.split_at(split);
    let requirement = requirement.trim();
    dependency(name, (!requirement.is_empty()).then_some(requirement))
}

fn dependency(name: &str, requirement: Option<&str>) -> Result<Dependency, String> {
    if name.is_empty() || name.chars().count() > MAX_DEPENDENCY_NAME_CHARS {
        return Err(format!(
            "dependency name must have 1 to {MAX_DEPENDENCY_NAME_CHARS} characters"
        ));
    }
    let requirement = VersionReq::parse(requirement.unwrap_or("*"))
        .map_err(|e| format!("not a semver version requirement: {e}"))?;
    Ok(Dependency {
        name: name.to_owned(),
        requirement,
    })
}

fn dependency_of(value: &Value) -> Option<Result<Dependency, String>> {
    match value {
        Value::String(s) => Some(parse_dependency(s)),
        Value::Object(o) => {
            let name = o.get("name")?.as_str()?;
            let version = match o.get("version") {
                None => None,
                Some(v) => Some(v.as_str()?),
            };
            Some(dependency(name, version))
        }
        _ => None,
    }
}

/// Rules the schema cannot express, checked on whatever parts are present and well-typed (so one
/// report holds them together with the schema's problems).
fn semantic_problems(doc: &Value) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Some(v) = doc.pointer("/metadata/version").and_then(Value::as_str) {
        if let Err(e) = Version::parse(v) {
            problems.push(Problem::new(
                "/metadata/version",
                format!("not a semantic version: {e}"),
            ));
        }
    }
    let described = |p: &str| doc.pointer(p).is_some();
    if doc.get("spec").is_some_and(Value::is_object)
        && !described("/spec/description")
        && !described("/metadata/description")
    {
        problems.push(Problem::new(
            "/spec",
            "a description is required (spec.description or metadata.description)",
        ));
    }
    if let Some(deps) = doc.pointer("/spec/dependencies").and_then(Value::as_array) {
        let mut names = HashSet::new();
        for (i, dep) in deps.iter().enumerate() {
            match dependency_of(dep) {
                Some(Ok(d)) if !names.insert(d.name.clone()) => problems.push(Problem::new(
                    format!("/spec/dependencies/{i}"),
                    format!("dependency {} is declared twice", d.name),
                )),
                Some(Err(message)) => {
                    problems.push(Problem::new(format!("/spec/dependencies/{i}"), message))
                }
                _ => {}
            }
        }
    }
    for ports in ["inputs", "outputs"] {
        if let Some(items) = doc
            .pointer(&format!("/spec/{ports}"))
            .and_then(Value::as_array)
        {
            let mut names = HashSet::new();
            for (i, item) in items.iter().enumerate() {
                if let Some(name) = item.get("name").and_then(Value::as_str) {
                    if !names.insert(name) {
                        problems.push(Problem::new(
                            format!("/spec/{ports}/{i}/name"),
                            format!("{name} is declared twice"),
                        ));
                    }
                }
            }
        }
    }
    token_problems(doc, &mut problems);
    permission_problems(doc, &mut problems);
    problems
}

fn token_problems(doc: &Value, problems: &mut Vec<Problem>) {
    let get = |k: &str| {
        doc.pointer(&format!("/spec/tokenEstimate/{k}"))
            .and_then(Value::as_u64)
    };
    if let (Some(planning), Some(execution), Some(total)) =
        (get("planning"), get("execution"), get("total"))
    {
        if planning.checked_add(execution) != Some(total) {
            problems.push(Problem::new(
                "/spec/tokenEstimate/total",
                format!("total {total} is not planning {planning} + execution {execution}"),
            ));
        }
    }
}

fn permission_problems(doc: &Value, problems: &mut Vec<Problem>) {
    let Some(items) = doc.pointer("/spec/permissions").and_then(Value::as_array) else {
        return;
    };
    let declared: Vec<Permission> = items
        .iter()
        .filter_map(|v| v.as_str().and_then(Permission::parse))
        .collect();
    let network = [Permission::NetworkEgress, Permission::NetworkInternal];
    if declared.contains(&Permission::NetworkNone) && declared.iter().any(|p| network.contains(p)) {
        problems.push(Problem::new(
            "/spec/permissions",
            "network.none contradicts another network permission",
        ));
    }
}

/// The wire shape, read once the document is known to be valid.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    metadata: WireMetadata,
    spec: WireSpec,
}

#[derive(Deserialize)]
struct WireMetadata {
    name: CapsuleName,
    version: Version,
    description: Option<String>,
    author: Option<String>,
    category: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    license: Option<String>,
    homepage: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSpec {
    description: Option<String>,
    #[serde(default)]
    permissions: BTreeSet<Permission>,
    #[serde(default)]
    dependencies: Vec<Value>,
    token_estimate: TokenEstimate,
    #[serde(default)]
    inputs: Vec<Port>,
    #[serde(default)]
    outputs: Vec<Port>,
}

fn typed(doc: &Value, problems: &mut Vec<Problem>) -> Option<Manifest> {
    let wire: Wire = match serde_json::from_value(doc.clone()) {
        Ok(w) => w,
        Err(e) => {
            problems.push(Problem::new("", e.to_string()));
            return None;
        }
    };
    let dependencies = wire
        .spec
        .dependencies
        .iter()
        .filter_map(|d| dependency_of(d).and_then(Result::ok))
        .collect();
    let Some(description) = wire.spec.description.or(wire.metadata.description) else {
        problems.push(Problem::new("/spec", "a description is required"));
        return None;
    };
    Some(Manifest {
        name: wire.metadata.name,
        version: wire.metadata.version,
        description,
        author: wire.metadata.author,
        category: wire.metadata.category,
        tags: wire.metadata.tags,
        license: wire.metadata.license,
        homepage: wire.metadata.homepage,
        permissions: wire.spec.permissions,
        dependencies,
        token_estimate: wire.spec.token_estimate,
        inputs: wire.spec.inputs,
        outputs: wire.spec.outputs,
    })
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
