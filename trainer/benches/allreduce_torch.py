"""The Python torch.distributed side of `cargo bench --bench collectives`: the same all-reduce
sizes and timing method as `trainer dist-bench` (barrier, then time one all_reduce; median of the
timed iterations). Rank 0 prints one JSON object per size."""
import datetime
import json
import os
import statistics
import sys
import time

import torch
import torch.distributed as dist


def main():
    sizes_mb = [float(s) for s in sys.argv[1].split(",")]
    iters, warmup = int(sys.argv[2]), int(sys.argv[3])
    dist.init_process_group("gloo", init_method="env://", timeout=datetime.timedelta(seconds=120))
    rank, world = dist.get_rank(), dist.get_world_size()
    for mb in sizes_mb:
        numel = round(mb * 1e6 / 4)
        t = torch.ones(numel, dtype=torch.float32)
        times = []
        for i in range(warmup + iters):
            dist.barrier()
            start = time.perf_counter()
            dist.all_reduce(t)
            if i >= warmup:
                times.append(time.perf_counter() - start)
        times.sort()
        secs = times[len(times) // 2]
        busbw = numel * 4 / secs * 2 * (world - 1) / world / 1e9
        if rank == 0:
            print(json.dumps({"impl": "python", "op": "all_reduce", "world": world, "bytes": numel * 4,
                              "median_s": secs, "busbw_gbps": busbw}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
