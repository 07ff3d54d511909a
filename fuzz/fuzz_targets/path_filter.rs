//! The canonical path and kubectl's filter: never panic; a path judged is
//! absolute and has no empty, `.` or `..` segment; a path moved elsewhere is
//! moved to one that is judged at once (no redirect loop); and whatever the
//! spelling, a judged path naming a pod's `exec` is refused by the defaults.
#![no_main]

use kproxy::edges::cli;
use kproxy::pipeline::route::filter::{Browser, Filter, Refusal};
use kproxy::pipeline::route::patterns::Patterns;
use kproxy::leaves::path::{canonical, PathError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else { return };
    let filter = Filter {
        accept_hosts: Patterns::parse(cli::DEFAULT_ACCEPT_HOSTS).unwrap(),
        accept_paths: Patterns::parse(cli::DEFAULT_ACCEPT_PATHS).unwrap(),
        reject_paths: Patterns::parse(cli::DEFAULT_REJECT_PATHS).unwrap(),
        reject_methods: Patterns::parse(cli::DEFAULT_REJECT_METHODS).unwrap(),
        accept_origins: Patterns::parse(cli::DEFAULT_ACCEPT_ORIGINS).unwrap(),
    };
    let judged = match canonical(path) {
        Ok(judged) => judged,
        Err(PathError::Undecodable) => return,
        Err(PathError::NotCanonical(to)) => {
            assert!(canonical(&to).is_ok(), "{path:?} moved to {to:?}, not clean");
            return;
        }
    };
    let normal = judged.as_str();
    assert!(normal.starts_with('/'));
    let inner = normal.trim_end_matches('/');
    assert!(!inner.contains("//") && !inner.contains("/./") && !inner.contains("/../"));
    assert!(!inner.ends_with("/.") && !inner.ends_with("/.."));
    let verdict = filter.check("POST", &judged, "localhost", &Browser::default());
    let segments: Vec<&str> = normal.split('/').collect();
    let is_exec = segments.len() >= 6
        && segments[1] == "api"
        && segments.iter().rev().nth(2) == Some(&"pods")
        && segments.last() == Some(&"exec");
    if is_exec {
        assert_eq!(verdict, Err(Refusal::RejectedPath), "{path} -> {normal}");
    }
});
