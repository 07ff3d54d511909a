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
//! # Layers
//! Each module imports only from its own layer and the layers below
//! (tests/layers.rs holds it so):
//!
//! - [`edges`]: where kproxy meets the world: [`edges::cli`] (flags),
//!   [`edges::config`] (kubeconfig, environment, files: a validated
//!   [`edges::config::Config`]), [`edges::listen`] (accept loop, threads,
//!   graceful shutdown, and the metrics port), [`edges::signals`],
//!   [`edges::check`] (the `kproxy check` probe); and [`run`], which wires the
//!   layers together.
//! - [`proxy`]: one client connection, request by request: head, route,
//!   exchange, log and count.
//! - [`pipeline`]: one request: [`pipeline::route`] (where it may go: the
//!   canonical path, kubectl's filter, without I/O), [`pipeline::exchange`]
//!   (to the API server and back), [`pipeline::www`] (`--www` files).
//! - [`services`]: [`services::upstream`] (dialing, the shared pool, the
//!   transport, tunnels), [`services::credentials`] (token, token file, basic,
//!   exec plugins, impersonation), [`services::tls`] (CA and client
//!   certificate, reloaded), [`services::metrics`] (the counters every layer
//!   above writes to, and their text format).
//! - [`leaves`]: [`leaves::http`] (heads, bodies, header rules, refusal
//!   reasons), [`leaves::yaml`], [`leaves::base64`], [`leaves::json`],
//!   [`leaves::log`], [`leaves::budget`] (memory for large requests),
//!   [`leaves::path`] (the canonical path), [`leaves::socket`] (a client's
//!   TCP or unix socket), [`leaves::secret`].

pub mod edges;
pub mod leaves;
pub mod pipeline;
pub mod proxy;
pub mod services;

use std::io::Write;
use std::sync::Arc;

use edges::config::Config;
use edges::listen::{Listener, Shutdown};
use leaves::budget::Budget;
use leaves::log;
use pipeline::exchange::Shared;
use pipeline::route::Router;
use proxy::Proxy;
use services::metrics;
use services::upstream::{Pool, Upstream};

/// Memory that all connections together may hold for large request heads and
/// kept bodies (see [`leaves::budget`]): room for about 30 of the largest at once,
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
        let bound = edges::listen::metrics_server::start(addr, config.timeouts.header)
            .map_err(|e| std::io::Error::new(e.kind(), format!("--metrics-address {addr}: {e}")))?;
        log!(1, "serving metrics on http://{bound}/metrics");
    }
    let (upstream, credentials) = config.upstream.into_parts();
    let proxy = Arc::new(Proxy {
        router: Router {
            filter: config.filter,
            api_prefix: config.api_prefix,
            www: config.www,
        },
        shared: Shared {
            upstream: Upstream {
                authority: upstream.authority,
                path_prefix: upstream.path_prefix,
                pool: Pool::new(upstream.dialer, config.max_upstream_connections),
            },
            credentials,
            budget: Budget::new(LARGE_REQUEST_BUDGET),
            timeouts: config.timeouts,
            keepalive: config.keepalive,
        },
    });
    // Signal handlers first: a script that sends SIGTERM as soon as it reads the
    // start line must get a graceful exit, not the default action's.
    on_listening(listener.clone());
    let mut stdout = std::io::stdout();
    // kubectl's exact line: scripts wait for it to know the port is open.
    writeln!(stdout, "Starting to serve on {}", listener.describe())?;
    stdout.flush()?;

    edges::listen::accept_loop(&listener, &proxy, &shutdown, config.max_connections);
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
