//! The four monitoring agents as deterministic rule sets over log text.
//!
//! Every analyser is a pure function `(&LogText, &AnalyserConfig) -> Vec<Insight>`: no IO, no
//! clock, no randomness, so an auditor re-running it on the same log gets the same insights.
//! `docs/analysers.md` documents every rule.

pub mod error;
pub mod performance;
pub mod quality;
pub mod security;

use std::collections::BTreeMap;

use super::insight::{Agent, Insight, InsightKind, MAX_EXCERPT_CHARS, MAX_INSIGHTS_PER_KIND};

/// A submitted log, split into lines once and shared by all analysers.
#[derive(Debug)]
pub struct LogText<'a> {
    pub text: &'a str,
    /// Lines without their terminator (`\n` or `\r\n`), as logged (with their timestamps:
    /// brute-force windows and excerpts need them).
    pub lines: Vec<&'a str>,
    /// The same lines with one leading CI / log timestamp prefix removed
    /// ([`strip_timestamp`]): what rules matching the start of a tool's output look at.
    /// Always as long as `lines`.
    pub bodies: Vec<&'a str>,
}

impl<'a> LogText<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut lines = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .collect::<Vec<_>>();
        // A trailing newline does not make an extra empty line.
        if lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        let bodies = lines.iter().map(|l| strip_timestamp(l)).collect();
        Self {
            text,
            lines,
            bodies,
        }
    }

    /// A log made of lines that are not slices of one text (tests, callers that split
    /// themselves); `text` is only used to speed up the candidate search when the lines are
    /// slices of it.
    pub fn from_lines(text: &'a str, lines: Vec<&'a str>) -> Self {
        let bodies = lines.iter().map(|l| strip_timestamp(l)).collect();
        Self {
            text,
            lines,
            bodies,
        }
    }
}

/// `line` without one leading CI / log timestamp prefix, a cheap byte check (no regex):
///
/// * ISO 8601, `T` or space separated, optional fraction (`.` or `,`) and zone (`Z`,
///   `+01:00`, `+0100`, ` UTC`), then a space: GitHub Actions `2025-11-06T10:49:42.2491016Z `,
///   `kubectl logs --timestamps`, `2025-11-06 10:44:01,302 ` (Maven / log4j / Python
///   logging); a GitLab stream marker after it (`01O `, `00E `, `00O+ `) goes too;
/// * the same in square brackets, then a space: Jenkins Timestamper
///   `[2025-11-06T10:44:23.366Z] `, `[2025-11-06 10:45:00] `, `[2025-11-06 10:45:00 +0000] `;
/// * `ts` / syslog `Nov 06 10:46:01 ` or `Nov  6 10:46:01 ` (optional fraction), with a
///   following syslog `host prog[pid]: ` when there is one.
///
/// Anything else (a level, `[INFO]`, `web_1  | `, a bare time) is tool output and stays.
pub fn strip_timestamp(line: &str) -> &str {
    let b = line.as_bytes();
    let cut = match b.first() {
        Some(b'0'..=b'9') => match iso_datetime_len(b) {
            0 => 0,
            n => after_space(b, n).map_or(0, |n| gitlab_marker(b, n)),
        },
        Some(b'[') => match iso_datetime_len(&b[1..]) {
            0 => 0,
            n => {
                let mut i = 1 + n;
                if b.get(i) == Some(&b' ') {
                    i += zone_len(&b[i + 1..]).map_or(0, |z| z + 1);
                }
                if b.get(i) == Some(&b']') {
                    after_space(b, i + 1).unwrap_or(i + 1)
                } else {
                    0
                }
            }
        },
        Some(b'A'..=b'Z') => {
            let n = syslog_time_len(b);
            if n == 0 {
                0
            } else {
                after_space(b, n).map_or(0, |n| n + syslog_tag_len(&b[n..]))
            }
        }
        _ => 0,
    };
    &line[cut..]
}

/// `n` (end of line) or `n + 1` after a space at `n`.
fn after_space(b: &[u8], n: usize) -> Option<usize> {
    match b.get(n) {
        None => Some(n),
        Some(b' ') => Some(n + 1),
        _ => None,
    }
}

fn digits(b: &[u8], at: usize, n: usize) -> bool {
    b.len() >= at + n && b[at..at + n].iter().all(u8::is_ascii_digit)
}

/// Length of `YYYY-MM-DD[T ]HH:MM:SS[.frac][zone]` at the start of `b`, or 0.
fn iso_datetime_len(b: &[u8]) -> usize {
    if !(b.len() >= 19
        && digits(b, 0, 4)
        && b[4] == b'-'
        && digits(b, 5, 2)
        && b[7] == b'-'
        && digits(b, 8, 2)
        && (b[10] == b'T' || b[10] == b' ')
        && digits(b, 11, 2)
        && b[13] == b':'
        && digits(b, 14, 2)
        && b[16] == b':'
        && digits(b, 17, 2))
    {
        return 0;
    }
    let mut i = 19;
    if matches!(b.get(i), Some(b'.' | b',')) && digits(b, i + 1, 1) {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    if b.get(i) == Some(&b'Z') {
        i += 1;
    } else if matches!(b.get(i), Some(b'+' | b'-')) {
        i += zone_len(&b[i..]).unwrap_or(0);
    } else if b[i..].starts_with(b" UTC") && matches!(b.get(i + 4), None | Some(b' ' | b']')) {
        i += 4;
    }
    i
}

/// Length of a zone `Z`, `UTC`, `+hh:mm` or `+hhmm` at the start of `b`.
fn zone_len(b: &[u8]) -> Option<usize> {
    match b.first()? {
        b'Z' => Some(1),
        b'U' if b.starts_with(b"UTC") => Some(3),
        b'+' | b'-' if digits(b, 1, 2) && b.get(3) == Some(&b':') && digits(b, 4, 2) => Some(6),
        b'+' | b'-' if digits(b, 1, 4) => Some(5),
        _ => None,
    }
}

/// `n` plus a GitLab job-log stream marker (`01O `, `00E `, `00O+ `) at `n`.
fn gitlab_marker(b: &[u8], n: usize) -> usize {
    if digits(b, n, 2) && matches!(b.get(n + 2), Some(b'O' | b'E')) {
        let mut i = n + 3;
        if b.get(i) == Some(&b'+') {
            i += 1;
        }
        if let Some(e) = after_space(b, i) {
            return e;
        }
    }
    n
}

/// Length of `Mmm dd HH:MM:SS[.frac]` / `Mmm  d HH:MM:SS` at the start of `b`, or 0.
fn syslog_time_len(b: &[u8]) -> usize {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    if b.len() < 15 || b[3] != b' ' || !MONTHS.iter().any(|m| b[..3] == m[..]) {
        return 0;
    }
    let day_ok = (b[4] == b' ' || b[4].is_ascii_digit()) && b[5].is_ascii_digit();
    if !(day_ok
        && b[6] == b' '
        && digits(b, 7, 2)
        && b[9] == b':'
        && digits(b, 10, 2)
        && b[12] == b':'
        && digits(b, 13, 2))
    {
        return 0;
    }
    let mut i = 15;
    if b.get(i) == Some(&b'.') && digits(b, i + 1, 1) {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    i
}

/// Length of a syslog `host prog[pid]: ` at the start of `b`, or 0 (only with a `[pid]`, so
/// tool output such as `make: *** …` or `src/x.c:3:1: error: …` is never taken for one).
fn syslog_tag_len(b: &[u8]) -> usize {
    let host = b
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
        .count();
    if host == 0 || b.get(host) != Some(&b' ') {
        return 0;
    }
    let rest = &b[host + 1..];
    let prog = rest
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'/'))
        .count();
    if prog == 0 || rest.get(prog) != Some(&b'[') {
        return 0;
    }
    let pid = rest[prog + 1..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    let at = prog + 1 + pid;
    if pid == 0 || rest.get(at) != Some(&b']') || rest.get(at + 1) != Some(&b':') {
        return 0;
    }
    after_space(rest, at + 2).map_or(0, |e| host + 1 + e)
}

/// Thresholds, all configurable (defaults are the seed's numbers).
#[derive(Clone, Debug, PartialEq)]
pub struct AnalyserConfig {
    /// A query slower than this is a slow query (seed: 1000 ms).
    pub slow_query_ms: u64,
    /// Memory use above this share is high (seed: 80 %).
    pub high_memory_percent: u32,
    /// An image larger than this is large (seed: 1 GB).
    pub large_image_bytes: u64,
    /// A response slower than this is slow (seed: 2 s).
    pub slow_response_ms: u64,
    /// The same query shape this many times in one request is an N+1 pattern.
    pub n_plus_one_repeats: u32,
    /// This many authentication failures from one source …
    pub brute_force_failures: u32,
    /// … within this many seconds is a brute-force attempt.
    pub brute_force_window_secs: u32,
    /// Coverage below this percentage is reported (seed: 80 %).
    pub coverage_target_percent: u32,
}

impl Default for AnalyserConfig {
    fn default() -> Self {
        Self {
            slow_query_ms: 1000,
            high_memory_percent: 80,
            large_image_bytes: 1_000_000_000,
            slow_response_ms: 2000,
            n_plus_one_repeats: 5,
            brute_force_failures: 5,
            brute_force_window_secs: 300,
            coverage_target_percent: 80,
        }
    }
}

/// Sorts by log line and keeps at most [`MAX_INSIGHTS_PER_KIND`] insights of each kind; the
/// last one kept (the 20th in log order) summarises the others, as in the other analysers:
/// its title gets "(and N more similar findings)", `findings` = how many insights it stands
/// for and `occurrences` = the sum of their occurrences. `extra` counts, per kind, findings
/// that were only counted during the scan (past [`KEEP_PER_KIND`]); each adds one occurrence.
pub(crate) fn cap_per_kind(
    mut v: Vec<Insight>,
    extra: &BTreeMap<InsightKind, usize>,
) -> Vec<Insight> {
    v.sort_by_key(|i| i.log_line);
    let mut seen: BTreeMap<InsightKind, usize> = BTreeMap::new();
    // kind → (index in `out`, occurrences, findings)
    let mut summary: BTreeMap<InsightKind, (usize, u64, usize)> = BTreeMap::new();
    let mut out = Vec::with_capacity(v.len().min(8 * MAX_INSIGHTS_PER_KIND));
    for ins in v {
        let n = seen.entry(ins.kind).or_insert(0);
        *n += 1;
        let occ = ins
            .details
            .get("occurrences")
            .and_then(|o| o.parse::<u64>().ok())
            .unwrap_or(1);
        if *n < MAX_INSIGHTS_PER_KIND {
            out.push(ins);
        } else if *n == MAX_INSIGHTS_PER_KIND {
            summary.insert(ins.kind, (out.len(), occ, 1));
            out.push(ins);
        } else if let Some(s) = summary.get_mut(&ins.kind) {
            s.1 += occ;
            s.2 += 1;
        }
    }
    for (kind, n) in extra {
        if let Some(s) = summary.get_mut(kind) {
            s.1 += *n as u64;
            s.2 += *n;
        }
    }
    for (index, occurrences, findings) in summary.into_values() {
        if findings > 1 {
            let ins = &mut out[index];
            let suffix = format!(" (and {} more similar findings)", findings - 1);
            let room = MAX_EXCERPT_CHARS.saturating_sub(suffix.chars().count());
            ins.title = format!("{}{suffix}", error::truncate(&ins.title, room));
            ins.details
                .insert("occurrences".into(), occurrences.to_string());
            ins.details.insert("findings".into(), findings.to_string());
        }
    }
    out
}

/// Runs all four agents and returns their insights in a stable order: by agent; the Error
/// Detective's most likely cause first (its own order, [`error::locator`]), the others' by log
/// line.
pub fn analyse_all(log: &LogText<'_>, config: &AnalyserConfig) -> Vec<Insight> {
    let mut insights = error::analyse(log, config);
    insights.extend(performance::analyse(log, config));
    insights.extend(security::analyse(log, config));
    insights.extend(quality::analyse(log, config));
    // Stable: the Error Detective's insights keep their ranked order.
    insights.sort_by_key(|i| match i.agent() {
        Agent::ErrorDetective => (i.agent(), 0),
        a => (a, i.log_line),
    });
    insights
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_one_ci_or_log_timestamp_prefix() {
        let cases = [
            (
                "2025-11-06T10:49:42.2491016Z REPOSITORY  TAG",
                "REPOSITORY  TAG",
            ),
            (
                "2025-11-06T10:44:58.118507549Z [Nest] 1  - x",
                "[Nest] 1  - x",
            ),
            ("2025-11-06T10:49:23.3211412Z ", ""),
            ("2025-11-06T10:49:23.3211412Z", ""),
            (
                "[2025-11-06T10:44:23.366Z] FAILED tests/a.py::t",
                "FAILED tests/a.py::t",
            ),
            ("[2025-11-06T10:48:10.076Z] ", ""),
            ("[2025-11-06 10:45:00] INFO  deploy", "INFO  deploy"),
            ("[2025-11-06 10:45:00 +0000] [1] [INFO] x", "[1] [INFO] x"),
            (
                "2025-11-06T10:46:02.123456Z 01O --- FAIL: TestX",
                "--- FAIL: TestX",
            ),
            ("2025-11-06T10:46:02.123456Z 00E+ tail", "tail"),
            ("2025-11-06T10:46:02.123456Z 01O ", ""),
            (
                "2025-11-06 10:44:08,841 [ERROR] /a/B.java:[5,1] x",
                "[ERROR] /a/B.java:[5,1] x",
            ),
            (
                "2025-11-06 10:44:58.364 UTC [1187] LOG:  x",
                "[1187] LOG:  x",
            ),
            ("2025-11-06T10:00:00+01:00 x", "x"),
            (
                "Nov 06 10:46:03 src/config.c:88:9: error: x",
                "src/config.c:88:9: error: x",
            ),
            (
                "Nov  6 10:46:01 web-01 sshd[231]: Failed password",
                "Failed password",
            ),
            (
                "Nov  6 10:46:01 combo syslogd 1.4.1: restart.",
                "combo syslogd 1.4.1: restart.",
            ),
            (
                "Nov 06 10:46:05 make: *** [Makefile:41: x] Error 1",
                "make: *** [Makefile:41: x] Error 1",
            ),
        ];
        for (line, body) in cases {
            assert_eq!(strip_timestamp(line), body, "{line}");
        }
        // Tool output and other layouts stay.
        for line in [
            "[INFO] BUILD FAILURE",
            "[ERROR] Tests run: 3",
            "error[E0425]: cannot find value",
            "2025-11-06T10:00:00Zfoo",
            "2025-11-06 bar",
            "20251106 10:00:00 x",
            "Nov 6 10:46:01 x",
            "November 06 10:46:01 x",
            "[2025-11-06T10:44:23.366Z",
            "web_1  | Error: x",
            "081109 203615 148 INFO dfs.DataNode",
            "",
            "2016-09-28 04:30:30, Info CBS",
        ] {
            assert_eq!(strip_timestamp(line), line, "{line}");
        }
    }

    #[test]
    fn bodies_follow_lines() {
        let log = LogText::new("[2025-11-06T10:44:23.366Z] a\r\nNov 06 10:46:03 b\nc\n");
        assert_eq!(log.lines.len(), 3);
        assert_eq!(log.bodies, ["a", "b", "c"]);
        assert_eq!(log.lines[0], "[2025-11-06T10:44:23.366Z] a");
    }
}
