//! The Error Detective and its failure locator on arbitrary bytes: no panic, a bounded number
//! of insights with bounded excerpts, and bounded time (libFuzzer's `-timeout` flags a slow
//! input; run with `-max_len=1048576 -timeout=2`).
#![no_main]

use agora_domain::logmarket::analysers::error::{self, locator};
use agora_domain::logmarket::analysers::{AnalyserConfig, LogText};
use agora_domain::logmarket::insight::MAX_EXCERPT_CHARS;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let log = LogText::new(&text);
    let insights = error::analyse(&log, &AnalyserConfig::default());
    assert!(insights.len() <= locator::MAX_RANKED);
    for i in &insights {
        assert!(i.excerpt.chars().count() <= MAX_EXCERPT_CHARS);
        assert!(i.log_line >= 1);
    }
    // The cleaning keeps line numbers.
    if let Some(clean) = locator::clean_lines(&log.lines) {
        assert_eq!(clean.split('\n').count(), log.lines.len().max(1));
    }
});
