#!/usr/bin/env bash
# Checks that the image is reproducible: builds the committed HEAD twice, from two
# fresh clones in different directories (so no target/ is shared), one after the
# other, and compares every digest and checksum that scripts/build-image.sh
# records: the image index, each architecture's manifest, the binaries, the
# SBOMs, the OCI and docker archives.
#   scripts/check-reproducible.sh [TARGET...]    default: build-image.sh's targets
# Takes about two minutes per target on 2 cores. Exit status 1 on any difference.
set -euo pipefail
cd "$(dirname "$0")/.."

commit=$(git rev-parse HEAD)
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "note: this checks commit $commit; uncommitted changes are not part of it" >&2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Different depths and names, so a path that leaked into the output shows.
clones=("$work/a" "$work/second-build/kproxy-clone")
for dir in "${clones[@]}"; do
    git clone --quiet --no-hardlinks "$PWD" "$dir"
    git -C "$dir" checkout --quiet --detach "$commit"
    started=$(date +%s)
    if ! (cd "$dir" && bash scripts/build-image.sh "$@") >"$dir.log" 2>&1; then
        cat "$dir.log" >&2
        exit 1
    fi
    echo "built $commit in $dir ($(($(date +%s) - started)) s)" >&2
done

if ! diff -u "${clones[0]}/target/image/DIGESTS" "${clones[1]}/target/image/DIGESTS" >&2; then
    echo "NOT reproducible: the two builds above differ" >&2
    exit 1
fi
echo "reproducible: two clean builds of $commit gave the same bytes"
cat "${clones[0]}/target/image/DIGESTS"
