"""torch.optim reference for trainer/tests/optimizers.rs.

Usage: optim_reference.py INPUTS.npz {sgd,adamw} WEIGHT_DECAY LR0,LR1,...
INPUTS.npz holds the initial variables (`p.<name>`) and, for each step k, their gradients
(`g<k>.<name>`). Runs torch.optim.SGD(momentum=0.9) or torch.optim.AdamW (default betas, eps)
with the given learning rate per step, and prints JSON: the variables after every step
({name: flat list} per step) and the final optimizer state keyed "<name>:<buffer>".
"""
import json
import sys

import numpy as np
import torch


def main():
    path, kind, wd, lrs = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    lrs = [float(v) for v in lrs.split(",")]
    data = np.load(path)
    names = sorted(k[2:] for k in data.files if k.startswith("p."))
    params = {n: torch.tensor(data["p." + n], requires_grad=True) for n in names}
    if kind == "sgd":
        opt = torch.optim.SGD(params.values(), lr=lrs[0], momentum=0.9, weight_decay=wd)
    else:
        opt = torch.optim.AdamW(params.values(), lr=lrs[0], weight_decay=wd)
    after = []
    for step, lr in enumerate(lrs):
        for group in opt.param_groups:
            group["lr"] = lr
        for n, p in params.items():
            p.grad = torch.tensor(data[f"g{step}.{n}"])
        opt.step()
        after.append({n: p.detach().flatten().tolist() for n, p in params.items()})
    state = {
        f"{n}:{buf}": v.flatten().tolist()
        for n, p in params.items()
        for buf, v in opt.state[p].items()
        if buf != "step"
    }
    print(json.dumps({"after": after, "state": state}))


if __name__ == "__main__":
    main()
