# Sourced by the scripts: where the cached torch venv lives and how cargo finds libtorch.
# The venv is large (4.7 GB), so it lives in a per-user cache keyed by version and is shared
# by every clone on this machine; `.venv` in the checkout is a symlink to it.
NLS_TORCH_VERSION=2.13.0
NLS_PYTHON=${NLS_PYTHON:-python3}
NLS_PY_TAG=$("$NLS_PYTHON" -c 'import sys; print(f"py{sys.version_info[0]}.{sys.version_info[1]}")')
NLS_CACHE=${NLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nls}
NLS_VENV=$NLS_CACHE/venv-torch-$NLS_TORCH_VERSION-$NLS_PY_TAG
NLS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export LIBTORCH=$NLS_VENV/lib/${NLS_PY_TAG/py/python}/site-packages/torch
export LIBTORCH_CXX11_ABI=1
export NLS_VENV NLS_ROOT NLS_CACHE
