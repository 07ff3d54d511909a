//! SIGTERM and SIGINT start a graceful shutdown.

use std::thread;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Runs `stop` on a helper thread when SIGTERM or SIGINT arrives (once).
pub fn on_terminate(stop: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    thread::Builder::new()
        .name("signals".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                crate::event!(2, "drain", "received signal {signal}: shutting down");
                stop();
            }
        })?;
    Ok(())
}
