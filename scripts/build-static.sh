#!/usr/bin/env bash
# Builds the static binary that the scratch image ships, for a target triple
# (default: this machine's architecture):
#   scripts/build-static.sh [TARGET]     e.g. aarch64-unknown-linux-musl
#   -> target/TARGET/release/kproxy
#   scripts/build-static.sh --print-cc [TARGET]   the C compiler ring is built with
# It links musl statically, so it runs with nothing else on the filesystem: no
# libc, no /etc, no CA bundle (the CA comes from the service-account directory).
#
# The same commit gives the same bytes wherever it is built (scripts/check-reproducible.sh):
# - --locked: the crates are Cargo.lock's, checksums and all;
# - the one absolute path rustc would embed is the cargo registry's (in panic
#   locations of dependencies), so it is remapped to /cargo; the checkout's own
#   files are already passed to rustc as relative paths;
# - cargo-auditable, pinned, embeds the crate list (~0.5 KB) that trivy, grype and
#   syft read from the binary itself; another version may lay it out differently;
# - nothing reads the clock; the commit comes from git (build.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

print_cc=
if [ "${1:-}" = --print-cc ]; then
    print_cc=1
    shift
fi
target=${1:-$(uname -m)-unknown-linux-musl}
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
# ring compiles C and assembly for the target. For this machine's own architecture,
# musl-tools provides the `musl-gcc` wrapper that cc-rs looks for (and musl-dev its
# headers). For another, Debian's cross gcc compiles ring's C against the cross
# glibc headers (libc6-dev-ARCH-cross: ring's C includes <stdint.h> and <string.h>,
# and the headers are only a Recommends of the cross gcc) and links against the
# musl that Rust's target ships: chosen over zig because a fresh machine has it in
# half a minute (zig's cargo-zigbuild takes minutes to install and its first
# build minutes more), and the builds are alike (see docs/image.md).
arch=${target%%-*}
if [ "$arch" = "$(uname -m)" ]; then
    need_rust_build_tools
    need musl-gcc musl-tools
    need_file "/usr/include/$arch-linux-musl/stdint.h" musl-dev
    cc=gcc # what musl-gcc wraps
else
    case "$arch" in
        aarch64) gnu=aarch64-linux-gnu deb=arm64 ;;
        armv7) gnu=arm-linux-gnueabihf deb=armhf ;;
        riscv64gc) gnu=riscv64-linux-gnu deb=riscv64 ;;
        powerpc64le) gnu=powerpc64le-linux-gnu deb=ppc64el ;;
        x86_64) gnu=x86_64-linux-gnu deb=amd64 ;;
        *) echo "error: no cross compiler known for $target" >&2; exit 1 ;;
    esac
    need_rust_build_tools
    need "$gnu-gcc" "gcc-${gnu//_/-}"
    # The header that a cross gcc without its libc headers first fails on.
    need_file "/usr/$gnu/include/bits/libc-header-start.h" "libc6-dev-$deb-cross"
    cc=$gnu-gcc
    env_target=${target//-/_}
    export "CC_$env_target=$gnu-gcc" "AR_$env_target=$gnu-ar"
    export "CARGO_TARGET_${env_target^^}_LINKER=$gnu-gcc"
fi
if [ -n "$print_cc" ]; then
    "$cc" --version | head -n1
    exit
fi

need_cargo_auditable
need readelf binutils # the static-linking check below
cargo_home=${CARGO_HOME:-$HOME/.cargo}
export RUSTFLAGS="--remap-path-prefix=$cargo_home=/cargo"
cargo auditable build --release --locked --target "$target" --bin kproxy
bin=target/$target/release/kproxy
if command -v file >/dev/null; then file "$bin"; fi
# A static binary has no program interpreter (no PT_INTERP), for any architecture.
if LC_ALL=C readelf -l "$bin" 2>/dev/null | grep -q "program interpreter"; then
    echo "error: $bin is dynamically linked" >&2
    exit 1
fi
echo "$bin: $(stat -c %s "$bin") bytes, statically linked"
