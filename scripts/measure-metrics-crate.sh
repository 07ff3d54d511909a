#!/usr/bin/env bash
# The size a Prometheus crate would add, against writing the text format by hand
# (src/metrics/exposition.rs), on the static build's profile (x86_64 musl,
# opt-level "z", LTO, one codegen unit, stripped, unwind): a small program that
# renders one labelled counter and one histogram, built once each way.
#   scripts/measure-metrics-crate.sh      (prints both sizes and the difference)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need musl-gcc musl-tools
target=x86_64-unknown-linux-musl
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/src"
cat >"$work/Cargo.toml" <<'EOF'
[package]
name = "metrics-size"
version = "0.1.0"
edition = "2021"

[dependencies]
prometheus-client = { version = "=0.22.3", optional = true }

[profile.release]
opt-level = "z"
lto = true
codegen-units = 1
strip = true
panic = "unwind"
EOF
cat >"$work/src/main.rs" <<'EOF'
use std::sync::atomic::{AtomicU64, Ordering};
static C: AtomicU64 = AtomicU64::new(0);

#[cfg(feature = "prometheus-client")]
fn render() -> String {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;
    let mut registry = Registry::default();
    let requests = Family::<Vec<(String, String)>, Counter>::default();
    registry.register("kproxy_requests", "Requests", requests.clone());
    requests
        .get_or_create(&vec![("method".into(), "GET".into())])
        .inc_by(C.load(Ordering::Relaxed));
    let h = Histogram::new([0.001, 0.01, 0.1, 1.0].into_iter());
    h.observe(0.002);
    registry.register("kproxy_upstream_request_duration_seconds", "Time", h);
    let mut out = String::new();
    encode(&mut out, &registry).unwrap();
    out
}

#[cfg(not(feature = "prometheus-client"))]
fn render() -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let n = C.load(Ordering::Relaxed);
    let _ = write!(out, "# HELP kproxy_requests_total Requests\n# TYPE kproxy_requests_total counter\nkproxy_requests_total{{method=\"GET\"}} {n}\n");
    let _ = write!(out, "kproxy_upstream_request_duration_seconds_bucket{{le=\"0.001\"}} {n}\n");
    out
}

fn main() {
    C.fetch_add(std::env::args().count() as u64, Ordering::Relaxed);
    print!("{}", render());
}
EOF
build() {
    cargo build --quiet --release --target "$target" --manifest-path "$work/Cargo.toml" "$@"
    stat -c %s "$work/target/$target/release/metrics-size"
}
by_hand=$(build)
with_crate=$(build --features prometheus-client)
echo "by hand: $by_hand bytes; prometheus-client 0.22.3: $with_crate bytes; difference: $((with_crate - by_hand)) bytes"
