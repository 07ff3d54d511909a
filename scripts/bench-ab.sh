#!/usr/bin/env bash
# Is a change slower? Builds the static binary of an earlier commit and of the
# checkout, starts both against the same nginx "API server" that scripts/bench.sh
# uses, and runs wrk on each in turn, the order swapped every round, so that a
# noisy minute on a shared machine falls on both alike. Prints requests/s and
# CPU microseconds per request of every round (Pod GET at 1, 16 and 256
# connections), then the medians.
#   scripts/bench-ab.sh REV                  e.g. scripts/bench-ab.sh fa54100
#   AB_ROUNDS=6 AB_DURATION=4s scripts/bench-ab.sh REV
# The earlier build comes from a clean clone at REV (its own target directory);
# about two minutes to build it, then about a minute per round.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
rev=${1:?usage: scripts/bench-ab.sh REV (the commit to compare the checkout with)}
need nginx nginx-light
need wrk
need openssl
need python3
commit=$(git rev-parse --verify "$rev^{commit}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone --quiet "$PWD" "$work/old"
git -C "$work/old" checkout --quiet --detach "$commit"
triple=$(uname -m)-unknown-linux-musl
echo "building $commit" >&2
(cd "$work/old" && bash scripts/build-static.sh "$triple" >/dev/null)
echo "building the checkout ($(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ', with changes'))" >&2
bash scripts/build-static.sh "$triple" >/dev/null
exec python3 scripts/bench_ab.py "$work/old/target/$triple/release/kproxy" \
    "target/$triple/release/kproxy"
