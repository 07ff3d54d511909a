//! The Prometheus text exposition format (version 0.0.4), written by hand.
//! The official crate, prometheus-client 0.22.3, added 65,632 bytes to a small
//! static program that encodes one labelled counter and one histogram (x86_64
//! musl, this profile; 385,592 -> 451,224, scripts/measure-metrics-crate.sh),
//! more than all of issue 13 costs
//! kproxy (36,896), and its labelled families take a lock on each lookup,
//! which the request path must not.
//!
//! Every family is written on every scrape, zeros included, so that a rate
//! over a counter that has not moved yet is 0 rather than absent.

use std::fmt::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{HandshakeFailure, Metrics, BUCKETS, METHODS, METRICS};
use crate::leaves::http::refusal::Reason;

/// What the `Content-Type` of a scrape says.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

static STARTED: OnceLock<u64> = OnceLock::new();

/// Notes the process start time, once, as `run` begins.
pub fn mark_start() {
    STARTED.get_or_init(|| unix_seconds(SystemTime::now()));
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// One family's `# HELP` and `# TYPE` lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
}

/// A family of one unlabelled sample.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// A counter family with one label, one sample per value of it.
fn by_label<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    samples: impl IntoIterator<Item = (&'a str, u64)>,
) {
    family(out, name, "counter", help);
    for (value, count) in samples {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {count}");
    }
}

/// Everything, as one scrape's body.
pub fn render() -> String {
    let mut out = String::with_capacity(12 * 1024);
    let m: &Metrics = &METRICS;
    requests(&mut out, m);
    by_label(
        &mut out,
        "kproxy_refusals_total",
        "Requests (and connections) kproxy answered itself, by rule; see docs/operating.md, \"Why did my request fail?\".",
        "reason",
        Reason::ALL.map(|r| (r.label(), m.refusals[r as usize].get())),
    );
    upstream_histogram(&mut out, m);
    for (name, help, value) in [
        ("kproxy_client_connections_open", "Client connections open now.", m.client_connections.get()),
        ("kproxy_upstream_connections_open", "Connections to the API server open now (pooled, idle and streaming; tunnels are kproxy_tunnels_open).", m.upstream_connections.get()),
        ("kproxy_upstream_connections_idle", "Pooled connections to the API server waiting for a request.", m.upstream_idle.get()),
        ("kproxy_tunnels_open", "Upgraded connections (exec, attach, port-forward) open now.", m.tunnels.get()),
        ("kproxy_streams_open", "Watches and followed logs being streamed now.", m.watches.get()),
    ] {
        single(&mut out, name, "gauge", help, value);
    }
    for (name, help, value) in [
        (
            "kproxy_client_connections_total",
            "Client connections accepted.",
            &m.client_connections_total,
        ),
        (
            "kproxy_tunnels_total",
            "Upgraded connections opened.",
            &m.tunnels_total,
        ),
        (
            "kproxy_tls_handshakes_total",
            "TLS handshakes with the API server begun.",
            &m.tls_handshakes,
        ),
        (
            "kproxy_token_reloads_total",
            "Times a changed token file was read and used.",
            &m.token_reloads,
        ),
        (
            "kproxy_token_read_failures_total",
            "Times the token file could not be read (the last good token stays).",
            &m.token_read_failures,
        ),
        (
            "kproxy_token_retries_total",
            "Requests sent again with a new token after a 401 (token rotation).",
            &m.token_retries,
        ),
        (
            "kproxy_exec_plugin_runs_total",
            "Runs of the kubeconfig's exec credential plugin.",
            &m.exec_runs,
        ),
        (
            "kproxy_exec_plugin_failures_total",
            "Runs of the exec credential plugin that gave no credential.",
            &m.exec_failures,
        ),
        (
            "kproxy_ca_reloads_total",
            "Times changed TLS files (CA bundle, client certificate) were loaded.",
            &m.ca_reloads,
        ),
        (
            "kproxy_ca_reload_failures_total",
            "Times changed TLS files could not be loaded (the last good ones stay).",
            &m.ca_reload_failures,
        ),
    ] {
        single(&mut out, name, "counter", help, value.get());
    }
    by_label(
        &mut out,
        "kproxy_tls_handshake_failures_total",
        "TLS handshakes with the API server that failed, by kind.",
        "kind",
        HandshakeFailure::ALL.map(|k| (k.label(), m.tls_failures[k as usize].get())),
    );
    by_label(
        &mut out,
        "kproxy_bytes_total",
        "Body and tunnel bytes passed through, by direction.",
        "direction",
        [
            ("to_server", m.bytes_to_server.get()),
            ("to_client", m.bytes_to_clients.get()),
        ],
    );
    process(&mut out);
    out
}

fn requests(out: &mut String, m: &Metrics) {
    family(
        out,
        "kproxy_requests_total",
        "counter",
        "Requests answered, by method and status class (from the API server or kproxy).",
    );
    for (method, counts) in METHODS.iter().zip(&m.requests) {
        for (class, count) in CLASSES.iter().zip(counts) {
            let _ = writeln!(
                out,
                "kproxy_requests_total{{method=\"{method}\",class=\"{class}\"}} {}",
                count.get()
            );
        }
    }
}

fn upstream_histogram(out: &mut String, m: &Metrics) {
    let name = "kproxy_upstream_request_duration_seconds";
    family(
        out,
        name,
        "histogram",
        "Time from sending a request to the API server to its response head.",
    );
    let h = &m.upstream_seconds;
    let mut cumulative = 0;
    for ((_, le), count) in BUCKETS.iter().zip(&h.buckets) {
        cumulative += count.get();
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    cumulative += h.buckets[BUCKETS.len()].get();
    let sum = h.sum_micros.get();
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(out, "{name}_sum {}.{:06}", sum / 1_000_000, sum % 1_000_000);
    let _ = writeln!(out, "{name}_count {cumulative}");
}

/// Build facts, and what /proc says of this process now.
fn process(out: &mut String) {
    family(
        out,
        "kproxy_build_info",
        "gauge",
        "Always 1; the labels say which kproxy this is.",
    );
    let _ = writeln!(
        out,
        "kproxy_build_info{{version=\"{}\",commit=\"{}\",target=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        env!("KPROXY_COMMIT"),
        env!("KPROXY_TARGET")
    );
    let started = STARTED.get().copied().unwrap_or_default();
    single(
        out,
        "kproxy_process_start_time_seconds",
        "gauge",
        "When kproxy started, in seconds since the Unix epoch.",
        started,
    );
    if let Some(rss) = resident_bytes() {
        single(
            out,
            "kproxy_process_resident_memory_bytes",
            "gauge",
            "Resident memory (VmRSS in /proc/self/status).",
            rss,
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        single(
            out,
            "kproxy_process_open_fds",
            "gauge",
            "Open file descriptors (entries of /proc/self/fd).",
            fds.count(),
        );
    }
}

fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}
