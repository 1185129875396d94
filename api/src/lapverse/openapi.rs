//! The Lap-Verse OpenAPI 3.1 document (`openapi.json` next to this file, served at
//! `/openapi.json`) and the request validator that enforces it.
//!
//! Contract-first: handlers call [`validate`] before doing anything else, and the validator reads
//! its rules from [`document`] — the `in: header` and `in: query` parameters and the
//! `requestBody` schema of the operation — so the published document and the enforced rules
//! cannot drift apart. Rules the schema cannot express (the body's `tenant` equals
//! `X-Tenant-ID`, `LOG_ANALYSIS` needs `log`) are the handlers' and are described in the
//! document's text.
//!
//! The validator interprets the JSON Schema 2020-12 subset the document uses (a test checks that
//! every keyword reachable from a request is in it): `$ref` (local), `type` (a name or a list),
//! `enum`, `const`, `minLength`/`maxLength` (in characters), `pattern` (unanchored search, as
//! JSON Schema says), `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum`, `properties`,
//! `required`, `additionalProperties`, `items`, `minItems`/`maxItems` and `uniqueItems`.
//! `format`, `default`, `description` and `examples` are annotations. Integers are numbers
//! without a fractional part; numbers compare by value (`1` equals `1.0`).
//!
//! Problems come in document order: the parameters in the order the operation lists them, then
//! the body. Within an object: its type, then the missing `required` properties in the order of
//! that list, then the declared properties and then the undeclared ones, each in key order (the
//! workspace's `serde_json` keeps object keys sorted). At most [`MAX_PROBLEMS`] are reported.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::http::HeaderMap;
use regex::Regex;
use serde::Serialize;
use serde_json::Value;

/// The document's source, parsed once by [`document`].
const DOCUMENT_JSON: &str = include_str!("openapi.json");

/// Most problems one request reports (a 10 000-value series of strings would otherwise give
/// 10 000).
pub const MAX_PROBLEMS: usize = 100;

/// Deepest schema nesting followed (guards against a `$ref` cycle in the document).
const MAX_SCHEMA_DEPTH: usize = 64;

/// Longest `$ref` chain followed for a parameter or request body.
const MAX_REF_HOPS: usize = 8;

/// The media type of request bodies.
const JSON_MEDIA_TYPE: &str = "application/json";

/// The HTTP methods an OpenAPI path item may hold.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The schema every value satisfies (`true`), for a parameter without one.
static ANY_SCHEMA: Value = Value::Bool(true);

static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(DOCUMENT_JSON)
        .expect("api/src/lapverse/openapi.json is valid JSON (checked by the tests)")
});

/// Every `pattern` of the document, compiled once. A pattern that does not compile is absent
/// (a test asserts there is none) and reported as a problem when used.
static PATTERNS: LazyLock<HashMap<String, Regex>> = LazyLock::new(|| {
    let mut sources = Vec::new();
    collect_patterns(document(), &mut sources);
    sources
        .into_iter()
        .filter_map(|p| Regex::new(p).ok().map(|r| (p.to_owned(), r)))
        .collect()
});

/// The OpenAPI 3.1.0 document of the Lap-Verse REST adapters.
pub fn document() -> &'static Value {
    &DOCUMENT
}

/// The operations the validator checks requests for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    SubmitTask,
    GetTask,
    LaunchCompetition,
    GetCompetition,
    ExportCompetitions,
    Status,
}

impl Operation {
    pub const ALL: [Operation; 6] = [
        Self::SubmitTask,
        Self::GetTask,
        Self::LaunchCompetition,
        Self::GetCompetition,
        Self::ExportCompetitions,
        Self::Status,
    ];

    /// The operation's `operationId` in [`document`].
    pub fn operation_id(self) -> &'static str {
        match self {
            Self::SubmitTask => "submitTask",
            Self::GetTask => "getTask",
            Self::LaunchCompetition => "launchCompetition",
            Self::GetCompetition => "getCompetition",
            Self::ExportCompetitions => "exportCompetitions",
            Self::Status => "status",
        }
    }
}

/// One broken rule of the contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `header <name>`, `query <name>`, `body`, or `body <JSON Pointer>` (e.g.
    /// `body /requirements/complexity`).
    pub location: String,
    pub message: String,
}

/// Checks the operation's headers (its `in: header` parameters; names are case-insensitive),
/// query parameters (`in: query`, given as decoded pairs) and JSON body (its `requestBody`
/// schema) against [`document`]. Returns every problem found (at most [`MAX_PROBLEMS`]), in
/// document order. Path parameters are the router's.
pub fn validate(
    op: Operation,
    headers: &HeaderMap,
    query: &[(String, String)],
    body: Option<&Value>,
) -> Result<(), Vec<Problem>> {
    let doc = document();
    let mut checker = Checker {
        doc,
        problems: Vec::new(),
    };
    match find_operation(doc, op.operation_id()) {
        Some((path_item, operation)) => {
            for parameter in parameters(doc, path_item, operation) {
                checker.parameter(parameter, headers, query);
            }
            checker.body(operation, body);
        }
        None => checker.push(
            "operation",
            "",
            format!("{} is not in the API document", op.operation_id()),
        ),
    }
    if checker.problems.is_empty() {
        Ok(())
    } else {
        Err(checker.problems)
    }
}

/// The path item and operation object with this `operationId`.
fn find_operation<'d>(doc: &'d Value, operation_id: &str) -> Option<(&'d Value, &'d Value)> {
    doc.get("paths")?.as_object()?.values().find_map(|item| {
        METHODS
            .iter()
            .filter_map(|m| item.get(*m))
            .find(|op| op.get("operationId").and_then(Value::as_str) == Some(operation_id))
            .map(|op| (item, op))
    })
}

/// The operation's parameters, resolved: the path item's, overridden by the operation's with the
/// same `name` and `in`, in document order.
fn parameters<'d>(doc: &'d Value, path_item: &'d Value, operation: &'d Value) -> Vec<&'d Value> {
    let listed = |v: &'d Value| -> Vec<&'d Value> {
        v.get("parameters")
            .and_then(Value::as_array)
            .map(|ps| ps.iter().filter_map(|p| resolve(doc, p)).collect())
            .unwrap_or_default()
    };
    let own = listed(operation);
    let key = |p: &Value| (p.get("name").cloned(), p.get("in").cloned());
    let mut all: Vec<&Value> = listed(path_item)
        .into_iter()
        .filter(|p| !own.iter().any(|o| key(o) == key(p)))
        .collect();
    all.extend(own);
    all
}

/// Follows `$ref`s (local ones, `#/…`) to the object they name.
fn resolve<'d>(doc: &'d Value, mut value: &'d Value) -> Option<&'d Value> {
    for _ in 0..MAX_REF_HOPS {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => value = lookup(doc, reference)?,
            None => return Some(value),
        }
    }
    None
}

/// The target of a local reference (`#/components/schemas/Money`).
fn lookup<'d>(doc: &'d Value, reference: &str) -> Option<&'d Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

fn collect_patterns<'d>(value: &'d Value, out: &mut Vec<&'d str>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("pattern", Value::String(p)) => out.push(p),
                    _ => collect_patterns(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_patterns(v, out)),
        _ => {}
    }
}

/// `~` and `/` escaped for a JSON Pointer segment.
fn pointer_segment(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn location(prefix: &str, pointer: &str) -> String {
    if pointer.is_empty() {
        prefix.to_owned()
    } else {
        format!("{prefix} {pointer}")
    }
}

/// JSON Schema equality: numbers by value, objects regardless of key order.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| same(x, y))
        }
        (Value::Object(xs), Value::Object(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .all(|(k, x)| ys.get(k).is_some_and(|y| same(x, y)))
        }
        _ => a == b,
    }
}

fn is_integer(value: &Value) -> bool {
    match value {
        Value::Number(n) => {
            n.is_i64()
                || n.is_u64()
                || n.as_f64()
                    .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
        }
        _ => false,
    }
}

fn has_type(value: &Value, name: &str) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => is_integer(value),
        _ => false,
    }
}

fn type_phrase(name: &str) -> String {
    match name {
        "null" => "null".to_owned(),
        "integer" | "object" | "array" => format!("an {name}"),
        _ => format!("a {name}"),
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

/// `"a", "b", "c"` — how enum members are listed in messages.
fn listing(values: &[Value]) -> String {
    values
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A header or query value as the JSON value its schema expects: a number or boolean when the
/// schema's type asks for one and the text parses as one, else the text.
fn coerce(doc: &Value, schema: &Value, raw: &str) -> Value {
    let types: Vec<&str> = match resolve(doc, schema).and_then(|s| s.get("type")) {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let text = Value::String(raw.to_owned());
    if types.contains(&"string") {
        return text;
    }
    if types.iter().any(|t| *t == "integer" || *t == "number") {
        if let Ok(n) = raw.parse::<serde_json::Number>() {
            return Value::Number(n);
        }
    }
    if types.contains(&"boolean") {
        match raw {
            "true" => return Value::Bool(true),
            "false" => return Value::Bool(false),
            _ => {}
        }
    }
    text
}

struct Checker<'d> {
    doc: &'d Value,
    problems: Vec<Problem>,
}

impl<'d> Checker<'d> {
    fn push(&mut self, prefix: &str, pointer: &str, message: impl Into<String>) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem {
                location: location(prefix, pointer),
                message: message.into(),
            });
        }
    }

    fn full(&self) -> bool {
        self.problems.len() >= MAX_PROBLEMS
    }

    fn parameter(&mut self, parameter: &'d Value, headers: &HeaderMap, query: &[(String, String)]) {
        let (Some(name), Some(place)) = (
            parameter.get("name").and_then(Value::as_str),
            parameter.get("in").and_then(Value::as_str),
        ) else {
            return;
        };
        let required = parameter.get("required").and_then(Value::as_bool) == Some(true);
        let schema = parameter.get("schema").unwrap_or(&ANY_SCHEMA);
        let prefix = format!("{place} {name}");
        let values: Vec<Result<&str, ()>> = match place {
            "header" => headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().map_err(|_| ()))
                .collect(),
            "query" => query
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| Ok(v.as_str()))
                .collect(),
            // Path parameters are matched by the router; cookies are not used.
            _ => return,
        };
        match values.as_slice() {
            [] if required => self.push(&prefix, "", "is required"),
            [] => {}
            [Ok(raw)] => {
                let value = coerce(self.doc, schema, raw);
                self.check(schema, &value, &prefix, "", 0);
            }
            [Err(())] => self.push(&prefix, "", "must be visible ASCII text"),
            _ => self.push(&prefix, "", "must be given once"),
        }
    }

    fn body(&mut self, operation: &'d Value, body: Option<&Value>) {
        let request_body = operation
            .get("requestBody")
            .and_then(|rb| resolve(self.doc, rb));
        match (request_body, body) {
            (None, None) => {}
            (None, Some(_)) => self.push("body", "", "this operation takes no body"),
            (Some(rb), None) => {
                if rb.get("required").and_then(Value::as_bool) == Some(true) {
                    self.push("body", "", "a JSON body is required");
                }
            }
            (Some(rb), Some(value)) => match rb
                .get("content")
                .and_then(|c| c.get(JSON_MEDIA_TYPE))
                .and_then(|m| m.get("schema"))
            {
                Some(schema) => self.check(schema, value, "body", "", 0),
                None => self.push("body", "", "this operation takes no JSON body"),
            },
        }
    }

    /// Checks `instance` (at `pointer` under `prefix`) against `schema`.
    fn check(
        &mut self,
        schema: &'d Value,
        instance: &Value,
        prefix: &str,
        pointer: &str,
        depth: usize,
    ) {
        if self.full() {
            return;
        }
        if depth > MAX_SCHEMA_DEPTH {
            self.push(prefix, pointer, "the API document nests schemas too deeply");
            return;
        }
        let rules = match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => return self.push(prefix, pointer, "is not allowed"),
            Value::Object(rules) => rules,
            _ => return,
        };
        if let Some(reference) = rules.get("$ref").and_then(Value::as_str) {
            match lookup(self.doc, reference) {
                Some(target) => self.check(target, instance, prefix, pointer, depth + 1),
                None => self.push(
                    prefix,
                    pointer,
                    format!("the API document's reference {reference} does not resolve"),
                ),
            }
        }
        if !self.type_ok(rules.get("type"), instance, prefix, pointer) {
            return;
        }
        self.check_value(rules, instance, prefix, pointer);
        match instance {
            Value::String(s) => self.check_string(rules, s, prefix, pointer),
            Value::Number(_) => self.check_number(rules, instance, prefix, pointer),
            Value::Object(_) => self.check_object(rules, instance, prefix, pointer, depth),
            Value::Array(items) => self.check_array(rules, items, prefix, pointer, depth),
            _ => {}
        }
    }

    fn type_ok(
        &mut self,
        types: Option<&Value>,
        instance: &Value,
        prefix: &str,
        pointer: &str,
    ) -> bool {
        let names: Vec<&str> = match types {
            None => return true,
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            Some(_) => return true,
        };
        if names.iter().any(|t| has_type(instance, t)) {
            return true;
        }
        let phrases: Vec<String> = names.iter().map(|t| type_phrase(t)).collect();
        self.push(prefix, pointer, format!("must be {}", phrases.join(" or ")));
        false
    }

    fn check_value(
        &mut self,
        rules: &serde_json::Map<String, Value>,
        instance: &Value,
        prefix: &str,
        pointer: &str,
    ) {
        if let Some(expected) = rules.get("const") {
            if !same(expected, instance) {
                self.push(prefix, pointer, format!("must be {expected}"));
            }
        }
        if let Some(Value::Array(members)) = rules.get("enum") {
            if !members.iter().any(|m| same(m, instance)) {
                self.push(
                    prefix,
                    pointer,
                    format!("must be one of {}", listing(members)),
                );
            }
        }
    }

    fn check_string(
        &mut self,
        rules: &serde_json::Map<String, Value>,
        s: &str,
        prefix: &str,
        pointer: &str,
    ) {
        let chars = s.chars().count() as u64;
        if let Some(min) = rules.get("minLength").and_then(Value::as_u64) {
            if chars < min {
                let n = plural(min, "character", "characters");
                self.push(prefix, pointer, format!("must be at least {n} long"));
            }
        }
        if let Some(max) = rules.get("maxLength").and_then(Value::as_u64) {
            if chars > max {
                let n = plural(max, "character", "characters");
                self.push(prefix, pointer, format!("must be at most {n} long"));
            }
        }
        if let Some(pattern) = rules.get("pattern").and_then(Value::as_str) {
            match PATTERNS.get(pattern) {
                Some(regex) if regex.is_match(s) => {}
                Some(_) => self.push(prefix, pointer, format!("must match {pattern}")),
                None => self.push(
                    prefix,
                    pointer,
                    format!("the API document's pattern {pattern} does not compile"),
                ),
            }
        }
    }

    fn check_number(
        &mut self,
        rules: &serde_json::Map<String, Value>,
        instance: &Value,
        prefix: &str,
        pointer: &str,
    ) {
        let Some(x) = instance.as_f64() else { return };
        let bound = |key: &str| rules.get(key).and_then(|b| b.as_f64().map(|f| (f, b)));
        if let Some((min, shown)) = bound("minimum") {
            if x < min {
                self.push(prefix, pointer, format!("must be at least {shown}"));
            }
        }
        if let Some((max, shown)) = bound("maximum") {
            if x > max {
                self.push(prefix, pointer, format!("must be at most {shown}"));
            }
        }
        if let Some((min, shown)) = bound("exclusiveMinimum") {
            if x <= min {
                self.push(prefix, pointer, format!("must be greater than {shown}"));
            }
        }
        if let Some((max, shown)) = bound("exclusiveMaximum") {
            if x >= max {
                self.push(prefix, pointer, format!("must be less than {shown}"));
            }
        }
    }

    fn check_object(
        &mut self,
        rules: &'d serde_json::Map<String, Value>,
        instance: &Value,
        prefix: &str,
        pointer: &str,
        depth: usize,
    ) {
        let Value::Object(fields) = instance else {
            return;
        };
        let child = |key: &str| format!("{pointer}/{}", pointer_segment(key));
        if let Some(Value::Array(required)) = rules.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !fields.contains_key(name) {
                    self.push(prefix, &child(name), "is required");
                }
            }
        }
        let declared = rules.get("properties").and_then(Value::as_object);
        if let Some(declared) = declared {
            for (name, schema) in declared {
                if let Some(value) = fields.get(name) {
                    self.check(schema, value, prefix, &child(name), depth + 1);
                }
            }
        }
        let Some(additional) = rules.get("additionalProperties") else {
            return;
        };
        let undeclared = fields
            .iter()
            .filter(|(name, _)| !declared.is_some_and(|d| d.contains_key(name.as_str())));
        for (name, value) in undeclared {
            match additional {
                Value::Bool(false) => self.push(prefix, &child(name), "is not an allowed property"),
                schema => self.check(schema, value, prefix, &child(name), depth + 1),
            }
        }
    }

    fn check_array(
        &mut self,
        rules: &'d serde_json::Map<String, Value>,
        items: &[Value],
        prefix: &str,
        pointer: &str,
        depth: usize,
    ) {
        let count = items.len() as u64;
        if let Some(min) = rules.get("minItems").and_then(Value::as_u64) {
            if count < min {
                let n = plural(min, "item", "items");
                self.push(prefix, pointer, format!("must have at least {n}"));
            }
        }
        if let Some(max) = rules.get("maxItems").and_then(Value::as_u64) {
            if count > max {
                let n = plural(max, "item", "items");
                self.push(prefix, pointer, format!("must have at most {n}"));
            }
        }
        if rules.get("uniqueItems").and_then(Value::as_bool) == Some(true) {
            let duplicate = (1..items.len())
                .find_map(|j| (0..j).find(|&i| same(&items[i], &items[j])).map(|i| (i, j)));
            if let Some((first, again)) = duplicate {
                let message = format!("must not repeat items: item {again} repeats item {first}");
                self.push(prefix, pointer, message);
            }
        }
        if let Some(schema) = rules.get("items") {
            for (index, item) in items.iter().enumerate() {
                self.check(
                    schema,
                    item,
                    prefix,
                    &format!("{pointer}/{index}"),
                    depth + 1,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use axum::http::{HeaderName, HeaderValue};
    use serde_json::json;

    use super::*;

    /// Keywords the validator enforces.
    const ENFORCED: [&str; 18] = [
        "$ref",
        "type",
        "enum",
        "const",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minItems",
        "maxItems",
        "uniqueItems",
    ];

    /// Keywords that only annotate.
    const ANNOTATIONS: [&str; 5] = ["description", "default", "examples", "format", "title"];

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("test header name"),
                HeaderValue::from_str(value).expect("test header value"),
            );
        }
        map
    }

    fn both_headers() -> HeaderMap {
        headers(&[
            ("Idempotency-Key", "6f1c2b7e-4a0d-4e8e-9d55-0b8f3c1a2d44"),
            ("X-Tenant-ID", "acme"),
        ])
    }

    fn smoke_task() -> Value {
        json!({
            "type": "ANALYSIS",
            "priority": "high",
            "description": "Forecast Q3 revenue",
            "tenant": "acme",
            "platforms": ["twitter"],
            "costCenter": "campaign-9000"
        })
    }

    fn smoke_competition() -> Value {
        json!({
            "content": "Q3 revenue forecast",
            "platforms": ["twitter"],
            "priority": "high",
            "costCenter": "campaign-9000"
        })
    }

    /// The problems' locations for a task body with both headers.
    fn task_locations(body: Value) -> Vec<String> {
        locations(Operation::SubmitTask, &both_headers(), &[], Some(&body))
    }

    fn locations(
        op: Operation,
        headers: &HeaderMap,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Vec<String> {
        match validate(op, headers, query, body) {
            Ok(()) => Vec::new(),
            Err(problems) => problems.into_iter().map(|p| p.location).collect(),
        }
    }

    fn with(mut body: Value, key: &str, value: Value) -> Value {
        body[key] = value;
        body
    }

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn walk<'a>(value: &'a Value, visit: &mut impl FnMut(&'a Value)) {
        visit(value);
        match value {
            Value::Object(map) => map.values().for_each(|v| walk(v, visit)),
            Value::Array(items) => items.iter().for_each(|v| walk(v, visit)),
            _ => {}
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_ref_resolves() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut refs = Vec::new();
        walk(doc, &mut |v| {
            if let Some(r) = v.get("$ref").and_then(Value::as_str) {
                refs.push(r.to_owned());
            }
        });
        assert!(refs.len() > 20, "the document shares its schemas by $ref");
        for r in refs {
            assert!(lookup(doc, &r).is_some(), "{r} does not resolve");
        }
    }

    #[test]
    fn every_pattern_compiles() {
        let mut sources = Vec::new();
        collect_patterns(document(), &mut sources);
        assert!(!sources.is_empty());
        for p in sources {
            assert!(PATTERNS.contains_key(p), "{p} does not compile");
        }
    }

    #[test]
    fn every_operation_is_in_the_document_once() {
        let mut ids = Vec::new();
        walk(document(), &mut |v| {
            if let Some(id) = v.get("operationId").and_then(Value::as_str) {
                ids.push(id);
            }
        });
        let unique: HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "operationIds are unique: {ids:?}");
        for op in Operation::ALL {
            assert!(
                find_operation(document(), op.operation_id()).is_some(),
                "{op:?}"
            );
        }
    }

    #[test]
    fn the_documented_paths_and_security_are_the_servers() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths");
        for path in [
            "/api/v2/tasks",
            "/api/v2/tasks/{id}",
            "/api/v2/self-compete",
            "/api/v2/self-compete/{id}",
            "/api/v2/self-compete/export",
            "/api/status",
            "/metrics",
            "/openapi.json",
        ] {
            assert!(paths.contains_key(path), "{path}");
        }
        // The server reads `Authorization: Bearer <key>` only (`lapverse::rest::caller`).
        let schemes = doc["components"]["securitySchemes"]
            .as_object()
            .expect("securitySchemes");
        assert_eq!(schemes.len(), 1);
        assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");
        assert_eq!(doc["security"], json!([{"bearerAuth": []}]));
    }

    /// Every keyword reachable from a request parameter or body is one the validator enforces
    /// or an annotation: the document cannot state a request rule that is not checked.
    #[test]
    fn request_schemas_use_only_enforced_keywords() {
        fn visit<'d>(doc: &'d Value, schema: &'d Value, seen: &mut HashSet<*const Value>) {
            let Some(rules) = schema.as_object() else {
                return;
            };
            if !seen.insert(schema) {
                return;
            }
            for (key, value) in rules {
                assert!(
                    ENFORCED.contains(&key.as_str()) || ANNOTATIONS.contains(&key.as_str()),
                    "request schema keyword {key} is not enforced"
                );
                match key.as_str() {
                    "$ref" => {
                        let target = value.as_str().and_then(|r| lookup(doc, r));
                        visit(doc, target.expect("$ref resolves"), seen);
                    }
                    "properties" => {
                        for sub in value.as_object().expect("properties").values() {
                            visit(doc, sub, seen);
                        }
                    }
                    "items" | "additionalProperties" => visit(doc, value, seen),
                    _ => {}
                }
            }
        }
        let doc = document();
        let mut seen = HashSet::new();
        for op in Operation::ALL {
            let (item, operation) = find_operation(doc, op.operation_id()).expect("operation");
            for parameter in parameters(doc, item, operation) {
                visit(doc, &parameter["schema"], &mut seen);
            }
            if let Some(rb) = operation.get("requestBody") {
                let rb = resolve(doc, rb).expect("requestBody");
                visit(doc, &rb["content"][JSON_MEDIA_TYPE]["schema"], &mut seen);
            }
        }
        assert!(seen.len() > 10);
    }

    #[test]
    fn the_documents_request_examples_validate() {
        let doc = document();
        for op in [Operation::SubmitTask, Operation::LaunchCompetition] {
            let (_, operation) = find_operation(doc, op.operation_id()).expect("operation");
            let examples = operation["requestBody"]["content"][JSON_MEDIA_TYPE]["examples"]
                .as_object()
                .expect("examples");
            for (name, example) in examples {
                let result = validate(op, &both_headers(), &[], Some(&example["value"]));
                assert_eq!(result, Ok(()), "{op:?} example {name}");
            }
        }
    }

    #[test]
    fn the_seeds_smoke_test_bodies_validate() {
        let h = both_headers();
        assert_eq!(
            validate(Operation::SubmitTask, &h, &[], Some(&smoke_task())),
            Ok(())
        );
        assert_eq!(
            validate(
                Operation::LaunchCompetition,
                &h,
                &[],
                Some(&smoke_competition())
            ),
            Ok(())
        );
    }

    #[test]
    fn a_full_task_body_validates() {
        let body = json!({
            "type": "FORECAST",
            "description": "Monthly revenue",
            "priority": "critical",
            "tenant": "acme",
            "platforms": ["twitter", "linkedin"],
            "costCenter": "campaign-9000",
            "owner": "data.team_1",
            "targetingKey": "user-42",
            "requirements": {"complexity": "expert"},
            "series": {"values": [1, 2.5, -3, 4e2], "seasonLength": 2},
            "horizon": 12.0,
            "level": 80.5,
            "log": ""
        });
        assert_eq!(task_locations(body), Vec::<String>::new());
    }

    #[test]
    fn header_names_are_case_insensitive() {
        let h = headers(&[("idempotency-key", "k"), ("x-tenant-id", "acme")]);
        assert_eq!(
            validate(Operation::SubmitTask, &h, &[], Some(&smoke_task())),
            Ok(())
        );
    }

    #[test]
    fn a_missing_idempotency_key_is_a_header_problem() {
        let h = headers(&[("X-Tenant-ID", "acme")]);
        let problems = validate(Operation::SubmitTask, &h, &[], Some(&smoke_task()))
            .expect_err("the key is required");
        assert_eq!(
            problems,
            vec![Problem {
                location: "header Idempotency-Key".into(),
                message: "is required".into(),
            }]
        );
        let h = headers(&[("Idempotency-Key", "k")]);
        assert_eq!(
            locations(
                Operation::LaunchCompetition,
                &h,
                &[],
                Some(&smoke_competition())
            ),
            vec!["header X-Tenant-ID"]
        );
    }

    #[test]
    fn header_values_are_checked_against_their_schemas() {
        let long_key = "k".repeat(201);
        let h = headers(&[("Idempotency-Key", &long_key), ("X-Tenant-ID", "Acme Corp")]);
        assert_eq!(
            locations(Operation::SubmitTask, &h, &[], Some(&smoke_task())),
            vec!["header Idempotency-Key", "header X-Tenant-ID"]
        );
        let h = headers(&[
            ("Idempotency-Key", "a"),
            ("Idempotency-Key", "b"),
            ("X-Tenant-ID", "acme"),
        ]);
        let problems =
            validate(Operation::SubmitTask, &h, &[], Some(&smoke_task())).expect_err("two keys");
        assert_eq!(problems[0].message, "must be given once");
    }

    #[test]
    fn problems_come_in_document_order_with_every_one_reported() {
        let problems = validate(
            Operation::SubmitTask,
            &HeaderMap::new(),
            &[],
            Some(&json!({"type": "NOPE", "horizon": 0, "zzz": 1})),
        )
        .expect_err("many problems");
        let found: Vec<&str> = problems.iter().map(|p| p.location.as_str()).collect();
        assert_eq!(
            found,
            [
                "header Idempotency-Key",
                "header X-Tenant-ID",
                "body /description",
                "body /horizon",
                "body /type",
                "body /zzz",
            ]
        );
    }

    #[test]
    fn a_missing_body_is_a_problem() {
        let problems =
            validate(Operation::SubmitTask, &both_headers(), &[], None).expect_err("no body");
        assert_eq!(
            problems,
            vec![Problem {
                location: "body".into(),
                message: "a JSON body is required".into(),
            }]
        );
        assert_eq!(
            locations(
                Operation::SubmitTask,
                &both_headers(),
                &[],
                Some(&json!([1]))
            ),
            vec!["body"]
        );
    }

    #[test]
    fn a_missing_description_is_reported_where_it_belongs() {
        let mut body = smoke_task();
        body.as_object_mut().expect("object").remove("description");
        let problems = validate(Operation::SubmitTask, &both_headers(), &[], Some(&body))
            .expect_err("description is required");
        assert_eq!(
            problems,
            vec![Problem {
                location: "body /description".into(),
                message: "is required".into(),
            }]
        );
    }

    #[test]
    fn enums_are_checked_at_any_depth() {
        let body = with(smoke_task(), "requirements", json!({"complexity": "hard"}));
        let problems = validate(Operation::SubmitTask, &both_headers(), &[], Some(&body))
            .expect_err("unknown complexity");
        assert_eq!(problems[0].location, "body /requirements/complexity");
        assert_eq!(
            problems[0].message,
            r#"must be one of "simple", "intermediate", "advanced", "expert""#
        );
        assert_eq!(
            task_locations(with(smoke_task(), "type", json!("analysis"))),
            vec!["body /type"]
        );
        assert_eq!(
            task_locations(with(smoke_task(), "priority", json!("urgent"))),
            vec!["body /priority"]
        );
    }

    #[test]
    fn string_lengths_count_characters() {
        assert_eq!(
            task_locations(with(smoke_task(), "description", json!("é".repeat(500)))),
            Vec::<String>::new()
        );
        assert_eq!(
            task_locations(with(smoke_task(), "description", json!("x".repeat(501)))),
            vec!["body /description"]
        );
        assert_eq!(
            task_locations(with(smoke_task(), "description", json!(""))),
            vec!["body /description"]
        );
        assert_eq!(
            task_locations(with(
                smoke_task(),
                "platforms",
                json!(["ok", "p".repeat(65)])
            )),
            vec!["body /platforms/1"]
        );
    }

    #[test]
    fn patterns_are_checked() {
        assert_eq!(
            task_locations(with(smoke_task(), "costCenter", json!("Campaign 9000"))),
            vec!["body /costCenter"]
        );
        assert_eq!(
            task_locations(with(smoke_task(), "owner", json!("data team"))),
            vec!["body /owner"]
        );
        assert_eq!(
            task_locations(with(smoke_task(), "tenant", json!("-acme"))),
            vec!["body /tenant"]
        );
    }

    #[test]
    fn an_extra_property_is_reported_at_its_own_location() {
        let problems = validate(
            Operation::SubmitTask,
            &both_headers(),
            &[],
            Some(&with(smoke_task(), "budget", json!(5))),
        )
        .expect_err("unknown property");
        assert_eq!(
            problems,
            vec![Problem {
                location: "body /budget".into(),
                message: "is not an allowed property".into(),
            }]
        );
        let body = with(smoke_task(), "requirements", json!({"speed": "fast"}));
        assert_eq!(task_locations(body), vec!["body /requirements/speed"]);
        let body = with(
            smoke_competition(),
            "series",
            json!({"values": [1], "x": 1}),
        );
        assert_eq!(
            locations(
                Operation::LaunchCompetition,
                &both_headers(),
                &[],
                Some(&body)
            ),
            vec!["body /series/x"]
        );
    }

    #[test]
    fn numbers_are_checked_for_type_and_range() {
        let problems = validate(
            Operation::SubmitTask,
            &both_headers(),
            &[],
            Some(&with(smoke_task(), "horizon", json!(1.5))),
        )
        .expect_err("not an integer");
        assert_eq!(problems[0].location, "body /horizon");
        assert_eq!(problems[0].message, "must be an integer");
        for bad in [json!("12"), json!(0), json!(1001), json!(null)] {
            assert_eq!(
                task_locations(with(smoke_task(), "horizon", bad)),
                vec!["body /horizon"]
            );
        }
        assert_eq!(
            task_locations(with(smoke_task(), "level", json!(99.5))),
            vec!["body /level"]
        );
        let series = json!({"values": [1, "2", 3], "seasonLength": 1});
        assert_eq!(
            task_locations(with(smoke_task(), "series", series)),
            vec!["body /series/seasonLength", "body /series/values/1"]
        );
    }

    #[test]
    fn a_series_needs_values() {
        let body = with(smoke_task(), "series", json!({"values": []}));
        let problems = validate(Operation::SubmitTask, &both_headers(), &[], Some(&body))
            .expect_err("empty series");
        assert_eq!(
            problems,
            vec![Problem {
                location: "body /series/values".into(),
                message: "must have at least 1 item".into(),
            }]
        );
        let body = with(smoke_task(), "series", json!({"seasonLength": 12}));
        assert_eq!(task_locations(body), vec!["body /series/values"]);
        let body = with(smoke_task(), "platforms", json!(vec!["p"; 21]));
        assert_eq!(task_locations(body), vec!["body /platforms"]);
    }

    #[test]
    fn competitors_are_unique_known_and_at_most_four() {
        let check = |competitors: Value| {
            let body = with(smoke_competition(), "competitors", competitors);
            validate(
                Operation::LaunchCompetition,
                &both_headers(),
                &[],
                Some(&body),
            )
        };
        let problems = check(json!(["balanced", "aggressive", "balanced"])).expect_err("dup");
        assert_eq!(
            problems,
            vec![Problem {
                location: "body /competitors".into(),
                message: "must not repeat items: item 2 repeats item 0".into(),
            }]
        );
        let problems = check(json!(["balanced", "greedy"])).expect_err("unknown");
        assert_eq!(problems[0].location, "body /competitors/1");
        let problems = check(json!([])).expect_err("empty");
        assert_eq!(problems[0].location, "body /competitors");
        assert_eq!(
            check(json!([
                "aggressive",
                "conservative",
                "balanced",
                "experimental"
            ])),
            Ok(())
        );
        let problems = check(json!(["a", "b", "c", "d", "e"])).expect_err("too many");
        assert_eq!(problems[0].location, "body /competitors");
        assert_eq!(problems[0].message, "must have at most 4 items");
    }

    #[test]
    fn a_competition_may_repeat_the_tenant() {
        let body = with(smoke_competition(), "tenant", json!("acme"));
        assert_eq!(
            validate(
                Operation::LaunchCompetition,
                &both_headers(),
                &[],
                Some(&body)
            ),
            Ok(())
        );
    }

    #[test]
    fn a_competition_needs_content() {
        let body = json!({"platforms": ["twitter"]});
        assert_eq!(
            locations(
                Operation::LaunchCompetition,
                &both_headers(),
                &[],
                Some(&body)
            ),
            vec!["body /content"]
        );
    }

    #[test]
    fn the_export_format_is_required_and_known() {
        let h = HeaderMap::new();
        let op = Operation::ExportCompetitions;
        let problems = validate(op, &h, &[], None).expect_err("format is required");
        assert_eq!(
            problems,
            vec![Problem {
                location: "query format".into(),
                message: "is required".into(),
            }]
        );
        let problems = validate(op, &h, &query(&[("format", "xml")]), None).expect_err("xml");
        assert_eq!(problems[0].location, "query format");
        assert_eq!(problems[0].message, r#"must be one of "csv", "json""#);
        assert_eq!(validate(op, &h, &query(&[("format", "csv")]), None), Ok(()));
        let q = query(&[("format", "json"), ("tenant", "acme"), ("other", "x")]);
        let h = headers(&[("X-Tenant-ID", "acme")]);
        assert_eq!(validate(op, &h, &q, None), Ok(()));
        let q = query(&[("format", "json"), ("tenant", "ACME")]);
        assert_eq!(
            locations(op, &HeaderMap::new(), &q, None),
            vec!["query tenant"]
        );
        let q = query(&[("format", "json"), ("format", "csv")]);
        assert_eq!(
            locations(op, &HeaderMap::new(), &q, None),
            vec!["query format"]
        );
    }

    #[test]
    fn reads_take_no_body_and_an_optional_tenant() {
        let h = HeaderMap::new();
        assert_eq!(validate(Operation::Status, &h, &[], None), Ok(()));
        assert_eq!(validate(Operation::GetTask, &h, &[], None), Ok(()));
        assert_eq!(validate(Operation::GetCompetition, &h, &[], None), Ok(()));
        let h = headers(&[("X-Tenant-ID", "not a tenant")]);
        assert_eq!(
            locations(Operation::Status, &h, &[], None),
            vec!["header X-Tenant-ID"]
        );
        assert_eq!(
            locations(Operation::Status, &HeaderMap::new(), &[], Some(&json!({}))),
            vec!["body"]
        );
    }

    #[test]
    fn problems_are_bounded() {
        let values: Vec<Value> = (0..500).map(|i| json!(i.to_string())).collect();
        let body = with(smoke_task(), "series", json!({ "values": values }));
        let problems = validate(Operation::SubmitTask, &both_headers(), &[], Some(&body))
            .expect_err("strings are not numbers");
        assert_eq!(problems.len(), MAX_PROBLEMS);
    }

    #[test]
    fn query_values_are_coerced_to_their_schema_type() {
        let doc = document();
        let schema = json!({"type": "integer", "minimum": 1});
        assert_eq!(coerce(doc, &schema, "12"), json!(12));
        assert_eq!(coerce(doc, &schema, "x"), json!("x"));
        assert_eq!(
            coerce(doc, &json!({"type": "boolean"}), "true"),
            json!(true)
        );
        assert_eq!(coerce(doc, &json!({"type": "string"}), "12"), json!("12"));
    }

    #[test]
    fn json_schema_equality_compares_numbers_by_value() {
        assert!(same(&json!(1), &json!(1.0)));
        assert!(same(&json!({"a": [1, 2]}), &json!({"a": [1.0, 2]})));
        assert!(!same(&json!("1"), &json!(1)));
    }
}
