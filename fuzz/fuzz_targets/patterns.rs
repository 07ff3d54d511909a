//! kubectl's REGEXES flags: whatever the expression and the value, kproxy's
//! fast path for plain strings joined by `.*` decides exactly as the regex does.
#![no_main]

use kproxy::pipeline::route::patterns::Patterns;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Some((pattern, value)) = text.split_once('\0') else { return };
    // An empty flag is an empty list, which matches nothing (kubectl's rule),
    // where the empty regex matches everything: not the fast path's business.
    if pattern.is_empty() || pattern.contains(',') || pattern.len() > 64 {
        return;
    }
    let Ok(regex) = regex_lite::Regex::new(pattern) else { return };
    let patterns = Patterns::parse(pattern).expect("a valid regex is a valid pattern");
    assert_eq!(patterns.matches(value), regex.is_match(value), "{pattern:?} on {value:?}");
});
