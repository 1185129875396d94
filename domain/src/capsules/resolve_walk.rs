//! The resolver's depth-first walk, the narrowing of settled conflicts, and the depth of the
//! walked graph, kept apart from the types.

use super::*;

/// The requirements to narrow `name` to when a version accepted by both demands (and by what
/// `name` is already narrowed to) exists; `None` when the conflict is real.
pub(super) fn narrowing(
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

pub(super) fn finish<C: Catalogue>(
    root: &Root,
    walk: Walk<'_, C>,
) -> Result<Resolution, ResolveError> {
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

pub(super) struct Node<'a> {
    release: &'a Release,
    first: Demand,
    done: bool,
}

pub(super) struct Walk<'a, C: Catalogue> {
    pub(super) catalogue: &'a C,
    /// Names whose pick must also meet these requirements (from conflicts that had a way out).
    pub(super) narrowed: &'a BTreeMap<String, Vec<VersionReq>>,
    pub(super) picked: BTreeMap<String, Node<'a>>,
    /// The pins from the root to the capsule being visited.
    pub(super) path: Vec<Pin>,
    pub(super) order: Vec<Pin>,
}

impl<'a, C: Catalogue> Walk<'a, C> {
    pub(super) fn visit(&mut self, name: &str, demand: Demand) -> Result<(), ResolveError> {
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
