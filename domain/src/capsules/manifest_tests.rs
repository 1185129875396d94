use serde_json::json;

use super::*;
use crate::capsules::fixtures::{quiet_manifest, SEED_MANIFEST};

fn problems(text: &str) -> Vec<Problem> {
    match parse(text.as_bytes()) {
        Err(ManifestError::Invalid { problems }) => problems,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn pointers(text: &str) -> Vec<String> {
    problems(text).into_iter().map(|p| p.pointer).collect()
}

#[test]
fn the_schema_compiles_and_names_its_id() {
    assert!(validator().is_ok());
    let schema: Value = serde_json::from_str(SCHEMA_JSON).unwrap();
    assert_eq!(schema["$id"], SCHEMA_ID);
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
}

#[test]
fn the_schema_permission_enum_is_the_permission_vocabulary() {
    let schema: Value = serde_json::from_str(SCHEMA_JSON).unwrap();
    let listed: Vec<&str> = schema["$defs"]["permission"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let known: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
    assert_eq!(listed, known);
}

#[test]
fn the_seed_manifest_parses() {
    let parsed = parse(SEED_MANIFEST.as_bytes()).unwrap();
    let m = &parsed.manifest;
    assert_eq!(m.name.as_str(), "data-pipeline-builder");
    assert_eq!(m.version, Version::new(1, 2, 3));
    assert_eq!(m.description, "Build data pipelines with drag-and-drop UI");
    assert_eq!(m.category.as_deref(), Some("Data Engineering"));
    assert_eq!(m.tags, ["etl", "pandas", "sql"]);
    assert_eq!(
        m.permissions,
        BTreeSet::from([
            Permission::DatabaseRead,
            Permission::FilesystemWrite,
            Permission::NetworkEgress
        ])
    );
    assert_eq!(m.dependencies[0].name, "pandas");
    assert_eq!(m.dependencies[0].requirement.to_string(), ">=2.0.0");
    assert_eq!(m.token_estimate.total, 2500);
    assert_eq!(m.inputs.len(), 2);
    assert!(m.inputs[0].required);
    assert_eq!(m.outputs[0].kind, PortType::Json);
    assert_eq!(
        m.dangerous_permissions(),
        BTreeSet::from([Permission::FilesystemWrite, Permission::NetworkEgress])
    );
    assert_eq!(parsed.source_sha256, sha256_hex(SEED_MANIFEST.as_bytes()));
    assert_eq!(parsed.canonical_sha256, sha256_hex(&parsed.canonical_json));
}

#[test]
fn canonical_json_ignores_formatting_and_permission_order() {
    let a = parse(quiet_manifest("csv-summary", "1.0.0").as_bytes()).unwrap();
    let reordered = quiet_manifest("csv-summary", "1.0.0")
        .replace(
            "description: Summarise CSV files",
            "description: 'Summarise CSV files'",
        )
        .replace(
            "  permissions: [filesystem.read]",
            "  permissions:\n    - filesystem.read",
        );
    let b = parse(reordered.as_bytes()).unwrap();
    assert_ne!(a.source_sha256, b.source_sha256);
    assert_eq!(a.canonical_json, b.canonical_json);
    assert_eq!(a.canonical_sha256, b.canonical_sha256);
    let back: Manifest = serde_json::from_slice(&a.canonical_json).unwrap();
    assert_eq!(back, a.manifest);
}

#[test]
fn an_unknown_permission_is_a_problem_at_its_pointer() {
    let text = SEED_MANIFEST.replace("- network.egress", "- network.everything");
    assert_eq!(pointers(&text), ["/spec/permissions/2"]);
}

#[test]
fn every_problem_is_reported_with_its_pointer() {
    let text = SEED_MANIFEST
        .replace("name: data-pipeline-builder", "name: Data_Pipeline")
        .replace("version: 1.2.3", "version: 1.2.x")
        .replace("- network.egress", "- teleport")
        .replace("total: 2500", "total: 2400")
        .replace("type: json", "type: parquet")
        .replace("apiVersion: soma.dev/v1", "apiVersion: soma.dev/v2");
    let found = pointers(&text);
    for expected in [
        "/apiVersion",
        "/metadata/name",
        "/metadata/version",
        "/spec/permissions/2",
        "/spec/tokenEstimate/total",
        "/spec/outputs/0/type",
    ] {
        assert!(
            found.iter().any(|p| p == expected),
            "{expected} in {found:?}"
        );
    }
}

#[test]
fn limits_in_the_schema_hold() {
    let tags: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
    let text = SEED_MANIFEST.replace("[etl, pandas, sql]", &format!("[{}]", tags.join(", ")));
    assert_eq!(pointers(&text), ["/metadata/tags"]);
    let long = "x".repeat(2001);
    let text = SEED_MANIFEST.replace("Build data pipelines with drag-and-drop UI", &long);
    assert_eq!(pointers(&text), ["/spec/description"]);
    let deps: String = (0..65).map(|i| format!("    - dep{i} ^1\n")).collect();
    let text = SEED_MANIFEST.replace("    - pandas>=2.0.0\n    - sqlalchemy>=2.0.0\n", &deps);
    assert_eq!(pointers(&text), ["/spec/dependencies"]);
}

#[test]
fn rules_beyond_the_schema() {
    let text = SEED_MANIFEST
        .replace("- sqlalchemy>=2.0.0", "- pandas ^2")
        .replace("name: destination_path", "name: source_connection")
        .replace("- database.read", "- network.none");
    assert_eq!(
        pointers(&text),
        [
            "/spec/dependencies/1",
            "/spec/inputs/1/name",
            "/spec/permissions"
        ]
    );
    let text = SEED_MANIFEST.replace("- pandas>=2.0.0", "- pandas >=2.x.y");
    assert_eq!(pointers(&text), ["/spec/dependencies/0"]);
    let text = SEED_MANIFEST.replace(
        "  description: Build data pipelines with drag-and-drop UI\n",
        "",
    );
    assert_eq!(pointers(&text), ["/spec"]);
}

#[test]
fn dependencies_take_both_forms() {
    let d = parse_dependency("csv-tools ^1.2").unwrap();
    assert_eq!(
        (d.name.as_str(), d.requirement.to_string().as_str()),
        ("csv-tools", "^1.2")
    );
    let d = parse_dependency("json-kit").unwrap();
    assert_eq!(d.requirement, VersionReq::STAR);
    let d = parse_dependency("x>=1.0, <2").unwrap();
    assert_eq!(d.requirement.to_string(), ">=1.0, <2");
    let doc = json!({"name": "csv-tools", "version": ">=1.0, <2"});
    assert_eq!(dependency_of(&doc).unwrap().unwrap().name, "csv-tools");
}

#[test]
fn malformed_inputs_give_typed_errors() {
    let big = vec![b'a'; MAX_MANIFEST_BYTES + 1];
    assert!(matches!(parse(&big), Err(ManifestError::TooLarge { .. })));
    assert!(matches!(
        parse(b"a: \xff"),
        Err(ManifestError::NotUtf8 { valid_up_to: 3 })
    ));
    assert!(matches!(
        parse(b"a: &x [1]\nb: *x\n"),
        Err(ManifestError::Yaml(YamlError::AliasNotAllowed { .. }))
    ));
    assert_eq!(pointers(""), [""]);
    assert_eq!(pointers("[1, 2]"), [""]);
    assert_eq!(pointers("just a string"), [""]);
}

#[test]
fn the_number_of_problems_is_capped() {
    let inputs: String = (0..64)
        .map(|i| format!("    - {{ name: 'bad name {i}', type: nope, extra: 1 }}\n"))
        .collect();
    let text = quiet_manifest("csv-summary", "1.0.0").replace(
        "  inputs:\n    - { name: path, type: file, required: true }\n",
        &format!("  inputs:\n{inputs}"),
    );
    let found = problems(&text);
    assert_eq!(found.len(), MAX_PROBLEMS);
    assert!(found
        .last()
        .unwrap()
        .message
        .contains("more problem(s) not shown"));
}
