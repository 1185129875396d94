//! The capsule manifest parser on arbitrary bytes: no panic; a manifest that parses has the
//! digests of what it read, and its canonical JSON reads back as the same manifest. Run with
//! `-max_len=70000` so inputs around the 64 KiB cap are tried.
#![no_main]

use agora_domain::capsules::manifest::{self, Manifest, ManifestError, MAX_PROBLEMS};
use agora_domain::capsules::sha256_hex;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match manifest::parse(data) {
        Ok(parsed) => {
            assert_eq!(parsed.source_sha256, sha256_hex(data));
            assert_eq!(parsed.canonical_sha256, sha256_hex(&parsed.canonical_json));
            let back: Manifest = serde_json::from_slice(&parsed.canonical_json).unwrap();
            assert_eq!(back, parsed.manifest);
        }
        Err(ManifestError::Invalid { problems }) => {
            assert!(!problems.is_empty() && problems.len() <= MAX_PROBLEMS);
            assert!(problems.iter().all(|p| p.pointer.is_empty() || p.pointer.starts_with('/')));
        }
        Err(_) => {}
    }
});
