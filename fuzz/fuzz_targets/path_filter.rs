//! Path normalisation and kubectl's filter: never panic; a normalised path is
//! absolute and has no empty, `.` or `..` segment left; and whatever the
//! spelling, a path that resolves to a pod's `exec` is refused by the defaults.
#![no_main]

use kproxy::cli;
use kproxy::filter::{normalize_path, Filter, Patterns, Refusal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else { return };
    let filter = Filter {
        accept_hosts: Patterns::parse(cli::DEFAULT_ACCEPT_HOSTS).unwrap(),
        accept_paths: Patterns::parse(cli::DEFAULT_ACCEPT_PATHS).unwrap(),
        reject_paths: Patterns::parse(cli::DEFAULT_REJECT_PATHS).unwrap(),
        reject_methods: Patterns::parse(cli::DEFAULT_REJECT_METHODS).unwrap(),
    };
    let verdict = filter.check("POST", path, "localhost");
    let Some(normal) = normalize_path(path) else {
        assert_eq!(verdict, Err(Refusal::BadPath));
        return;
    };
    assert!(normal.starts_with('/'));
    let inner = normal.trim_end_matches('/');
    assert!(!inner.contains("//") && !inner.contains("/./") && !inner.contains("/../"));
    assert!(!inner.ends_with("/.") && !inner.ends_with("/.."));
    let segments: Vec<&str> = normal.split('/').collect();
    let is_exec = segments.len() >= 6
        && segments[1] == "api"
        && segments.iter().rev().nth(2) == Some(&"pods")
        && segments.last() == Some(&"exec");
    if is_exec {
        assert_eq!(verdict, Err(Refusal::Forbidden), "{path} -> {normal}");
    }
});
