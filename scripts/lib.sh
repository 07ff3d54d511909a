# Shared by the scripts: install Debian packages when what a step needs is missing.
#
#   need COMMAND [PACKAGE...]       a command on PATH (PACKAGE defaults to COMMAND)
#   need_file FILE PACKAGE...       a header, a library or any other file
#
# A step checks for what it uses, not for a package's name: a machine that has the
# cross gcc but not its libc headers gets the headers. Packages are installed
# with --no-install-recommends, so every package a step relies on is named here,
# headers and libraries included: a Recommends is never counted on.
# apt waits up to 10 minutes for another apt (cloud-init, unattended-upgrades, a
# second terminal) to let go of its locks, instead of failing at once.

APT_LOCK_WAIT=600

need() {
    local cmd=$1
    shift
    command -v "$cmd" >/dev/null 2>&1 && return 0
    install_packages "$cmd" "${@:-$cmd}"
}

need_file() {
    local file=$1
    shift
    [ -e "$file" ] && return 0
    install_packages "$file" "$@"
}

# install_packages WHAT PACKAGE...: WHAT says what they are for, in the log.
install_packages() {
    local what=$1
    shift
    echo "installing $* (for $what)" >&2
    if [ -z "${KPROXY_APT_UPDATED:-}" ]; then
        apt_update
        export KPROXY_APT_UPDATED=1
    fi
    local log
    log=$(mktemp)
    # DPkg::Lock::Timeout makes apt-get install wait for dpkg's locks.
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o DPkg::Lock::Timeout=$APT_LOCK_WAIT "$@" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
}

# apt-get update takes the lists lock, for which DPkg::Lock::Timeout does not
# wait (apt 2.6, measured): retry while another apt holds it.
apt_update() {
    local deadline=$((SECONDS + APT_LOCK_WAIT)) out said=
    until out=$(apt-get update -qq -o DPkg::Lock::Timeout=$APT_LOCK_WAIT 2>&1); do
        if ! grep -q "Could not get lock" <<<"$out" || [ "$SECONDS" -ge "$deadline" ]; then
            echo "$out" >&2
            return 1
        fi
        [ -n "$said" ] || echo "waiting for another apt to finish: $out" >&2
        said=1
        sleep 3
    done
}

# What building Rust on Debian needs: gcc links (and builds ring's C for this
# machine), libc6-dev is its C library and start files (only a Recommends of
# gcc), ca-certificates lets cargo fetch crates over https.
need_rust_build_tools() {
    need cc gcc
    need_file /usr/include/stdio.h libc6-dev
    need_file /etc/ssl/certs/ca-certificates.crt ca-certificates
    need git # build.rs names the commit; the image tests and check-reproducible clone
}

# Python with a venv of its own at target/tools/python, where pip may install
# what the tests use (Debian's own python3 refuses a system-wide pip install).
need_python_venv() {
    need python3
    local venv=target/tools/python
    [ -x "$venv/bin/python" ] && return 0
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        install_packages "python3 -m venv" python3-venv
    fi
    python3 -m venv "$venv"
}

# cargo-auditable, at the version the reproducible builds were made with: another
# version may lay out the embedded crate list differently, and so change the bytes.
need_cargo_auditable() {
    local version=0.7.7
    grep -q "^\"cargo-auditable $version " "${CARGO_HOME:-$HOME/.cargo}/.crates.toml" 2>/dev/null && return 0
    echo "installing cargo-auditable $version (about a minute)" >&2
    cargo install --quiet --locked --version "$version" cargo-auditable
}
