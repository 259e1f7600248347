#!/usr/bin/env bash
# Every benchmark, then one table of ratios against the references, with the machine, versions
# and date. Usage: scripts/bench.sh [bench ...] (default: all; each one's own table is in
# target/bench/<name>.log). Takes about 17 minutes on 2 cores; run it on an otherwise idle machine.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh" --no-build
source "$root/scripts/env.sh"
cd "$root"
benches=("$@")
[[ ${#benches[@]} -gt 0 ]] || benches=(noise augment collectives pretrain evaluate train meta decode)
out=$root/target/bench
mkdir -p "$out"
summary=$out/summary.tsv
: > "$summary"
for b in "${benches[@]}"; do
    echo "[bench] $b (log: target/bench/$b.log)"
    NLS_BENCH_SUMMARY=$summary cargo bench --quiet -p trainer --bench "$b" 2>&1 | tee "$out/$b.log" \
        | grep -E '^\|' || true
    grep -q "^$b	" "$summary" || { echo "[bench] $b printed no summary: see $out/$b.log" >&2; exit 1; }
done
torch=$("$root/.venv/bin/python" -c 'import torch; print(torch.__version__)')
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
echo
echo "## Benchmarks: ours / reference (higher is better)"
echo
echo "$cpu, $(nproc) cores; $(rustc --version | cut -d' ' -f1-2), torch $torch; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "| bench | what | ratio | target |"
echo "|---|---|---:|---|"
while IFS=$'\t' read -r bench what ratio target; do
    printf '| %s | %s | %.2f | %s |\n' "$bench" "$what" "$ratio" "$target"
done < "$summary"
# The GPU rows: where a GPU is visible, the throughput section of the GPU check (ours against
# the DataLoader loop and the eager PyTorch step, SimCLR and VICReg, batch 256 and 1024).
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    echo
    echo "## GPU: scripts/gpu-check.sh --only cuda throughput"
    NLS_GPU_PYTHON=$NLS_VENV/bin/python "$root/scripts/gpu-check.sh" --only cuda throughput \
        --out "$out/gpu" | grep -E '^\|'
fi
