#!/usr/bin/env python3
"""Writes kproxy's multi-architecture image as an OCI image layout, byte for byte
the same on every run for the same inputs.

    oci.py OUT --tag 0.1.0 --created EPOCH --label KEY=VALUE ... \
        --platform linux/amd64=BINARY,SBOM --platform linux/arm64/v8=BINARY,SBOM

OUT gets `oci-layout`, `index.json` (one entry, the image index, named TAG) and
`blobs/sha256/`. Each platform's image is one layer holding `/kproxy` and its SBOM.

Why by hand and not `buildah bud`: every byte that reaches a digest is decided
here and nowhere else. The layer's tar headers carry a fixed time (the commit's),
owner 0:0 and fixed modes; gzip's header carries no name and no time; JSON is
written with sorted keys and no spaces; nothing reads the clock, the user or the
umask. buildah 1.28 adds history entries and timestamps of its own and its output
changes with its version. What remains machine-dependent is zlib's deflate output,
which has been stable across zlib 1.2.x and 1.3.x at a given level.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import tarfile
import time

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

# Numeric, so the kubelet can check runAsNonRoot without an /etc/passwd.
USER = "65532:65532"


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


class Layout:
    def __init__(self, root):
        self.root = root
        os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)

    def blob(self, media_type, data, **extra):
        """Stores data under its digest and returns its OCI descriptor."""
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.root, "blobs", "sha256", digest), "wb") as f:
            f.write(data)
        return dict(mediaType=media_type, digest="sha256:" + digest, size=len(data), **extra)

    def finish(self, index, tag):
        with open(os.path.join(self.root, "oci-layout"), "wb") as f:
            f.write(canonical({"imageLayoutVersion": "1.0.0"}))
        top = {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [dict(index, annotations={"org.opencontainers.image.ref.name": tag})],
        }
        with open(os.path.join(self.root, "index.json"), "wb") as f:
            f.write(canonical(top))


def layer_tar(files, mtime):
    """An uncompressed tar of (name, path, mode) with every header field fixed,
    ended as Go's archive/tar (and so docker and containerd) ends one: two zero
    blocks, no padding to tar's traditional 10 KiB record."""
    tarfile.RECORDSIZE = tarfile.BLOCKSIZE
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, path, mode in files:
            with open(path, "rb") as f:
                data = f.read()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def platform_of(text):
    os_name, arch, *variant = text.split("/")
    platform = {"os": os_name, "architecture": arch}
    if variant:
        platform["variant"] = variant[0]
    return platform


def image(layout, platform, binary, sbom, created, labels):
    tar = layer_tar(
        [("kproxy", binary, 0o755), (os.path.basename(sbom), sbom, 0o644)],
        created,
    )
    layer = layout.blob(MEDIA_LAYER, gzip.compress(tar, compresslevel=9, mtime=0))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
    config = dict(
        platform,
        created=stamp,
        config={
            "User": USER,
            "ExposedPorts": {"8001/tcp": {}},
            "Entrypoint": ["/kproxy"],
            "Labels": labels,
        },
        rootfs={"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
        history=[{"created": stamp, "created_by": "scripts/oci.py: /kproxy and its SBOM"}],
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": layout.blob(MEDIA_CONFIG, canonical(config)),
        "layers": [layer],
        "annotations": labels,
    }
    return layout.blob(MEDIA_MANIFEST, canonical(manifest), platform=platform)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--tag", required=True)
    parser.add_argument("--created", type=int, required=True, help="seconds since the epoch")
    parser.add_argument("--label", action="append", default=[], help="KEY=VALUE")
    parser.add_argument("--platform", action="append", required=True, help="OS/ARCH[/VARIANT]=BINARY,SBOM")
    args = parser.parse_args()

    labels = dict(label.split("=", 1) for label in args.label)
    layout = Layout(args.out)
    manifests = []
    for spec in args.platform:
        platform, files = spec.split("=", 1)
        binary, sbom = files.split(",")
        manifests.append(image(layout, platform_of(platform), binary, sbom, args.created, labels))
    index = {
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": manifests,
        "annotations": labels,
    }
    layout.finish(layout.blob(MEDIA_INDEX, canonical(index)), args.tag)


if __name__ == "__main__":
    main()
