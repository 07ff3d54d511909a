#!/usr/bin/env bash
# Soak test: a few minutes of good, broken and hostile traffic against the static
# build while the fake API server restarts; see scripts/soak.py.
#   SOAK_SECONDS=180 scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need python3
bash scripts/build-static.sh >/dev/null
cargo build --release --quiet --example fake_apiserver
exec python3 scripts/soak.py
