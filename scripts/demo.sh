#!/usr/bin/env bash
# The main job on the embedded default: real Fashion-MNIST (Debian's dataset-fashion-mnist),
# local execution, no SLURM. Installs what is missing first (scripts/setup.sh).
# Output goes to runs/demo/ (or $NLS_DEMO_DIR).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh"
out=${NLS_DEMO_DIR:-$root/runs/demo}
trainer=$root/target/release/trainer
launch=$root/target/release/nls-launch
data=/usr/share/datasets/fashion-mnist

echo "== dataset"
"$trainer" data-info --data-dir "$data"

echo "== label noise: cleanlab-style noise matrices, 3 noise levels x 2 sparsities x 2 seeds"
"$trainer" noise --data-dir "$data" --kind matrix --noise 0.2,0.4,0.6 --sparsity 0,0.4 --seeds 0-1 \
    --out "$out/noisy-labels"

echo "== label noise: symmetric and asymmetric at 40%"
"$trainer" noise --data-dir "$data" --kind symmetric --noise 0.4 --out "$out/noisy-labels"
"$trainer" noise --data-dir "$data" --kind asymmetric --noise 0.4 --out "$out/noisy-labels"
echo "== pretraining: VICReg, narrow ResNet-18, 4096 images, 4 epochs (about 2 minutes on 2 cores)"
"$trainer" augment-preview --data-dir "$data" --method vicreg --out "$out/augment-preview.png"
# Through the local executor: the same job as on SLURM (SLURM-like environment, logs in
# $out/pretrain/logs, signals forwarded, restarts from checkpoints), on this machine.
"$launch" --local --cpu --exp-dir "$out/pretrain" -- pretrain --data-dir "$data" --method vicreg \
    --arch resnet18 --width 16 --mlp 256-256 --epochs 4 --warmup-epochs 1 --batch-size 256 \
    --train-samples 4096 --base-lr 0.5 --knn-every 1 --knn-train-samples 4096 \
    --knn-test-samples 1000 --log-every 4
echo "== evaluation: the frozen backbone under 40% symmetric label noise, CE vs GCE (about 1 minute)"
"$launch" run "$root/experiments/demo_eval.toml" --local --exp-dir "$out/eval" \
    -- --backbone "$out/pretrain/backbone.safetensors"
"$launch" report "$out/eval"
echo "demo output in $out (pretrain/metrics.jsonl, pretrain/backbone.safetensors + .json,"
echo "eval/runs/*/results.json, eval/report.csv)"
