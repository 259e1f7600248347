#!/bin/bash
# Rendered by nls-launch 0.1.0; the resolved configuration is job.toml beside this script.
#SBATCH --job-name=nls-vicreg
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=8
#SBATCH --time=240
#SBATCH --signal=USR1@90
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --chdir=/home/user/nls
#SBATCH --output=/scratch/runs/vicreg/logs/%j_batch.out
#SBATCH --error=/scratch/runs/vicreg/logs/%j_batch.err

set -euo pipefail

args=(
  'pretrain'
  '--data-dir'
  '/data/cifar10'
  '--method'
  'vicreg'
  '--epochs'
  '100'
  '--exp-dir'
  '/scratch/runs/vicreg'
  '--max-timeouts'
  '3'
)

# Threads per task: its CPUs unless the environment says otherwise (libtorch would start one
# thread per core of the node in every task).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}"

# One task per GPU (or per --tasks-per-node in CPU mode); the trainer handles SIGUSR1/SIGTERM
# itself: it checkpoints and runs `scontrol requeue`.
exec srun --unbuffered --open-mode=append \
  --output='/scratch/runs/vicreg/logs/%j_%t.out' \
  --error='/scratch/runs/vicreg/logs/%j_%t.err' \
  '/opt/nls/bin/trainer' "${args[@]}"
