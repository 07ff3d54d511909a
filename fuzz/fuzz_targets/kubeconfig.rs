//! kubeconfig files (and so exec plugins' JSON, read by the same YAML code):
//! whatever the bytes, parsing ends in a configuration or an error, never a
//! panic, a hang or a stack overflow.
#![no_main]

use kproxy::edges::config::kubeconfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = kubeconfig::parse(std::path::Path::new("/fuzz/config"), text);
});
