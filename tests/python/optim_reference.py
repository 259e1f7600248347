"""torch.optim reference for trainer/tests/optimizers.rs.

Usage: optim_reference.py INPUTS.npz {sgd,adam,adamw,lars} WEIGHT_DECAY LR0,LR1,...
           [--momentum M] [--nesterov] [--no-decay-bn-bias]
INPUTS.npz holds the initial variables (`p.<name>`) and, for each step k, their gradients
(`g<k>.<name>`). Runs torch.optim.SGD (momentum 0.9 unless --momentum, Nesterov with
--nesterov), torch.optim.Adam (L2 weight decay) or torch.optim.AdamW (default betas, eps) with
the given learning rate per step, or the VICReg reference's LARS (vicreg_lars.py: eta 0.001, both
filters `exclude_bias_and_norm`), and prints JSON: the variables after every step ({name: flat
list} per step) and the final optimizer state keyed "<name>:<buffer>".
--no-decay-bn-bias puts biases and normalization parameters in a group with weight decay 0, by
timm's rule (`param_groups_weight_decay`: ndim <= 1 or a name ending in ".bias").
"""
import argparse
import json

import numpy as np
import torch

from vicreg_lars import LARS, exclude_bias_and_norm


def param_groups(params, wd, no_decay_bn_bias):
    if not no_decay_bn_bias:
        return [{"params": list(params.values()), "weight_decay": wd}]
    exempt = [p for n, p in params.items() if p.ndim <= 1 or n.endswith(".bias")]
    decay = [p for n, p in params.items() if not (p.ndim <= 1 or n.endswith(".bias"))]
    return [{"params": decay, "weight_decay": wd}, {"params": exempt, "weight_decay": 0.0}]


def optimizer(args, groups, lr):
    if args.kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=args.momentum, nesterov=args.nesterov)
    if args.kind == "lars":
        return LARS(groups, lr=lr, momentum=args.momentum, weight_decay_filter=exclude_bias_and_norm,
                    lars_adaptation_filter=exclude_bias_and_norm)
    if args.kind == "adam":
        return torch.optim.Adam(groups, lr=lr)
    return torch.optim.AdamW(groups, lr=lr)


def main():
    cli = argparse.ArgumentParser()
    cli.add_argument("path")
    cli.add_argument("kind", choices=["sgd", "adam", "adamw", "lars"])
    cli.add_argument("wd", type=float)
    cli.add_argument("lrs")
    cli.add_argument("--momentum", type=float, default=0.9)
    cli.add_argument("--nesterov", action="store_true")
    cli.add_argument("--no-decay-bn-bias", action="store_true")
    args = cli.parse_args()
    lrs = [float(v) for v in args.lrs.split(",")]
    data = np.load(args.path)
    names = sorted(k[2:] for k in data.files if k.startswith("p."))
    params = {n: torch.tensor(data["p." + n], requires_grad=True) for n in names}
    opt = optimizer(args, param_groups(params, args.wd, args.no_decay_bn_bias), lrs[0])
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
