"""Reference side of trainer/tests/model_torchvision.rs: torchvision / torch.nn on Rust's weights.

    model_torchvision.py resnet    DIR ARCH STEM   # forward train + eval, state after
    model_torchvision.py blocks    DIR ARCH STEM   # every residual block on its own input
    model_torchvision.py projector DIR EMB SPEC    # the reference VICReg expander

Inputs are DIR/state.npz (Rust's export, loaded with strict=True) and DIR/io.npz; tensors go to
DIR/torch.npz and a JSON summary of a *fresh* torchvision model (names, shapes, parameter count,
BN weights that start at zero) to stdout, so the Rust side checks its conventions against
torchvision's own, not against itself.
"""
import json
import sys

import numpy as np
import torch
import torchvision
from torch import nn


def resnet(arch, stem):
    """torchvision's ResNet as the SSL references use it: zero-init residuals, no classifier."""
    model = getattr(torchvision.models, arch)(zero_init_residual=True)
    if stem == "cifar":
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    model.fc = nn.Identity()
    return model


def projector(emb, spec):
    """Verbatim the reference VICReg Projector, under the attribute name `projector`."""
    f = list(map(int, f"{emb}-{spec}".split("-")))
    layers = []
    for i in range(len(f) - 2):
        layers.append(nn.Linear(f[i], f[i + 1]))
        layers.append(nn.BatchNorm1d(f[i + 1]))
        layers.append(nn.ReLU(True))
    layers.append(nn.Linear(f[-2], f[-1], bias=False))
    return nn.ModuleDict({"projector": nn.Sequential(*layers)})


def run_projector(module, x):
    return module["projector"](x)


def summary(fresh):
    state = fresh.state_dict()
    zero = [
        k
        for k, v in state.items()
        if k.endswith(".weight") and v.dim() == 1 and bool((v == 0).all())
    ]
    return {
        "names": sorted(state),
        "shapes": {k: list(v.shape) for k, v in state.items()},
        "parameters": sum(p.numel() for p in fresh.parameters()),
        "zero_bn": sorted(zero),
    }


def load(model, directory):
    with np.load(f"{directory}/state.npz") as npz:
        state = {k: torch.from_numpy(npz[k]) for k in npz.files}
    model.load_state_dict(state, strict=True)
    return model


def inputs(directory):
    with np.load(f"{directory}/io.npz") as npz:
        return {k: torch.from_numpy(npz[k]) for k in npz.files}


def forward_both(model, io, call):
    """Train-mode pass on x_train (updates running stats), then eval on x_eval."""
    out = {}
    with torch.no_grad():
        model.train()
        out["train_out"] = call(model, io["x_train"])
        model.eval()
        out["eval_out"] = call(model, io["x_eval"])
    for k, v in model.state_dict().items():
        out[f"state.{k}"] = v
    return out


def blocks(model, io):
    """Each block alone (eval mode) on the input Rust gave it, keyed by `layerI.J`."""
    out = {}
    model.eval()
    with torch.no_grad():
        for name, x in io.items():
            layer, index = name.split(".")
            out[name] = getattr(model, layer)[int(index)](x)
    return out


def save(directory, tensors):
    np.savez(f"{directory}/torch.npz", **{k: v.numpy() for k, v in tensors.items()})


def main():
    torch.manual_seed(0)
    command, directory, a, b = sys.argv[1:5]
    if command == "projector":
        fresh = projector(int(a), b)
        model = load(projector(int(a), b), directory)
        save(directory, forward_both(model, inputs(directory), run_projector))
    else:
        fresh = resnet(a, b)
        model = load(resnet(a, b), directory)
        io = inputs(directory)
        if command == "resnet":
            save(directory, forward_both(model, io, lambda m, x: m(x)))
        else:
            save(directory, blocks(model, io))
    print(json.dumps(summary(fresh)))


if __name__ == "__main__":
    main()
