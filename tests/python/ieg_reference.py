"""Reference side of trainer/tests/network_ieg.rs: one IEG training step in PyTorch, written
from google-research/ieg's models/model.py (train_step, meta_optimize, unsupervised_loss,
crossentropy_minimize, guess_label, consistency_loss) and custom_ops.py (logit_norm, MixMode).

    ieg_reference.py DIR ARCH WIDTH DEPTH CLASSES

Reads DIR/state.npz (the network, model_reference.py's module names), DIR/momentum.npz (the
live optimizer's momentum buffers under the same names), DIR/io.npz (the step's views, labels,
trusted images, MixUp draws and hyper-parameters); writes DIR/torch.npz with the step's loss,
meta loss, pseudo-labels, sample weights and new label mix, in the views' precision (the test
runs float64).

Same choices as ours where the reference is TensorFlow-specific: the pseudo-labels are targets
without gradient; the L2 regularization (`net.regularization_loss`, `wd·Σ‖v‖²/2`) covers every
trainable variable.
"""
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from model_reference import build, npz


def logit_norm(v):
    return v * torch.rsqrt(torch.mean(v * v) + 1e-8)


def soft_ce(targets, logits):
    return -(targets * F.log_softmax(logits, 1)).sum(1)


def guess_label(logits, aug_logits, temp):
    p = (F.softmax(logit_norm(logits), 1) + F.softmax(logit_norm(aug_logits), 1)) / 2
    p = p ** (1.0 / temp)
    return (p / p.sum(1, keepdim=True)).detach()


def l2(params):
    return sum((p * p).sum() / 2 for p in params)


def meta_optimize(model, io, logits, guess, k):
    """The reference's meta step: weights and the new label mix."""
    b = logits.shape[0]
    wd, rate, eps0 = float(io["wd"]), float(io["meta_lr"]), float(io["eps0"])
    target = torch.full((b,), 1.0 / b, dtype=logits.dtype, requires_grad=True)
    eps = torch.full((b,), eps0, dtype=logits.dtype, requires_grad=True)
    onehot = F.one_hot(io["labels"], k).to(logits.dtype)
    mixed = eps[:, None] * onehot + (1 - eps[:, None]) * guess
    net_cost = -(mixed * F.log_softmax(logits, 1)).sum(1)
    names = [n for n, _ in model.named_parameters()]
    params = [p for _, p in model.named_parameters()]
    lookahead_loss = (target * net_cost).sum() + wd * l2(params)
    grads = torch.autograd.grad(lookahead_loss, params, create_graph=True)
    # meta_momentum_update: the live optimizer's momentum buffer, without gradient, added.
    mu, buffers = float(io["meta_momentum"]), io["momentum"]
    static = {n: p - rate * (g + mu * buffers[n]) for n, p, g in zip(names, params, grads)}
    static.update({n: t.clone() for n, t in model.named_buffers()})
    g_logits = functional_call(model, static, (io["meta_x"],))
    meta_loss = F.cross_entropy(g_logits, io["meta_y"]) + wd * l2(
        [static[n] for n in names])
    grad_target, grad_eps = torch.autograd.grad(meta_loss, [target, eps])
    raw = (target - grad_target - 1.0 / b).clamp(min=0)
    weight = raw / (raw.sum() + 1e-5)
    new_eps = torch.where(grad_eps < 0, torch.ones_like(eps), torch.zeros_like(eps))
    return weight.detach(), new_eps.detach(), meta_loss.detach()


def mixup_loss(model, io, guess, k):
    """crossentropy_minimize with MixMode 'xxy.yxy' on the given draws."""
    probe_x, probe_y = io["probe_x"], io["probe_y"]
    images = torch.cat([probe_x, io["x"], io["x_aug"]], 0)
    targets = torch.cat([F.one_hot(probe_y, k).to(guess.dtype), guess, guess], 0)
    mix, perm = io["coef"], io["perm"]
    x = images * mix[:, None, None, None] + images[perm] * (1 - mix[:, None, None, None])
    t = targets * mix[:, None] + targets[perm] * (1 - mix[:, None])
    b = probe_x.shape[0]
    logit = [logit_norm(part) for part in torch.split(model(x), [b, b, b], 0)]
    l_loss = soft_ce(t[:b], logit[0]).mean()
    u_loss = soft_ce(t[b:], torch.cat(logit[1:], 0)).mean()
    return l_loss + u_loss * float(io["mixup"])


def consistency_loss(logits, aug_logits, factor):
    q = F.softmax(logits, 1)
    kl = q * (F.log_softmax(logits, 1) - F.log_softmax(aug_logits, 1))
    return kl.mean() * logits.shape[1] * factor


def step(model, io, k):
    """One training step's loss, without L2 (ours decays in the optimizer), and its meta step's
    pseudo-labels, sample weights, new label mix and meta loss. The MixUp term is left out at
    weight 0, as the reference's `if FLAGS.ce_factor > 0`."""
    logits = model(io["x"])
    aug_logits = model(io["x_aug"])
    guess = guess_label(logits.detach(), aug_logits.detach(), float(io["temperature"]))
    weight, eps, meta_loss = meta_optimize(model, io, logits, guess, k)
    onehot = F.one_hot(io["labels"], k).to(logits.dtype)
    mixed = eps[:, None] * onehot + (1 - eps[:, None]) * guess
    eps0 = float(io["eps0"])
    init_mixed = eps0 * onehot + (1 - eps0) * guess
    loss = (soft_ce(mixed, logits).mean() + (soft_ce(init_mixed, logits) * weight).sum()) / 2
    if float(io["mixup"]) > 0:
        loss = loss + mixup_loss(model, io, guess, k)
    loss = loss + consistency_loss(logits.detach(), aug_logits, float(io["consistency"]))
    return loss, guess, weight, eps, meta_loss


def main():
    directory, arch, width, depth, k = sys.argv[1:6]
    k = int(k)
    model = build(arch, int(width), int(depth), k)
    io = npz(f"{directory}/io.npz")
    model.to(io["x"].dtype)  # the step's precision: the views' (the state file holds float32)
    model.load_state_dict(npz(f"{directory}/state.npz"), strict=True)
    model.train()
    io["momentum"] = npz(f"{directory}/momentum.npz")
    loss, guess, weight, eps, meta_loss = step(model, io, k)
    out = {"loss": loss.detach(), "meta_loss": meta_loss, "guess": guess, "weights": weight,
           "eps": eps}
    np.savez(f"{directory}/torch.npz", **{n: t.numpy() for n, t in out.items()})


if __name__ == "__main__":
    main()
