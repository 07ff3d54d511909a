//! What kproxy has done, for `--metrics-address`: counters, gauges and one
//! histogram, written out in Prometheus's text format by [`exposition`] and
//! served by the metrics server
//! ([`crate::edges::listen::metrics_server`]).
//!
//! Each one is a relaxed atomic in a static, counted whether or not anyone
//! scrapes: the request path pays an atomic add or two, never a lock or an
//! allocation. Labels are fixed sets (methods, status classes, refusal
//! reasons), never anything a client chose: no path, no object name, no header.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::leaves::http::refusal::Reason;

pub mod exposition;

/// Only goes up.
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

impl Default for Counter {
    fn default() -> Self {
        Counter::new()
    }
}

/// Goes up and down: things open now.
pub struct Gauge(AtomicI64);

impl Gauge {
    pub const fn new() -> Gauge {
        Gauge(AtomicI64::new(0))
    }

    pub fn set(&self, value: usize) {
        self.0.store(value as i64, Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Relaxed)
    }

    /// Counts one more until the returned guard drops, however its holder ends
    /// (a panicking connection thread included).
    pub fn open(&'static self) -> Open {
        self.0.fetch_add(1, Relaxed);
        Open(self)
    }
}

impl Default for Gauge {
    fn default() -> Self {
        Gauge::new()
    }
}

/// One open thing, counted in its gauge while it lives.
pub struct Open(&'static Gauge);

impl Drop for Open {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Relaxed);
    }
}

/// The methods counted by name; any other is `other`.
pub const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
];

/// A request's method as counted: its place in [`METHODS`], found once per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Method(usize);

impl Method {
    /// Any method not named in [`METHODS`], and requests whose head could not be read.
    pub const OTHER: Method = Method(METHODS.len() - 1);

    pub fn of(method: &str) -> Method {
        let named = &METHODS[..METHODS.len() - 1];
        named
            .iter()
            .position(|m| *m == method)
            .map_or(Method::OTHER, Method)
    }
}

/// Upper bounds of the upstream duration histogram, in microseconds and as
/// written in `le`: from a 1 ms answer from a nearby API server to the 60 s
/// that a slow list or a webhook-delayed write can take.
pub const BUCKETS: [(u64, &str); 15] = [
    (1_000, "0.001"),
    (2_500, "0.0025"),
    (5_000, "0.005"),
    (10_000, "0.01"),
    (25_000, "0.025"),
    (50_000, "0.05"),
    (100_000, "0.1"),
    (250_000, "0.25"),
    (500_000, "0.5"),
    (1_000_000, "1"),
    (2_500_000, "2.5"),
    (5_000_000, "5"),
    (10_000_000, "10"),
    (30_000_000, "30"),
    (60_000_000, "60"),
];

/// Counts per bucket (not cumulative; the last is above every bound), and the
/// sum in microseconds.
pub struct Histogram {
    buckets: [Counter; BUCKETS.len() + 1],
    sum_micros: Counter,
}

impl Histogram {
    const fn new() -> Histogram {
        Histogram {
            buckets: [const { Counter::new() }; BUCKETS.len() + 1],
            sum_micros: Counter::new(),
        }
    }

    pub fn observe(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS
            .iter()
            .position(|(bound, _)| micros <= *bound)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].inc();
        self.sum_micros.add(micros);
    }
}

/// How a TLS handshake with the API server failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// Its certificate did not verify (wrong CA, name, expired...).
    Certificate,
    /// It sent a TLS alert (it refused our client certificate, say).
    Alert,
    /// No answer in time.
    Timeout,
    /// Anything else: the connection dropped, a protocol error.
    Other,
}

impl HandshakeFailure {
    pub const ALL: [HandshakeFailure; 4] = [
        HandshakeFailure::Certificate,
        HandshakeFailure::Alert,
        HandshakeFailure::Timeout,
        HandshakeFailure::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            HandshakeFailure::Certificate => "certificate",
            HandshakeFailure::Alert => "alert",
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Other => "other",
        }
    }
}

/// Everything counted. One static instance, [`METRICS`].
pub struct Metrics {
    /// By method, then status class (1xx..5xx).
    requests: [[Counter; 5]; METHODS.len()],
    refusals: [Counter; Reason::ALL.len()],
    pub upstream_seconds: Histogram,
    pub client_connections: Gauge,
    pub client_connections_total: Counter,
    pub upstream_connections: Gauge,
    pub upstream_idle: Gauge,
    pub tls_handshakes: Counter,
    tls_failures: [Counter; HandshakeFailure::ALL.len()],
    pub token_reloads: Counter,
    pub token_read_failures: Counter,
    pub token_retries: Counter,
    pub exec_runs: Counter,
    pub exec_failures: Counter,
    pub ca_reloads: Counter,
    pub ca_reload_failures: Counter,
    pub tunnels: Gauge,
    pub tunnels_total: Counter,
    /// Watches and followed logs (`kproxy_streams_open`).
    pub watches: Gauge,
    /// Body bytes (and tunnel bytes) from clients to the API server.
    pub bytes_to_server: Counter,
    /// Body bytes (and tunnel bytes) from the API server to clients.
    pub bytes_to_clients: Counter,
}

pub static METRICS: Metrics = Metrics {
    requests: [const { [const { Counter::new() }; 5] }; METHODS.len()],
    refusals: [const { Counter::new() }; Reason::ALL.len()],
    upstream_seconds: Histogram::new(),
    client_connections: Gauge::new(),
    client_connections_total: Counter::new(),
    upstream_connections: Gauge::new(),
    upstream_idle: Gauge::new(),
    tls_handshakes: Counter::new(),
    tls_failures: [const { Counter::new() }; HandshakeFailure::ALL.len()],
    token_reloads: Counter::new(),
    token_read_failures: Counter::new(),
    token_retries: Counter::new(),
    exec_runs: Counter::new(),
    exec_failures: Counter::new(),
    ca_reloads: Counter::new(),
    ca_reload_failures: Counter::new(),
    tunnels: Gauge::new(),
    tunnels_total: Counter::new(),
    watches: Gauge::new(),
    bytes_to_server: Counter::new(),
    bytes_to_clients: Counter::new(),
};

impl Metrics {
    /// A request answered with `code` (by the API server or by kproxy).
    pub fn request(&self, method: Method, code: u16) {
        if let 100..=599 = code {
            self.requests[method.0][usize::from(code / 100 - 1)].inc();
        }
    }

    pub fn refused(&self, reason: Reason) {
        self.refusals[reason as usize].inc();
    }

    pub fn handshake_failed(&self, kind: HandshakeFailure) {
        self.tls_failures[kind as usize].inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_index_their_arrays() {
        for (i, reason) in Reason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i);
        }
        for (i, kind) in HandshakeFailure::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i);
        }
        assert_eq!(Method::of("PATCH"), Method(4));
        assert_eq!(Method::of("other"), Method::OTHER);
        assert_eq!(Method::of("PROPFIND"), Method::OTHER);
        assert_eq!(METHODS[Method::OTHER.0], "other");
    }

    #[test]
    fn histogram_buckets_by_upper_bound() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(1_000));
        h.observe(Duration::from_micros(1_001));
        h.observe(Duration::from_secs(61));
        assert_eq!(h.buckets[0].get(), 1);
        assert_eq!(h.buckets[1].get(), 1);
        assert_eq!(h.buckets[BUCKETS.len()].get(), 1);
        assert_eq!(h.sum_micros.get(), 61_002_001);
    }
}
