#!/bin/bash
# Rendered by nls-launch 0.1.0; the resolved configuration is job.toml beside this script.
#SBATCH --job-name=nls-sweep
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --time=60
#SBATCH --signal=USR1@90
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --chdir=/home/user/nls
#SBATCH --output=/scratch/runs/sweep/logs/%A_%a_batch.out
#SBATCH --error=/scratch/runs/sweep/logs/%A_%a_batch.err
#SBATCH --array=0-5%4

set -euo pipefail

# This array task's trainer arguments, NUL-separated (written by nls-launch; see tasks/index.tsv).
mapfile -d '' -t args < '/scratch/runs/sweep/tasks'/"${SLURM_ARRAY_TASK_ID}.args"

# Threads per task: its CPUs unless the environment says otherwise (libtorch would start one
# thread per core of the node in every task).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}"

# One task per GPU (or per --tasks-per-node in CPU mode); the trainer handles SIGUSR1/SIGTERM
# itself: it checkpoints and runs `scontrol requeue`.
exec srun --unbuffered --open-mode=append \
  --output='/scratch/runs/sweep/logs/%A_%a_%t.out' \
  --error='/scratch/runs/sweep/logs/%A_%a_%t.err' \
  '/opt/nls/bin/trainer' "${args[@]}"
