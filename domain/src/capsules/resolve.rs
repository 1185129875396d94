//! Dependency resolution between capsules: from a root (a name and a version requirement, or an
//! exact version) and a [`Catalogue`] of published, not yanked versions, pick one concrete
//! version per capsule name across the whole graph.
//!
//! Rules (each has a test in `resolve_tests.rs`):
//! - the **highest** version matching the first requirement met for a name is picked (depth
//!   first, dependencies in their declared order, so the result is deterministic);
//! - **one version per name**: every later requirement on that name must accept the version
//!   already picked. When it does not but some version meets both requirements (`^1` picked
//!   1.9.0, then `<1.5` arrives and 1.4.0 exists), the walk starts again with that name narrowed
//!   to both, at most [`MAX_RESTARTS`] times; the highest version meeting all of them is picked.
//!   When no version meets both, [`ResolveError::Conflict`] names both requirers and both
//!   requirements (the author pins a requirement to settle it);
//! - a **cycle** is [`ResolveError::Cycle`] naming the names in order, `a -> b -> c -> a`;
//! - an unknown name is [`ResolveError::UnknownCapsule`] and a requirement no version meets is
//!   [`ResolveError::NoMatchingVersion`], each with the path from the root that led there;
//! - limits: at most [`MAX_DEPTH`] edges on any path from the root and [`MAX_NODES`] capsules.
//!
//! Which declared dependencies are capsules (the seed's `pandas>=2.0.0` is a Python package) is
//! decided by the commands layer when it builds the catalogue view: everything a release lists
//! here is resolved as a capsule.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use semver::{Comparator, Op, Version, VersionReq};
use serde::{Deserialize, Serialize};

use super::manifest::Dependency;

/// Most edges on any path from the root (the root alone has depth 0).
pub const MAX_DEPTH: usize = 16;
/// Most capsules in one resolution, the root included.
pub const MAX_NODES: usize = 1_000;
/// Most times the walk restarts to settle conflicts that have a way out.
pub const MAX_RESTARTS: usize = 32;

/// One published, not yanked version of a capsule and what it requires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub version: Version,
    pub dependencies: Vec<Dependency>,
}

/// What the resolver may pick from. Only published, not yanked versions belong in it.
pub trait Catalogue {
    /// The releases of `name`, in any order; `None` when no capsule has that name.
    fn releases(&self, name: &str) -> Option<&[Release]>;
}

impl Catalogue for BTreeMap<String, Vec<Release>> {
    fn releases(&self, name: &str) -> Option<&[Release]> {
        self.get(name).map(Vec::as_slice)
    }
}

/// A capsule at a concrete version, written `name@version`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Pin {
    pub name: String,
    pub version: Version,
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// What to install: a name and the versions accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    pub name: String,
    pub requirement: VersionReq,
}

impl Root {
    /// The highest version matching `requirement`.
    pub fn matching(name: &str, requirement: VersionReq) -> Root {
        Root {
            name: name.to_owned(),
            requirement,
        }
    }

    /// Exactly `version` (`=1.2.3`).
    pub fn exact(name: &str, version: &Version) -> Root {
        let comparator = Comparator {
            op: Op::Exact,
            major: version.major,
            minor: Some(version.minor),
            patch: Some(version.patch),
            pre: version.pre.clone(),
        };
        Root::matching(
            name,
            VersionReq {
                comparators: vec![comparator],
            },
        )
    }
}

/// Who asked for a name, and what they accept. `by` is `None` for the root's own requirement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Demand {
    pub by: Option<Pin>,
    pub requirement: VersionReq,
}

impl fmt::Display for Demand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.by {
            Some(pin) => write!(f, "{pin} requires {}", self.requirement),
            None => write!(f, "the install request requires {}", self.requirement),
        }
    }
}

/// One capsule of a resolution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    pub version: Version,
    /// The names it depends on, in declared order.
    pub dependencies: Vec<String>,
    /// Edges on the longest path from the root to it.
    pub depth: usize,
}

/// The outcome: every capsule at one version, an install order, the graph's depth.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub root: Pin,
    pub picked: BTreeMap<String, Resolved>,
    /// Dependencies before their dependents; the root last.
    pub install_order: Vec<Pin>,
    /// Edges on the longest path from the root.
    pub depth: usize,
}

/// Why no resolution exists. None is retryable: the catalogue or a requirement must change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("no capsule named {name} (required via {})", path_text(path))]
    UnknownCapsule { name: String, path: Vec<Pin> },
    #[error(
        "no published version of {name} matches {requirement} (required via {})",
        path_text(path)
    )]
    NoMatchingVersion {
        name: String,
        requirement: VersionReq,
        path: Vec<Pin>,
    },
    #[error("{name}@{picked} was picked because {first}, but {second}")]
    Conflict {
        name: String,
        picked: Version,
        first: Box<Demand>,
        second: Box<Demand>,
    },
    #[error("dependency cycle: {}", cycle.join(" -> "))]
    Cycle { cycle: Vec<String> },
    #[error(
        "dependency graph deeper than {max_depth} levels (via {})",
        path_text(path)
    )]
    TooDeep { max_depth: usize, path: Vec<Pin> },
    #[error("dependency graph has more than {max_nodes} capsules")]
    TooManyNodes { max_nodes: usize },
}

impl ResolveError {
    pub fn is_retryable(&self) -> bool {
        false
    }
}

fn path_text(path: &[Pin]) -> String {
    if path.is_empty() {
        return "the install request".to_owned();
    }
    path.iter()
        .map(Pin::to_string)
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// The highest release of `releases` that `requirement` accepts.
pub fn highest_matching<'a>(
    releases: &'a [Release],
    requirement: &VersionReq,
) -> Option<&'a Release> {
    releases
        .iter()
        .filter(|r| requirement.matches(&r.version))
        .max_by(|a, b| a.version.cmp(&b.version))
}

/// Resolves `root` against `catalogue`.
pub fn resolve(root: &Root, catalogue: &impl Catalogue) -> Result<Resolution, ResolveError> {
    let mut narrowed: BTreeMap<String, Vec<VersionReq>> = BTreeMap::new();
    let mut restarts = 0;
    let walk = loop {
        let mut walk = Walk {
            catalogue,
            narrowed: &narrowed,
            picked: BTreeMap::new(),
            path: Vec::new(),
            order: Vec::new(),
        };
        let demand = Demand {
            by: None,
            requirement: root.requirement.clone(),
        };
        match walk.visit(&root.name, demand) {
            Ok(()) => break walk,
            Err(ResolveError::Conflict {
                name,
                picked,
                first,
                second,
            }) => {
                let both = narrowing(catalogue, &narrowed, &name, &first, &second);
                match both {
                    Some(requirements) if restarts < MAX_RESTARTS => {
                        restarts += 1;
                        narrowed.insert(name, requirements);
                    }
                    _ => {
                        return Err(ResolveError::Conflict {
                            name,
                            picked,
                            first,
                            second,
                        })
                    }
                }
            }
            Err(other) => return Err(other),
        }
    };
    finish(root, walk)
}

#[path = "resolve_walk.rs"]
mod walk;
use walk::{finish, narrowing, Walk};

#[path = "resolve_generate.rs"]
pub mod generate;

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
