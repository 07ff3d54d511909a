#!/usr/bin/env bash
# kproxy's main job, end to end, on one machine: a fake API server (TLS, with a
# CA and token minted at start) stands in for the cluster; kproxy starts exactly
# as in a Pod (KUBERNETES_SERVICE_HOST/PORT and a service-account directory, no
# flags); then the Pod's main container's calls go through it with plain curl.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_rust_build_tools
need curl

port=${KPROXY_DEMO_PORT:-8001}
cargo build --release --quiet --bin kproxy --example fake_apiserver

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

wait_for_line() { # FILE PATTERN
    for _ in $(seq 100); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "timed out waiting for '$2' in $1:" >&2
    cat "$1" >&2
    exit 1
}

./target/release/examples/fake_apiserver "$work/serviceaccount" >"$work/fake.out" &
pids+=($!)
wait_for_line "$work/fake.out" "listening on"
api_port=$(sed -n 's/^listening on 127.0.0.1://p' "$work/fake.out")
echo "fake API server on https://127.0.0.1:$api_port, service account in $work/serviceaccount"

# In a Pod the kubelet sets these two and mounts the service-account directory.
KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT=$api_port \
    ./target/release/kproxy --serviceaccount-dir "$work/serviceaccount" --port "$port" \
    >"$work/kproxy.out" 2>"$work/kproxy.err" &
pids+=($!)
wait_for_line "$work/kproxy.out" "Starting to serve on"
cat "$work/kproxy.out"

run() {
    echo
    echo "\$ $*"
    "$@"
    echo
}
run curl -sS --fail "localhost:$port/api"
run curl -sS --fail "localhost:$port/api/v1/namespaces/default/pods/apiserver-via-sidecar"
if command -v kubectl >/dev/null; then
    run kubectl --kubeconfig=/dev/null --server "http://localhost:$port" get pods -n default
fi
echo "exec is refused by default, as with kubectl proxy:"
run curl -sS -X POST "localhost:$port/api/v1/namespaces/default/pods/apiserver-via-sidecar/exec"
echo "demo ok: kproxy $(./target/release/kproxy --version | cut -d' ' -f2), binary $(stat -c %s target/release/kproxy) bytes"
