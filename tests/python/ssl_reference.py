"""Independent PyTorch reference for trainer/tests/ssl_losses.rs.

VICReg is written as the reference code writes it (facebookresearch/vicreg `VICReg.forward` on
one process: F.mse_loss, x.var(dim=0), off_diagonal), NT-Xent as F.cross_entropy over the
masked 2N x 2N similarity matrix. Input gradients come from autograd.

Usage: ssl_reference.py INPUTS.npz TEMPERATURE SIM STD COV
INPUTS.npz holds x and y ([N, D]); x, y are also the two SimCLR views z1, z2.
Prints JSON: vicreg {total, repr, std, cov}, vicreg_grads [dx, dy], simclr, simclr_grads.
"""
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F


def off_diagonal(x):
    n, m = x.shape
    assert n == m
    return x.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def vicreg(x, y, sim_coeff, std_coeff, cov_coeff):
    batch_size, num_features = x.shape
    repr_loss = F.mse_loss(x, y)
    x = x - x.mean(dim=0)
    y = y - y.mean(dim=0)
    std_x = torch.sqrt(x.var(dim=0) + 0.0001)
    std_y = torch.sqrt(y.var(dim=0) + 0.0001)
    std_loss = torch.mean(F.relu(1 - std_x)) / 2 + torch.mean(F.relu(1 - std_y)) / 2
    cov_x = (x.T @ x) / (batch_size - 1)
    cov_y = (y.T @ y) / (batch_size - 1)
    cov_loss = off_diagonal(cov_x).pow_(2).sum().div(num_features) + off_diagonal(
        cov_y
    ).pow_(2).sum().div(num_features)
    total = sim_coeff * repr_loss + std_coeff * std_loss + cov_coeff * cov_loss
    parts = {"total": total, "repr": repr_loss, "std": std_loss, "cov": cov_loss}
    return total, {k: v.item() for k, v in parts.items()}


def nt_xent(z1, z2, temperature):
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], dim=0), dim=1)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, targets)


def leaves(arrays):
    return [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]


def grads(loss, inputs):
    return [g.flatten().tolist() for g in torch.autograd.grad(loss, inputs)]


def main():
    path, temperature, sim, std, cov = sys.argv[1], *map(float, sys.argv[2:6])
    data = np.load(path)
    x, y = leaves([data["x"], data["y"]])
    total, parts = vicreg(x, y, sim, std, cov)
    z1, z2 = leaves([data["x"], data["y"]])
    simclr = nt_xent(z1, z2, temperature)
    print(
        json.dumps(
            {
                "vicreg": parts,
                "vicreg_grads": grads(total, [x, y]),
                "simclr": simclr.item(),
                "simclr_grads": grads(simclr, [z1, z2]),
            }
        )
    )


if __name__ == "__main__":
    main()
