#!/usr/bin/env bash
# Runs kproxy's fuzz targets (fuzz/fuzz_targets) with cargo fuzz and libFuzzer.
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (default 600 s, all six)
# Seeds come from fuzz/seeds/TARGET; the growing corpus stays in fuzz/corpus (not
# committed). A crash leaves its input in fuzz/artifacts/TARGET; turn it into a
# regression test in the normal suite before fixing it.
# cargo fuzz needs nightly-only compiler flags (sanitizers); on the stable
# toolchain they are unlocked with RUSTC_BOOTSTRAP=1, for this build only.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(request_head chunked path_filter response_head patterns kubeconfig)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    cp -n fuzz/seeds/"$target"/* "fuzz/corpus/$target/" 2>/dev/null || true
    echo "== $target: ${seconds}s"
    cargo fuzz run "$target" "fuzz/corpus/$target" -- -max_total_time="$seconds" -max_len=70000 2>&1 |
        grep -E "^#[0-9]+.*(DONE|pulse)|Done [0-9]+ runs|ERROR|panicked|SUMMARY" | tail -n 3
done
