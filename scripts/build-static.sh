#!/usr/bin/env bash
# Builds the static binary that the scratch image ships:
#   target/x86_64-unknown-linux-musl/release/kproxy
# It links musl statically, so it runs with nothing else on the filesystem: no
# libc, no /etc, no CA bundle (the CA comes from the service-account directory).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

target=x86_64-unknown-linux-musl
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
# ring compiles C and assembly for the target. Debian's gcc cannot link for musl by
# itself; musl-tools provides the `musl-gcc` wrapper that cc-rs looks for when it
# builds for *-linux-musl. (CC_x86_64_unknown_linux_musl=gcc also works for ring
# alone, since ring's C needs no libc headers, but musl-gcc is the sound choice.)
need musl-gcc musl-tools

cargo build --release --locked --target "$target" --bin kproxy
bin=target/$target/release/kproxy
if command -v file >/dev/null; then file "$bin"; fi
# ldd says "statically linked" (static-pie) or "not a dynamic executable".
if ldd "$bin" 2>&1 | grep -q '=>'; then
    echo "error: $bin is dynamically linked:" >&2
    ldd "$bin" >&2
    exit 1
fi
echo "$bin: $(stat -c %s "$bin") bytes, statically linked"
