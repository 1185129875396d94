//! Deterministic generated dependency graphs, for the resolver's tests and the bench
//! (`agora bench`: resolution of a 200-node, 6-level graph). No randomness: a 64-bit linear
//! congruential generator (Knuth's MMIX constants) seeded by the caller.
//!
//! Shape: level 0 is the root alone; the other nodes are spread evenly over levels
//! `1..levels`. Every node of level `k + 1` is required by at least one node of level `k`, so
//! all nodes are reachable and the graph has depth `levels - 1`; extra edges go one or two
//! levels down, never up, so it is acyclic. Each capsule has releases `1.0.0`, `1.M.0` and
//! `2.0.0`; every requirement on it accepts `1.M.0` and refuses `2.0.0` (`^1`, `>=1.0, <2`,
//! `~1.M`, `=1.M.0` chosen by the generator), so the resolution exists and picks `1.M.0`.

use std::collections::BTreeMap;

use semver::{Version, VersionReq};

use super::{Release, Root};
use crate::capsules::manifest::Dependency;

/// Nodes of the bench graph.
pub const BENCH_NODES: usize = 200;
/// Levels of the bench graph (depth 5).
pub const BENCH_LEVELS: usize = 6;
/// Most extra edges a node gets on top of the ones that make every node reachable.
pub const MAX_EXTRA_EDGES: u64 = 3;

/// A 64-bit linear congruential generator.
#[derive(Clone, Debug)]
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Lcg {
        Lcg(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// A value in `0..bound` (`bound > 0`).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
}

/// A generated catalogue and the root to resolve in it.
#[derive(Clone, Debug)]
pub struct Generated {
    pub root: Root,
    pub catalogue: BTreeMap<String, Vec<Release>>,
    /// Node names per level, level 0 holding the root.
    pub levels: Vec<Vec<String>>,
    /// The version every node must resolve to.
    pub expected: BTreeMap<String, Version>,
}

/// The name of node `index` of `level`.
pub fn node_name(level: usize, index: usize) -> String {
    format!("cap-l{level}-n{index:03}")
}

fn requirement(rng: &mut Lcg, minor: u64) -> VersionReq {
    let text = match rng.below(4) {
        0 => "^1".to_owned(),
        1 => ">=1.0, <2".to_owned(),
        2 => format!("~1.{minor}"),
        _ => format!("=1.{minor}.0"),
    };
    VersionReq::parse(&text).unwrap_or(VersionReq::STAR)
}

/// A graph of `nodes` capsules (at least `levels`) over `levels` levels (at least 2).
pub fn graph(nodes: usize, levels: usize, seed: u64) -> Generated {
    let levels = levels.max(2);
    let nodes = nodes.max(levels);
    let mut rng = Lcg::new(seed);
    let below_root = nodes - 1;
    let per_level: Vec<usize> = (1..levels)
        .map(|l| below_root / (levels - 1) + usize::from(l - 1 < below_root % (levels - 1)))
        .collect();
    let mut names: Vec<Vec<String>> = vec![vec![node_name(0, 0)]];
    for (i, count) in per_level.iter().enumerate() {
        names.push((0..*count).map(|n| node_name(i + 1, n)).collect());
    }
    let minors: BTreeMap<String, u64> = names
        .iter()
        .flatten()
        .map(|n| (n.clone(), 1 + rng.below(9)))
        .collect();
    let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for level in 0..levels - 1 {
        let (parents, children) = (&names[level], &names[level + 1]);
        for (i, child) in children.iter().enumerate() {
            let parent = &parents[i % parents.len()];
            edges.entry(parent.clone()).or_default().push(child.clone());
        }
        for parent in parents {
            for _ in 0..rng.below(MAX_EXTRA_EDGES + 1) {
                let target_level = if level + 2 < levels && rng.below(4) == 0 {
                    level + 2
                } else {
                    level + 1
                };
                let pool = &names[target_level];
                let child = pool[rng.below(pool.len() as u64) as usize].clone();
                let list = edges.entry(parent.clone()).or_default();
                if !list.contains(&child) {
                    list.push(child);
                }
            }
        }
    }
    let mut catalogue = BTreeMap::new();
    let mut expected = BTreeMap::new();
    for name in names.iter().flatten() {
        let minor = minors.get(name).copied().unwrap_or(1);
        let dependencies: Vec<Dependency> = edges
            .get(name)
            .into_iter()
            .flatten()
            .map(|child| Dependency {
                name: child.clone(),
                requirement: requirement(&mut rng, minors.get(child).copied().unwrap_or(1)),
            })
            .collect();
        let releases = [
            Version::new(1, 0, 0),
            Version::new(1, minor, 0),
            Version::new(2, 0, 0),
        ]
        .into_iter()
        .map(|version| Release {
            version,
            dependencies: dependencies.clone(),
        })
        .collect();
        catalogue.insert(name.clone(), releases);
        expected.insert(name.clone(), Version::new(1, minor, 0));
    }
    let root_name = node_name(0, 0);
    let root_minor = minors.get(&root_name).copied().unwrap_or(1);
    let root = Root::matching(&root_name, requirement(&mut rng, root_minor));
    Generated {
        root,
        catalogue,
        levels: names,
        expected,
    }
}

/// The bench's graph: [`BENCH_NODES`] nodes over [`BENCH_LEVELS`] levels.
pub fn bench_graph(seed: u64) -> Generated {
    graph(BENCH_NODES, BENCH_LEVELS, seed)
}
