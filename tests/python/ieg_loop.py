"""IEG trained for a few epochs in PyTorch, from the step functions of ieg_reference.py (written
from google-research/ieg's model.py), on the CI-scale setting of trainer/tests/network_ieg.rs:
ResNet-32 of width 4 from scratch, 1000 Fashion-MNIST images with 60% uniform noise (`any`
convention), 10 clean probe images a class held out, batch 100, SGD 0.1 (momentum 0.9, cosine),
L2 1e-6. Not part of the suite: it reproduces README's statement that the reference's own
recipe collapses at this scale, as ours does.

    ieg_loop.py SEED EPOCHS MIXUP CONSISTENCY [HEAD_STD]

HEAD_STD: the classifier's initial weights N(0, HEAD_STD) with zero bias, as `trainer
--linear-init-std`; without it, the reference ResNet-32's own init (kaiming normal). Prints per
epoch: test top-1 on 500 images, pseudo-label accuracy, and the mean relative L2R weight of
right / wrong labels.
"""
import gzip
import math
import sys

import numpy as np
import torch
import torchvision.transforms.v2 as T

import ieg_reference as ieg
from model_reference import build

DATA = "/usr/share/datasets/fashion-mnist"
K, B, MEAN, STD, WD, LR = 10, 100, 0.286, 0.353, 1e-6, 0.1


def idx(name, offset):
    return np.frombuffer(gzip.open(f"{DATA}/{name}").read(), np.uint8, offset=offset)


def rgb(images):
    return torch.from_numpy(np.ascontiguousarray(images))[:, None].expand(-1, 3, -1, -1).contiguous()


def normalized(t):
    return (t.float() / 255 - MEAN) / STD


WEAK = T.Compose([T.RandomCrop(28, padding=4), T.RandomHorizontalFlip()])
STRONG = T.Compose([WEAK, T.AutoAugment(T.AutoAugmentPolicy.CIFAR10)])


def views(images, recipe):
    return torch.stack([normalized(recipe(im)) for im in images])


def main():
    seed, epochs = int(sys.argv[1]), int(sys.argv[2])
    mixup, consistency = float(sys.argv[3]), float(sys.argv[4])
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    x_all = idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    y_all = idx("train-labels-idx1-ubyte.gz", 8).astype(np.int64)
    pick = rng.choice(len(x_all), 1000, replace=False)
    images, truth = rgb(x_all[pick]), y_all[pick]
    noisy = truth.copy()
    flipped = rng.choice(1000, 600, replace=False)
    noisy[flipped] = rng.integers(0, K, 600)
    probe = np.concatenate([np.flatnonzero(truth == c)[:10] for c in range(K)])
    train = np.setdiff1d(np.arange(1000), probe)
    x_test = idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    y_test = idx("t10k-labels-idx1-ubyte.gz", 8).astype(np.int64)
    test = rng.choice(len(x_test), 500, replace=False)
    test_x, test_y = normalized(rgb(x_test[test])), torch.from_numpy(y_test[test])

    model = build("resnet32", 4, 0, K)
    if len(sys.argv) > 5:
        torch.nn.init.normal_(model.linear.weight, std=float(sys.argv[5]))
        torch.nn.init.zeros_(model.linear.bias)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)  # L2 in the loss, as the reference
    per_epoch = len(train) // B
    total, step = epochs * per_epoch, 0
    probe_y = torch.from_numpy(truth[probe])
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(train)
        pseudo_right = w_right = w_wrong = n_right = n_wrong = 0.0
        for s in range(per_epoch):
            ids = order[s * B:(s + 1) * B]
            labels, true = torch.from_numpy(noisy[ids]), torch.from_numpy(truth[ids])
            x, x_aug, probe_x = views(images[ids], WEAK), views(images[ids], STRONG), views(images[probe], WEAK)
            draw = torch.from_numpy(rng.integers(0, len(probe), B))
            u = torch.from_numpy(rng.random(3 * B)).float()
            momentum = {n: opt.state.get(p, {}).get("momentum_buffer", torch.zeros_like(p))
                        for n, p in model.named_parameters()}
            io = {"wd": torch.tensor(WD), "meta_lr": torch.tensor(0.1), "eps0": torch.tensor(0.9),
                  "meta_momentum": torch.tensor(0.9), "momentum": momentum, "labels": labels,
                  "meta_x": probe_x, "meta_y": probe_y, "probe_x": probe_x[draw],
                  "probe_y": probe_y[draw], "x": x, "x_aug": x_aug,
                  "coef": torch.maximum(u ** 2 / 2, 1 - u ** 2 / 2),
                  "perm": torch.from_numpy(rng.permutation(3 * B)), "mixup": torch.tensor(mixup),
                  "temperature": torch.tensor(0.5), "consistency": torch.tensor(consistency)}
            loss, guess, weight, _, _ = ieg.step(model, io, K)
            loss = loss + WD * ieg.l2(model.parameters())  # the reference's L2 is in the loss
            for group in opt.param_groups:
                group["lr"] = LR * 0.5 * (1 + math.cos(math.pi * step / total))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            pseudo_right += (guess.argmax(1) == true).sum().item()
            right, relative = labels == true, weight * B
            w_right += relative[right].sum().item()
            w_wrong += relative[~right].sum().item()
            n_right += right.sum().item()
            n_wrong += (~right).sum().item()
        model.eval()
        with torch.no_grad():
            top1 = (model(test_x).argmax(1) == test_y).float().mean().item()
        print(f"seed {seed} epoch {epoch + 1}: top-1 {top1:.3f}, pseudo-labels "
              f"{pseudo_right / (per_epoch * B):.3f} right, weights {w_right / n_right:.2f} right / "
              f"{w_wrong / n_wrong:.2f} wrong", flush=True)


if __name__ == "__main__":
    main()
