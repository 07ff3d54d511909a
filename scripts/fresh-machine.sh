#!/usr/bin/env bash
# Runs the README's two commands as a new user would, on a machine where nothing
# of the project's was ever installed: a clean Debian root made on the spot
# (mmdebstrap, minbase: not even gcc, git or python3), a fresh clone of HEAD in
# it, and then, timed:
#   scripts/demo.sh     the main job end to end
#   scripts/test.sh     every check
# Whatever the scripts forgot to install fails here instead of in CI.
#
#   scripts/fresh-machine.sh [--keep] [--debian-kubectl] [COMMAND...]
#     COMMAND...        run these instead, from the clone: each argument is one
#                       command line (e.g. "bash .ci/run", quoted)
#     --keep            keep the root afterwards (its path is printed)
#     --debian-kubectl  leave kubectl out, so that test.sh installs Debian's
#
# Not Debian packages, so taken from this machine as a fresh machine has them:
# the active Rust toolchain (its host target only: rustup adds the others, as on
# a new machine) and kubectl (this kind of machine comes with Google's 1.32; the
# Debian package is 1.20). Not part of CI: run it before resolving an issue that
# changes what the scripts install. Needs root (chroot, mounts); about 20 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

keep= host_kubectl=1
while [ $# -gt 0 ]; do
    case "$1" in
        --keep) keep=1 ;;
        --debian-kubectl) host_kubectl= ;;
        --) shift; break ;;
        -*) echo "usage: $0 [--keep] [--debian-kubectl] [COMMAND...]" >&2; exit 2 ;;
        *) break ;;
    esac
    shift
done
commands=("$@")
[ ${#commands[@]} -gt 0 ] || commands=("bash scripts/demo.sh" "bash scripts/test.sh")

need mmdebstrap
need python3
commit=$(git rev-parse HEAD)
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "note: this runs commit $commit; uncommitted changes are not part of it" >&2
fi
. /etc/os-release
suite=${VERSION_CODENAME:?no Debian release in /etc/os-release}

# On the disk, not a tmpfs: the root grows to several GB (target/ above all).
root=$(mktemp -d /var/tmp/kproxy-fresh.XXXXXX)
cleanup() {
    # Mounts live in the child's namespace only; check anyway before deleting.
    if findmnt -rn -o TARGET | grep -q "^$root"; then
        echo "error: something is still mounted under $root; not removing it" >&2
        return
    fi
    [ -n "$keep" ] && { echo "kept: $root" >&2; return; }
    rm -rf "$root"
}
trap cleanup EXIT

started=$(date +%s)
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=http://deb.debian.org/debian
mmdebstrap --quiet --variant=minbase "$suite" "$root" "$sources"
echo "Debian $suite root (minbase) in $root: $(($(date +%s) - started)) s" >&2

# The Rust toolchain, copied (rustup rewrites some of its files in place, so
# never hard-linked), without the targets rustup added here later: a new
# machine has only its host's.
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
toolchain=$(rustup show active-toolchain | cut -d' ' -f1)
host=$(rustc -vV | sed -n 's/^host: //p')
to=$root/opt/rustup/toolchains/$toolchain
mkdir -p "$root/opt/rustup/toolchains" "$root/root/.cargo/bin"
cp -a "$(readlink -f "$rustup_home/toolchains/$toolchain")" "$to"
python3 - "$to/lib/rustlib" "$host" <<'PY'
import os, re, shutil, sys
rustlib, host = sys.argv[1], sys.argv[2]
for name in os.listdir(rustlib):
    path = os.path.join(rustlib, name)
    if os.path.isdir(os.path.join(path, "lib")) and name != host:
        shutil.rmtree(path)
        os.remove(os.path.join(rustlib, f"manifest-rust-std-{name}"))
components = os.path.join(rustlib, "components")
lines = [l for l in open(components).read().split("\n")
         if not (l.startswith("rust-std-") and l != f"rust-std-{host}")]
open(components, "w").write("\n".join(lines))
config = os.path.join(rustlib, "multirust-config.toml")
blocks = open(config).read().split("\n[[components]]\n")
keep = [b for b in blocks[1:]
        if not ('pkg = "rust-std"' in b and f'target = "{host}"' not in b)]
open(config, "w").write(blocks[0] + "".join("\n[[components]]\n" + b for b in keep))
PY
printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "default"\n' "$toolchain" \
    >"$root/opt/rustup/settings.toml"
cp "$(command -v rustup)" "$root/root/.cargo/bin/rustup"
for proxy in cargo rustc rustdoc rustfmt cargo-fmt cargo-clippy clippy-driver; do
    ln -s rustup "$root/root/.cargo/bin/$proxy"
done

if [ -n "$host_kubectl" ] && command -v kubectl >/dev/null; then
    kubectl=$(readlink -f "$(command -v kubectl)")
    # Google's package: a dispatcher beside one binary per minor version.
    mkdir -p "$root$(dirname "$kubectl")"
    cp -a "$(dirname "$kubectl")"/kubectl* "$root$(dirname "$kubectl")/"
    ln -s "$kubectl" "$root/usr/local/bin/kubectl"
fi

git clone --quiet --no-hardlinks "$PWD" "$root/work/kproxy"
git -C "$root/work/kproxy" checkout --quiet --detach "$commit"
# This machine's network: its resolver and hosts file (a Debian installer
# writes /etc/hosts; no package does), and the certificates it trusts beyond
# Debian's own (a proxy that inspects TLS, say), where update-ca-certificates
# adds them once the scripts install ca-certificates.
cp /etc/resolv.conf /etc/hosts "$root/etc/"
mkdir -p "$root/usr/local/share/ca-certificates"
python3 - /etc/ssl/certs/ca-certificates.crt "$root/usr/local/share/ca-certificates" <<'PY'
import glob, re, sys
def pem(text):
    return [c.strip() for c in re.findall(
        r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)]
debian = {c for f in glob.glob("/usr/share/ca-certificates/**/*.crt", recursive=True)
          for c in pem(open(f).read())}
try:
    local = [c for c in pem(open(sys.argv[1]).read()) if c not in debian]
except FileNotFoundError:
    local = []
for i, cert in enumerate(local):
    open(f"{sys.argv[2]}/this-machine-{i}.crt", "w").write(cert + "\n")
PY

# Each command timed; the first failure stops the run.
script='cd /work/kproxy
for command in "$@"; do
    started=$(date +%s)
    if ! bash -c "$command"; then
        echo "FAILED after $(($(date +%s) - started)) s: $command" >&2
        exit 1
    fi
    echo "fresh machine: $command took $(($(date +%s) - started)) s" >&2
done'
env_vars=(
    HOME=/root TERM=dumb LANG=C.UTF-8
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    RUSTUP_HOME=/opt/rustup RUSTUP_TOOLCHAIN="$toolchain"
)
for passed in RUSTUP_DIST_SERVER RUSTUP_UPDATE_ROOT CI SSL_CERT_FILE SSL_CERT_DIR \
    CURL_CA_BUNDLE GIT_SSL_CAINFO PIP_CERT REQUESTS_CA_BUNDLE; do
    if [ -n "${!passed:-}" ]; then env_vars+=("$passed=${!passed}"); fi
done
# A mount and PID namespace of its own: the mounts and any process left behind
# go when it ends.
unshare --mount --propagation private --pid --fork bash -c '
    set -e
    root=$1
    shift
    # The root a mount point of its own, as / is on a machine (buildah remounts it).
    mount --bind "$root" "$root"
    mount --rbind /dev "$root/dev"
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount -t tmpfs tmpfs "$root/tmp"
    exec chroot "$root" /usr/bin/env -i "$@"
' unshare-root "$root" "${env_vars[@]}" bash -c "$script" fresh-machine "${commands[@]}"
echo "fresh machine: all done in $(($(date +%s) - started)) s (commit $commit)" >&2
