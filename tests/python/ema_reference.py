"""timm ModelEmaV2 reference for trainer/tests/ema.rs.

Usage: ema_reference.py STATES.npz DECAY0,DECAY1,...
STATES.npz holds a model's state before training (`s0.<name>`) and after each step k
(`s<k+1>.<name>`), BatchNorm running statistics included. Starting from the first state, applies
timm's update `ema_v.copy_(ema_v * decay + (1. - decay) * model_v)` with the k-th decay after
step k (floating-point entries; others are copied, as ModelEmaV3 does), and writes the average
after every step as EMA.npz next to STATES.npz (`e<k+1>.<name>`).
"""
import os
import sys

import numpy as np
import torch


def main():
    path, decays = sys.argv[1], [float(d) for d in sys.argv[2].split(",")]
    data = np.load(path)
    names = sorted(k[3:] for k in data.files if k.startswith("s0."))
    ema = {n: torch.tensor(data["s0." + n]) for n in names}
    out = {}
    for k, decay in enumerate(decays):
        for n in names:
            model_v = torch.tensor(data[f"s{k + 1}.{n}"])
            if ema[n].is_floating_point():
                ema[n].copy_(ema[n] * decay + (1.0 - decay) * model_v)
            else:
                ema[n].copy_(model_v)
            out[f"e{k + 1}.{n}"] = ema[n].numpy().copy()
    np.savez(os.path.join(os.path.dirname(path), "EMA.npz"), **out)


if __name__ == "__main__":
    main()
