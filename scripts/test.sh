#!/usr/bin/env bash
# The whole test suite: installs what is missing (scripts/setup.sh), then checks formatting,
# lints and runs every test.
#
# Usage: scripts/test.sh [--capability default|avx2|avx512] [extra cargo test args]
#
# --capability runs every test (the trainer processes the tests start included) with libtorch's
# CPU kernels of that instruction set (ATEN_CPU_CAPABILITY), as another machine would pick them:
# the numeric tests' tolerances are set from spreads measured under all three. Without it,
# libtorch picks the best this CPU has.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ ${1:-} == --capability ]]; then
    case ${2:-} in
    default | avx2 | avx512) export ATEN_CPU_CAPABILITY=$2 ;;
    *) echo "[test] --capability takes default, avx2 or avx512 (got '${2:-}')" >&2; exit 2 ;;
    esac
    shift 2
fi
# Each phase says when it starts (seconds since this script began), so a CI log shows where the
# time goes; the exit trap gives the total.
phase() { echo "[test] $* (at $SECONDS s)"; }
trap 'echo "[test] done in $SECONDS s (exit $?)"' EXIT
"$root/scripts/setup.sh"
source "$root/scripts/env.sh"
cd "$root"
# What libtorch runs with here (a capability above the CPU's falls back to the CPU's best).
echo "[test] CPU kernels: $("$NLS_VENV/bin/python" -c 'import torch; print(torch.backends.cpu.get_cpu_capability())' 2>/dev/null || echo unknown)${ATEN_CPU_CAPABILITY:+ (ATEN_CPU_CAPABILITY=$ATEN_CPU_CAPABILITY)}"
phase "cargo fmt --check"
cargo fmt --all -- --check
phase "cargo clippy"
cargo clippy --release --workspace --all-targets --quiet -- -D warnings
phase "the other supported PyTorch compiles too (scripts/check-torch.sh 2.11.0)"
"$root/scripts/check-torch.sh" 2.11.0
phase "SLURM test cluster (tests/slurm/cluster.sh; left running for the next run)"
if [[ $(id -u) == 0 ]]; then
    "$root/tests/slurm/cluster.sh" start
elif ! "$root/tests/slurm/cluster.sh" status >/dev/null 2>&1; then
    echo "[test] not root and no cluster up: the SLURM end-to-end tests will skip"
fi
phase "cargo test"
cargo test --release --workspace --no-fail-fast "$@"
