//! Log template mining: an implementation of Drain (He, Zhu, Zheng, Lyu: "Drain: An Online Log
//! Parsing Approach with Fixed Depth Tree", ICWS 2017), written for Agora.
//!
//! A line is masked (configured patterns become `<*>`), tokenised, and routed down a fixed-depth
//! tree: first by token count, then by its first `depth - 2` tokens (a token that looks variable
//! routes as `<*>`). In the leaf, the line joins the most similar cluster if the share of
//! compared positions where the cluster's template equals the token is at least the similarity
//! threshold (the template then gets `<*>` where they differ), else it starts a new cluster.
//! (logparser's Drain routes on `depth - 3` tokens for the same `depth`; one more layer scored
//! better on Loghub-2k with the benchmark's depths, so `depth` keeps this module's meaning.)
//!
//! Departures from the original, each general (none knows anything of a particular log):
//!
//! * **Key-value tokenisation** ([`DrainConfig::split_key_values`]). Inside a whitespace-separated
//!   chunk, a token also ends before `=` (always), before a single `:` that follows an
//!   identifier-like key (letters, `_`, `.`, `-`: so `isOverlap:false` splits but a time
//!   `12:30:05`, an address `fe80:0:1` or a scope `Foo::bar` does not) and before a `,` that is
//!   followed by a letter (`a=1,b=2`, but not `[1,2]`). The delimiters stay with the value
//!   (`isOverlap` `:false,`), so templates still read like the log (`isOverlap:<*>,
//!   getTopPadding=<*>`): [`Cluster::template_text`] rebuilds the original spacing. Like
//!   logparser's regex preprocessing, this lets a changed value cost one token, not the whole
//!   `key=value` token.
//! * **Variable tokens route as `<*>`.** Besides a token with a digit (as in Drain), a token that
//!   a mask touched (`blk_<*>`, a UUID shredded by a digit mask) and the value of a key-value pair
//!   route as `<*>`, so lines of one template that differ in a value do not end in different
//!   leaves (`ret:true` / `ret:false`). They are still compared as text for similarity.
//! * **Similarity over the constant part.** Drain (logparser's `seqDist`) counts a template's
//!   `<*>` as unequal to every token, so a line that is mostly parameters cannot reach a high
//!   threshold. Here a template's `<*>` takes any token and is not compared, and neither is a
//!   position where both the template and the line hold a variable token (a mask's wildcard, a
//!   token with a digit, a key-value value) that differ: the similarity is the share of equal
//!   tokens among the rest, the constant part (`<*> close, <*> sent, <*> received, lifetime <*>`
//!   is 4/4). The threshold then keeps its meaning for the words of the message. A template with
//!   nothing left to compare takes only lines with nothing constant in them (so an all-`<*>`
//!   template does not swallow its leaf). Ties go to the template with more wildcards, then the
//!   older.
//! * **Settled templates** ([`DrainConfig::settled_after_lines`]). Once that many lines have
//!   joined a template, a line joins it only if every constant compared is equal: a word that
//!   stayed the same over many lines is taken for part of the message, so `… by client SPP.`
//!   does not turn a long-lived `… by client WindowsUpdateAgent.` into `… by client <*>`. A young
//!   template still learns its parameters (usernames, hosts), and once learnt, a `<*>` takes any
//!   token however settled the template is. Off unless configured (the per-system benchmark
//!   settings are plain Drain).
//! * **Variable-length parameters** ([`DrainConfig::collapse_wildcards`]). A run of adjacent
//!   wildcards counts as one token (`delete <*> <*> <*>` is `delete <*>`), so a list of ids does
//!   not change the token count, which Drain's first layer splits on.
//!
//! Speed: masks are run with one search each and write into reused buffers; the tokeniser is one
//! pass over the bytes with a class table and yields slices of the masked line (no allocation per
//! token); only routing tokens are hashed (into ids, with the standard DoS-resistant hasher, as
//! they come from the input), and the tree is one map of `(node, id)` edges with a fast hasher;
//! templates are compared with the line by slice equality, and strings are allocated only when a
//! cluster is created or a template token becomes a wildcard.
//!
//! Pure and deterministic: the same lines in the same order give the same clusters.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use regex::Regex;

/// The wildcard in templates.
pub const WILDCARD: &str = "<*>";
/// Default tree depth (length layer + `depth - 2` token layers + leaves).
pub const DEFAULT_DEPTH: usize = 4;
/// Default similarity threshold.
pub const DEFAULT_SIMILARITY: f64 = 0.5;
/// Most children an inner node keeps before routing new tokens to `<*>`.
pub const DEFAULT_MAX_CHILDREN: usize = 100;
/// Most clusters one leaf of the tree holds: a line is compared with at most this many
/// templates. A line that matches none of a full leaf's joins the most similar one (below the
/// threshold), so crafted logs of distinct templates cost lines × this, not lines².
pub const MAX_CLUSTERS_PER_LEAF: usize = 64;
/// Most templates one parser mines (one log). Past it, a line that matches nothing joins the
/// most similar template of its leaf, or the one overflow template (`<*>`) if its leaf is empty.
pub const MAX_TEMPLATES: usize = 5_000;

/// Masks for logs of unknown origin (CI, build and runtime logs): the variable parts such logs
/// share, most specific first so that a timestamp becomes one wildcard, not three numbers.
///
/// In order: ISO-8601-like date-times (`2024-01-02T03:04:05.678Z`, `2024/01/02 03:04:05,123`),
/// syslog times (`Jan  2 03:04:05`) and clock times (`03:04:05.123`); UUIDs; URLs (`scheme://…`);
/// IPv6 and IPv4 addresses with an optional port; e-mail addresses; file paths (absolute,
/// `./`, `../`, `~/`, `C:\`, or relative with two slashes or a file extension) with an optional
/// `:line[:col]`; `0x` hex and bare hex ids of at least 6 hex digits that hold a digit (commit
/// hashes, addresses); double-quoted strings; durations (`12ms`, `1.5s`, `3m20s`); sizes
/// (`12MB`, `4 KiB`, `512 bytes`, `2048 bytes (2.00 KB)`); and any other number (sign,
/// decimals, exponent, `%`).
pub fn general_masks() -> &'static [&'static str] {
    GENERAL_MASKS
}

const GENERAL_MASKS: &[&str] = &[
    r"\b\d{4}[-/]\d{2}[-/]\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?(?:[.,]\d+)?(?:\s?(?:Z|[+-]\d{2}:?\d{2}))?)?",
    r"\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d{1,2} \d{2}:\d{2}:\d{2}\b",
    r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b",
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",
    r#"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>]+"#,
    r"\[?\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b(?:\]:\d+)?",
    r"\[?\b(?:[0-9a-fA-F]{1,4}:)+:(?:[0-9a-fA-F]{1,4}:)*[0-9a-fA-F]*\d[0-9a-fA-F]*\b(?:\]:\d+)?",
    r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b",
    r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b",
    r"(?:\b[A-Za-z]:\\|~/|\.{1,2}/|\B/)[\w.@+-]+(?:[/\\][\w.@+-]+)*/?(?::\d+){0,2}",
    r"\b[\w.@+-]+(?:/[\w.@+-]+){2,}(?::\d+){0,2}",
    r"\b[\w@+-]+(?:/[\w.@+-]+)*/[\w@+-]+\.[A-Za-z]\w*(?::\d+){0,2}",
    r"\b0[xX][0-9a-fA-F]+\b",
    r"\b[a-fA-F]*\d[0-9a-fA-F]{5,}\b",
    r#""[^"]*""#,
    r"\b\d+(?:\.\d+)?(?:ns|us|µs|ms|s|sec|secs|m|min|h|d)(?:\d+(?:\.\d+)?(?:ms|s|m))*\b",
    r"\b\d+(?:\.\d+)?(?:\s?(?:[KMGTP]i?B|bytes?)|[kKMGTP]|B)\b(?: \(\d+(?:\.\d+)?\s?[KMGTP]?i?B\))?",
    r"(?:\B[-+])?\b\d+(?:\.\d+)*(?:[eE][-+]?\d+)?\b%?",
];

/// How to parse one kind of log.
#[derive(Clone, Debug)]
pub struct DrainConfig {
    pub depth: usize,
    pub similarity: f64,
    pub max_children: usize,
    /// Patterns replaced by `<*>` before tokenising (numbers, addresses, ids…).
    pub masks: Vec<Regex>,
    /// Split `key=value`, `key:value` and `a,b` inside whitespace-separated chunks (see the
    /// module documentation).
    pub split_key_values: bool,
    /// A run of adjacent wildcards counts as one token.
    pub collapse_wildcards: bool,
    /// Before the masks, every piece of a whitespace-separated chunk (split at `=,()[]{}|;`)
    /// that holds an ASCII digit becomes `<*>` (one byte pass, no regex): a coarse, fast mask
    /// for logs of unknown origin.
    pub digit_chunks_as_wildcards: bool,
    /// Once this many lines have joined a cluster, its constant tokens are settled: a line
    /// joins it only if every constant it is compared on is equal (so it turns no constant
    /// into `<*>`; a key-value value still may). `None`: never settled (plain Drain).
    pub settled_after_lines: Option<usize>,
    /// Similarity over the constant part: a template's `<*>` takes any token, and positions
    /// where both sides hold differing variable tokens are not compared (see the module
    /// documentation). Off: a template's `<*>` counts as unequal to a token that is not a
    /// mask's wildcard, as in Drain (the per-system benchmark settings).
    pub compare_constant_part: bool,
}

impl Default for DrainConfig {
    fn default() -> Self {
        Self {
            depth: DEFAULT_DEPTH,
            similarity: DEFAULT_SIMILARITY,
            max_children: DEFAULT_MAX_CHILDREN,
            masks: Vec::new(),
            split_key_values: true,
            collapse_wildcards: true,
            digit_chunks_as_wildcards: false,
            settled_after_lines: None,
            compare_constant_part: false,
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
            masks,
            ..Self::default()
        })
    }

    /// Depth 4, similarity 0.5 and [`general_masks`]: for logs of unknown origin.
    pub fn general() -> Self {
        Self::new(DEFAULT_DEPTH, DEFAULT_SIMILARITY, general_masks())
            .expect("the general masks compile")
    }
}

/// Bytes that end a piece inside a whitespace-separated chunk in
/// [`DrainConfig::digit_chunks_as_wildcards`] mode: the structure of `key=value,key=value`,
/// `call(1, 2)`, `a|b|c` and `{…}` stays, and only the pieces between them that hold a digit
/// become `<*>`. `.`, `/`, `-`, `_` and `:` do not split, so an address, a path, a version, a
/// time or `host:port` is one wildcard.
const PIECE_DELIMITERS: &[u8] = b"=,()[]{}|;";

/// Appends `chunk` to `text` with every piece (between [`PIECE_DELIMITERS`]) that holds an
/// ASCII digit replaced by [`WILDCARD`]. One pass, no allocation beyond `text`.
fn push_digit_pieces(text: &mut String, chunk: &str) {
    if !chunk.bytes().any(|b| b.is_ascii_digit()) {
        text.push_str(chunk);
        return;
    }
    let mut start = 0;
    let mut digit = false;
    for (i, b) in chunk.bytes().enumerate() {
        if PIECE_DELIMITERS.contains(&b) {
            text.push_str(if digit { WILDCARD } else { &chunk[start..i] });
            text.push(b as char);
            start = i + 1;
            digit = false;
        } else if b.is_ascii_digit() {
            digit = true;
        }
    }
    text.push_str(if digit { WILDCARD } else { &chunk[start..] });
}

/// One mined template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    pub id: usize,
    /// The template's tokens (with their `=`, `:`, `,` delimiters; whitespace not included).
    pub template: Vec<String>,
    pub size: usize,
    /// Whether whitespace preceded each token (in the line that started the cluster).
    spaced: Vec<bool>,
    /// Per token: whether it is a wildcard, and its delimiters.
    slots: Vec<Slot>,
}

impl Cluster {
    /// The template as text, spaced as the log was (`key=<*>, next=<*>`).
    pub fn template_text(&self) -> String {
        let mut text = String::new();
        for (i, (token, spaced)) in self.template.iter().zip(&self.spaced).enumerate() {
            if i > 0 && *spaced {
                text.push(' ');
            }
            text.push_str(token);
        }
        text
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    wild: bool,
    /// The token that started the cluster here routed as `<*>` (see [`Token::variable`]).
    variable: bool,
    /// Lengths of the delimiters before and after the token's core.
    pre: u32,
    post: u32,
}

/// FxHash (as in rustc): fast for the small integer keys of the tree.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// The route key of a token that routes as the wildcard.
const ROUTE_WILD: u32 = u32::MAX;

/// One token of a line: a slice of the masked text.
#[derive(Clone, Copy, Debug)]
struct Token {
    /// Byte range of the whole token (its delimiters included) in the masked text.
    start: u32,
    end: u32,
    /// Lengths of the delimiters before and after the token's core.
    pre: u32,
    post: u32,
    /// Whitespace precedes the token.
    spaced: bool,
    /// The core is a mask's wildcard.
    wild: bool,
    /// Routes as `<*>`: a wildcard, a digit, a partly masked core, or a key-value pair's value.
    variable: bool,
}

/// Buffers for one line, reused from line to line.
#[derive(Default)]
struct Scratch {
    text: String,
    spare: String,
    tokens: Vec<Token>,
}

impl Scratch {
    fn text(&self, t: &Token) -> &str {
        &self.text[t.start as usize..t.end as usize]
    }
}

/// The parser's state: the tree and the clusters found so far.
pub struct Drain {
    config: DrainConfig,
    /// The tree's edges: (node, key) → child. Node 0 is the root, whose keys are token counts;
    /// below, keys are ids of the routing tokens' texts in `keys` (or [`ROUTE_WILD`]).
    edges: FxMap<(u32, u32), u32>,
    nodes: Vec<Node>,
    /// Ids of the token texts that key the tree (only those: values do not accumulate).
    keys: HashMap<Box<str>, u32>,
    clusters: Vec<Cluster>,
    scratch: Scratch,
    /// The catch-all cluster lines join once [`MAX_TEMPLATES`] is reached.
    overflow: Option<usize>,
    /// Template comparisons made by [`Drain::add`] so far.
    comparisons: u64,
}

#[derive(Default)]
struct Node {
    children: usize,
    /// For a leaf: its clusters.
    clusters: Vec<u32>,
}

impl Drain {
    pub fn new(config: DrainConfig) -> Self {
        Self {
            config,
            edges: FxMap::default(),
            nodes: vec![Node::default()],
            keys: HashMap::new(),
            clusters: Vec::new(),
            scratch: Scratch::default(),
            overflow: None,
            comparisons: 0,
        }
    }

    pub fn clusters(&self) -> &[Cluster] {
        &self.clusters
    }

    /// Template comparisons made by [`Drain::add`] so far (at most [`MAX_CLUSTERS_PER_LEAF`]
    /// per line).
    pub fn comparisons(&self) -> u64 {
        self.comparisons
    }

    /// The most clusters any leaf holds (at most [`MAX_CLUSTERS_PER_LEAF`]).
    pub fn largest_leaf(&self) -> usize {
        self.nodes
            .iter()
            .map(|n| n.clusters.len())
            .max()
            .unwrap_or(0)
    }

    /// The catch-all cluster, made the first time a line finds no room (see [`MAX_TEMPLATES`]).
    fn overflow_cluster(&mut self) -> usize {
        if let Some(id) = self.overflow {
            return id;
        }
        let id = self.clusters.len();
        self.clusters.push(Cluster {
            id,
            template: vec![WILDCARD.to_string()],
            size: 0,
            spaced: vec![false],
            slots: vec![Slot {
                wild: true,
                variable: true,
                pre: 0,
                post: 0,
            }],
        });
        self.overflow = Some(id);
        id
    }

    /// The masked tokens of a line, with their delimiters (`key`, `=<*>,`).
    pub fn tokens(&self, line: &str) -> Vec<String> {
        let mut scratch = Scratch::default();
        self.prepare(line, &mut scratch);
        scratch
            .tokens
            .iter()
            .map(|t| scratch.text(t).to_string())
            .collect()
    }

    /// Masks and tokenises `line` into `scratch`.
    fn prepare(&self, line: &str, scratch: &mut Scratch) {
        let Scratch {
            text,
            spare,
            tokens,
        } = scratch;
        text.clear();
        if self.config.digit_chunks_as_wildcards {
            for (i, chunk) in line.split_ascii_whitespace().enumerate() {
                if i > 0 {
                    text.push(' ');
                }
                push_digit_pieces(text, chunk);
            }
        } else {
            text.push_str(line.trim());
        }
        for mask in &self.config.masks {
            let mut matches = mask.find_iter(text).peekable();
            if matches.peek().is_none() {
                continue;
            }
            spare.clear();
            let mut last = 0;
            for m in matches {
                spare.push_str(&text[last..m.start()]);
                spare.push_str(WILDCARD);
                last = m.end();
            }
            spare.push_str(&text[last..]);
            std::mem::swap(text, spare);
        }
        tokenise(text, self.config.split_key_values, tokens);
        if self.config.collapse_wildcards {
            collapse_wildcards(text, spare, tokens);
        }
    }

    /// Adds a line; returns the id of the cluster it joined or started.
    pub fn add(&mut self, line: &str) -> usize {
        let mut scratch = std::mem::take(&mut self.scratch);
        self.prepare(line, &mut scratch);
        let leaf = self.leaf_for(&scratch);
        let candidates = &self.nodes[leaf].clusters;
        self.comparisons += candidates.len() as u64;
        let full =
            candidates.len() >= MAX_CLUSTERS_PER_LEAF || self.clusters.len() >= MAX_TEMPLATES;
        // A full leaf (or parser) takes the most similar template whatever the threshold.
        let threshold = if full { 0.0 } else { self.config.similarity };
        let settled = if full {
            None
        } else {
            self.config.settled_after_lines
        };
        let mut best = best_match(
            &self.clusters,
            candidates,
            &scratch,
            Acceptance {
                threshold,
                settled,
                constant_part: self.config.compare_constant_part,
            },
        );
        if best.is_none() && full {
            best = Some(self.overflow_cluster());
        }
        let id = match best {
            Some(id) => {
                let cluster = &mut self.clusters[id];
                for ((slot, kept), t) in cluster
                    .slots
                    .iter_mut()
                    .zip(&mut cluster.template)
                    .zip(&scratch.tokens)
                {
                    if *kept == scratch.text(t) || (slot.wild && is_generic(kept, slot)) {
                        continue;
                    }
                    *kept = format!(
                        "{}{WILDCARD}{}",
                        &kept[..slot.pre as usize],
                        &kept[kept.len() - slot.post as usize..]
                    );
                    slot.wild = true;
                }
                cluster.size += 1;
                id
            }
            None => {
                let id = self.clusters.len();
                self.nodes[leaf].clusters.push(id as u32);
                let tokens = &scratch.tokens;
                self.clusters.push(Cluster {
                    id,
                    template: tokens.iter().map(|t| scratch.text(t).to_string()).collect(),
                    size: 1,
                    spaced: tokens.iter().map(|t| t.spaced).collect(),
                    slots: tokens
                        .iter()
                        .map(|t| Slot {
                            wild: t.wild,
                            variable: t.variable,
                            pre: t.pre,
                            post: t.post,
                        })
                        .collect(),
                });
                id
            }
        };
        self.scratch = scratch;
        id
    }

    /// The cluster a line would join, without changing anything.
    pub fn matching(&self, line: &str) -> Option<usize> {
        let mut scratch = Scratch::default();
        self.prepare(line, &mut scratch);
        let mut node = *self.edges.get(&(0, scratch.tokens.len() as u32))?;
        for t in scratch.tokens.iter().take(self.config.depth - 2) {
            let literal = if t.variable {
                None
            } else {
                self.keys
                    .get(scratch.text(t))
                    .and_then(|&key| self.edges.get(&(node, key)))
            };
            node = match literal {
                Some(&child) => child,
                None => *self.edges.get(&(node, ROUTE_WILD))?,
            };
        }
        best_match(
            &self.clusters,
            &self.nodes[node as usize].clusters,
            &scratch,
            Acceptance {
                threshold: self.config.similarity,
                settled: self.config.settled_after_lines,
                constant_part: self.config.compare_constant_part,
            },
        )
    }

    /// Walks (and grows) the tree to the leaf for the line in `scratch`.
    fn leaf_for(&mut self, scratch: &Scratch) -> usize {
        let mut node = self.child(0, scratch.tokens.len() as u32);
        for t in scratch.tokens.iter().take(self.config.depth - 2) {
            let key = if t.variable {
                ROUTE_WILD
            } else {
                let text = scratch.text(t);
                match self.keys.get(text) {
                    Some(&key) if self.edges.contains_key(&(node, key)) => key,
                    _ if self.nodes[node as usize].children + 1 >= self.config.max_children => {
                        ROUTE_WILD
                    }
                    Some(&key) => key,
                    None => {
                        let key = self.keys.len() as u32;
                        assert!(key < ROUTE_WILD, "too many distinct routing tokens");
                        self.keys.insert(text.into(), key);
                        key
                    }
                }
            };
            node = self.child(node, key);
        }
        node as usize
    }

    fn child(&mut self, node: u32, key: u32) -> u32 {
        if let Some(&child) = self.edges.get(&(node, key)) {
            return child;
        }
        let child = self.nodes.len() as u32;
        self.nodes.push(Node::default());
        self.nodes[node as usize].children += 1;
        self.edges.insert((node, key), child);
        child
    }
}

/// Whether a template token is its delimiters around `<*>`.
fn is_generic(token: &str, slot: &Slot) -> bool {
    let pre = slot.pre as usize;
    token.len() == pre + slot.post as usize + WILDCARD.len()
        && token.get(pre..pre + WILDCARD.len()) == Some(WILDCARD)
}

/// Byte classes for the tokeniser.
const SPACE: u8 = 1;
const DELIMITER: u8 = 2;
const DIGIT: u8 = 4;
const OPEN: u8 = 8;

const CLASSES: [u8; 256] = {
    let mut classes = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        classes[b] = if c.is_ascii_whitespace() {
            SPACE
        } else if matches!(c, b'=' | b':' | b',') {
            DELIMITER
        } else if c.is_ascii_digit() {
            DIGIT
        } else if c == b'<' {
            OPEN
        } else {
            0
        };
        b += 1;
    }
    classes
};

#[inline]
fn class(b: u8) -> u8 {
    CLASSES[b as usize]
}

/// Whether a run of delimiters between `key` and the byte `next` ends a token.
fn splits(key: &[u8], run: &[u8], next: u8) -> bool {
    if run.contains(&b'=') {
        return true;
    }
    match run {
        b":" => key_like(key),
        b"," => next.is_ascii_alphabetic(),
        _ => false,
    }
}

/// An identifier-like key: a letter or `_`, then letters, `_`, `.`, `-` (no digits, so that
/// times, addresses and hex are not split).
fn key_like(key: &[u8]) -> bool {
    matches!(key.first(), Some(b) if b.is_ascii_alphabetic() || *b == b'_')
        && key
            .iter()
            .all(|b| b.is_ascii_alphabetic() || matches!(b, b'_' | b'.' | b'-'))
}

/// Splits masked text into tokens on whitespace and, with `split`, on key-value delimiters
/// (see the module documentation). One pass over the bytes.
fn tokenise(text: &str, split: bool, tokens: &mut Vec<Token>) {
    tokens.clear();
    let bytes = text.as_bytes();
    let n = bytes.len();
    let delimiter = if split { DELIMITER } else { 0 };
    let mut i = 0;
    let mut spaced = false;
    while i < n {
        if class(bytes[i]) & SPACE != 0 {
            spaced = true;
            i += 1;
            continue;
        }
        // A token: [p, core_start) leading delimiters, [core_start, core_end) its core,
        // [core_end, i) trailing delimiters (before whitespace or the end only).
        let p = i;
        while i < n && class(bytes[i]) & delimiter != 0 {
            i += 1;
        }
        let core_start = i;
        let mut seen = 0u8;
        let core_end = loop {
            while i < n {
                let c = class(bytes[i]);
                if c & (SPACE | delimiter) != 0 {
                    break;
                }
                seen |= c;
                i += 1;
            }
            if i == n || class(bytes[i]) & SPACE != 0 {
                break i;
            }
            let run = i;
            while i < n && class(bytes[i]) & delimiter != 0 {
                i += 1;
            }
            if i == n || class(bytes[i]) & SPACE != 0 {
                break run;
            }
            if splits(&bytes[core_start..run], &bytes[run..i], bytes[i]) {
                i = run;
                break run;
            }
        };
        let core = &bytes[core_start..core_end];
        let wild = core == WILDCARD.as_bytes();
        let variable = wild
            || seen & DIGIT != 0
            || (seen & OPEN != 0 && core.windows(3).any(|w| w == WILDCARD.as_bytes()))
            || (core_start < core_end
                && bytes[p..core_start]
                    .iter()
                    .any(|b| matches!(b, b'=' | b':')));
        tokens.push(Token {
            start: p as u32,
            end: i as u32,
            pre: (core_start - p) as u32,
            post: (i - core_end) as u32,
            spaced,
            wild,
            variable,
        });
        spaced = false;
    }
}

/// Merges each run of adjacent wildcard tokens into one (its first token's leading delimiters,
/// `<*>`, its last token's trailing ones), rewriting `text`; `spare` is a reused buffer.
fn collapse_wildcards(text: &mut String, spare: &mut String, tokens: &mut Vec<Token>) {
    if !tokens.windows(2).any(|w| w[0].wild && w[1].wild) {
        return;
    }
    spare.clear();
    let mut kept = 0;
    for r in 0..tokens.len() {
        let t = tokens[r];
        let whole = &text[t.start as usize..t.end as usize];
        if t.wild && kept > 0 && tokens[kept - 1].wild {
            let last = &mut tokens[kept - 1];
            spare.truncate((last.end - last.post) as usize);
            spare.push_str(&whole[whole.len() - t.post as usize..]);
            last.post = t.post;
            last.end = spare.len() as u32;
            continue;
        }
        if kept > 0 {
            spare.push(' ');
        }
        let start = spare.len() as u32;
        spare.push_str(whole);
        tokens[kept] = Token {
            start,
            end: spare.len() as u32,
            ..t
        };
        kept += 1;
    }
    tokens.truncate(kept);
    std::mem::swap(text, spare);
}

/// How a cluster accepts a line (see [`best_match`]).
#[derive(Clone, Copy)]
struct Acceptance {
    threshold: f64,
    settled: Option<usize>,
    constant_part: bool,
}

/// The most similar cluster that accepts the line. Similarity is the share of equal tokens
/// among the positions compared. With `constant_part`, a template wildcard takes any token, and
/// where both the template and the line hold a variable token (a key-value value, a masked or
/// digit token) that differ, the position is not compared either; so the similarity is over the
/// constant part. Without, only positions where both sides hold a mask's `<*>` are left out, and
/// a template's `<*>` is unequal to any other token (Drain). A cluster accepts at or above `threshold`, or, once `settled` lines have joined it, only
/// with every compared token equal. A template with nothing left to compare takes only lines
/// with nothing constant in them. Ties go to the cluster with more wildcards, then the older.
fn best_match(
    clusters: &[Cluster],
    candidates: &[u32],
    line: &Scratch,
    accept: Acceptance,
) -> Option<usize> {
    let Acceptance {
        threshold,
        settled,
        constant_part,
    } = accept;
    let tokens = &line.tokens;
    let line_has_constant = tokens.iter().any(|t| !t.variable);
    // (equal, compared, wildcards, cluster): the similarity is equal / compared.
    let mut best: Option<(usize, usize, usize, usize)> = None;
    for &id in candidates {
        let cluster = &clusters[id as usize];
        if cluster.slots.len() != tokens.len() {
            continue;
        }
        let (mut equal, mut compared, mut wild) = (0usize, 0usize, 0usize);
        for ((slot, kept), t) in cluster.slots.iter().zip(&cluster.template).zip(tokens) {
            if slot.wild {
                wild += 1;
                // Drain: the template's `<*>` is unequal to anything but a mask's `<*>`.
                compared += usize::from(!constant_part && !t.wild);
            } else if kept.as_str() == line.text(t) {
                equal += 1;
                compared += 1;
            } else if !(constant_part && slot.variable && t.variable) {
                compared += 1;
            }
        }
        let accepts = if compared == 0 {
            !line_has_constant
        } else if settled.is_some_and(|lines| cluster.size >= lines) {
            equal == compared
        } else {
            equal as f64 >= threshold * compared as f64
        };
        if !accepts {
            continue;
        }
        // Nothing compared counts as 1/1.
        let (equal, compared) = if compared == 0 {
            (1, 1)
        } else {
            (equal, compared)
        };
        let better = match best {
            None => true,
            Some((be, bc, bw, _)) => {
                let (this, that) = (equal * bc, be * compared);
                this > that || (this == that && wild > bw)
            }
        };
        if better {
            best = Some((equal, compared, wild, id as usize));
        }
    }
    best.map(|(_, _, _, id)| id)
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
        // Same first token, so the same leaf; 4 of 6 tokens equal.
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

    #[test]
    fn key_value_pairs_split_after_the_key() {
        let d = drain(&[]);
        assert_eq!(
            d.tokens("updateClipping isOverlap:false, getTopPadding=1.0, Translation=-2.0"),
            [
                "updateClipping",
                "isOverlap",
                ":false,",
                "getTopPadding",
                "=1.0,",
                "Translation",
                "=-2.0"
            ]
        );
        // `,` splits before a letter only; `=` always.
        assert_eq!(
            d.tokens("ready=true,policy=3 [1,2] a,b"),
            ["ready", "=true", ",policy", "=3", "[1,2]", "a", ",b"]
        );
        // `:` after a non-identifier (times, addresses, hex), a `::` scope, and trailing
        // delimiters do not split.
        assert_eq!(
            d.tokens("at 12:30:05 fe80:0:1 host1:80 Foo::bar key: x"),
            ["at", "12:30:05", "fe80:0:1", "host1:80", "Foo::bar", "key:", "x"]
        );
        let plain = Drain::new(DrainConfig {
            split_key_values: false,
            ..DrainConfig::default()
        });
        assert_eq!(plain.tokens("a=1,b=2 c:d"), ["a=1,b=2", "c:d"]);
    }

    #[test]
    fn a_changed_value_costs_one_token_and_keeps_the_layout() {
        // Depth 6 routes on all three tokens: the value routes as `<*>`, so both meet.
        let mut d = Drain::new(DrainConfig::new(6, 0.5, &[]).unwrap());
        let a = d.add("shouldBlockLocation ret:false");
        let b = d.add("shouldBlockLocation  ret:true");
        assert_eq!(a, b);
        assert_eq!(
            d.clusters()[a].template_text(),
            "shouldBlockLocation ret:<*>"
        );
        let mut d = drain(&[r"\d+"]);
        let a = d.add("acquire lock=12, flags=0x1, tag=\"Audio\", uid=1000");
        let b = d.add("acquire lock=13, flags=0x1, tag=\"Wifi\", uid=1001");
        assert_eq!(a, b);
        assert_eq!(
            d.clusters()[a].template_text(),
            "acquire lock=<*>, flags=<*>x<*>, tag=<*>, uid=<*>"
        );
    }

    #[test]
    fn adjacent_wildcards_count_as_one() {
        let mut d = drain(&[r"blk_-?\d+", r"(\d+\.){3}\d+(:\d+)?"]);
        assert_eq!(
            d.tokens("ask 10.0.0.1:50010 to delete blk_1 blk_-2 blk_3"),
            ["ask", "<*>", "to", "delete", "<*>"]
        );
        let a = d.add("ask 10.0.0.1:50010 to delete blk_1 blk_-2 blk_3");
        let b = d.add("ask 10.0.0.2:50010 to delete blk_4");
        assert_eq!(a, b);
        assert_eq!(d.clusters()[a].template_text(), "ask <*> to delete <*>");
        // Delimiters around a run are kept: the first token's before, the last one's after.
        // (A list `1, 2` is a run too.)
        assert_eq!(
            drain(&[r"\d+"]).tokens("at 1 2 3, done"),
            ["at", "<*>,", "done"]
        );
        let plain = Drain::new(DrainConfig {
            collapse_wildcards: false,
            ..DrainConfig::new(4, 0.5, &[r"\d+"]).unwrap()
        });
        assert_eq!(plain.tokens("x 1 2"), ["x", "<*>", "<*>"]);
    }

    #[test]
    fn digit_chunks_become_wildcards_without_a_regex() {
        let config = DrainConfig {
            digit_chunks_as_wildcards: true,
            ..DrainConfig::default()
        };
        let mut d = Drain::new(config);
        let a = d.add("GET /api/v1/users 200 in  12ms from 10.0.0.1");
        let b = d.add("GET /api/v2/users 500 in 3400ms from 10.0.0.7");
        assert_eq!(a, b);
        assert_eq!(d.clusters()[a].template_text(), "GET <*> in <*> from <*>");
        // Inside a chunk, only the pieces between `=,()[]{}|;` that hold a digit go, so a
        // whitespace-free key-value list or call keeps its keys.
        let mut text = String::new();
        push_digit_pieces(&mut text, "ready=true,policy=3,mode=0x1f,name=svc");
        assert_eq!(text, "ready=true,policy=<*>,mode=<*>,name=svc");
        text.clear();
        push_digit_pieces(&mut text, "setSource(166,");
        assert_eq!(text, "setSource(<*>,");
        text.clear();
        push_digit_pieces(&mut text, "10.0.0.1:8080/a_2");
        assert_eq!(text, "<*>");
    }

    #[test]
    fn masked_parameters_do_not_dilute_similarity() {
        // 4 constant tokens out of 8: Drain's 4/8 would miss 0.8; the 4 masked positions are
        // left out, so 4/4.
        let mut d = Drain::new(DrainConfig::new(4, 0.8, &[r"\d+"]).unwrap());
        let a = d.add("10 close, 20 sent, 30 received, lifetime 40");
        let b = d.add("11 close, 21 sent, 31 received, lifetime 41");
        assert_eq!(a, b);
        assert_eq!(
            d.clusters()[a].template_text(),
            "<*> close, <*> sent, <*> received, lifetime <*>"
        );
        // An unmasked difference still counts: 3 of 4 is below 0.8.
        let c = d.add("12 close, 22 sent, 32 dropped, lifetime 42");
        assert_ne!(a, c);
    }

    fn settled(similarity: f64, lines: Option<usize>) -> Drain {
        Drain::new(DrainConfig {
            digit_chunks_as_wildcards: true,
            settled_after_lines: lines,
            compare_constant_part: true,
            ..DrainConfig::new(4, similarity, &[]).unwrap()
        })
    }

    #[test]
    fn a_settled_template_keeps_its_constants() {
        // One word in five differs, after 30 lines that agreed on it: 4/5 passes 0.7, but the
        // template is settled, so the odd line starts its own.
        for (lines, apart) in [(Some(20), true), (None, false)] {
            let mut d = settled(0.7, lines);
            let a = (0..30)
                .map(|i| d.add(&format!("Session: {i}_77 opened by client Updater.")))
                .last()
                .unwrap();
            let b = d.add("Session: 5_12 opened by client Scheduler.");
            assert_eq!(a != b, apart, "{lines:?}");
        }
        // A young template still learns: the second line makes the word a wildcard, and the
        // wildcard then takes any word, however settled the template is.
        let mut d = settled(0.7, Some(20));
        let a = d.add("Invalid user alice from 10.0.0.1");
        assert_eq!(d.add("Invalid user bob from 10.0.0.2"), a);
        for i in 0..30 {
            assert_eq!(d.add(&format!("Invalid user u{i} from 10.0.0.{i}")), a);
        }
        assert_eq!(d.add("Invalid user carol from 10.0.0.9"), a);
        assert_eq!(d.clusters()[a].template_text(), "Invalid user <*> from <*>");
    }

    #[test]
    fn similarity_is_over_the_constant_part() {
        // Two of three constants equal is below 0.7 (Drain counts the masked id too: 2/4).
        let mut d = settled(0.7, Some(20));
        let a = d.add("7@2016 Populate - Begin");
        let b = d.add("9@2016 Populate - End");
        assert_ne!(a, b);
        // Key-value values are parameters: they differ without counting against the line,
        // even in a settled template.
        let a = (0..30)
            .map(|_| d.add("updateClipping isOverlap:false, mode=fast"))
            .last()
            .unwrap();
        let b = d.add("updateClipping isOverlap:true, mode=slow");
        assert_eq!(a, b);
        assert_eq!(
            d.clusters()[a].template_text(),
            "updateClipping isOverlap:<*>, mode=<*>"
        );
        // A template with nothing constant left takes only lines with nothing constant.
        let mut d = settled(0.5, None);
        let a = d.add("12");
        assert_eq!(d.add("13"), a);
        assert_ne!(d.add("idle"), a);
    }

    #[test]
    fn general_masks_cover_common_variables() {
        for mask in general_masks() {
            assert!(Regex::new(mask).is_ok(), "{mask}");
        }
        let d = Drain::new(DrainConfig::general());
        let cases = [
            (
                "2024-01-02T03:04:05.123Z build started",
                "<*> build started",
            ),
            ("Jan  2 03:04:05 host sshd started", "<*> host sshd started"),
            (
                "job 3f2b8c1e-7d4a-4c2b-9e1f-0a1b2c3d4e5f done",
                "job <*> done",
            ),
            ("fetch https://example.com/a/b.tar.gz ok", "fetch <*> ok"),
            (
                "connect 10.1.2.3:8080 and [fe80::1]:443",
                "connect <*> and <*>",
            ),
            ("connect 2001:db8:0:0:0:0:2:1 now", "connect <*> now"),
            ("mail to ci-bot@example.org sent", "mail to <*> sent"),
            ("error at src/main.rs:12:5 here", "error at <*> here"),
            ("open /var/log/app.log and ./run.sh", "open <*> and <*>"),
            ("commit a1b2c3d4e5 at 0x7ffd1234", "commit <*> at <*>"),
            ("said \"hello world\" twice", "said <*> twice"),
            (
                "took 12ms then 1.5s then 3m20s",
                "took <*> then <*> then <*>",
            ),
            (
                "wrote 12MB, 4 KiB and 2048 bytes (2.00 KB)",
                "wrote <*> and <*>",
            ),
            (
                "progress 42% of -3 items, 1.5e3 left",
                "progress <*> of <*> items, <*> left",
            ),
        ];
        for (line, masked) in cases {
            assert_eq!(d.tokens(line).join(" "), masked, "{line}");
        }
        // Words made of hex letters, identifiers with digits and scopes are kept.
        assert_eq!(
            d.tokens("decade facade utf8 Foo::bar and/or").join(" "),
            "decade facade utf8 Foo::bar and/or"
        );
        let mut d = Drain::new(DrainConfig::general());
        let a = d.add("2024-01-02 03:04:05 test foo::bar passed in 12ms (3 of 10)");
        let b = d.add("2024-01-02 03:04:07 test foo::bar passed in 1.5s (4 of 10)");
        assert_eq!(a, b);
        assert_eq!(
            d.clusters()[a].template_text(),
            "<*> test foo::bar passed in <*> (<*> of <*>)"
        );
    }

    /// Letters only (no digits, so nothing is masked as a variable): a distinct word per `i`.
    fn word(mut i: usize) -> String {
        let mut w = String::new();
        loop {
            w.push((b'a' + (i % 26) as u8) as char);
            i /= 26;
            if i == 0 {
                return w;
            }
        }
    }

    #[test]
    fn one_leaf_of_distinct_templates_is_capped() {
        // Same length and routing tokens, nothing else in common: every line is its own
        // template, all in one leaf. Uncapped, line n is compared with n - 1 templates.
        const LINES: usize = 20_000;
        let mut d = Drain::new(DrainConfig::new(4, 0.5, &[]).unwrap());
        for i in 0..LINES {
            let line = format!(
                "svc op {} {} {} {}",
                word(i),
                word(i + 1),
                word(i + 2),
                word(i + 3)
            );
            d.add(&line);
        }
        assert!(d.largest_leaf() <= MAX_CLUSTERS_PER_LEAF);
        assert!(d.comparisons() <= (LINES * MAX_CLUSTERS_PER_LEAF) as u64);
        assert!(d.clusters().iter().map(|c| c.size).sum::<usize>() == LINES);
    }

    #[test]
    fn templates_per_parser_are_capped() {
        // Distinct routing tokens: one leaf per line, each line its own template.
        const LINES: usize = 3 * MAX_TEMPLATES;
        let mut d = Drain::new(DrainConfig::new(4, 0.5, &[]).unwrap());
        let mut ids = Vec::with_capacity(LINES);
        for i in 0..LINES {
            ids.push(d.add(&format!("{} {} tail", word(i % 97), word(i))));
        }
        // At most MAX_TEMPLATES, plus the one overflow template.
        assert!(d.clusters().len() <= MAX_TEMPLATES + 1);
        assert!(d.largest_leaf() <= MAX_CLUSTERS_PER_LEAF);
        assert!(ids.iter().all(|&id| id < d.clusters().len()));
        assert_eq!(d.clusters().iter().map(|c| c.size).sum::<usize>(), LINES);
        assert!(d.clusters().iter().any(|c| c.template_text() == WILDCARD));
    }
}
