"""A Python torch.distributed rank that runs the same collective sequence as `trainer dist-check`.

Started by the interoperability test beside Rust ranks, with the usual env:// variables
(RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). Exits non-zero if any result is wrong.
Keep the sequence in step with trainer/src/cmd/dist_check.rs::check_round.
"""
import datetime
import os
import sys

import torch
import torch.distributed as dist


def expect(what, got, want):
    if got.shape != want.shape or not torch.allclose(got.double(), want.double(), atol=1e-6):
        sys.exit(f"{what}: got {got.flatten().tolist()}, expected {want.flatten().tolist()}")


def check_round(r, w):
    base = torch.arange(1, 6, dtype=torch.float32)

    t = base * (r + 1)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    expect("all_reduce sum", t, base * (w * (w + 1) / 2))

    t = torch.tensor([r, -r], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    expect("all_reduce max", t, torch.tensor([w - 1, 0]))

    # Gloo has no AVG: the Rust side sums and divides too, so the wire traffic is the same.
    t = base * r
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= w
    expect("all_reduce avg", t, base * ((w - 1) / 2))

    root = w - 1
    t = torch.arange(4, dtype=torch.float32) + 100.0 * r
    dist.broadcast(t, src=root)
    expect("broadcast", t, torch.arange(4, dtype=torch.float32) + 100.0 * root)

    t = torch.full((2, 3), float(r))
    out = torch.empty(2 * w, 3)
    dist.all_gather_into_tensor(out, t)
    want = torch.arange(w, dtype=torch.float32).repeat_interleave(2).unsqueeze(1).expand(-1, 3)
    expect("all_gather", out, want)

    # The Rust ranks hold this one channels-last; the logical elements must agree.
    logical = torch.arange(24, dtype=torch.float32).view(2, 3, 2, 2)
    t = logical + 1000.0 * r
    dist.broadcast(t, src=0)
    expect("broadcast channels-last", t, logical)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    expect("all_reduce channels-last", t, logical * w)

    dist.barrier()


def main():
    timeout = datetime.timedelta(seconds=float(os.environ.get("NLS_DIST_TIMEOUT_S", "60")))
    dist.init_process_group("gloo", init_method="env://", timeout=timeout)
    r, w = dist.get_rank(), dist.get_world_size()
    rounds = int(os.environ.get("NLS_ROUNDS", "1"))
    for _ in range(rounds):
        check_round(r, w)
    print(f"python dist-check ok: rank {r} of {w}, {rounds} round(s)", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
