#!/usr/bin/env bash
# Evidence for the release profile in Cargo.toml: builds the static binary at
# opt-level 3, "s" and "z" (each with LTO, one codegen unit, stripped) and with
# panic=unwind or abort, then prints size, gzipped size, requests/s through the
# proxy (wrk, 16 connections, keep-alive) and streaming throughput (256 MiB).
# Numbers are from one noisy shared machine: compare within a run only.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need wrk
need curl
bash scripts/build-static.sh >/dev/null
cargo build --release --quiet --example fake_apiserver

work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
./target/release/examples/fake_apiserver "$work/sa" >"$work/fake.out" &
pids+=($!)
for _ in $(seq 100); do grep -q listening "$work/fake.out" && break; sleep 0.1; done
api_port=$(sed -n 's/^listening on 127.0.0.1://p' "$work/fake.out")

printf '| opt-level | panic | bytes | gzip bytes | req/s (16 conns) | MiB/s (256 MiB) |\n|---|---|---|---|---|---|\n'
for opt in 3 s z; do
    for panic in unwind abort; do
        dir=target/profiles/$opt-$panic
        CARGO_PROFILE_RELEASE_OPT_LEVEL=$opt CARGO_PROFILE_RELEASE_PANIC=$panic \
            cargo build --release --quiet --locked --target x86_64-unknown-linux-musl \
            --target-dir "$dir" --bin kproxy
        bin=$dir/x86_64-unknown-linux-musl/release/kproxy
        size=$(stat -c %s "$bin")
        gz=$(gzip -9 -c "$bin" | wc -c)
        KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT=$api_port \
            "$bin" --serviceaccount-dir "$work/sa" --port 0 >"$work/kp.out" &
        kp=$!
        for _ in $(seq 100); do grep -q Starting "$work/kp.out" && break; sleep 0.05; done
        addr=$(sed -n 's/^Starting to serve on //p' "$work/kp.out")
        rps=$(wrk -t2 -c16 -d5s "http://$addr/api" | awk '/Requests\/sec/ {print int($2)}')
        secs=$(curl -s -o /dev/null -w '%{time_total}' "http://$addr/bytes?n=268435456&chunked=1")
        mibs=$(awk -v s="$secs" 'BEGIN {printf "%d", 256 / s}')
        kill "$kp"
        wait "$kp" 2>/dev/null || true
        printf '| %s | %s | %s | %s | %s | %s |\n' "$opt" "$panic" "$size" "$gz" "$rps" "$mibs"
    done
done
