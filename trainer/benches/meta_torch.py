"""The reference side of `cargo bench --bench meta`: one Meta-Weight-Net training step through
WRN-28-10 as the paper's code takes it (github xjtushujun/meta-weight-net, MW-Net/main.py,
`train`; seed 001's `higher`-style look-ahead), with torch.func.functional_call in place of the
MetaModule copy of the network, fp32 on CPU.

    meta_torch.py --batch B --warmup W --steps N --threads T

Per step: per-sample CE, VNet weights, the look-ahead params - 0.1 * grad (create_graph), the
meta batch's CE through it, Adam (1e-3, weight decay 1e-4) on VNet; then the batch's CE weighted
by the updated VNet, backward, SGD (momentum 0.9, weight decay 5e-4). The network is
tests/python/model_reference.py's WRN-28-10. Prints JSON: step_s (median seconds over the N
timed steps), times and the torch version.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/python"))
from model_reference import build  # noqa: E402
from mwn_reference import VNet  # noqa: E402


def step(model, vnet, opt, opt_vnet, x, y, meta_x, meta_y):
    params = dict(model.named_parameters())
    cost = F.cross_entropy(functional_call(model, params, (x,)), y, reduction="none")
    cost_v = cost.reshape(-1, 1)
    l_f_meta = torch.sum(cost_v * vnet(cost_v.data)) / len(cost_v)
    grads = torch.autograd.grad(l_f_meta, list(params.values()), create_graph=True)
    updated = {name: p - 0.1 * g for (name, p), g in zip(params.items(), grads)}
    l_g_meta = F.cross_entropy(functional_call(model, updated, (meta_x,)), meta_y)
    opt_vnet.zero_grad()
    l_g_meta.backward()
    opt_vnet.step()

    cost_w = F.cross_entropy(model(x), y, reduction="none").reshape(-1, 1)
    with torch.no_grad():
        w_new = vnet(cost_w)
    loss = torch.sum(cost_w * w_new) / len(cost_w)
    opt.zero_grad()
    loss.backward()
    opt.step()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = build("wrn", 10, 28, 10)
    model.train()
    vnet = VNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    opt_vnet = torch.optim.Adam(vnet.parameters(), 1e-3, weight_decay=1e-4)
    x, meta_x = torch.randn(a.batch, 3, 32, 32), torch.randn(a.batch, 3, 32, 32)
    y, meta_y = torch.randint(0, 10, (a.batch,)), torch.randint(0, 10, (a.batch,))
    times = []
    for i in range(a.warmup + a.steps):
        start = time.perf_counter()
        step(model, vnet, opt, opt_vnet, x, y, meta_x, meta_y)
        if i >= a.warmup:
            times.append(time.perf_counter() - start)
    print(json.dumps({"step_s": statistics.median(times), "times": times, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
