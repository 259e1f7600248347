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
echo "[test] cargo test"
cargo test --release --workspace "$@"
