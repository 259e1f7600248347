#!/usr/bin/env bash
# The whole test suite: installs what is missing (scripts/setup.sh), then checks formatting,
# lints and runs every test. Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh"
source "$root/scripts/env.sh"
cd "$root"
echo "[test] cargo fmt --check"
cargo fmt --all -- --check
echo "[test] cargo clippy"
cargo clippy --release --workspace --all-targets --quiet -- -D warnings
echo "[test] SLURM test cluster (tests/slurm/cluster.sh; left running for the next run)"
if [[ $(id -u) == 0 ]]; then
    "$root/tests/slurm/cluster.sh" start
elif ! "$root/tests/slurm/cluster.sh" status >/dev/null 2>&1; then
    echo "[test] not root and no cluster up: the SLURM end-to-end tests will skip"
fi
echo "[test] cargo test"
cargo test --release --workspace "$@"
