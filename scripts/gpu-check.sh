#!/usr/bin/env bash
# Checks a GPU machine in a few minutes with nothing but an installed PyTorch and the trainer
# binary (no network, no Rust toolchain): CUDA registration, pretraining throughput against the
# repo's PyTorch references, SM utilisation, resume after SIGUSR1, evaluation with each method,
# and several ranks on one GPU. Writes one results table (gpu-check.md) into --out.
#
# Usage: scripts/gpu-check.sh [--dry-run] [--trainer PATH] [--out DIR] [--only SECTION...]
#   --trainer  default: gpu-bin/trainer (carried there, see README "GPU machines"), else
#              target/release/trainer
#   --dry-run  every section on the CPU at toy sizes (CI runs it; the figures mean nothing)
# Environment: NLS_GPU_PYTHON, the Python whose PyTorch the trainer was built against
# (default: python3). Its torch/lib goes on LD_LIBRARY_PATH for the binary.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${NLS_GPU_PYTHON:-python3}
torch_lib=$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))') || {
    echo "[gpu-check] $python has no PyTorch: set NLS_GPU_PYTHON to a Python that has the one the trainer was built against" >&2
    exit 2
}
export LD_LIBRARY_PATH=$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
args=("$@")
if [[ " $* " != *" --trainer "* ]]; then
    for candidate in "$root/gpu-bin/trainer" "$root/target/release/trainer"; do
        [[ -x $candidate ]] && { args+=(--trainer "$candidate"); break; }
    done
fi
exec "$python" "$root/scripts/gpu_check.py" "${args[@]}"
