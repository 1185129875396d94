//! YAML text to a JSON value, under limits, with `saphyr-parser` (the maintained successor of
//! yaml-rust; an event parser, so we build the tree ourselves and stop at a limit before
//! allocating past it).
//!
//! Safety rules, checked while events arrive:
//! - nesting deeper than [`YamlLimits::max_depth`] stops the parse ([`YamlError::TooDeep`]);
//! - more than [`YamlLimits::max_nodes`] nodes stops it ([`YamlError::TooManyNodes`]);
//! - aliases (`*name`) are refused outright ([`YamlError::AliasNotAllowed`]): a manifest never
//!   needs them, and refusing them makes "billion laughs" expansion impossible (expansion cap 0);
//!   anchors alone (`&name`) are harmless and ignored;
//! - one document only; mapping keys must be scalars and unique; the only explicit tag allowed is
//!   `!!str`.
//!
//! Plain scalars resolve by the YAML 1.2 core schema (`null`, `true`, integers, floats); quoted
//! and block scalars are strings. Keys are always strings. `.inf`/`.nan` and integers beyond
//! 64 bits stay strings (JSON has no such numbers); the schema then reports the type.

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};
use serde_json::{Map, Number, Value};

/// Limits applied while parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct YamlLimits {
    /// Deepest nesting of sequences and mappings (the document itself is depth 1).
    pub max_depth: usize,
    /// Most nodes (scalars, sequences, mappings) in the document.
    pub max_nodes: usize,
}

impl Default for YamlLimits {
    fn default() -> Self {
        YamlLimits {
            max_depth: 16,
            max_nodes: 20_000,
        }
    }
}

/// Where in the text (1-based line and column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Why YAML text could not become a JSON value. None is retryable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlError {
    #[error("YAML syntax error at {at}: {message}")]
    Syntax { at: Position, message: String },
    #[error("YAML nesting deeper than {max_depth} at {at}")]
    TooDeep { max_depth: usize, at: Position },
    #[error("YAML has more than {max_nodes} nodes")]
    TooManyNodes { max_nodes: usize },
    #[error("YAML aliases are not allowed (at {at})")]
    AliasNotAllowed { at: Position },
    #[error("only one YAML document is allowed (second one at {at})")]
    MultipleDocuments { at: Position },
    #[error("YAML mapping keys must be scalars (at {at})")]
    ComplexKey { at: Position },
    #[error("duplicate mapping key {key:?} at {at}")]
    DuplicateKey { key: String, at: Position },
    #[error("YAML tag {tag} is not allowed (at {at}); only !!str is")]
    TagNotAllowed { tag: String, at: Position },
}

fn position(span: &Span) -> Position {
    Position {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

fn syntax(err: &ScanError) -> YamlError {
    YamlError::Syntax {
        at: Position {
            line: err.marker().line(),
            column: err.marker().col() + 1,
        },
        message: err.info().chars().take(200).collect(),
    }
}

/// A collection being built.
enum Frame {
    Seq(Vec<Value>),
    /// A mapping and the key waiting for its value.
    Map(Map<String, Value>, Option<String>),
}

/// Parses one YAML document into a JSON value. An empty document is `null`.
pub fn to_json(text: &str, limits: YamlLimits) -> Result<Value, YamlError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Value> = None;
    let mut documents = 0usize;
    let mut nodes = 0usize;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| syntax(&e))?;
        let at = position(&span);
        let node = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(YamlError::MultipleDocuments { at });
                }
                continue;
            }
            Event::Alias(_) => return Err(YamlError::AliasNotAllowed { at }),
            Event::Scalar(value, style, _anchor, tag) => {
                nodes += 1;
                let is_key = matches!(stack.last(), Some(Frame::Map(_, None)));
                scalar(&value, style, tag.as_deref(), is_key, at)?
            }
            Event::SequenceStart(_, tag) => {
                nodes += 1;
                open(&stack, tag.as_deref(), nodes, limits, at)?;
                stack.push(Frame::Seq(Vec::new()));
                continue;
            }
            Event::MappingStart(_, tag) => {
                nodes += 1;
                open(&stack, tag.as_deref(), nodes, limits, at)?;
                stack.push(Frame::Map(Map::new(), None));
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items)) => Value::Array(items),
                _ => unreachable_structure(at)?,
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(map, None)) => Value::Object(map),
                _ => unreachable_structure(at)?,
            },
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => continue,
        };
        if nodes > limits.max_nodes {
            return Err(YamlError::TooManyNodes {
                max_nodes: limits.max_nodes,
            });
        }
        attach(&mut stack, &mut root, node, at)?;
    }
    Ok(root.unwrap_or(Value::Null))
}

/// Checks before a sequence or mapping opens.
fn open(
    stack: &[Frame],
    tag: Option<&Tag>,
    nodes: usize,
    limits: YamlLimits,
    at: Position,
) -> Result<(), YamlError> {
    if let Some(tag) = tag {
        return Err(YamlError::TagNotAllowed {
            tag: tag.to_string(),
            at,
        });
    }
    if matches!(stack.last(), Some(Frame::Map(_, None))) {
        return Err(YamlError::ComplexKey { at });
    }
    if stack.len() >= limits.max_depth {
        return Err(YamlError::TooDeep {
            max_depth: limits.max_depth,
            at,
        });
    }
    if nodes > limits.max_nodes {
        return Err(YamlError::TooManyNodes {
            max_nodes: limits.max_nodes,
        });
    }
    Ok(())
}

/// The parser guarantees balanced events; should it not, report a syntax error, never panic.
fn unreachable_structure(at: Position) -> Result<Value, YamlError> {
    Err(YamlError::Syntax {
        at,
        message: "unbalanced collection events".to_owned(),
    })
}

fn attach(
    stack: &mut [Frame],
    root: &mut Option<Value>,
    node: Value,
    at: Position,
) -> Result<(), YamlError> {
    match stack.last_mut() {
        None => *root = Some(node),
        Some(Frame::Seq(items)) => items.push(node),
        Some(Frame::Map(map, pending)) => match pending.take() {
            None => {
                let key = match node {
                    Value::String(s) => s,
                    _ => return Err(YamlError::ComplexKey { at }),
                };
                if map.contains_key(&key) {
                    return Err(YamlError::DuplicateKey { key, at });
                }
                *pending = Some(key);
            }
            Some(key) => {
                map.insert(key, node);
            }
        },
    }
    Ok(())
}

fn scalar(
    value: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
    is_key: bool,
    at: Position,
) -> Result<Value, YamlError> {
    if let Some(tag) = tag {
        if tag.is_yaml_core_schema() && tag.suffix == "str" {
            return Ok(Value::String(value.to_owned()));
        }
        return Err(YamlError::TagNotAllowed {
            tag: tag.to_string(),
            at,
        });
    }
    if is_key || style != ScalarStyle::Plain {
        return Ok(Value::String(value.to_owned()));
    }
    Ok(resolve_plain(value))
}

/// The YAML 1.2 core schema's resolution of a plain scalar.
fn resolve_plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = parse_int(s) {
        return Value::Number(n.into());
    }
    if is_core_float(s) {
        if let Some(n) = s.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(s.to_owned())
}

fn parse_int(s: &str) -> Option<i64> {
    if let Some(oct) = s.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok();
    }
    if let Some(hex) = s.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok();
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok()
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_core_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match frac {
        None => !int.is_empty() && digits(int),
        Some(f) => digits(int) && digits(f) && !(int.is_empty() && f.is_empty()),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
#[path = "yaml_tests.rs"]
mod tests;
