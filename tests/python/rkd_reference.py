"""Independent PyTorch reference for trainer/tests/network_rkd.rs.

The step loss of Cheng et al.'s CE_Reg.py / GCE_Reg.py (UCSC-REAL/SelfSup_NoisyLabel), written
from the reference code: `Info_NCE` with its positive/negative index masks, `RkdDistance` with
`pdist` (teacher not detached), the projection head `g` called on each view's features in
training mode, the linear classifier `fc` on the first view's, and

    loss = base(fc(f1), y) + W_INFONCE * Info_NCE(g(f2), g(f3)) + W_RKD * RkdDistance(fc(f1), g(f1))

with base = F.cross_entropy (CE_Reg) or lq_loss on the softmax (GCE_Reg, q = Q). The projector
has this crate's layout (Linear with bias, BatchNorm1d, ReLU, Linear without bias); the
encoder's outputs f1, f2, f3 are given.

Usage: rkd_reference.py INPUTS.npz OUT.npz ce|gce TEMPERATURE W_INFONCE W_RKD Q
INPUTS.npz: f1, f2, f3 [B, E]; labels [B]; projector variables "0.weight", "0.bias",
"1.weight", "1.bias", "1.running_mean", "1.running_var", "3.weight"; fc.weight, fc.bias.
OUT.npz: loss, base, infonce, rkd, and grad.<name> of every projector/fc parameter and of f1-f3.
"""
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def pdist(e, squared=False, eps=1e-12):
    e_square = e.pow(2).sum(dim=1)
    prod = e @ e.t()
    res = (e_square.unsqueeze(1) + e_square.unsqueeze(0) - 2 * prod).clamp(min=eps)
    if not squared:
        res = res.sqrt()
    res = res.clone()
    res[range(len(e)), range(len(e))] = 0
    return res


def rkd_distance(student, teacher):
    student = F.softmax(student, dim=1)
    t_d = pdist(teacher, squared=True)
    t_d = t_d / t_d[t_d > 0].mean()
    d = pdist(student, squared=False)
    d = d / d[d > 0].mean()
    return F.smooth_l1_loss(d, t_d, reduction="mean")


def info_nce(x, y, temperature):
    n = x.size(0)
    x = F.normalize(x, dim=1)
    y = F.normalize(y, dim=1)
    out = torch.cat((x, y), 0)
    logits = torch.einsum("nc,mc->nm", out, out) / temperature
    zero = torch.zeros((n, n), dtype=torch.bool)
    eye = torch.eye(n, dtype=torch.bool)
    pos_index = torch.cat((torch.cat((zero, eye)), torch.cat((eye, zero))), 1)
    neg_index = ~torch.cat((torch.cat((eye, eye)), torch.cat((eye, eye))), 1)
    pos = logits[pos_index].view(2 * n, -1)
    neg = logits[neg_index].view(2 * n, -1)
    final = torch.cat((pos, neg), dim=1)
    return F.cross_entropy(final, torch.zeros(2 * n, dtype=torch.long))


def lq_loss(probabilities, target, q):
    loss = 0
    for i in range(probabilities.size(0)):
        loss += (1.0 - probabilities[i][target[i]] ** q) / q
    return loss / probabilities.size(0)


def main():
    inputs, out_path, base_kind = sys.argv[1], sys.argv[2], sys.argv[3]
    temperature, w_infonce, w_rkd, q = map(float, sys.argv[4:8])
    t = {k: torch.from_numpy(v) for k, v in np.load(inputs).items()}
    emb = t["f1"].shape[1]
    hidden, out = t["0.weight"].shape[0], t["3.weight"].shape[0]
    classes = t["fc.weight"].shape[0]
    g = nn.Sequential(
        nn.Linear(emb, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, out, bias=False)
    )
    fc = nn.Linear(emb, classes)
    with torch.no_grad():
        for name, p in g.state_dict().items():
            if name in t:
                p.copy_(t[name])
        fc.weight.copy_(t["fc.weight"])
        fc.bias.copy_(t["fc.bias"])
    g.train()
    f = [t[k].clone().requires_grad_(True) for k in ("f1", "f2", "f3")]
    labels = t["labels"].long()
    features1, output1 = g(f[0]), fc(f[0])
    features2, features3 = g(f[1]), g(f[2])
    if base_kind == "ce":
        base = F.cross_entropy(output1, labels)
    else:
        base = lq_loss(F.softmax(output1, dim=1), labels, q)
    infonce = info_nce(features2, features3, temperature)
    rkd = rkd_distance(output1, features1)
    loss = base + w_infonce * infonce + w_rkd * rkd
    loss.backward()
    result = {"loss": loss, "base": base, "infonce": infonce, "rkd": rkd}
    result = {k: v.detach().numpy() for k, v in result.items()}
    for name, p in g.named_parameters():
        result["grad." + name] = p.grad.numpy()
    for name, p in fc.named_parameters():
        result["grad.fc." + name] = p.grad.numpy()
    for k, x in zip(("f1", "f2", "f3"), f):
        result["grad." + k] = x.grad.numpy()
    np.savez(out_path, **result)


if __name__ == "__main__":
    main()
