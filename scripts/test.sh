#!/usr/bin/env bash
# Runs every check a change must pass: formatting, clippy, and the test suite,
# which starts the real kproxy binary against a fake TLS API server and drives
# it with curl and kubectl. Installs what the tests call if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

need curl
need openssl          # mints the RSA-4096 key of the stack-depth test
need pkill procps      # /bin/kill, which the shutdown tests use to send signals
need ss iproute2       # the keep-alive test reads socket timers
need promtool prometheus  # tests/metrics.rs checks the scrape with Prometheus's own linter
# kubectl: the Google Cloud SDK's package where its repository is set up,
# else Debian's own (older, but enough for `get --raw` and `get --watch`).
need kubectl kubectl 2>/dev/null || need kubectl kubernetes-client
# The image tests build the static binaries and the multi-architecture image
# (python3 writes it, skopeo converts and reads it back, buildah builds the
# Dockerfile), and validate its SBOM with the SPDX project's own tool.
need musl-gcc musl-tools
need buildah
need skopeo
python3 -c 'import spdx_tools' 2>/dev/null || python3 -m pip install --quiet spdx-tools
rustup target list --installed | grep -qx x86_64-unknown-linux-musl ||
    rustup target add x86_64-unknown-linux-musl
# The aarch64 static binary is built (Debian's cross gcc compiles ring's C) and
# run under qemu-user-static (tests/arch.rs).
need aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu
need qemu-aarch64-static qemu-user-static
need readelf binutils
rustup target list --installed | grep -qx aarch64-unknown-linux-musl ||
    rustup target add aarch64-unknown-linux-musl
need_cargo_auditable   # scripts/build-static.sh builds with it
rustup component add rustfmt clippy >/dev/null 2>&1 || true

cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test
