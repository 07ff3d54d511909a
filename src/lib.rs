//! kproxy: a drop-in replacement for `kubectl proxy`, small enough for a
//! `FROM scratch` sidecar.
//!
//! # Design
//! Blocking I/O, one thread per client connection, no async runtime: a sidecar
//! serves a handful of local clients, and threads keep the code plain and the
//! binary small. Each connection's requests are forwarded in order to the API
//! server over pooled TLS connections (rustls with ring), with the Pod's
//! service-account token added; responses stream back piece by piece.
//!
//! The modules follow a request's life:
//! - [`cli`] and [`config`]: flags, environment and files become a [`config::Config`];
//! - [`credentials`] and [`tls`]: the token and the TLS settings;
//! - [`listen`]: accept loop, threads, graceful shutdown;
//! - [`proxy`]: one client connection, request by request;
//! - [`forward`]: one exchange with the API server, and [`budget`], what large ones may hold;
//! - [`route`], [`path`] and [`filter`]: where a request may go: the canonical
//!   path, kubectl's accept/reject rules;
//! - [`http`]: heads, bodies and header rules;
//! - [`upstream`]: the connection pool to the API server;
//! - [`error`] and [`refusal`]: what the client sees when something fails, and why;
//! - [`metrics`] and [`log`]: what an operator sees (`--metrics-address`, `--log-format`).

pub mod base64;
pub mod budget;
pub mod check;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod error;
pub mod filter;
pub mod forward;
pub mod http;
pub mod listen;
pub mod log;
pub mod metrics;
pub mod path;
pub mod pool;
pub mod proxy;
pub mod proxy_url;
pub mod refusal;
pub mod rewrite;
pub mod route;
pub mod signals;
pub mod stream;
pub mod tls;
pub mod tunnel;
pub mod upstream;
pub mod www;

use std::io::Write;
use std::sync::Arc;

use config::Config;
use listen::{Listener, Shutdown};
use proxy::Proxy;
use upstream::Upstream;

/// Memory that all connections together may hold for large request heads and
/// kept bodies (see [`budget`]): room for about 30 of the largest at once,
/// far more than a sidecar's clients send, and little enough that hostile
/// clients filling it cannot push kproxy past its memory limit (tests/memory.rs).
pub const LARGE_REQUEST_BUDGET: usize = 4 << 20;

/// Binds the listener and serves until `on_listening`'s shutdown is triggered.
/// `on_listening` receives the listener (to wake it) just before the
/// `Starting to serve on` line is printed, so that what it sets up (the signal
/// handlers) is in place when a script reads that line.
pub fn run(
    config: Config,
    shutdown: Arc<Shutdown>,
    on_listening: impl FnOnce(Arc<Listener>),
) -> std::io::Result<()> {
    log::set_verbosity(config.verbosity);
    log::set_format(config.log_format);
    metrics::exposition::mark_start();
    for warning in &config.warnings {
        warn!("{warning}");
    }
    let listener = Arc::new(Listener::bind(&config.listen)?);
    if let Some(addr) = config.metrics {
        let bound = metrics::listener::start(addr, config.timeouts.header)
            .map_err(|e| std::io::Error::new(e.kind(), format!("--metrics-address {addr}: {e}")))?;
        log!(1, "serving metrics on http://{bound}/metrics");
    }
    let proxy = Arc::new(Proxy {
        upstream: Upstream::new(config.upstream, config.max_upstream_connections),
        router: route::Router {
            filter: config.filter,
            api_prefix: config.api_prefix,
            www: config.www,
        },
        keepalive: config.keepalive,
        timeouts: config.timeouts,
        budget: budget::Budget::new(LARGE_REQUEST_BUDGET),
    });
    // Signal handlers first: a script that sends SIGTERM as soon as it reads the
    // start line must get a graceful exit, not the default action's.
    on_listening(listener.clone());
    let mut stdout = std::io::stdout();
    // kubectl's exact line: scripts wait for it to know the port is open.
    writeln!(stdout, "Starting to serve on {}", listener.describe())?;
    stdout.flush()?;

    listen::accept_loop(&listener, &proxy, &shutdown, config.max_connections);
    // Close the listening socket now, so new clients are refused during the drain
    // instead of waiting in the backlog (the signal handler holds only a Weak).
    if let Listener::Unix(_, path) = &*listener {
        let _ = std::fs::remove_file(path);
    }
    drop(listener);
    let left = shutdown.drain(config.grace_period);
    match left {
        0 => event!(2, "drained", "all connections finished: exiting"),
        _ => warn!("grace period over: closing {left} connection(s) still open"),
    }
    Ok(())
}
