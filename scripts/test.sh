#!/usr/bin/env bash
# Runs every check a change must pass: formatting, clippy, and the test suite,
# which starts the real kproxy binary against a fake TLS API server and drives
# it with curl and kubectl. Installs what the tests call if it is missing (each
# Debian package by name: see scripts/lib.sh), and then lets no test skip: a
# test whose tool is missing fails, naming the tool and its package.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

need_rust_build_tools
need curl
need openssl           # mints the RSA-4096 key of the stack-depth test
need_file /bin/kill procps # the shutdown tests send signals with it
need ss iproute2       # the keep-alive test reads socket timers
need promtool prometheus  # tests/metrics.rs checks the scrape with Prometheus's own linter
# kubectl: the Google Cloud SDK's package where its repository is set up,
# else Debian's own (older, but enough for `get --raw` and `get --watch`).
need kubectl kubectl 2>/dev/null || need kubectl kubernetes-client
# The image tests build the static binaries and the multi-architecture image
# (python3 writes it, skopeo converts and reads it back, buildah builds the
# Dockerfile), and validate its SBOM with the SPDX project's own tool, from PyPI
# into a venv of its own (target/tools/python, which tests/image.rs uses).
need buildah
need skopeo
need_python_venv
target/tools/python/bin/python -c 'import spdx_tools' 2>/dev/null ||
    target/tools/python/bin/python -m pip install --quiet spdx-tools
# The static binaries: x86_64, and aarch64 with Debian's cross gcc and its libc
# headers, run under qemu-user-static (tests/arch.rs). scripts/build-static.sh
# checks and installs its own needs too; it is asked here so that a build
# inside a test does not install packages.
bash scripts/build-static.sh --print-cc x86_64-unknown-linux-musl >/dev/null
bash scripts/build-static.sh --print-cc aarch64-unknown-linux-musl >/dev/null
need qemu-aarch64-static qemu-user-static
need readelf binutils
need_cargo_auditable   # scripts/build-static.sh builds with it
for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    rustup target list --installed | grep -qx "$target" || rustup target add "$target"
done
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# From here on a missing tool is a failure, never a skip (tests/support/mod.rs).
export KPROXY_REQUIRE_TOOLS=1
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test
