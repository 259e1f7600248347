#!/usr/bin/env bash
# Install what the project needs, idempotently; seconds when everything is already there.
#   - Debian packages (the real Fashion-MNIST, gloo headers for the c10d shim, libjpeg-turbo)
#   - the Python venv with torch (4.7 GB, cached per user and version, shared by all clones),
#     or, with NLS_PYTHON naming a Python that has PyTorch 2.11 or 2.13, that PyTorch
#     (nothing installed; tch pinned in Cargo.lock to the release made for it)
#   - the release build of both binaries
# Usage: scripts/setup.sh [--no-build]
#        NLS_PYTHON=/path/to/venv/bin/python scripts/setup.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

APT_PACKAGES=(dataset-fashion-mnist libgloo-dev fonts-dejavu-core libjpeg62-turbo-dev)

say() { printf '[setup] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_apt_packages() {
    local missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return
    say "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The venv is complete when its marker holds the hash of requirements.txt.
install_venv() {
    local req=$NLS_ROOT/scripts/requirements.txt marker=$NLS_VENV/.nls-requirements
    local want; want=$(sha256sum "$req" | cut -d' ' -f1)
    if [ "$(cat "$marker" 2>/dev/null)" != "$want" ]; then
        mkdir -p "$NLS_CACHE"
        # One installer at a time across clones sharing the cache.
        exec 9>"$NLS_CACHE/.lock"
        flock 9
        if [ "$(cat "$marker" 2>/dev/null)" != "$want" ]; then
            say "installing the Python venv at $NLS_VENV (first time: a few minutes, 4.7 GB)"
            [ -x "$NLS_VENV/bin/python" ] || "$NLS_PYTHON" -m venv "$NLS_VENV"
            "$NLS_VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
            echo "$want" >"$marker"
        fi
        flock -u 9
    fi
    ln -sfn "$NLS_VENV" "$NLS_ROOT/.venv"
}

check_toolchain() {
    command -v cargo >/dev/null || { say "cargo is missing: install Rust (https://rustup.rs) and retry"; exit 1; }
    command -v c++ >/dev/null || { say "a C++ compiler is missing: apt-get install build-essential"; exit 1; }
}

build() {
    say "building (cargo build --release)"
    (cd "$NLS_ROOT" && cargo build --release --quiet --workspace)
}

# An existing PyTorch: nothing to install, only the matching tch to pin.
use_existing_torch() {
    say "building against the PyTorch $NLS_TORCH_VERSION at $LIBTORCH (NLS_PYTHON=$NLS_PYTHON)"
    nls_pin_tch
}

main() {
    # An unsupported PyTorch is refused before anything is installed.
    nls_tch_for "$NLS_TORCH_VERSION" >/dev/null || exit 2
    check_toolchain
    install_apt_packages
    if [ -n "$NLS_EXISTING_TORCH" ]; then
        use_existing_torch
    else
        install_venv
        nls_pin_tch
    fi
    [ "${1:-}" = "--no-build" ] || build
}

main "$@"
