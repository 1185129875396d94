//! The Security Guardian's request-line decoder and value classifier on arbitrary input: no
//! panic, and output bounded by the documented limits (so time is linear in the input).
#![no_main]

use agora_domain::logmarket::analysers::security::decode::{
    decode_target, decode_value, MAX_PARAMS, MAX_VALUE_BYTES,
};
use agora_domain::logmarket::analysers::security::injection::{classify_path, classify_value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Decoding only shrinks bytes, except U+FFFD for invalid UTF-8 (3 bytes for 1).
    let bound = 3 * MAX_VALUE_BYTES;
    let value = decode_value(text);
    assert!(value.len() <= bound);
    let _ = classify_value(&value);
    let target = decode_target(text);
    assert!(target.params.len() <= MAX_PARAMS);
    assert!(target.path.len() <= bound);
    for p in &target.params {
        assert!(p.value.len() <= bound);
        let _ = classify_value(&p.value);
    }
    let _ = classify_path(&target.path);
});
