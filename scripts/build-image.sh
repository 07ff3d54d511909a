#!/usr/bin/env bash
# Builds the FROM scratch image from the static binary, with buildah (no Docker
# engine needed) or docker, exports it as an OCI archive, and prints its sizes.
#   target/image/kproxy.oci.tar    the image, to load with `skopeo copy` or `docker load`
# Needs no registry and no network beyond Debian's packages: fit for air-gapped use.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
tag=localhost/kproxy:$version
out=target/image
mkdir -p "$out"
rm -rf "$out/oci" "$out/kproxy.oci.tar"

bash scripts/build-static.sh

if command -v buildah >/dev/null || ! command -v docker >/dev/null || ! docker info >/dev/null 2>&1; then
    need buildah
    # vfs: works inside containers and without kernel overlay support.
    export STORAGE_DRIVER=vfs
    buildah bud --quiet --build-arg "VERSION=$version" -f Dockerfile.scratch -t "$tag" . >/dev/null
    buildah push --quiet "$tag" "oci:$out/oci:$tag" >/dev/null
    buildah push --quiet "$tag" "oci-archive:$out/kproxy.oci.tar:$tag" >/dev/null
else
    docker build --build-arg "VERSION=$version" -f Dockerfile.scratch -t "$tag" .
    docker save "$tag" -o "$out/kproxy.oci.tar"
    mkdir -p "$out/oci" && tar -xf "$out/kproxy.oci.tar" -C "$out/oci"
fi

# Layers: uncompressed is what the node unpacks; gzip is what a registry stores and pulls.
uncompressed=0
compressed=0
for blob in "$out"/oci/blobs/sha256/*; do
    if gzip -t "$blob" 2>/dev/null; then
        uncompressed=$((uncompressed + $(gzip -dc "$blob" | wc -c)))
        compressed=$((compressed + $(stat -c %s "$blob")))
    elif tar -tf "$blob" >/dev/null 2>&1; then
        uncompressed=$((uncompressed + $(stat -c %s "$blob")))
        compressed=$((compressed + $(gzip -9 -c "$blob" | wc -c)))
    fi
done
echo "image $tag: $uncompressed bytes uncompressed, $compressed bytes gzipped"
echo "binary: $(stat -c %s target/x86_64-unknown-linux-musl/release/kproxy) bytes"
echo "archive: $out/kproxy.oci.tar"
