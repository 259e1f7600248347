# Sourced by the scripts: which PyTorch the build links and where the Python side lives.
#
# By default the project installs its own: a venv with torch $NLS_TORCH_VERSION, large (4.7 GB),
# so it lives in a per-user cache keyed by version and is shared by every clone on this machine;
# `.venv` in the checkout is a symlink to it. NLS_PYTHON names the interpreter it is made from.
#
# With NLS_PYTHON naming an interpreter that already has PyTorch (a cluster's module or
# container, a researcher's venv), the build links that PyTorch instead and nothing is
# installed (NLS_EXISTING_TORCH=1); its version must be one of scripts/torch-versions.
NLS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NLS_CACHE=${NLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nls}
NLS_EXISTING_TORCH=
if [[ -n ${NLS_PYTHON:-} ]] && NLS_EXISTING_TORCH_INFO=$("$NLS_PYTHON" -c \
    'import os, torch; print(torch.__version__.split("+")[0], os.path.dirname(torch.__file__))' 2>/dev/null); then
    NLS_EXISTING_TORCH=1
    NLS_TORCH_VERSION=${NLS_EXISTING_TORCH_INFO%% *}
    export LIBTORCH=${NLS_EXISTING_TORCH_INFO#* }
    # The Python side (tests, references) runs with that interpreter.
    NLS_VENV=$(cd "$(dirname "$NLS_PYTHON")/.." && pwd)
else
    NLS_TORCH_VERSION=2.13.0
    NLS_PYTHON=${NLS_PYTHON:-python3}
    NLS_PY_TAG=$("$NLS_PYTHON" -c 'import sys; print(f"py{sys.version_info[0]}.{sys.version_info[1]}")')
    NLS_VENV=$NLS_CACHE/venv-torch-$NLS_TORCH_VERSION-$NLS_PY_TAG
    export LIBTORCH=$NLS_VENV/lib/${NLS_PY_TAG/py/python}/site-packages/torch
fi
export LIBTORCH_CXX11_ABI=1
export NLS_VENV NLS_ROOT NLS_CACHE NLS_TORCH_VERSION NLS_EXISTING_TORCH

# The tch release made for PyTorch $1 (2.11.0, 2.11.0+cu130 or 2.11), or an error naming the
# supported versions.
nls_tch_for() {
    local minor; minor=$(echo "${1%%+*}" | cut -d. -f1,2)
    local table=$NLS_ROOT/scripts/torch-versions
    awk -v v="$minor" '!/^#/ && $1 == v { print $2; found = 1 } END { exit !found }' "$table" && return
    echo "PyTorch $1 is not supported: the trainer builds against PyTorch" \
        "$(awk '!/^#/ && NF { printf "%s%s", sep, $1; sep = ", " }' "$table")" \
        "(scripts/torch-versions); install one of those, or point NLS_PYTHON at a Python that has one" >&2
    return 1
}

# The tch release Cargo.lock holds.
nls_locked_tch() {
    awk '/^name = "tch"$/ { getline; gsub(/"/, "", $3); print $3 }' "$NLS_ROOT/Cargo.lock"
}

# Pins tch and torch-sys in Cargo.lock to the release made for PyTorch $NLS_TORCH_VERSION.
nls_pin_tch() {
    local want; want=$(nls_tch_for "$NLS_TORCH_VERSION") || return 1
    [[ $(nls_locked_tch) == "$want" ]] && return
    echo "[setup] PyTorch $NLS_TORCH_VERSION: pinning tch $want in Cargo.lock (was $(nls_locked_tch))" >&2
    (cd "$NLS_ROOT" && cargo update --quiet -p tch --precise "$want")
}
