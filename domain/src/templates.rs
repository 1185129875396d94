//! Log template mining: an implementation of Drain (He, Zhu, Zheng, Lyu: "Drain: An Online Log
//! Parsing Approach with Fixed Depth Tree", ICWS 2017), written for Agora.
//!
//! A line is masked (configured patterns become `<*>`), split on whitespace, and routed down a
//! fixed-depth tree: first by token count, then by its first `depth - 2` tokens (a token with a
//! digit routes as `<*>`). In the leaf, the line joins the most similar cluster if the share of
//! positions where the cluster's template equals the token is at least the similarity threshold
//! (the template then gets `<*>` where they differ), else it starts a new cluster.
//!
//! Pure and deterministic: the same lines in the same order give the same clusters.

use std::collections::HashMap;

use regex::Regex;

/// The wildcard in templates.
pub const WILDCARD: &str = "<*>";
/// Default tree depth (length layer + `depth - 2` token layers + leaves).
pub const DEFAULT_DEPTH: usize = 4;
/// Default similarity threshold.
pub const DEFAULT_SIMILARITY: f64 = 0.5;
/// Most children an inner node keeps before routing new tokens to `<*>`.
pub const DEFAULT_MAX_CHILDREN: usize = 100;

/// How to parse one kind of log.
#[derive(Clone, Debug)]
pub struct DrainConfig {
    pub depth: usize,
    pub similarity: f64,
    pub max_children: usize,
    /// Patterns replaced by `<*>` before tokenising (numbers, addresses, ids…).
    pub masks: Vec<Regex>,
}

impl Default for DrainConfig {
    fn default() -> Self {
        Self {
            depth: DEFAULT_DEPTH,
            similarity: DEFAULT_SIMILARITY,
            max_children: DEFAULT_MAX_CHILDREN,
            masks: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DrainConfigError {
    #[error("depth must be at least 3")]
    DepthTooSmall,
    #[error("similarity must be within 0..=1")]
    SimilarityOutOfRange,
    #[error("mask {pattern:?} is not a valid regular expression")]
    BadMask { pattern: String },
}

impl DrainConfig {
    pub fn new(depth: usize, similarity: f64, masks: &[&str]) -> Result<Self, DrainConfigError> {
        if depth < 3 {
            return Err(DrainConfigError::DepthTooSmall);
        }
        if !(0.0..=1.0).contains(&similarity) {
            return Err(DrainConfigError::SimilarityOutOfRange);
        }
        let masks = masks
            .iter()
            .map(|p| {
                Regex::new(p).map_err(|_| DrainConfigError::BadMask {
                    pattern: p.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            depth,
            similarity,
            max_children: DEFAULT_MAX_CHILDREN,
            masks,
        })
    }
}

/// One mined template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    pub id: usize,
    pub template: Vec<String>,
    pub size: usize,
}

impl Cluster {
    pub fn template_text(&self) -> String {
        self.template.join(" ")
    }
}

#[derive(Default)]
struct Node {
    children: HashMap<String, Node>,
    clusters: Vec<usize>,
}

/// The parser's state: the tree and the clusters found so far.
pub struct Drain {
    config: DrainConfig,
    root: HashMap<usize, Node>,
    clusters: Vec<Cluster>,
}

impl Drain {
    pub fn new(config: DrainConfig) -> Self {
        Self {
            config,
            root: HashMap::new(),
            clusters: Vec::new(),
        }
    }

    pub fn clusters(&self) -> &[Cluster] {
        &self.clusters
    }

    /// The masked tokens of a line.
    pub fn tokens(&self, line: &str) -> Vec<String> {
        let mut text = line.trim().to_string();
        for mask in &self.config.masks {
            if mask.is_match(&text) {
                text = mask.replace_all(&text, WILDCARD).into_owned();
            }
        }
        text.split_whitespace().map(str::to_string).collect()
    }

    /// Adds a line; returns the id of the cluster it joined or started.
    pub fn add(&mut self, line: &str) -> usize {
        let tokens = self.tokens(line);
        let leaf = leaf_for(
            &mut self.root,
            &tokens,
            self.config.depth,
            self.config.max_children,
        );
        let best = best_match(
            &self.clusters,
            &leaf.clusters,
            &tokens,
            self.config.similarity,
        );
        match best {
            Some(id) => {
                let cluster = &mut self.clusters[id];
                for (t, token) in cluster.template.iter_mut().zip(&tokens) {
                    if t != token {
                        *t = WILDCARD.to_string();
                    }
                }
                cluster.size += 1;
                id
            }
            None => {
                let id = self.clusters.len();
                leaf.clusters.push(id);
                self.clusters.push(Cluster {
                    id,
                    template: tokens,
                    size: 1,
                });
                id
            }
        }
    }

    /// The cluster a line would join, without changing anything.
    pub fn matching(&self, line: &str) -> Option<usize> {
        let tokens = self.tokens(line);
        let mut node = self.root.get(&tokens.len())?;
        for token in tokens.iter().take(self.config.depth - 2) {
            node = node
                .children
                .get(route_key(token))
                .or_else(|| node.children.get(WILDCARD))?;
        }
        best_match(
            &self.clusters,
            &node.clusters,
            &tokens,
            self.config.similarity,
        )
    }
}

/// Walks (and grows) the tree to the leaf for these tokens.
fn leaf_for<'a>(
    root: &'a mut HashMap<usize, Node>,
    tokens: &[String],
    depth: usize,
    max_children: usize,
) -> &'a mut Node {
    let mut node = root.entry(tokens.len()).or_default();
    for token in tokens.iter().take(depth - 2) {
        let key = route_key(token);
        let key = if node.children.contains_key(key) || node.children.len() + 1 < max_children {
            key
        } else {
            WILDCARD
        };
        node = node.children.entry(key.to_string()).or_default();
    }
    node
}

/// Tokens with a digit route as the wildcard: they are likely variables.
fn route_key(token: &str) -> &str {
    if token.bytes().any(|b| b.is_ascii_digit()) {
        WILDCARD
    } else {
        token
    }
}

/// The most similar cluster at or above `threshold` (ties: the one with more wildcards, then
/// the older), as Drain does.
fn best_match(
    clusters: &[Cluster],
    candidates: &[usize],
    tokens: &[String],
    threshold: f64,
) -> Option<usize> {
    let mut best: Option<(f64, usize, usize)> = None;
    for &id in candidates {
        let template = &clusters[id].template;
        if template.len() != tokens.len() {
            continue;
        }
        let (same, wild) =
            template
                .iter()
                .zip(tokens)
                .fold((0usize, 0usize), |(s, w), (t, tok)| {
                    if t == WILDCARD {
                        (s, w + 1)
                    } else if t == tok {
                        (s + 1, w)
                    } else {
                        (s, w)
                    }
                });
        let sim = if tokens.is_empty() {
            1.0
        } else {
            same as f64 / tokens.len() as f64
        };
        let better = match best {
            None => true,
            Some((bs, bw, _)) => sim > bs || (sim == bs && wild > bw),
        };
        if better {
            best = Some((sim, wild, id));
        }
    }
    best.filter(|(sim, _, _)| *sim >= threshold)
        .map(|(_, _, id)| id)
}

/// Grouping accuracy (Zhu et al., ICSE'19): the share of lines whose predicted group holds exactly
/// the same lines as their true group. `predicted[i]` and `truth[i]` label line `i`.
pub fn grouping_accuracy<P, T>(predicted: &[P], truth: &[T]) -> f64
where
    P: std::hash::Hash + Eq,
    T: std::hash::Hash + Eq,
{
    assert_eq!(
        predicted.len(),
        truth.len(),
        "one label per line on both sides"
    );
    if predicted.is_empty() {
        return 1.0;
    }
    let mut by_pred: HashMap<&P, Vec<usize>> = HashMap::new();
    let mut by_truth: HashMap<&T, Vec<usize>> = HashMap::new();
    for (i, (p, t)) in predicted.iter().zip(truth).enumerate() {
        by_pred.entry(p).or_default().push(i);
        by_truth.entry(t).or_default().push(i);
    }
    let correct: usize = by_pred
        .values()
        .filter(|lines| by_truth.get(&truth[lines[0]]) == Some(*lines))
        .map(Vec::len)
        .sum();
    correct as f64 / predicted.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(masks: &[&str]) -> Drain {
        Drain::new(DrainConfig::new(4, 0.5, masks).unwrap())
    }

    #[test]
    fn same_shape_lines_share_a_template() {
        let mut d = drain(&[r"blk_-?\d+"]);
        let a = d.add("PacketResponder 1 for block blk_38865049064139660 terminating");
        let b = d.add("PacketResponder 0 for block blk_-6952295868487656571 terminating");
        assert_eq!(a, b);
        assert_eq!(
            d.clusters()[a].template_text(),
            "PacketResponder <*> for block <*> terminating"
        );
        assert_eq!(d.clusters()[a].size, 2);
    }

    #[test]
    fn different_shapes_stay_apart() {
        let mut d = drain(&[]);
        let a = d.add("Receiving block src: /10.0.0.1 dest: /10.0.0.2");
        let b = d.add("Deleting block blk_1 file /data/x");
        let c = d.add("connection refused by peer");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(d.clusters().len(), 3);
        assert_eq!(d.matching("Deleting block blk_2 file /data/y"), Some(b));
        assert_eq!(d.matching("something never seen before at all"), None);
    }

    #[test]
    fn similarity_threshold_decides() {
        let strict = DrainConfig::new(4, 0.9, &[]).unwrap();
        let mut d = Drain::new(strict);
        // Same first two tokens, so the same leaf; 4 of 6 tokens equal.
        let a = d.add("user login alice from web ok");
        let b = d.add("user login bob from app ok");
        assert_ne!(a, b, "4/6 is below 0.9");
        let mut loose = drain(&[]);
        let a = loose.add("user login alice from web ok");
        let b = loose.add("user login bob from app ok");
        assert_eq!(a, b, "4/6 is above 0.5");
        assert_eq!(
            loose.clusters()[a].template_text(),
            "user login <*> from <*> ok"
        );
        // Different leading tokens route to different leaves: never merged.
        let c = loose.add("admin login carol from web ok");
        assert_ne!(a, c);
    }

    #[test]
    fn config_is_validated() {
        assert_eq!(
            DrainConfig::new(2, 0.5, &[]).unwrap_err(),
            DrainConfigError::DepthTooSmall
        );
        assert_eq!(
            DrainConfig::new(4, 1.5, &[]).unwrap_err(),
            DrainConfigError::SimilarityOutOfRange
        );
        assert!(matches!(
            DrainConfig::new(4, 0.5, &["("]),
            Err(DrainConfigError::BadMask { .. })
        ));
    }

    #[test]
    fn grouping_accuracy_counts_whole_groups() {
        // Lines 0,1 truly A; 2,3 truly B; 4 truly C.
        let truth = ["A", "A", "B", "B", "C"];
        assert_eq!(grouping_accuracy(&[1, 1, 2, 2, 3], &truth), 1.0);
        // B split in two: lines 2 and 3 both wrong.
        assert_eq!(grouping_accuracy(&[1, 1, 2, 4, 3], &truth), 0.6);
        // A and B merged: all four wrong.
        assert_eq!(grouping_accuracy(&[1, 1, 1, 1, 3], &truth), 0.2);
    }
}
