//! The flags' defaults: kubectl proxy's, copied from `kubectl proxy --help`
//! (v1.32), and kproxy's own, each with the reason for its value. The filter's
//! live with the filter.

use std::time::Duration;

pub use crate::pipeline::route::filter::{
    DEFAULT_ACCEPT_HOSTS, DEFAULT_ACCEPT_ORIGINS, DEFAULT_ACCEPT_PATHS, DEFAULT_REJECT_METHODS,
    DEFAULT_REJECT_PATHS,
};

/// kubectl proxy's own.
pub const DEFAULT_PORT: u16 = 8001;
pub const DEFAULT_ADDRESS: &str = "127.0.0.1";
pub const DEFAULT_API_PREFIX: &str = "/";
pub const DEFAULT_WWW_PREFIX: &str = "/static/";
pub const DEFAULT_SERVICEACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Time allowed for a request head once its first byte has come (and for a
/// request body that stops moving): a slowloris client is dropped after this.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a keep-alive connection may wait for its next request. Longer than
/// the 90 s that Go and most HTTP clients keep an idle connection, so that the
/// client, not kproxy, usually closes it.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Connections served at once; past it a client gets a fast 503. With 256
/// hostile clients each making kproxy hold the costliest state it can, the
/// static build peaks at 25.6 MiB (tests/memory.rs), under the manifests' 40Mi.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Connections to the API server for ordinary requests (streams have their
/// own). Chosen by scripts/bench.sh; see docs/benchmarks.md.
pub const DEFAULT_MAX_UPSTREAM_CONNECTIONS: usize = 32;
/// How long an exec credential plugin may run before kproxy stops it. client-go
/// waits forever; `aws eks get-token` takes a second or two, a cold Python start
/// on a small node a few more.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);
/// Go's dialer default, which is what kubectl's `--keepalive=0` really means.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(15);
/// Kubernetes gives a Pod 30 s between SIGTERM and SIGKILL; finishing in-flight
/// requests within a few seconds leaves the rest for the app container.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(5);
