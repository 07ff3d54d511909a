# Shared by the scripts: install a Debian package only when its command is missing.
# Usage: need COMMAND [PACKAGE...]

need() {
    local cmd=$1
    shift
    command -v "$cmd" >/dev/null 2>&1 && return 0
    local packages=("${@:-$cmd}")
    echo "installing ${packages[*]} (for $cmd)" >&2
    if [ -z "${KPROXY_APT_UPDATED:-}" ]; then
        apt-get update -qq >&2
        export KPROXY_APT_UPDATED=1
    fi
    local log
    log=$(mktemp)
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${packages[@]}" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
}

# cargo-auditable, at the version the reproducible builds were made with: another
# version may lay out the embedded crate list differently, and so change the bytes.
need_cargo_auditable() {
    local version=0.7.7
    grep -q "^\"cargo-auditable $version " "${CARGO_HOME:-$HOME/.cargo}/.crates.toml" 2>/dev/null && return 0
    echo "installing cargo-auditable $version (about a minute)" >&2
    cargo install --quiet --locked --version "$version" cargo-auditable
}
