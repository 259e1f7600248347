#!/usr/bin/env bash
# Proves the trainer still compiles against another supported PyTorch (scripts/torch-versions):
# `cargo check` of a copy of this checkout whose Cargo.lock pins that release's tch, against the
# headers of that release's wheel. Nothing is installed: the wheel is downloaded once into the
# cache (`pip download`, about 530 MB) and only its headers are unpacked. The copy and its
# build live under target/torch-VERSION/.
#
# Usage: scripts/check-torch.sh 2.11.0
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
version=${1:?usage: scripts/check-torch.sh TORCH_VERSION (e.g. 2.11.0)}
tch=$(nls_tch_for "$version")
say() { printf '[check-torch] %s\n' "$*" >&2; }

# site-packages-like folder with torch/{include,version.py} and, for the NCCL backend's
# headers, the default venv's nvidia/ beside it.
headers=$NLS_CACHE/torch-$version-headers
if [[ ! -f $headers/.complete ]]; then
    wheels=$NLS_CACHE/wheels
    mkdir -p "$wheels"
    say "downloading the torch $version wheel (headers only are kept)"
    "$NLS_VENV/bin/python" -m pip download -q --disable-pip-version-check --no-deps \
        "torch==$version" -d "$wheels"
    rm -rf "$headers" && mkdir -p "$headers/torch/lib"
    "$NLS_VENV/bin/python" - "$wheels"/torch-"$version"-*.whl "$headers" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    z.extractall(out, [n for n in z.namelist() if n.startswith("torch/include/") or n == "torch/version.py"])
PY
    ln -sfn "$(dirname "$LIBTORCH")/nvidia" "$headers/nvidia"
    touch "$headers/.complete"
fi

copy=$NLS_ROOT/target/torch-$version
rm -rf "$copy/src" && mkdir -p "$copy/src"
(cd "$NLS_ROOT" && git ls-files -z --cached --others --exclude-standard |
    tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$copy/src"
say "torch $version with tch $tch: cargo check -p trainer --all-targets"
cd "$copy/src"
cargo update --quiet -p tch --precise "$tch"
LIBTORCH=$headers/torch CARGO_TARGET_DIR=$copy/target cargo check --quiet -p trainer --all-targets
say "torch $version compiles (tch $tch)"
