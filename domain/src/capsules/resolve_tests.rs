//! Tests of the resolver: hand-written graphs for each rule, generated graphs for scale.

use super::generate::{bench_graph, graph, node_name, Generated};
use super::*;

fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}

fn req(s: &str) -> VersionReq {
    VersionReq::parse(s).unwrap()
}

fn pin(name: &str, version: &str) -> Pin {
    Pin {
        name: name.into(),
        version: v(version),
    }
}

fn dep(spec: &str) -> Dependency {
    crate::capsules::manifest::parse_dependency(spec).unwrap()
}

/// A catalogue from `(name, version, [dependency specs])` rows.
fn catalogue(rows: &[(&str, &str, &[&str])]) -> BTreeMap<String, Vec<Release>> {
    let mut c: BTreeMap<String, Vec<Release>> = BTreeMap::new();
    for (name, version, deps) in rows {
        c.entry((*name).into()).or_default().push(Release {
            version: v(version),
            dependencies: deps.iter().map(|d| dep(d)).collect(),
        });
    }
    c
}

fn any(name: &str) -> Root {
    Root::matching(name, VersionReq::STAR)
}

#[test]
fn the_highest_matching_version_is_picked_and_dependencies_install_first() {
    let c = catalogue(&[
        ("app", "1.0.0", &["csv-kit ^1.2", "json-kit >=1.0, <2"]),
        ("csv-kit", "1.1.0", &[]),
        ("csv-kit", "1.4.2", &["json-kit ^1"]),
        ("csv-kit", "2.0.0", &[]),
        ("json-kit", "1.0.0", &[]),
        ("json-kit", "1.9.0", &[]),
    ]);
    let r = resolve(&any("app"), &c).unwrap();
    assert_eq!(r.root, pin("app", "1.0.0"));
    assert_eq!(r.picked["csv-kit"].version, v("1.4.2"));
    assert_eq!(r.picked["json-kit"].version, v("1.9.0"));
    assert_eq!(
        r.install_order,
        vec![
            pin("json-kit", "1.9.0"),
            pin("csv-kit", "1.4.2"),
            pin("app", "1.0.0")
        ]
    );
    // json-kit is reached directly and through csv-kit: its depth is the longest path.
    assert_eq!(r.picked["json-kit"].depth, 2);
    assert_eq!(r.depth, 2);
}

#[test]
fn an_exact_root_picks_that_version() {
    let c = catalogue(&[("app", "1.0.0", &[]), ("app", "1.1.0", &[])]);
    let r = resolve(&Root::exact("app", &v("1.0.0")), &c).unwrap();
    assert_eq!(r.root, pin("app", "1.0.0"));
    assert_eq!(r.depth, 0);
}

#[test]
fn a_conflict_names_both_requirers_and_requirements() {
    let c = catalogue(&[
        ("app", "1.0.0", &["a ^1", "b ^1"]),
        ("a", "1.0.0", &["shared ^1"]),
        ("b", "1.0.0", &["shared ^2"]),
        ("shared", "1.3.0", &[]),
        ("shared", "2.1.0", &[]),
    ]);
    assert_eq!(
        resolve(&any("app"), &c),
        Err(ResolveError::Conflict {
            name: "shared".into(),
            picked: v("1.3.0"),
            first: Box::new(Demand {
                by: Some(pin("a", "1.0.0")),
                requirement: req("^1"),
            }),
            second: Box::new(Demand {
                by: Some(pin("b", "1.0.0")),
                requirement: req("^2"),
            }),
        })
    );
}

#[test]
fn a_conflict_with_a_way_out_picks_the_highest_version_both_accept() {
    // a's ^1 picks shared 1.9.0 first; b then wants <1.5, which 1.4.0 also meets.
    let c = catalogue(&[
        ("app", "1.0.0", &["a ^1", "b ^1"]),
        ("a", "1.0.0", &["shared ^1"]),
        ("b", "1.0.0", &["shared >=1.0, <1.5"]),
        ("shared", "1.3.0", &[]),
        ("shared", "1.4.0", &[]),
        ("shared", "1.9.0", &[]),
        ("shared", "2.0.0", &[]),
    ]);
    let r = resolve(&any("app"), &c).unwrap();
    assert_eq!(r.picked["shared"].version, v("1.4.0"));
    assert_eq!(r.install_order.len(), 4);
}

#[test]
fn narrowing_also_applies_to_the_pick_of_a_dependency_reached_later() {
    // x ^1 picks 1.2.0 whose dependency needs y ^2; once x is narrowed to =1.0.0 by c, its
    // older release needs y ^1 instead, and the resolution follows it.
    let c = catalogue(&[
        ("app", "1.0.0", &["x ^1", "c ^1"]),
        ("x", "1.0.0", &["y ^1"]),
        ("x", "1.2.0", &["y ^2"]),
        ("c", "1.0.0", &["x =1.0.0"]),
        ("y", "1.5.0", &[]),
        ("y", "2.1.0", &[]),
    ]);
    let r = resolve(&any("app"), &c).unwrap();
    assert_eq!(r.picked["x"].version, v("1.0.0"));
    assert_eq!(r.picked["y"].version, v("1.5.0"));
}

#[test]
fn a_cycle_is_named_in_order() {
    let c = catalogue(&[
        ("app", "1.0.0", &["a"]),
        ("a", "1.0.0", &["b"]),
        ("b", "1.0.0", &["c"]),
        ("c", "1.0.0", &["a"]),
    ]);
    let err = resolve(&any("app"), &c).unwrap_err();
    assert_eq!(
        err,
        ResolveError::Cycle {
            cycle: vec!["a".into(), "b".into(), "c".into(), "a".into()]
        }
    );
    assert_eq!(err.to_string(), "dependency cycle: a -> b -> c -> a");
}

#[test]
fn a_capsule_requiring_itself_is_a_cycle() {
    let c = catalogue(&[("app", "1.0.0", &["app ^1"])]);
    assert_eq!(
        resolve(&any("app"), &c),
        Err(ResolveError::Cycle {
            cycle: vec!["app".into(), "app".into()]
        })
    );
}

#[test]
fn an_unknown_capsule_names_the_path() {
    let c = catalogue(&[("app", "1.0.0", &["a"]), ("a", "1.2.0", &["ghost ^1"])]);
    assert_eq!(
        resolve(&any("app"), &c),
        Err(ResolveError::UnknownCapsule {
            name: "ghost".into(),
            path: vec![pin("app", "1.0.0"), pin("a", "1.2.0")],
        })
    );
    assert_eq!(
        resolve(&any("nothing"), &c),
        Err(ResolveError::UnknownCapsule {
            name: "nothing".into(),
            path: vec![],
        })
    );
}

#[test]
fn no_matching_version_names_the_requirement_and_path() {
    let c = catalogue(&[("app", "1.0.0", &["a ^3"]), ("a", "1.2.0", &[])]);
    assert_eq!(
        resolve(&any("app"), &c),
        Err(ResolveError::NoMatchingVersion {
            name: "a".into(),
            requirement: req("^3"),
            path: vec![pin("app", "1.0.0")],
        })
    );
    let err = resolve(&Root::exact("app", &v("9.0.0")), &c).unwrap_err();
    assert!(matches!(err, ResolveError::NoMatchingVersion { ref name, .. } if name == "app"));
}

#[test]
fn prereleases_are_only_picked_when_asked_for() {
    let c = catalogue(&[("a", "1.0.0", &[]), ("a", "1.1.0-beta.1", &[])]);
    assert_eq!(resolve(&any("a"), &c).unwrap().root, pin("a", "1.0.0"));
    let r = resolve(&Root::exact("a", &v("1.1.0-beta.1")), &c).unwrap();
    assert_eq!(r.root, pin("a", "1.1.0-beta.1"));
}

/// A chain `c0 -> c1 -> … -> c{len-1}`.
fn chain(len: usize) -> BTreeMap<String, Vec<Release>> {
    let mut c = BTreeMap::new();
    for i in 0..len {
        let dependencies = if i + 1 < len {
            vec![dep(&format!("c{} ^1", i + 1))]
        } else {
            vec![]
        };
        c.insert(
            format!("c{i}"),
            vec![Release {
                version: v("1.0.0"),
                dependencies,
            }],
        );
    }
    c
}

#[test]
fn depth_up_to_the_limit_resolves_and_one_more_is_too_deep() {
    let r = resolve(&any("c0"), &chain(MAX_DEPTH + 1)).unwrap();
    assert_eq!(r.depth, MAX_DEPTH);
    match resolve(&any("c0"), &chain(MAX_DEPTH + 2)) {
        Err(ResolveError::TooDeep { max_depth, path }) => {
            assert_eq!(max_depth, MAX_DEPTH);
            assert_eq!(path.len(), MAX_DEPTH + 1);
            assert_eq!(path[0], pin("c0", "1.0.0"));
        }
        other => panic!("expected TooDeep, got {other:?}"),
    }
}

#[test]
fn a_long_path_reached_after_a_short_one_is_still_too_deep() {
    // x is first reached at depth 1, its long tail later makes the graph too deep through
    // root -> c0 -> … -> c(MAX_DEPTH-1) -> x.
    let mut c = chain(MAX_DEPTH);
    c.insert(
        "root".into(),
        vec![Release {
            version: v("1.0.0"),
            dependencies: vec![dep("x ^1"), dep("c0 ^1")],
        }],
    );
    c.insert(
        "x".into(),
        vec![Release {
            version: v("1.0.0"),
            dependencies: vec![],
        }],
    );
    let last = format!("c{}", MAX_DEPTH - 1);
    if let Some(releases) = c.get_mut(&last) {
        releases[0].dependencies.push(dep("x ^1"));
    }
    match resolve(&any("root"), &c) {
        Err(ResolveError::TooDeep { path, .. }) => {
            assert_eq!(path.len(), MAX_DEPTH + 2);
            assert_eq!(path.last(), Some(&pin("x", "1.0.0")));
        }
        other => panic!("expected TooDeep, got {other:?}"),
    }
}

#[test]
fn more_than_the_node_limit_is_refused() {
    let mut c = BTreeMap::new();
    let deps: Vec<Dependency> = (0..MAX_NODES).map(|i| dep(&format!("leaf{i}"))).collect();
    c.insert(
        "hub".to_owned(),
        vec![Release {
            version: v("1.0.0"),
            dependencies: deps,
        }],
    );
    for i in 0..MAX_NODES {
        c.insert(
            format!("leaf{i}"),
            vec![Release {
                version: v("1.0.0"),
                dependencies: vec![],
            }],
        );
    }
    assert_eq!(
        resolve(&any("hub"), &c),
        Err(ResolveError::TooManyNodes {
            max_nodes: MAX_NODES
        })
    );
}

/// Every demand in the resolved graph accepts the picked version, which is the highest such.
fn assert_consistent(g: &Generated, r: &Resolution) {
    assert_eq!(r.picked.len(), g.expected.len());
    for (name, resolved) in &r.picked {
        assert_eq!(&resolved.version, &g.expected[name], "{name}");
        let release = g.catalogue[name]
            .iter()
            .find(|rel| rel.version == resolved.version)
            .unwrap();
        for d in &release.dependencies {
            assert!(d.requirement.matches(&r.picked[&d.name].version));
            assert!(r.picked[&d.name].depth > resolved.depth);
        }
    }
    let position: BTreeMap<&str, usize> = r
        .install_order
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();
    for (name, resolved) in &r.picked {
        for d in &resolved.dependencies {
            assert!(position[d.as_str()] < position[name.as_str()]);
        }
    }
}

#[test]
fn generated_graphs_of_5_to_8_levels_resolve_consistently() {
    for levels in 5..=8 {
        for seed in 0..8 {
            let g = graph(60 + 10 * levels, levels, seed);
            let r = resolve(&g.root, &g.catalogue).unwrap();
            assert_eq!(r.depth, levels - 1, "levels {levels} seed {seed}");
            assert_consistent(&g, &r);
        }
    }
}

#[test]
fn the_bench_graph_has_200_nodes_over_6_levels() {
    let g = bench_graph(42);
    let r = resolve(&g.root, &g.catalogue).unwrap();
    assert_eq!(r.picked.len(), 200);
    assert_eq!(r.depth, 5);
    assert_eq!(g.levels.len(), 6);
    assert_consistent(&g, &r);
    // Deterministic: the same seed, the same resolution.
    assert_eq!(resolve(&g.root, &g.catalogue), Ok(r));
}

#[test]
fn a_back_edge_in_a_generated_graph_is_reported_as_a_cycle() {
    let mut g = graph(120, 6, 7);
    let (root, deepest) = (node_name(0, 0), node_name(5, 0));
    for release in g.catalogue.get_mut(&deepest).unwrap() {
        release.dependencies.push(dep(&format!("{root} ^1")));
    }
    match resolve(&g.root, &g.catalogue) {
        Err(ResolveError::Cycle { cycle }) => {
            assert_eq!(cycle.first(), Some(&root));
            assert_eq!(cycle.last(), Some(&root));
            // Edges skip at most one level: 3 to 5 steps down, then back up.
            assert!((5..=7).contains(&cycle.len()), "{cycle:?}");
            assert_eq!(cycle[cycle.len() - 2], deepest);
            // Each step is a declared dependency.
            for pair in cycle.windows(2) {
                let deps = &g.catalogue[&pair[0]][0].dependencies;
                assert!(deps.iter().any(|d| d.name == pair[1]), "{pair:?}");
            }
        }
        other => panic!("expected a cycle, got {other:?}"),
    }
}

#[test]
fn a_tightened_requirement_in_a_generated_graph_is_a_conflict() {
    let mut g = graph(100, 5, 3);
    // A level-2 node with two requirers; the second (in catalogue order) asks for the 2.x line.
    let requirers_of = |g: &Generated, target: &str| -> Vec<String> {
        g.catalogue
            .iter()
            .filter(|(_, rs)| rs[0].dependencies.iter().any(|d| d.name == target))
            .map(|(n, _)| n.clone())
            .collect()
    };
    let target = g.levels[2]
        .iter()
        .find(|n| requirers_of(&g, n).len() >= 2)
        .cloned()
        .expect("the generator gives some node two requirers");
    let requirers = requirers_of(&g, &target);
    for release in g.catalogue.get_mut(&requirers[1]).unwrap() {
        for d in &mut release.dependencies {
            if d.name == target {
                d.requirement = req("^2");
            }
        }
    }
    match resolve(&g.root, &g.catalogue) {
        Err(ResolveError::Conflict {
            name,
            first,
            second,
            ..
        }) => {
            assert_eq!(name, target);
            assert!(first.requirement == req("^2") || second.requirement == req("^2"));
            assert_ne!(first.by, second.by);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[test]
fn a_resolution_round_trips_through_json() {
    let g = graph(40, 5, 1);
    let r = resolve(&g.root, &g.catalogue).unwrap();
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(serde_json::from_str::<Resolution>(&json).unwrap(), r);
}
