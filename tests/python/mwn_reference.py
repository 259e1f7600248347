"""Reference side of trainer/tests/network_mwn.rs: one Meta-Weight-Net step on the whole network
as the paper's code takes it (github xjtushujun/meta-weight-net, MW-Net/main.py, `train`), with
torch.func.functional_call in place of its MetaModule copy of the network.

    mwn_reference.py DIR ARCH WIDTH DEPTH CLASSES RATE VNET_LR NORMALIZE

Reads DIR/state.npz (the network's state_dict, classifier included), DIR/vnet.npz (the weighting
network, as an nn.Sequential: 0.weight, 0.bias, 2.weight, 2.bias) and DIR/io.npz (x, y, meta_x,
meta_y: the batch's view and noisy labels, the meta batch's view and true labels). Writes
DIR/torch.npz: the meta loss, the weighting network's gradient and its weights after Adam
(lr VNET_LR, weight_decay 1e-4, as main.py), the weights V(l) it then gives the batch and the
training loss sum(l * V(l)) / B. With NORMALIZE 1 the weights are divided by their sum in the
look-ahead and the training loss, as the same repository's train_WRN-28-10_Meta_PGC.py does
(the loss is then sum(l * V(l) / sum(V(l)))), and "weights" are the normalized ones.
"""
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from model_reference import build, npz


class VNet(nn.Module):
    """MW-Net's VNet(1, 100, 1), as an nn.Sequential so its names are ours."""

    def __init__(self, hidden=100):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))

    def forward(self, x):
        return torch.sigmoid(self.net(x))


def main():
    directory, arch = sys.argv[1], sys.argv[2]
    width, depth, classes = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    rate, vnet_lr = float(sys.argv[6]), float(sys.argv[7])
    normalize = sys.argv[8] == "1"
    model = build(arch, width, depth, classes)
    model.load_state_dict(npz(f"{directory}/state.npz"), strict=True)
    model.train()
    vnet = VNet()
    vnet.net.load_state_dict(npz(f"{directory}/vnet.npz"), strict=True)
    io = npz(f"{directory}/io.npz")
    x, y, meta_x, meta_y = io["x"], io["y"], io["meta_x"], io["meta_y"]

    # The look-ahead: main.py's meta_model step, params -> params - lr * grad (create_graph).
    params = dict(model.named_parameters())
    outputs = functional_call(model, params, (x,))
    cost = F.cross_entropy(outputs, y, reduction="none")
    cost_v = torch.reshape(cost, (len(cost), 1))
    v_lambda = vnet(cost_v.data)
    if normalize:
        # train_WRN-28-10_Meta_PGC.py, as written there.
        norm_c = torch.sum(v_lambda)
        if norm_c != 0:
            v_lambda_norm = v_lambda / norm_c
        else:
            v_lambda_norm = v_lambda
        l_f_meta = torch.sum(cost_v * v_lambda_norm)
    else:
        l_f_meta = torch.sum(cost_v * v_lambda) / len(cost_v)
    grads = torch.autograd.grad(l_f_meta, list(params.values()), create_graph=True)
    updated = {name: p - rate * g for (name, p), g in zip(params.items(), grads)}
    y_g_hat = functional_call(model, updated, (meta_x,))
    l_g_meta = F.cross_entropy(y_g_hat, meta_y)
    optimizer_vnet = torch.optim.Adam(vnet.parameters(), vnet_lr, weight_decay=1e-4)
    optimizer_vnet.zero_grad()
    l_g_meta.backward()
    grad = {f"grad.{n}": p.grad.detach().clone() for n, p in vnet.net.named_parameters()}
    optimizer_vnet.step()

    # The training step's loss with the updated weighting network.
    outputs = model(x)
    cost_w = F.cross_entropy(outputs, y, reduction="none")
    cost_v = torch.reshape(cost_w, (len(cost_w), 1))
    with torch.no_grad():
        w_new = vnet(cost_v)
    if normalize:
        norm_v = torch.sum(w_new)
        if norm_v != 0:
            w_new = w_new / norm_v
        loss = torch.sum(cost_v * w_new)
    else:
        loss = torch.sum(cost_v * w_new) / len(cost_v)

    out = {"meta_loss": l_g_meta.detach(), "loss": loss.detach(), "weights": w_new.squeeze(1)}
    out.update(grad)
    out.update({f"vnet.{n}": p.detach() for n, p in vnet.net.named_parameters()})
    np.savez(f"{directory}/torch.npz", **{k: v.numpy() for k, v in out.items()})


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
