#!/usr/bin/env bash
# The main job on the embedded default: real Fashion-MNIST (Debian's dataset-fashion-mnist),
# local execution through nls-launch --local, no SLURM. Installs what is missing first (scripts/setup.sh).
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
    --out "$out/noisy-labels" --plot

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
"$launch" report "$out/pretrain"
echo "== sweep: 0/40/60% symmetric noise x CE/GCE/ELR x 2 seeds on the frozen pretrained backbone,"
echo "   plus CE on a random backbone: 24 linear probes, one after another (about 3 minutes)"
(cd "$out" && "$launch" run "$root/experiments/demo_sweep.toml" --local)
echo "== report"
"$launch" report "$out/sweep" --columns backbone,loss
echo "demo output in $out: noisy-labels/ (labels + realized-matrix heatmaps), augment-preview.png,"
echo "pretrain/ (metrics.jsonl, curves.png, backbone.safetensors + .json, logs/),"
echo "sweep/ (runs/*/results.json, report.csv, summary.csv, report.json, report.png)"
