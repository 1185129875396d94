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

/// The requirements to narrow `name` to when a version accepted by both demands (and by what
/// `name` is already narrowed to) exists; `None` when the conflict is real.
fn narrowing(
    catalogue: &impl Catalogue,
    narrowed: &BTreeMap<String, Vec<VersionReq>>,
    name: &str,
    first: &Demand,
    second: &Demand,
) -> Option<Vec<VersionReq>> {
    let mut requirements = narrowed.get(name).cloned().unwrap_or_default();
    for r in [&first.requirement, &second.requirement] {
        if !requirements.contains(r) {
            requirements.push(r.clone());
        }
    }
    let releases = catalogue.releases(name)?;
    releases
        .iter()
        .any(|rel| requirements.iter().all(|r| r.matches(&rel.version)))
        .then_some(requirements)
}

fn finish<C: Catalogue>(root: &Root, walk: Walk<'_, C>) -> Result<Resolution, ResolveError> {
    let depths = longest_depths(&walk.picked, &root.name);
    let mut picked = BTreeMap::new();
    for (name, node) in walk.picked {
        let depth = depths.get(&name).copied().unwrap_or(0);
        picked.insert(
            name,
            Resolved {
                version: node.release.version.clone(),
                dependencies: node
                    .release
                    .dependencies
                    .iter()
                    .map(|d| d.name.clone())
                    .collect(),
                depth,
            },
        );
    }
    let depth = depths.values().copied().max().unwrap_or(0);
    if depth > MAX_DEPTH {
        return Err(ResolveError::TooDeep {
            max_depth: MAX_DEPTH,
            path: deepest_path(&picked, &root.name),
        });
    }
    let root_pin = walk
        .order
        .last()
        .cloned()
        .ok_or(ResolveError::UnknownCapsule {
            name: root.name.clone(),
            path: vec![],
        })?;
    Ok(Resolution {
        root: root_pin,
        picked,
        install_order: walk.order,
        depth,
    })
}

struct Node<'a> {
    release: &'a Release,
    first: Demand,
    done: bool,
}

struct Walk<'a, C: Catalogue> {
    catalogue: &'a C,
    /// Names whose pick must also meet these requirements (from conflicts that had a way out).
    narrowed: &'a BTreeMap<String, Vec<VersionReq>>,
    picked: BTreeMap<String, Node<'a>>,
    /// The pins from the root to the capsule being visited.
    path: Vec<Pin>,
    order: Vec<Pin>,
}

impl<'a, C: Catalogue> Walk<'a, C> {
    fn visit(&mut self, name: &str, demand: Demand) -> Result<(), ResolveError> {
        if let Some(node) = self.picked.get(name) {
            if !node.done {
                return Err(self.cycle_to(name));
            }
            if demand.requirement.matches(&node.release.version) {
                return Ok(());
            }
            return Err(ResolveError::Conflict {
                name: name.to_owned(),
                picked: node.release.version.clone(),
                first: Box::new(node.first.clone()),
                second: Box::new(demand),
            });
        }
        if self.path.len() > MAX_DEPTH {
            return Err(ResolveError::TooDeep {
                max_depth: MAX_DEPTH,
                path: self.path.clone(),
            });
        }
        if self.picked.len() >= MAX_NODES {
            return Err(ResolveError::TooManyNodes {
                max_nodes: MAX_NODES,
            });
        }
        let catalogue = self.catalogue;
        let Some(releases) = catalogue.releases(name) else {
            return Err(ResolveError::UnknownCapsule {
                name: name.to_owned(),
                path: self.path.clone(),
            });
        };
        let narrowed = self.narrowed.get(name).map_or(&[][..], Vec::as_slice);
        let release = releases
            .iter()
            .filter(|r| narrowed.iter().all(|n| n.matches(&r.version)))
            .filter(|r| demand.requirement.matches(&r.version))
            .max_by(|a, b| a.version.cmp(&b.version))
            .or_else(|| highest_matching(releases, &demand.requirement));
        let Some(release) = release else {
            return Err(ResolveError::NoMatchingVersion {
                name: name.to_owned(),
                requirement: demand.requirement,
                path: self.path.clone(),
            });
        };
        let pin = Pin {
            name: name.to_owned(),
            version: release.version.clone(),
        };
        self.picked.insert(
            name.to_owned(),
            Node {
                release,
                first: demand,
                done: false,
            },
        );
        self.path.push(pin.clone());
        for dependency in &release.dependencies {
            let demand = Demand {
                by: Some(pin.clone()),
                requirement: dependency.requirement.clone(),
            };
            self.visit(&dependency.name, demand)?;
        }
        self.path.pop();
        if let Some(node) = self.picked.get_mut(name) {
            node.done = true;
        }
        self.order.push(pin);
        Ok(())
    }

    /// The cycle closed by requiring `name` again while it is on the path.
    fn cycle_to(&self, name: &str) -> ResolveError {
        let start = self.path.iter().position(|p| p.name == name).unwrap_or(0);
        let mut cycle: Vec<String> = self.path[start..].iter().map(|p| p.name.clone()).collect();
        cycle.push(name.to_owned());
        ResolveError::Cycle { cycle }
    }
}

/// Edges on the longest path from `root` to each name (the graph is acyclic once walked).
fn longest_depths(picked: &BTreeMap<String, Node<'_>>, root: &str) -> BTreeMap<String, usize> {
    // Kahn's order over the picked graph, then relax edges in that order.
    let mut indegree: BTreeMap<&str, usize> = picked.keys().map(|k| (k.as_str(), 0)).collect();
    for node in picked.values() {
        for d in unique_names(&node.release.dependencies) {
            if let Some(n) = indegree.get_mut(d) {
                *n += 1;
            }
        }
    }
    let mut ready: Vec<&str> = indegree
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(k, _)| *k)
        .collect();
    let mut depth: BTreeMap<String, usize> = BTreeMap::new();
    depth.insert(root.to_owned(), 0);
    while let Some(name) = ready.pop() {
        let here = depth.get(name).copied().unwrap_or(0);
        let Some(node) = picked.get(name) else {
            continue;
        };
        for d in unique_names(&node.release.dependencies) {
            let entry = depth.entry(d.to_owned()).or_insert(0);
            *entry = (*entry).max(here + 1);
            if let Some(n) = indegree.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    ready.push(d);
                }
            }
        }
    }
    depth
}

fn unique_names(dependencies: &[Dependency]) -> BTreeSet<&str> {
    dependencies.iter().map(|d| d.name.as_str()).collect()
}

/// One longest path from the root, following the deepest child at each step.
fn deepest_path(picked: &BTreeMap<String, Resolved>, root: &str) -> Vec<Pin> {
    let mut path = Vec::new();
    let mut at = picked.get_key_value(root);
    while let Some((name, node)) = at {
        path.push(Pin {
            name: name.clone(),
            version: node.version.clone(),
        });
        at = node
            .dependencies
            .iter()
            .filter_map(|d| picked.get_key_value(d.as_str()))
            .filter(|(_, n)| n.depth == node.depth + 1)
            .min_by(|a, b| a.0.cmp(b.0));
    }
    path
}

#[path = "resolve_generate.rs"]
pub mod generate;

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
