#!/usr/bin/env bash
# Builds kproxy's FROM scratch image for every architecture, with its bill of
# materials, byte for byte the same for the same commit on any machine:
#   scripts/build-image.sh [TARGET...]   default: x86_64- and aarch64-unknown-linux-musl
#
#   target/image/oci/                      OCI layout: one image index, tag VERSION
#   target/image/kproxy.oci.tar            the same as an OCI archive: push every
#                                          architecture with `skopeo copy --all`
#   target/image/kproxy-ARCH.docker.tar    one architecture, for `ctr images import`,
#                                          `kind load image-archive`, k3s' airgap folder
#   target/image/kproxy-ARCH.spdx.json     SPDX 2.3 SBOM, also in the image at /kproxy.spdx.json
#   target/image/DIGESTS                   what a rebuild must match
#
# No Docker engine, no registry, no network: python3 writes the layout
# (scripts/oci.py), skopeo only converts it to docker-archives.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need skopeo
need python3

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
commit=$(git rev-parse HEAD)
# The commit's time, not the clock's: the image's `created`, its label, the
# layer's file times and the SBOM's date are all this one instant.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct HEAD)}
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "warning: uncommitted changes: the image is labelled $commit but is not that commit" >&2
fi

out=target/image
rm -rf "$out"
mkdir -p "$out"

# OCI's names for the architectures (GOARCH), and arm64's variant as Docker's
# official images give it.
oci_platform() {
    case "${1%%-*}" in
        x86_64) echo linux/amd64 ;;
        aarch64) echo linux/arm64/v8 ;;
        armv7) echo linux/arm/v7 ;;
        riscv64gc) echo linux/riscv64 ;;
        powerpc64le) echo linux/ppc64le ;;
        s390x) echo linux/s390x ;;
        *) echo "error: no OCI platform known for $1" >&2; return 1 ;;
    esac
}

platforms=()
for target in "${targets[@]}"; do
    platform=$(oci_platform "$target")
    arch=$(cut -d/ -f2 <<<"$platform")
    bash scripts/build-static.sh "$target" >&2
    mkdir -p "$out/$arch"
    cp "target/$target/release/kproxy" "$out/$arch/kproxy"
    python3 scripts/sbom.py "$target" "$out/$arch/kproxy" "$out/$arch/kproxy.spdx.json" \
        --created "$SOURCE_DATE_EPOCH" --commit "$commit"
    cp "$out/$arch/kproxy.spdx.json" "$out/kproxy-$arch.spdx.json"
    platforms+=(--platform "$platform=$out/$arch/kproxy,$out/$arch/kproxy.spdx.json")
done

python3 scripts/oci.py "$out/oci" --tag "$version" --created "$SOURCE_DATE_EPOCH" "${platforms[@]}" \
    --label org.opencontainers.image.title=kproxy \
    --label "org.opencontainers.image.description=A small drop-in replacement for kubectl proxy, for Pod sidecars" \
    --label "org.opencontainers.image.source=$(sed -n 's/^repository = "\(.*\)"/\1/p' Cargo.toml)" \
    --label "org.opencontainers.image.revision=$commit" \
    --label "org.opencontainers.image.version=$version" \
    --label "org.opencontainers.image.licenses=$(sed -n 's/^license = "\(.*\)"/\1/p' Cargo.toml)" \
    --label "org.opencontainers.image.created=$created"

# An OCI archive is the layout in a tar; fixed order, times, owners and modes.
tar --create --file "$out/kproxy.oci.tar" --directory "$out/oci" --sort=name --format=ustar \
    --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner --mode=u=rwX,go=rX \
    oci-layout index.json blobs

blob() { echo "$out/oci/blobs/sha256/${1#sha256:}"; }
json_field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))$2)" "$1"; }
index=$(json_field "$out/oci/index.json" '["manifests"][0]["digest"]')
# One line per architecture: PLATFORM DIGEST
manifests=$(python3 - "$(blob "$index")" <<'EOF'
import json, sys
for m in json.load(open(sys.argv[1]))["manifests"]:
    p = m["platform"]
    print("/".join(filter(None, [p["os"], p["architecture"], p.get("variant")])), m["digest"])
EOF
)

files=(kproxy.oci.tar)
while read -r platform digest; do
    arch=$(cut -d/ -f2 <<<"$platform")
    variant=$(cut -d/ -f3 <<<"$platform")
    skopeo copy --quiet --override-os linux --override-arch "$arch" ${variant:+--override-variant "$variant"} \
        "oci:$out/oci:$version" "docker-archive:$out/kproxy-$arch.docker.tar:localhost/kproxy:$version" >&2
    layer=$(blob "$(json_field "$(blob "$digest")" '["layers"][0]["digest"]')")
    echo "$platform: manifest $digest, $(gzip -dc "$layer" | wc -c) bytes uncompressed, $(stat -c %s "$layer") gzipped"
    files+=("$arch/kproxy" "kproxy-$arch.spdx.json" "kproxy-$arch.docker.tar")
done <<<"$manifests"

# What a rebuild must match, then the tools whose versions decide those bytes
# (a rebuild with other versions may differ; this says where to look).
{
    echo "index $index"
    sed 's/^/manifest /' <<<"$manifests"
    (cd "$out" && sha256sum "${files[@]}")
    echo "tool $(rustc --version)"
    echo "tool cargo-auditable $(sed -n 's/^"cargo-auditable \([^ ]*\) .*/\1/p' "${CARGO_HOME:-$HOME/.cargo}/.crates.toml")"
    for target in "${targets[@]}"; do
        echo "tool $target C compiler: $(bash scripts/build-static.sh --print-cc "$target")"
    done
    echo "tool zlib $(python3 -c 'import zlib; print(zlib.ZLIB_RUNTIME_VERSION)') (gzip of the layers)"
} >"$out/DIGESTS"

echo "image localhost/kproxy:$version, index $index (commit $commit, created $created)"
echo "archives and SBOMs in $out; digests in $out/DIGESTS"
