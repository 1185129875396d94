//! The failure locator: makes any CI log readable to the Error Detective's rules and puts the
//! lines that explain a failed build first.
//!
//! 1. [`clean_lines`]: ANSI escape sequences (CSI, OSC, two-byte) removed and carriage-return
//!    progress lines reduced to what a terminal would show last, before any rule runs. Line
//!    numbers are kept (no line is added or dropped).
//! 2. [`failing_step`]: the CI wrapper lines say which step failed: Travis `The command "…"
//!    exited with N.`, GitHub Actions `##[error]Process completed with exit code N` after a
//!    `##[group]Run …`, GitLab `ERROR: Job failed: …` after `$ …`, Jenkins `ERROR: script
//!    returned exit code N` after `+ …` / `[Pipeline] sh`. The step runs from its command echo
//!    to that line.
//! 3. [`classify`]: each line near the end of the failing step gets a class and a score:
//!    compiler / linter diagnostics with `file:line` (any common format), test-framework failure
//!    lines, missing commands and files, dependency resolution failures, stack-trace headers, and
//!    a general fallback (error / fail / fatal / exception / ✖). Neighbouring hits form one block
//!    (one insight).
//! 4. [`rank`]: the rule insights and the blocks are ordered by how likely they are the cause
//!    (inside the failing step first, then by class score, then earlier first) and capped at
//!    [`MAX_RANKED`]; what is cut is counted on the last one kept (`more_findings`).
//!
//! Work is bounded: cleaning is one pass; the classifier reads at most [`STEP_TAIL_LINES`]
//! lines of at most [`MAX_CLASSIFIED_CHARS`] characters each.

use std::borrow::Cow;

use super::{excerpt, new_insight, strip_annotation, truncate};
use crate::logmarket::insight::{Insight, InsightKind, Severity, MAX_EXCERPT_CHARS};

/// Most lines at the end of the failing step the classifier reads.
pub(super) const STEP_TAIL_LINES: usize = 600;
/// Longer lines are classified on their first this many bytes (a 1 MiB line costs no more).
pub(super) const MAX_CLASSIFIED_CHARS: usize = 2_000;
/// Most blocks the locator adds as insights.
pub(super) const MAX_BLOCKS: usize = 3;
/// Most Error Detective insights a log gets; the rest are counted on the last one kept.
pub const MAX_RANKED: usize = 6;
/// A step's tail block cites at most this many meaningful lines.
const TAIL_LINES: usize = 4;
/// Two hits at most this many lines apart belong to one block.
const BLOCK_GAP: usize = 2;
/// A block cites at most this many lines.
const BLOCK_LINES: usize = 8;

// ---------------------------------------------------------------------------------------------
// 1. Cleaning
// ---------------------------------------------------------------------------------------------

/// The log's lines with ANSI codes and carriage-return overwrites resolved, joined by `\n`, or
/// `None` when no line has either (the common case costs one `memchr` pass).
pub fn clean_lines(lines: &[&str]) -> Option<String> {
    if !lines
        .iter()
        .any(|l| memchr::memchr2(0x1b, b'\r', l.as_bytes()).is_some())
    {
        return None;
    }
    let mut out = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for (n, l) in lines.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        out.push_str(&clean_line(l));
    }
    Some(out)
}

/// One line without ANSI codes; with `\r` inside, the last segment that shows something.
pub fn clean_line(line: &str) -> Cow<'_, str> {
    if memchr::memchr2(0x1b, b'\r', line.as_bytes()).is_none() {
        return Cow::Borrowed(line);
    }
    let stripped = strip_ansi(line);
    if !stripped.contains('\r') {
        return Cow::Owned(stripped);
    }
    let last = stripped
        .split('\r')
        .rev()
        .find(|s| !s.trim().is_empty())
        .unwrap_or("");
    Cow::Owned(last.to_owned())
}

/// `s` without ANSI escape sequences: CSI (`ESC [ params intermediates final`), OSC (`ESC ]
/// … BEL` or `… ESC \`) and two-byte escapes. Linear; a cut-off sequence at the end is dropped.
pub fn strip_ansi(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        let Some(esc) = memchr::memchr(0x1b, &b[i..]) else {
            out.push_str(&s[i..]);
            break;
        };
        out.push_str(&s[i..i + esc]);
        i += esc + 1;
        match b.get(i) {
            Some(b'[') => {
                i += 1;
                while i < b.len() && (0x20..0x40).contains(&b[i]) {
                    i += 1;
                }
                if i < b.len() && (0x40..0x7f).contains(&b[i]) {
                    i += 1;
                }
            }
            Some(b']') => {
                i += 1;
                while i < b.len() {
                    if b[i] == 0x07 {
                        i += 1;
                        break;
                    }
                    if b[i] == 0x1b && b.get(i + 1) == Some(&b'\\') {
                        i += 2;
                        break;
                    }
                    i += 1;
                }
            }
            Some(_) => {
                // `ESC intermediates… final` (charset designations such as `ESC ( B`).
                while i < b.len() && (0x20..0x30).contains(&b[i]) {
                    i += 1;
                }
                if i < b.len() && (0x30..0x7f).contains(&b[i]) {
                    i += 1;
                }
            }
            None => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// 2. The failing step
// ---------------------------------------------------------------------------------------------

/// Lines `start..end` of the step whose failure ended the build (`end` is the wrapper's
/// failure line), and the command when the wrapper names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub start: usize,
    pub end: usize,
    pub command: Option<String>,
    /// A wrapper line says the step failed (not only that the log ends in it).
    pub failed: bool,
}

/// A line as the locator reads it: timestamp (already gone in `bodies`) and GitHub Actions
/// annotation removed, cut to [`MAX_CLASSIFIED_CHARS`].
fn body<'a>(bodies: &[&'a str], i: usize) -> &'a str {
    let t = strip_annotation(bodies[i]);
    let t = t.strip_prefix("##[group]").unwrap_or(t);
    let mut cut = t.len().min(MAX_CLASSIFIED_CHARS);
    while !t.is_char_boundary(cut) {
        cut -= 1;
    }
    &t[..cut]
}

/// What a CI wrapper line says.
enum Wrapper {
    /// A step begins here (its command echo).
    Start,
    /// The step before failed; the command when named.
    Failed(Option<String>),
    /// The step before succeeded.
    Passed,
}

fn wrapper(raw: &str) -> Option<Wrapper> {
    let t = raw.trim_end();
    // Each anchored pattern is tried only on lines that start with its literal head (this runs
    // on every line of the log; almost none is a wrapper line).
    if t.starts_with("The command \"") {
        if let Some(c) = re!(r#"^The command "(.*)" (?:failed and )?exited with (\d+)"#).captures(t)
        {
            return Some(if &c[2] == "0" {
                Wrapper::Passed
            } else {
                Wrapper::Failed(Some(c[1].to_owned()))
            });
        }
    }
    if t.starts_with("$ ") || t.starts_with("Run ") || t == "[Pipeline] sh" {
        return Some(Wrapper::Start);
    }
    let exit_code = t.starts_with("Process completed with exit code ")
        || t.starts_with("##[error]Process completed with exit code ");
    if exit_code && re!(r"^(?:##\[error\])?Process completed with exit code [1-9]").is_match(t)
        || t.starts_with("ERROR: Job failed")
        || t.starts_with("ERROR: script returned exit code ")
            && re!(r"^ERROR: script returned exit code [1-9]").is_match(t)
        || t.starts_with("Finished: FAILURE")
        || t.starts_with("Done. Your build exited with ")
            && re!(r"^Done\. Your build exited with [1-9]").is_match(t)
    {
        return Some(Wrapper::Failed(None));
    }
    None
}

/// Travis's `The command "…` whose command runs over several lines: the failure (or success)
/// line a few lines on.
fn wrapped_command_end(bodies: &[&str], i: usize) -> Option<(usize, Wrapper)> {
    let head = body(bodies, i).strip_prefix("The command \"")?;
    for j in i + 1..(i + 8).min(bodies.len()) {
        if let Some(c) =
            re!(r#"^(.*)" (?:failed and )?exited with (\d+)"#).captures(body(bodies, j))
        {
            return Some((
                j,
                if &c[2] == "0" {
                    Wrapper::Passed
                } else {
                    Wrapper::Failed(Some(format!("{head} {}", &c[1])))
                },
            ));
        }
    }
    None
}

/// The first failed step the wrapper lines name (later failures are usually consequences);
/// in a Travis log without a step failure line, the last command echo to the end of the log
/// (`set -e` scripts end without one; not `failed`); `None` otherwise.
pub fn failing_step(bodies: &[&str]) -> Option<Step> {
    let mut start = 0;
    let mut any_start = false;
    let mut ci_marked = false;
    let mut first_build_end: Option<Step> = None;
    for (i, raw) in bodies.iter().enumerate() {
        let t = strip_annotation(raw);
        let t = t.strip_prefix("##[group]").unwrap_or(t);
        // Travis prints no failure line when a `set -e` script ends the shell.
        ci_marked |= t.starts_with("travis_");
        let w = match wrapper(t) {
            Some(w) => w,
            None if t.starts_with("The command \"") => match wrapped_command_end(bodies, i) {
                Some((_, w)) => w,
                None => continue,
            },
            None => continue,
        };
        match w {
            Wrapper::Start => {
                start = i;
                any_start = true;
            }
            Wrapper::Passed => start = i + 1,
            Wrapper::Failed(Some(command)) => {
                return Some(Step {
                    start,
                    end: i,
                    command: Some(command),
                    failed: true,
                })
            }
            Wrapper::Failed(None) => {
                // Travis's final line or a job-level failure: keep looking for a step line.
                if first_build_end.is_none() {
                    first_build_end = Some(Step {
                        start,
                        end: i,
                        command: None,
                        failed: true,
                    });
                }
            }
        }
    }
    first_build_end.or((any_start && ci_marked).then_some(Step {
        start,
        end: bodies.len(),
        command: None,
        failed: false,
    }))
}

// ---------------------------------------------------------------------------------------------
// 3. Line classes
// ---------------------------------------------------------------------------------------------

/// What a line is evidence of, with how strongly it explains a failure (higher first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineClass {
    /// `file:line` compiler or linter diagnostic.
    Diagnostic,
    /// The same, but a warning (the cause only when nothing else is reported).
    Warning,
    /// A test framework's failure line.
    TestFailure,
    /// A command or file that is not there.
    Missing,
    /// A dependency that cannot be resolved.
    Dependency,
    /// A stack trace's header (exception, panic, traceback).
    Trace,
    /// Error / fail / fatal / exception / ✖ wording, nothing more specific.
    General,
}

impl LineClass {
    pub fn score(self) -> u32 {
        match self {
            LineClass::Diagnostic => 90,
            LineClass::Warning => 45,
            LineClass::TestFailure => 85,
            LineClass::Missing => 80,
            LineClass::Dependency => 80,
            LineClass::Trace => 70,
            LineClass::General => 40,
        }
    }

    fn kind(self) -> InsightKind {
        match self {
            LineClass::Diagnostic | LineClass::Warning => InsightKind::CompileError,
            LineClass::TestFailure => InsightKind::TestFailure,
            LineClass::Missing => InsightKind::ConfigError,
            LineClass::Dependency => InsightKind::DependencyConflict,
            LineClass::Trace | LineClass::General => InsightKind::RuntimeException,
        }
    }

    fn what(self) -> &'static str {
        match self {
            LineClass::Diagnostic => "a compiler or linter diagnostic",
            LineClass::Warning => "a compiler or linter warning",
            LineClass::TestFailure => "a failing test",
            LineClass::Missing => "a missing command or file",
            LineClass::Dependency => "a dependency that cannot be resolved",
            LineClass::Trace => "an uncaught exception",
            LineClass::General => "an error reported by the failing step",
        }
    }
}

/// Lines that mention errors without reporting one: counters at zero, flags, wrapper noise.
fn is_noise(t: &str) -> bool {
    let l = t.trim();
    l.is_empty()
        || l.starts_with("$ ")
        || l.starts_with("+ ")
        || l.starts_with("travis_")
        || l.starts_with("The command \"")
        || l.starts_with("Done. Your build exited")
        || l.starts_with("##[")
        || l.starts_with("npm ERR! code ")
        || l.starts_with("npm ERR! errno")
        || l.starts_with("npm ERR! A complete log")
        || l.starts_with("npm ERR! Exit status")
        || l.starts_with("npm ERR! This is probably not a problem")
        || l.starts_with("npm ERR! Failed at the")
        || l.starts_with("npm ERR!     /")
        || is_wrapper_echo(l)
        || re!(r"(?i)(?:errors?|failures?|failed):\s*0\b").is_match(l)
            && !re!(r"(?i)(?:errors?|failures?|failed):\s*[1-9]").is_match(l)
        || re!(r"(?i)\b(?:0|no) (?:errors?|failures?|failed)\b|-Werror|error_reporting|(?:on|if|when|for) (?:an? )?errors?\b|\berrors?\.(?:go|c|h|rs|py|js|ts|java|rb)\b|warnings? as errors")
            .is_match(l)
}

/// A tool's own "the command I ran failed" line (npm, yarn, npm-run-all, make, shells): it
/// repeats the failure, it does not explain it.
fn is_wrapper_echo(l: &str) -> bool {
    l.starts_with("npm ERR! Test failed")
        || l.starts_with("npm ERR! ")
            && (l.contains("` failed") || l.contains("exit status") || l.contains("@"))
        || l.starts_with("error Command failed with exit code")
        || l.starts_with("info Visit https://yarnpkg.com")
        || re!(r#"^ERROR: "[^"]*" exited with \d+|^make(?:\[\d+\])?: \*\*\* .*Error \d+$|^Exited with code \d+|^Process exited with"#)
            .is_match(l)
}

/// The class of one line, or `None`.
pub fn classify(raw: &str) -> Option<LineClass> {
    let t = raw.trim_end();
    if is_noise(t) {
        return None;
    }
    // pytest's `path.py:9: AssertionError` closes a test failure (not a compiler's line).
    if re!(r"^\S+\.py:\d+: \w*(?:Error|Exception|Failed)$").is_match(t) {
        return Some(LineClass::TestFailure);
    }
    // Compiler / linter diagnostics with a location.
    if re!(r"(?x)
        ^\s*(?:\S+/)?[\w.\-+/\\]+\.[A-Za-z]\w{0,5}:\d+(?::\d+)?:?\s*(?:\d+:\d+\s*)?(?:fatal\ error|error|Error|ERROR|E\d{3}|F\d{3}|[CWREF]:|\[E|Warning:|warning:|[A-Z]\w+Error\b)
        | ^\s*(?:\S+/)?[\w.\-+/\\]+\.\w{1,6}\(\d+(?:,\d+)?\):\s*(?:fatal\ )?error
        | ^\[ERROR\]\s+\S+:\[\d+,\d+\]
        | ^\s*-->\s+\S+:\d+:\d+
        | ^\s*\d+:\d+\s+error\s
        | ^\*\*\s\((?:CompileError|SyntaxError|TokenMissingError)\)
        | ^e:\s+\S+:\s*\(\d+,\s*\d+\)
        | ^\S+\.\w{1,6}:\d+:\d+:\s*$
        | ^error(?:\[E\d+\])?:\s
        | ^\s*(?:\S+/)?[\w.\-]+\.\w{1,6}:\ ?\d+(?::\d+)?:?\s*[A-Za-z\[(]
        | ^\s*\d+:\d+\s+\S.*\([\w/@.\-]+\)\s*$
        | ^\s*(?:❌|✘)\s
        ").is_match(t)
    {
        // The last alternative (bare `file:line: text`) is only a diagnostic with error-ish
        // words, else it is a general line at best.
        // A bare `file:line text` is a diagnostic when it is not a stack frame or a code
        // listing (those have no letters right after the location).
        if !re!(r"^\s+at\s|^\s*File ").is_match(t) {
            if re!(r"(?i)\bwarn(?:ing)?\b").is_match(t) && !re!(r"(?i)\berror\b").is_match(t) {
                return Some(LineClass::Warning);
            }
            return Some(LineClass::Diagnostic);
        }
    }
    // Test frameworks.
    if re!(r"(?x)
        ^FAILED\s+\S+::
        | ^_{3,}\s\S.*\s_{3,}$
        | ^E\s{2,}\S
        | ^\S+\.py:\d+:\s+\w+(?:Error|Exception)$
        | ^(?:FAIL|ERROR):\s+test\w*\s\(
        | ^Tests\ run:.*(?:Failures:\s*[1-9]|Errors:\s*[1-9])
        | <<<\s(?:FAILURE|ERROR)!
        | ^(?:Failed\ tests|Tests\ in\ error):
        | ^\S+\s>\s.+\sFAILED$
        | ^>\sTask\s\S+\sFAILED
        | ^\*\sWhat\ went\ wrong:
        | \*\*\*\sFAILED\s\*\*\*
        | ^\[error\]\s
        | ^\s+\d+\)\s\S
        | ^Failures:$
        | Failure/Error:
        | ^rspec\s\./\S+:\d+
        | ^\s*\d+\)\s(?:Failure|Error):
        | ^\s*(?:●|✕|✗|×|✖)\s
        | ^\s*FAIL\s+\S
        | ^not\ ok\s\d+
        | ^---\sFAIL:
        | ^test\s\S+\s\.\.\.\sFAILED
        | panicked\ at
        | ^There\ (?:was|were)\ \d+\ (?:failure|error)s?:
        | ^FAILURES!$
        | ^Tests:\s\d+,\sAssertions:\s\d+,\s(?:Errors|Failures)
        | Test\ Case\ '.*'\sfailed
        | error:\s-\[\S+\s\S+\]
        | ^\s*\#\s+Failed\ test
        | ^Failed\s\d+/\d+\ test
        | :\s+FAIL(?:ED)?\s*(?:\(\d|$)
        | ^\s*\d+\s(?:failing|failed)\b
        | ^\s*(?:left|right):\s
        | ^\s+(?:Expected|Actual|expected|got|but\ got)\b
        | ^\s*AssertionError
        | \sfailed\ on\ line\ \d+
        | ^Reason:\s
        | ^\s*\[-\]\s
        | Looks\ like\ (?:you\ failed|your\ test\ exited)
        | \sFAIL\s*$
        | ^\s*✗\s
        ")
    .is_match(t)
    {
        return Some(LineClass::TestFailure);
    }
    if re!(r"(?ix)
        command\ not\ found | :\ not\ found$ | no\ such\ file\ or\ directory | cannot\ open
        | does\ not\ exist | could\ not\ find | cannot\ find | can't\ find | couldn't\ find
        | no\ rule\ to\ make\ target | modulenotfounderror | importerror | cannot\ find\ module
        | is\ not\ recognized | unable\ to\ locate | missing\ (?:file|module|package|dependency)
        | undefined\ (?:reference|symbol|method|variable|function|index|local)
        ")
    .is_match(t)
    {
        return Some(LineClass::Missing);
    }
    if re!(r"(?ix)
        could\ not\ resolve | could\ not\ be\ resolved | unable\ to\ resolve | failed\ to\ resolve
        | no\ matching\ (?:distribution|version|package) | version\ solving\ failed | eresolve
        | unsatisfiable | conflicting\ (?:dependencies|requirements) | dependency\ (?:conflict|resolution)
        | requirements\ could\ not | npm\ err!\ 404 | failed\ to\ download | could\ not\ download
        | no\ versions?\ (?:available|match|found)
        ").is_match(t)
    {
        return Some(LineClass::Dependency);
    }
    if re!(r"(?x)
        ^Traceback\ \(most\ recent\ call\ last\):
        | ^Exception\ in\ thread
        | ^(?:Caused\ by:\s)?(?:[a-z_][\w$]*\.)+[A-Z]\w*(?:Error|Exception|Failure)\b
        | ^(?:[A-Z]\w*\.)*[A-Z]\w*(?:Error|Exception)(?::|$)
        | ^\*\*\s\(\w+(?:\.\w+)*\)
        | ^panic:\s
        | ^Unhandled\ (?:exception|rejection)
        | ^fatal\ error:
        | Segmentation\ fault | core\ dumped | Abort(?:ed)?\ trap
        | ^\s*Error:\s
        ")
    .is_match(t)
    {
        return Some(LineClass::Trace);
    }
    if re!(r"(?i)\b(?:error|errors|fail|failed|fails|failure|failures|fatal|exception|err!)\b|✖|✗|make: \*\*\*|\bERR\b")
        .is_match(t)
    {
        return Some(LineClass::General);
    }
    None
}

// ---------------------------------------------------------------------------------------------
// 4. Blocks and ranking
// ---------------------------------------------------------------------------------------------

/// Neighbouring classified lines: `first..=last`, the best class among them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub first: usize,
    pub last: usize,
    pub class: LineClass,
    /// The line that got the best class (what the block cites first).
    pub head: usize,
}

/// The blocks of classified lines in `start..end` (at most [`STEP_TAIL_LINES`] at the end).
pub fn blocks(bodies: &[&str], start: usize, end: usize) -> Vec<Block> {
    let end = end.min(bodies.len());
    let start = start.max(end.saturating_sub(STEP_TAIL_LINES));
    let mut out: Vec<Block> = Vec::new();
    for i in start..end {
        let Some(class) = classify(body(bodies, i)) else {
            continue;
        };
        match out.last_mut() {
            Some(b) if i <= b.last + BLOCK_GAP + 1 && i < b.first + 4 * BLOCK_LINES => {
                b.last = i;
                if class.score() > b.class.score() {
                    b.class = class;
                    b.head = i;
                }
            }
            _ => out.push(Block {
                first: i,
                last: i,
                class,
                head: i,
            }),
        }
    }
    out
}

/// An insight citing a block: its first lines (from its first classified line) as the excerpt,
/// the best line as the title.
fn block_insight(bodies: &[&str], b: &Block, step: Option<&Step>) -> Insight {
    let from = b.first.min(b.head);
    // The block and the lines that follow it up to a blank line (a header's details).
    let mut to = (b.last + 1).min(from + BLOCK_LINES);
    while to < bodies.len() && to < from + BLOCK_LINES && !body(bodies, to).trim().is_empty() {
        to += 1;
    }
    let lines: Vec<&str> = (from..to)
        .map(|i| body(bodies, i))
        .filter(|l| !l.trim().is_empty())
        .collect();
    let head = body(bodies, b.head).trim();
    let mut ins = new_insight(
        b.class.kind(),
        if b.class == LineClass::General {
            Severity::Medium
        } else {
            Severity::High
        },
        from,
        head,
        excerpt(&lines),
    );
    ins.impact = "the build failed".into();
    ins.root_cause = Some(format!("the failing step reports {}", b.class.what()));
    ins.fix = match step.and_then(|s| s.command.as_deref()) {
        Some(c) => format!(
            "Fix what these lines report, then re-run `{}`",
            truncate(c, 120)
        ),
        None => "Fix what these lines report, then re-run the failing step".into(),
    };
    ins.details
        .insert("locator".into(), format!("{:?}", b.class).to_lowercase());
    if let Some(c) = step.and_then(|s| s.command.as_deref()) {
        ins.details.insert("step".into(), truncate(c, 200));
    }
    ins
}

/// How likely a rule insight is the cause, by kind (the block classes' scale).
fn kind_score(kind: InsightKind) -> u32 {
    match kind {
        InsightKind::CompileError => 90,
        InsightKind::TestFailure => 85,
        InsightKind::DependencyConflict | InsightKind::ConfigError => 80,
        InsightKind::Crash | InsightKind::OutOfMemory => 75,
        InsightKind::RuntimeException => 65,
        _ => 30,
    }
}

/// The blocks of `start..end` worth an insight: not already cited by a rule insight; specific
/// classes (strongest first, then earlier) when there are any, else warnings and general
/// wording nearest the end; at most [`MAX_BLOCKS`].
fn pick_blocks(bodies: &[&str], start: usize, end: usize, rules: &[Insight]) -> Vec<Block> {
    let inside = |line: usize| line >= start && line < end;
    let mut found = blocks(bodies, start, end);
    found.retain(|b| {
        !rules.iter().any(|r| {
            let l = r.log_line as usize - 1;
            l >= b.first.saturating_sub(BLOCK_GAP) && l <= b.last + BLOCK_GAP
        })
    });
    let weak = |c: LineClass| matches!(c, LineClass::General | LineClass::Warning);
    let specific = found.iter().any(|b| !weak(b.class))
        || rules.iter().any(|r| inside(r.log_line as usize - 1));
    if specific {
        found.retain(|b| !weak(b.class));
    } else {
        found.reverse();
    }
    found.sort_by_key(|b| std::cmp::Reverse(b.class.score()));
    found.truncate(MAX_BLOCKS);
    found
}

/// Lines a step's tail skips: blank, wrapper echoes and CI bookkeeping.
fn is_filler(t: &str) -> bool {
    let l = t.trim();
    l.is_empty()
        || l.starts_with("travis_")
        || l.starts_with("##[")
        || l.starts_with("npm ERR!")
        || is_wrapper_echo(l)
        || re!(r"^[-=_*#~.\s]+$").is_match(l)
}

/// The last [`TAIL_LINES`] meaningful lines of `start..end` (no more than three lines apart) as
/// one general block.
fn tail_block(bodies: &[&str], start: usize, end: usize) -> Option<Block> {
    let end = end.min(bodies.len());
    let floor = start.max(end.saturating_sub(STEP_TAIL_LINES));
    let last = (floor..end).rev().find(|&i| !is_filler(body(bodies, i)))?;
    let mut first = last;
    let mut n = 1;
    for i in (floor..last).rev() {
        if n >= TAIL_LINES || first - i > 3 {
            break;
        }
        if !is_filler(body(bodies, i)) {
            first = i;
            n += 1;
        }
    }
    Some(Block {
        first,
        last,
        class: LineClass::General,
        head: first,
    })
}

/// Makes sure a rule insight's excerpt holds the text of the line it cites (what a reader
/// searches the log for), putting it first when the rule built the excerpt from other lines.
fn cite_line(bodies: &[&str], ins: &mut Insight) {
    let Some(i) = (ins.log_line as usize)
        .checked_sub(1)
        .filter(|&i| i < bodies.len())
    else {
        return;
    };
    let line = body(bodies, i).trim();
    if line.is_empty() || ins.excerpt.contains(line) {
        return;
    }
    ins.excerpt = excerpt(&[line, ins.excerpt.as_str()]);
}

/// An insight citing the CI wrapper's failure line of a step whose output explains nothing.
fn step_insight(bodies: &[&str], step: &Step) -> Option<Insight> {
    let line = body(bodies, step.end.min(bodies.len().checked_sub(1)?));
    let failed = matches!(wrapper(line), Some(Wrapper::Failed(_)))
        || line.starts_with("The command \"") && !line.contains("exited with 0");
    if !failed {
        return None;
    }
    let mut ins = new_insight(
        InsightKind::RuntimeException,
        Severity::Medium,
        step.end,
        line.trim(),
        excerpt(&[line]),
    );
    ins.impact = "the build failed".into();
    ins.root_cause =
        Some("the step failed without printing why (a timeout or a silent exit)".into());
    ins.fix = "Re-run the step with more output (verbose flags) to see why it exits".into();
    ins.details.insert("locator".into(), "step".into());
    Some(ins)
}

/// Orders the rule insights and the locator's blocks by how likely they explain the failure,
/// and caps the list at [`MAX_RANKED`].
pub fn rank(bodies: &[&str], rules: Vec<Insight>) -> Vec<Insight> {
    let Some(step) = failing_step(bodies) else {
        // Not a CI log with a failed step: the rules' findings, most likely cause first.
        return order(bodies, rules, 0, bodies.len(), Vec::new());
    };
    let (start, end) = (step.start, step.end);
    let inside = |line: usize| line >= start && line < end;
    let mut found = pick_blocks(bodies, start, end, &rules);
    let mut found_step = None;
    let explained = rules.iter().any(|r| inside(r.log_line as usize - 1))
        || found.iter().any(|b| b.class != LineClass::General);
    if !explained && step.failed {
        // Nothing specific: what the step printed last before it failed.
        if let Some(t) = tail_block(bodies, start, end) {
            if !found.iter().any(|b| b.first <= t.last && t.first <= b.last) {
                found.insert(0, t);
            }
        }
        found.truncate(MAX_BLOCKS);
        // …and, last, the wrapper's own failure line (a step that timed out or exited
        // silently). Not when something explains the step: it is no runtime exception then.
        found_step = step_insight(bodies, &step);
    }

    let blocks = found
        .iter()
        .map(|b| (b.class.score() + 100, block_insight(bodies, b, Some(&step))))
        .chain(found_step.map(|i| (0, i)))
        .collect();
    order(bodies, rules, start, end, blocks)
}

/// Sorts the rule insights (inside `start..end` first, then by kind) and the locator's
/// `(score, insight)` pairs (blocks score their class + 100, the step line 0: always last),
/// most likely cause first, and caps them at [`MAX_RANKED`].
fn order(
    bodies: &[&str],
    rules: Vec<Insight>,
    start: usize,
    end: usize,
    blocks: Vec<(u32, Insight)>,
) -> Vec<Insight> {
    let inside = |line: usize| line >= start && line < end;
    let mut all: Vec<(u32, usize, Insight)> = rules
        .into_iter()
        .map(|mut r| {
            cite_line(bodies, &mut r);
            let l = r.log_line as usize - 1;
            // A rule's finding outranks a block of the same class (rules read more context).
            let s = kind_score(r.kind) + if inside(l) { 105 } else { 0 };
            (s, l, r)
        })
        .collect();
    for (n, (score, ins)) in blocks.into_iter().enumerate() {
        // Blocks keep their own order (`n`) among equals.
        all.push((score, end + n, ins));
    }
    all.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut out: Vec<Insight> = all.into_iter().map(|(_, _, i)| i).collect();
    // What is cut is counted (with the findings each cut insight already summarised).
    let more: usize = out
        .iter()
        .skip(MAX_RANKED)
        .map(|i| {
            i.details
                .get("findings")
                .and_then(|f| f.parse().ok())
                .unwrap_or(1)
        })
        .sum();
    out.truncate(MAX_RANKED);
    if more > 0 {
        if let Some(last) = out.last_mut() {
            last.details
                .insert("more_findings".into(), more.to_string());
        }
    }
    debug_assert!(out
        .iter()
        .all(|i| i.excerpt.chars().count() <= MAX_EXCERPT_CHARS));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logmarket::analysers::{AnalyserConfig, LogText};

    fn run(text: &str) -> Vec<Insight> {
        super::super::analyse(&LogText::new(text), &AnalyserConfig::default())
    }

    #[test]
    fn ansi_and_carriage_returns_are_resolved() {
        assert_eq!(
            strip_ansi("\u{1b}[1m\u{1b}[31mE   assert 1 == 2\u{1b}[0m"),
            "E   assert 1 == 2"
        );
        assert_eq!(
            strip_ansi("\u{1b}]0;title\u{7}x\u{1b}]8;;http://a\u{1b}\\y\u{1b}(Bz\u{1b}["),
            "xyz"
        );
        assert_eq!(
            clean_line("Downloading 10%\rDownloading 55%\rDownloading 100%"),
            "Downloading 100%"
        );
        assert_eq!(
            clean_line("travis_time:end:0a1b:start=1,finish=2\r\u{1b}[0K\u{1b}[31;1mThe command \"make\" exited with 2.\u{1b}[0m"),
            "The command \"make\" exited with 2."
        );
        assert_eq!(clean_line("done\r\u{1b}[0K"), "done");
        assert_eq!(clean_line("plain"), "plain");
        // Line numbers are kept.
        let clean = clean_lines(&["a\u{1b}[0m", "", "b\rc"]).unwrap();
        assert_eq!(clean, "a\n\nc");
        assert!(clean_lines(&["a", "b"]).is_none());
    }

    #[test]
    fn failing_step_from_ci_wrappers() {
        let travis = [
            "$ pip install -r requirements.txt",
            "ok",
            "The command \"pip install -r requirements.txt\" exited with 0.",
            "$ pytest -q",
            "F",
            "The command \"pytest -q\" exited with 1.",
            "$ flake8",
            "The command \"flake8\" exited with 1.",
            "Done. Your build exited with 1.",
        ];
        let s = failing_step(&travis).unwrap();
        assert_eq!((s.start, s.end), (3, 5));
        assert_eq!(s.command.as_deref(), Some("pytest -q"));

        // A command over two lines.
        let wrapped = [
            "$ make &&",
            "  make test",
            "boom",
            "The command \"make &&",
            "  make test\" exited with 2.",
        ];
        let s = failing_step(&wrapped).unwrap();
        assert_eq!((s.start, s.end), (0, 3));

        let gha = [
            "##[group]Run npm ci",
            "##[endgroup]",
            "added 10 packages",
            "##[group]Run npm test",
            "##[endgroup]",
            "FAIL src/a.test.js",
            "##[error]Process completed with exit code 1.",
        ];
        let s = failing_step(&gha).unwrap();
        assert_eq!((s.start, s.end), (3, 6));

        let gitlab = [
            "$ bundle exec rspec",
            "1 example, 1 failure",
            "ERROR: Job failed: exit code 1",
        ];
        assert_eq!(failing_step(&gitlab).unwrap().start, 0);

        let jenkins = [
            "[Pipeline] sh",
            "+ go test ./...",
            "--- FAIL: TestX",
            "ERROR: script returned exit code 1",
            "Finished: FAILURE",
        ];
        let s = failing_step(&jenkins).unwrap();
        assert_eq!((s.start, s.end), (0, 3));

        // Healthy logs have no failing step.
        assert!(failing_step(&[
            "##[group]Run make",
            "ok",
            "Process completed with exit code 0"
        ])
        .is_none());
        assert!(failing_step(&["$ make", "The command \"make\" exited with 0."]).is_none());
    }

    #[test]
    fn diagnostics_in_common_formats() {
        use LineClass::*;
        for (line, class) in [
            ("src/main.c:12:5: error: 'x' undeclared (first use in this function)", Diagnostic),
            ("src/lib.rs:3:9: fatal error: 'foo.h' file not found", Diagnostic),
            ("error[E0308]: mismatched types", Diagnostic),
            ("  --> src/lib.rs:4:5", Diagnostic),
            ("src/app.ts(14,7): error TS2322: Type 'string' is not assignable to type 'number'.", Diagnostic),
            ("Program.cs(10,18): error CS1002: ; expected", Diagnostic),
            ("[ERROR] /home/ci/app/src/main/java/a/B.java:[5,1] class, interface, or enum expected", Diagnostic),
            ("B.java:5: error: cannot find symbol", Diagnostic),
            ("  12:5  error  'foo' is defined but never used  no-unused-vars", Diagnostic),
            ("app/models/user.py:10:1: E302 expected 2 blank lines, found 1", Diagnostic),
            ("lib/thing.rb:158:17: C: Style/RegexpMatch: Use match? instead of =~", Diagnostic),
            ("pkg/server/handler.go:41:2: undefined: ctx", Diagnostic),
            ("src/Parser.hs:22:13: error:", Diagnostic),
            ("docs/README.md: 29: MD012/no-multiple-blanks Multiple consecutive blank lines", Diagnostic),
            ("docs/guide.md:120:Line longer than 80 characters.", Diagnostic),
            ("src/widget.js:635 Replace `a` with `b` (prettier/prettier)", Diagnostic),
            ("  429:1  Unexpected missing newline at end of file (no-missing-eof-newline)", Diagnostic),
            ("** (CompileError) lib/app.ex:7: undefined function foo/0", Diagnostic),
            ("❌  /Users/ci/App/Sources/View.swift:9:3: use of unresolved identifier 'x'", Diagnostic),
            ("src/a.c:3:1: warning: unused variable 'y'", Warning),
        ] {
            assert_eq!(classify(line), Some(class), "{line}");
        }
    }

    #[test]
    fn test_framework_failures() {
        for line in [
            "FAILED tests/test_api.py::test_login - AssertionError: 401 != 200",
            "E       assert 401 == 200",
            "______________________________ test_login ______________________________",
            "FAIL: test_parse (tests.test_parser.ParserTest)",
            "Tests run: 12, Failures: 1, Errors: 0, Skipped: 0, Time elapsed: 0.4 sec <<< FAILURE! - in a.BTest",
            "testAdd(a.BTest)  Time elapsed: 0.01 sec  <<< FAILURE!",
            "Failed tests: ",
            "a.BTest > testAdd FAILED",
            "> Task :app:test FAILED",
            "* What went wrong:",
            "[info] - should add numbers *** FAILED ***",
            "[error] Failed tests:",
            "  1) test parses input (ParserTest)",
            "Failure/Error: expect(user).to be_valid",
            "rspec ./spec/models/user_spec.rb:12 # User is valid",
            "  1) Failure:",
            "  ● Cart › adds an item",
            "not ok 3 - parses dates",
            "--- FAIL: TestHandler (0.00s)",
            "test parser::tests::parses ... FAILED",
            "thread 'main' panicked at src/main.rs:3:5:",
            "There was 1 failure:",
            "FAILURES!",
            "Tests: 12, Assertions: 30, Failures: 1.",
            "Test Case '-[AppTests.ViewTests testLayout]' failed (0.01 seconds).",
            "#   Failed test 'parses dates'",
            "Failed 1/12 test programs. 1/80 subtests failed.",
            "inet_SUITE:t_gethost failed on line 696",
            "[-] Get-Thing returns a value 12ms",
            "  parses empty input:                         FAIL",
            "  2 failing",
        ] {
            assert_eq!(classify(line), Some(LineClass::TestFailure), "{line}");
        }
    }

    #[test]
    fn missing_things_dependencies_traces_and_general() {
        use LineClass::*;
        for (line, class) in [
            ("bash: line 1: yarnn: command not found", Missing),
            ("cp: cannot stat 'dist/app.js': No such file or directory", Missing),
            ("make: *** No rule to make target 'install'.  Stop.", Missing),
            ("ModuleNotFoundError: No module named 'requests'", Missing),
            ("Error: Cannot find module 'left-pad'", Missing),
            ("[ERROR] Failed to execute goal on project app: Could not resolve dependencies for project a:b:jar:1.0", Dependency),
            ("ERROR: No matching distribution found for numpy==9.9", Dependency),
            ("Your requirements could not be resolved to an installable set of packages.", Dependency),
            ("Because app depends on foo ^2.0.0 which doesn't match any versions, version solving failed.", Dependency),
            ("Traceback (most recent call last):", Trace),
            ("Exception in thread \"main\" java.lang.IllegalStateException: boom", Trace),
            ("java.lang.NullPointerException: name", Trace),
            ("panic: runtime error: index out of range [3] with length 3", Trace),
            ("** (RuntimeError) boom", Trace),
            ("Segmentation fault (core dumped)", Trace),
            ("ERROR: something went wrong while packaging", General),
            ("Build FAILED.", General),
        ] {
            assert_eq!(classify(line), Some(class), "{line}");
        }
        for line in [
            "",
            "$ make test",
            "Tests run: 12, Failures: 0, Errors: 0, Skipped: 0",
            "0 errors, 0 warnings",
            "gcc -Werror -Wall -c a.c",
            "npm ERR! Test failed.  See above for more details.",
            "error Command failed with exit code 1.",
            "make: *** [Makefile:12: test] Error 2",
            "The command \"make\" exited with 2.",
            "compiling src/errors.rs",
            // boilerplate: the lines after it carry the reason
            "npm ERR! code ERESOLVE",
        ] {
            assert_eq!(classify(line), None, "{line}");
        }
    }

    #[test]
    fn travis_pytest_failure_is_first() {
        let log = "travis_fold:start:install\r\u{1b}[0K$ pip install -r requirements.txt\n\
                   Could not find a version that satisfies nothing here, just chatter\n\
                   travis_fold:end:install\r\u{1b}[0K\n\
                   $ pytest\n\
                   ============================= FAILURES =============================\n\
                   \u{1b}[1m______________________________ test_total ______________________________\u{1b}[0m\n\
                   \n\
                   \u{1b}[1m    def test_total():\u{1b}[0m\n\
                   \u{1b}[1m>       assert total([1, 2]) == 4\u{1b}[0m\n\
                   \u{1b}[1m\u{1b}[31mE       assert 3 == 4\u{1b}[0m\n\
                   \n\
                   \u{1b}[1m\u{1b}[31mtests/test_cart.py\u{1b}[0m:9: AssertionError\n\
                   ===================== 1 failed, 12 passed in 0.31s =====================\n\
                   travis_time:end:1:start=1,finish=2\r\u{1b}[0K\u{1b}[31;1mThe command \"pytest\" exited with 1.\u{1b}[0m\n\
                   \n\
                   Done. Your build exited with 1.\n";
        let v = run(log);
        assert!(!v.is_empty() && v.len() <= MAX_RANKED, "{v:#?}");
        let top = &v[0];
        assert_eq!(top.kind, InsightKind::TestFailure, "{v:#?}");
        assert!(
            v.iter().take(3).any(|i| i.excerpt.contains("assert 3 == 4")
                || i.excerpt.contains("tests/test_cart.py:9: AssertionError")),
            "{v:#?}"
        );
        assert!(v.iter().all(|i| !i.excerpt.contains('\u{1b}')));
    }

    #[test]
    fn silent_failing_step_cites_its_tail_and_wrapper_line() {
        let log = "$ npm ci\nadded 1 package\nThe command \"npm ci\" exited with 0.\n\
                   $ npm run size\n> size-limit\n\n  Package size limit has exceeded by 934 B\n  Size limit:   103 KB\n  Package size: 103.91 KB\n\
                   npm ERR! code ELIFECYCLE\nnpm ERR! Test failed.  See above for more details.\n\
                   The command \"npm run size\" exited with 1.\nDone. Your build exited with 1.\n";
        let v = run(log);
        assert!(v[0].excerpt.contains("Package size: 103.91 KB"), "{v:#?}");
        assert!(
            v.iter()
                .any(|i| i.title == "The command \"npm run size\" exited with 1."),
            "{v:#?}"
        );
        assert_eq!(v[0].details["step"], "npm run size");

        let timeout = "$ ./ci/build.sh\nbuilding\nThe command \"./ci/build.sh\" exited with 124.\n";
        let v = run(timeout);
        assert!(
            v.iter().any(|i| i.title.contains("exited with 124")),
            "{v:#?}"
        );
    }

    #[test]
    fn logs_without_a_failed_step_get_no_locator_blocks() {
        // The rules still run; the locator adds nothing and only orders them.
        assert!(run(
            "##[group]Run make\nerror count is configurable\nProcess completed with exit code 0\n"
        )
        .is_empty());
        assert!(run("INFO all good\nWARN retrying once\n").is_empty());
    }

    /// Decorations a CI adds around a line: colours, a timestamp prefix, progress overwrites.
    fn decorate(line: &str, seed: u64) -> String {
        if line.is_empty() {
            return String::new();
        }
        let mut out = String::new();
        match seed % 3 {
            0 => out.push_str("2025-11-06T10:49:42.2491016Z "),
            1 => out.push_str("[2025-11-06T10:44:23.366Z] "),
            _ => {}
        }
        if seed % 5 == 0 {
            out.push_str("Downloading 40%\r");
        }
        let colour =
            ["\u{1b}[31m", "\u{1b}[1;33m", "\u{1b}[0K", "\u{1b}[32;1m"][(seed % 4) as usize];
        // Colour around the whole line or around its first word.
        if seed % 2 == 0 {
            out.push_str(colour);
            out.push_str(line);
            out.push_str("\u{1b}[0m");
        } else {
            let (a, b) = line.split_at(line.find(' ').unwrap_or(line.len()));
            out.push_str(&format!("{colour}{a}\u{1b}[0m{b}"));
        }
        out
    }

    /// Property: ANSI codes, CI timestamp prefixes and progress overwrites never change what is
    /// found (kind, line, title, excerpt, order).
    #[test]
    fn decorations_never_change_what_is_found() {
        let logs = [
            "$ cargo test\nrunning 2 tests\ntest a::t ... FAILED\n\nfailures:\n\n---- a::t stdout ----\nthread 'a::t' panicked at src/a.rs:3:5:\nassertion failed: x\n\ntest result: FAILED. 1 passed; 1 failed; 0 ignored\nThe command \"cargo test\" exited with 101.\n",
            "$ make\ncc -c a.c\na.c:3:1: error: expected ';' before '}' token\nmake: *** [a.o] Error 1\nThe command \"make\" exited with 2.\n",
            "$ mvn test\n[ERROR] Tests run: 3, Failures: 1, Errors: 0, Skipped: 0\n[ERROR] Failures: \n[ERROR]   CartTest.total:12 expected:<4> but was:<3>\nThe command \"mvn test\" exited with 1.\n",
            "$ ./lint.sh\nChecking style\nsrc/app.js:12 Missing semicolon (semi)\nThe command \"./lint.sh\" exited with 1.\n",
            "$ go test ./...\n--- FAIL: TestParse (0.00s)\n    parse_test.go:14: got 1, want 2\nFAIL\nFAIL\texample.com/p\t0.01s\nThe command \"go test ./...\" exited with 1.\n",
            "$ npm test\n\n  1) Cart adds:\n     AssertionError: expected 3 to equal 4\n      at Context.<anonymous> (test/cart.js:9:10)\n\nThe command \"npm test\" exited with 1.\n",
            "$ ./deploy.sh\nUploading\nThe command \"./deploy.sh\" exited with 3.\n",
            "Traceback (most recent call last):\n  File \"app.py\", line 3, in <module>\n    main()\nValueError: bad input\n",
        ];
        let key = |v: Vec<Insight>| {
            v.into_iter()
                .map(|i| (i.kind, i.log_line, i.title, i.excerpt))
                .collect::<Vec<_>>()
        };
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for log in logs {
            let plain = key(run(log));
            assert!(!plain.is_empty(), "{log}");
            for round in 0..40 {
                let decorated: String = log
                    .lines()
                    .map(|l| {
                        // xorshift: deterministic, different per line and round
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        decorate(l, seed) + "\n"
                    })
                    .collect();
                assert_eq!(key(run(&decorated)), plain, "round {round}:\n{decorated:?}");
            }
        }
    }

    #[test]
    fn worst_case_inputs_are_bounded() {
        // One 1 MiB line, 100,000 short lines, pathological repetition: no panic, small output.
        let long = "error ".repeat(1 << 17) + "\n";
        let short = "x\n".repeat(100_000);
        let repeated = "$ make\n".to_string()
            + &"a.c:1:1: error: e\n".repeat(20_000)
            + "The command \"make\" exited with 2.\n";
        let ansi = "\u{1b}[".repeat(100_000) + "\r".repeat(1000).as_str();
        for log in [long, short, repeated, ansi] {
            let v = run(&log);
            assert!(v.len() <= MAX_RANKED);
            assert!(v
                .iter()
                .all(|i| i.excerpt.chars().count() <= MAX_EXCERPT_CHARS));
        }
    }

    /// The fuzz target's checks (`fuzz/fuzz_targets/locator.rs`) on stable: random splices of
    /// CI fragments, escapes and bytes never panic and stay within the caps.
    #[test]
    fn random_ci_fragments_never_panic() {
        const PIECES: [&str; 24] = [
            "\u{1b}[",
            "\u{1b}]0;",
            "\u{1b}",
            "\r",
            "\n",
            "\r\n",
            "$ make",
            "The command \"",
            "\" exited with ",
            "1.",
            "0.",
            "##[group]Run ",
            "##[error]",
            "Process completed with exit code 2",
            "src/a.c:",
            "12:3: ",
            "error: ",
            "FAILED ",
            "E   ",
            "Traceback (most recent call last):",
            "\u{2716} ",
            "é",
            "travis_fold:start:x",
            "Done. Your build exited with 1.",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..400 {
            let mut text = String::new();
            for _ in 0..(seed % 60) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.push_str(PIECES[(seed % PIECES.len() as u64) as usize]);
            }
            let log = LogText::new(&text);
            let v = super::super::analyse(&log, &AnalyserConfig::default());
            assert!(v.len() <= MAX_RANKED, "{text:?}");
            assert!(v
                .iter()
                .all(|i| i.log_line >= 1 && i.excerpt.chars().count() <= MAX_EXCERPT_CHARS));
            if let Some(clean) = clean_lines(&log.lines) {
                assert_eq!(clean.split('\n').count(), log.lines.len(), "{text:?}");
            }
        }
    }
}
