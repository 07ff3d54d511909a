//! Logging to stderr, filtered by `-v`. stdout carries only the
//! `Starting to serve on ...` line, as kubectl's does, so scripts can read it.

use std::sync::atomic::{AtomicU8, Ordering};

static VERBOSITY: AtomicU8 = AtomicU8::new(0);

pub fn set_verbosity(level: u8) {
    VERBOSITY.store(level, Ordering::Relaxed);
}

pub fn enabled(level: u8) -> bool {
    level <= VERBOSITY.load(Ordering::Relaxed)
}

/// `log!(level, "format", args...)`: one line on stderr when `-v` is at least `level`.
/// Level 0 is always shown (warnings and errors); 2 for notable events; 4 for
/// one line per request. Never pass a header value or a token.
#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)+) => {
        if $crate::log::enabled($level) {
            eprintln!("kproxy: {}", format_args!($($arg)+));
        }
    };
}
