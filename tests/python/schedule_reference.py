"""torch.optim.lr_scheduler reference for trainer/tests/train_schedules.rs.

Usage: schedule_reference.py JSON
JSON: a list of schedules, each {"base", "steps_per_epoch", "epochs", "per_epoch", "warmup", "schedule", "lr_end",
"milestones", "gamma", "restart", "restart_mult"}, warm-up, milestones and restart lengths in
epochs. Builds the scheduler torch users write: CosineAnnealingLR(T_max = run after warm-up,
eta_min = lr_end·base), MultiStepLR (milestones counted from the end of warm-up, as
SequentialLR restarts its clock), CosineAnnealingWarmRestarts(T_0, T_mult, eta_min) or
ConstantLR(factor 1), behind LinearLR + SequentialLR when warm-up > 0. LinearLR cannot start
at 0, so it starts at 1e-12 (|difference| <= 1e-12·base). The scheduler is stepped after every
optimizer step, or after each epoch's last step when per_epoch; prints, for each schedule, the
list of the rate of every step of the run.
"""
import json
import sys
import warnings

import torch
from torch.optim import lr_scheduler as ls

WARMUP_START = 1e-12


def main_scheduler(opt, c, unit, length):
    kind = c["schedule"]
    eta_min = c["lr_end"] * c["base"]
    if kind == "cosine":
        return ls.CosineAnnealingLR(opt, T_max=length, eta_min=eta_min)
    if kind == "step":
        offsets = [round((m - c["warmup"]) * unit) for m in c["milestones"]]
        return ls.MultiStepLR(opt, milestones=offsets, gamma=c["gamma"])
    if kind == "restarts":
        return ls.CosineAnnealingWarmRestarts(
            opt, T_0=round(c["restart"] * unit), T_mult=int(c["restart_mult"]), eta_min=eta_min
        )
    return ls.ConstantLR(opt, factor=1.0, total_iters=0)


def rates_of(c):
    spe = c["steps_per_epoch"]
    unit = 1 if c["per_epoch"] else spe
    warmup = round(c["warmup"] * unit)
    length = c["epochs"] * unit - warmup
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=c["base"])
    after = main_scheduler(opt, c, unit, length)
    sched = after
    if warmup > 0:
        warm = ls.LinearLR(opt, start_factor=WARMUP_START, end_factor=1.0, total_iters=warmup)
        sched = ls.SequentialLR(opt, [warm, after], milestones=[warmup])
    rates = []
    for step in range(c["epochs"] * spe):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        if not c["per_epoch"] or (step + 1) % spe == 0:
            sched.step()
    return rates


def main():
    print(json.dumps([rates_of(c) for c in json.loads(sys.argv[1])]))


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    main()
