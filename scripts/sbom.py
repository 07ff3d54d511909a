#!/usr/bin/env python3
"""Writes the SPDX 2.3 bill of materials of one kproxy binary, from what cargo
compiled into it: the crates `cargo metadata` resolves for the target, following
normal dependencies only (build scripts' crates run on the build machine and are
not in the binary), each with its license and Cargo.lock's SHA-256; plus the Rust
standard library and the musl libc that the static binary links.

    sbom.py TARGET BINARY OUT --created EPOCH --commit SHA

Nothing here is a list kept by hand, nothing reads the clock: the same commit
gives the same document, so it can sit inside a reproducible image.

Why not cargo-cyclonedx 0.5.9 (the maintained generator, tried): it gives the
same crates, but a fresh machine spends ~4 minutes compiling it, and its bom-refs
hold the absolute path of the checkout, so two clones give two documents.
"""

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import tomllib

DOWNLOAD = "https://crates.io/api/v1/crates/{name}/{version}/download"


def spdx_id(*parts):
    # SPDX ids allow letters, digits, '.' and '-'.
    return "SPDXRef-" + re.sub(r"[^A-Za-z0-9.-]", "-", "-".join(parts))


def license_expression(cargo_license):
    # Cargo once allowed "MIT/Apache-2.0"; SPDX spells it with OR.
    if not cargo_license:
        return "NOASSERTION"
    return " OR ".join(part.strip() for part in cargo_license.split("/"))


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def compiled_in(metadata):
    """The package ids reachable from the root through normal dependencies."""
    nodes = {node["id"]: node for node in metadata["resolve"]["nodes"]}
    edges, seen, todo = {}, set(), [metadata["resolve"]["root"]]
    while todo:
        package = todo.pop()
        if package in seen:
            continue
        seen.add(package)
        edges[package] = sorted(
            dep["pkg"]
            for dep in nodes[package]["deps"]
            if any(kind["kind"] is None for kind in dep["dep_kinds"])
        )
        todo.extend(edges[package])
    return edges


def toolchain(target):
    """Rust's standard library and, for musl targets, the musl it ships."""
    rustc = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    version = re.search(r"^release: (\S+)", rustc, re.M).group(1)
    found = [("rust-std", version, "MIT OR Apache-2.0")]
    if "-musl" in target:
        sysroot = subprocess.run(
            ["rustc", "--print", "sysroot"], capture_output=True, text=True, check=True
        ).stdout.strip()
        libc = os.path.join(sysroot, "lib/rustlib", target, "lib/self-contained/libc.a")
        with open(libc, "rb") as f:
            # musl's version.h string, the one `ldd --version` prints on Alpine.
            match = re.search(rb"\x00(1\.\d+\.\d+)\x00", f.read())
        musl = match.group(1).decode() if match else "NOASSERTION"
        found.append(("musl", musl, "MIT"))
    return found


def document(target, binary, created, commit, metadata, lock):
    packages = {p["id"]: p for p in metadata["packages"]}
    checksums = {(p["name"], p["version"]): p.get("checksum") for p in lock["package"]}
    edges = compiled_in(metadata)
    root = packages[metadata["resolve"]["root"]]
    root_id = spdx_id("Package", root["name"])

    def entry(package_id):
        p = packages[package_id]
        if package_id == metadata["resolve"]["root"]:
            return {
                "SPDXID": root_id,
                "name": p["name"],
                "versionInfo": p["version"],
                "packageFileName": "kproxy",
                "primaryPackagePurpose": "APPLICATION",
                "downloadLocation": "git+{}@{}".format(p["repository"], commit),
                "checksums": [{"algorithm": "SHA256", "checksumValue": sha256_file(binary)}],
                "licenseDeclared": license_expression(p["license"]),
                **common(p["name"], p["version"], "cargo"),
            }
        checksum = checksums.get((p["name"], p["version"]))
        return {
            "SPDXID": spdx_id("Package", p["name"], p["version"]),
            "name": p["name"],
            "versionInfo": p["version"],
            "primaryPackagePurpose": "LIBRARY",
            "downloadLocation": DOWNLOAD.format(**p),
            "checksums": [{"algorithm": "SHA256", "checksumValue": checksum}] if checksum else [],
            "licenseDeclared": license_expression(p["license"]),
            **common(p["name"], p["version"], "cargo"),
        }

    entries = [entry(package_id) for package_id in sorted(edges)]
    ids = {package_id: e["SPDXID"] for package_id, e in zip(sorted(edges), entries)}
    relationships = [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": root_id}
    ]
    for parent in sorted(edges):
        for child in edges[parent]:
            relationships.append(
                {"spdxElementId": ids[parent], "relationshipType": "DEPENDS_ON", "relatedSpdxElement": ids[child]}
            )
    for name, version, license_ in toolchain(target):
        entries.append({
            "SPDXID": spdx_id("Package", name),
            "name": name,
            "versionInfo": version,
            "primaryPackagePurpose": "LIBRARY",
            "downloadLocation": "NOASSERTION",
            "licenseDeclared": license_,
            **common(name, version, "generic"),
        })
        relationships.append(
            {"spdxElementId": spdx_id("Package", name), "relationshipType": "STATIC_LINK", "relatedSpdxElement": root_id}
        )

    name = "kproxy-{}-{}".format(root["version"], target)
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": "{}/sbom/{}-{}".format(root["repository"], name, commit),
        "creationInfo": {
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
            "creators": ["Tool: kproxy-scripts/sbom.py"],
        },
        "packages": entries,
        "relationships": relationships,
    }


def common(name, version, kind):
    return {
        "externalRefs": [
            {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": f"pkg:{kind}/{name}@{version}"}
        ],
        # licenseConcluded and copyrightText are optional since SPDX 2.3; left out
        # rather than written as NOASSERTION, the document sits in a 2 MB image.
        "filesAnalyzed": False,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target")
    parser.add_argument("binary")
    parser.add_argument("out")
    parser.add_argument("--created", type=int, required=True, help="seconds since the epoch")
    parser.add_argument("--commit", required=True)
    args = parser.parse_args()

    metadata = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", args.target],
        capture_output=True, text=True, check=True,
    ).stdout)
    with open(os.path.join(metadata["workspace_root"], "Cargo.lock"), "rb") as f:
        lock = tomllib.load(f)
    doc = document(args.target, args.binary, args.created, args.commit, metadata, lock)
    with open(args.out, "w") as f:
        json.dump(doc, f, sort_keys=True, separators=(",", ":"))
        f.write("\n")
    print(f"{args.out}: {len(doc['packages'])} packages", file=sys.stderr)


if __name__ == "__main__":
    main()
