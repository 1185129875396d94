//! The capsule bundle inspector on arbitrary bytes (raw, and gzip-wrapped so the tar reader is
//! reached): no panic, the caps hold, and every listed path is relative and free of `..`.
//! Run with `-max_len=1048576 -timeout=5`.
#![no_main]

use std::io::Write;

use agora_domain::capsules::bundle::{self, BundleLimits};
use flate2::write::GzEncoder;
use flate2::Compression;
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8], limits: &BundleLimits) {
    if let Ok(report) = bundle::inspect(bytes, limits) {
        assert!(report.expanded_bytes <= limits.max_expanded_bytes);
        assert!(report.files.len() <= limits.max_entries);
        for file in &report.files {
            assert!(!file.path.starts_with('/'));
            assert!(file.path.split('/').all(|part| part != ".." && !part.is_empty()));
            assert!(file.size_bytes <= limits.max_file_bytes);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = BundleLimits {
        max_expanded_bytes: 8 * 1024 * 1024,
        max_entries: 1_000,
        ..BundleLimits::default()
    };
    check(data, &limits);
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    if gz.write_all(data).is_ok() {
        if let Ok(wrapped) = gz.finish() {
            check(&wrapped, &limits);
        }
    }
});
