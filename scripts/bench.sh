#!/usr/bin/env bash
# The benchmark: kproxy against `kubectl proxy`, against nginx as a reverse proxy
# doing kproxy's job, and against going direct, one machine, one run. Installs
# nginx and wrk if missing, builds the static binary that ships, then runs
# scripts/bench.py (see its header for what is measured).
#   BENCH_REPEATS=3 BENCH_DURATION=4s scripts/bench.sh
#   KPROXY_BIN=path/to/kproxy scripts/bench.sh     (measure another build)
# Prints a Markdown table; raw figures go to target/bench/results.json.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need nginx nginx-light
need wrk
need curl
need openssl
need python3
need ss iproute2      # counts the proxies' connections to the API server
command -v kubectl >/dev/null || need kubectl kubectl 2>/dev/null || need kubectl kubernetes-client ||
    echo "kubectl is not installable here: its column will be skipped" >&2
bash scripts/build-static.sh >/dev/null
cargo build --release --quiet --example fake_apiserver
exec python3 scripts/bench.py
