use serde_json::json;

use super::*;

fn parse(text: &str) -> Result<Value, YamlError> {
    to_json(text, YamlLimits::default())
}

#[test]
fn block_and_flow_collections_become_json() {
    let v = parse("a: 1\nb: [x, 'y', 2.5]\nc:\n  - d: true\n    e: ~\nf: 1.2.3\n").unwrap();
    assert_eq!(
        v,
        json!({"a": 1, "b": ["x", "y", 2.5], "c": [{"d": true, "e": null}], "f": "1.2.3"})
    );
}

#[test]
fn quoted_scalars_stay_strings_and_keys_are_strings() {
    let v = parse("'1': \"true\"\n2: '3'\nx: !!str 42\n").unwrap();
    assert_eq!(v, json!({"1": "true", "2": "3", "x": "42"}));
}

#[test]
fn core_schema_numbers() {
    assert_eq!(resolve_plain("0x1f"), json!(31));
    assert_eq!(resolve_plain("-12"), json!(-12));
    assert_eq!(resolve_plain("1e3"), json!(1000.0));
    assert_eq!(resolve_plain(".5"), json!(0.5));
    assert_eq!(resolve_plain(".inf"), json!(".inf"));
    assert_eq!(
        resolve_plain("99999999999999999999"),
        json!(99999999999999999999.0)
    );
    assert_eq!(resolve_plain("1.2.3"), json!("1.2.3"));
    assert_eq!(resolve_plain("pandas>=2.0.0"), json!("pandas>=2.0.0"));
}

#[test]
fn aliases_are_refused() {
    let bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n";
    assert!(matches!(
        parse(bomb),
        Err(YamlError::AliasNotAllowed { .. })
    ));
}

#[test]
fn deep_nesting_stops_at_the_limit() {
    let deep = "[".repeat(10_000);
    // The scanner's own flow limit (256) may speak first, while it reads ahead.
    let result = parse(&deep);
    assert!(
        matches!(
            result,
            Err(YamlError::TooDeep { .. } | YamlError::Syntax { .. })
        ),
        "{result:?}"
    );
    let flow = "[".repeat(20) + &"]".repeat(20);
    assert!(matches!(
        parse(&flow),
        Err(YamlError::TooDeep { max_depth: 16, .. })
    ));
    let deep = "a:\n".to_owned()
        + &(1..40)
            .map(|i| format!("{}b:\n", " ".repeat(i)))
            .collect::<String>();
    assert!(matches!(
        parse(&deep),
        Err(YamlError::TooDeep { max_depth: 16, .. })
    ));
}

#[test]
fn node_count_is_capped() {
    let limits = YamlLimits {
        max_depth: 4,
        max_nodes: 10,
    };
    let text = format!("[{}]", vec!["1"; 20].join(","));
    assert_eq!(
        to_json(&text, limits),
        Err(YamlError::TooManyNodes { max_nodes: 10 })
    );
}

#[test]
fn structure_errors_are_typed() {
    assert!(
        matches!(parse("a: 1\na: 2\n"), Err(YamlError::DuplicateKey { key, .. }) if key == "a")
    );
    assert!(matches!(
        parse("a: 1\n---\nb: 2\n"),
        Err(YamlError::MultipleDocuments { .. })
    ));
    assert!(matches!(
        parse("? [a]\n: 1\n"),
        Err(YamlError::ComplexKey { .. })
    ));
    assert!(matches!(
        parse("a: !!binary aGk=\n"),
        Err(YamlError::TagNotAllowed { .. })
    ));
    assert!(matches!(parse("a: [1, 2\n"), Err(YamlError::Syntax { .. })));
    assert_eq!(parse("").unwrap(), Value::Null);
}
