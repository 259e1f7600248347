"""The reference side of `cargo bench --bench evaluate`: the linear-probe loop of the reference
evaluate code with a frozen backbone, as it runs it: the backbone forward (eval mode, no grad) on
every training batch of every epoch and on the whole test split after every epoch.

    evaluate_torch.py --data-dir D --train-samples N --test-samples T --epochs E --batch-size B

Backbone: torchvision resnet18 with the CIFAR stem (3×3 conv1, no max-pool), zero-init residuals,
fc = Identity, randomly initialized and frozen (what `trainer evaluate --backbone none --weights
freeze` probes). Head: Linear(512, 512), BatchNorm1d, ReLU, Dropout(0.4), Linear(512, K).
SGD momentum 0.9, weight decay 1e-6, lr 0.1 with a per-step cosine to 0.1 × lr, cross-entropy,
no augmentation; the first N training and T test images of Fashion-MNIST (gray repeated to RGB,
normalized with the Fashion-MNIST mean and std), B images a step, the last partial batch dropped.
Prints JSON: loop seconds (first epoch to last test), setup seconds, per-epoch seconds, accuracy.
"""
import argparse
import gzip
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model_torchvision import resnet

MEAN, STD = 0.2860, 0.3530
HIDDEN, DROPOUT, END_FRACTION = 512, 0.4, 0.1


def idx(path):
    """An IDX file (gzipped) as a numpy array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def split(data_dir, prefix, n):
    images = idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))[:n]
    labels = idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))[:n]
    x = torch.from_numpy(images.copy()).float().div_(255).unsqueeze(1).repeat(1, 3, 1, 1)
    return (x - MEAN) / STD, torch.from_numpy(labels.astype(np.int64))


def head(emb, classes):
    return nn.Sequential(nn.Linear(emb, HIDDEN), nn.BatchNorm1d(HIDDEN), nn.ReLU(),
                         nn.Dropout(DROPOUT), nn.Linear(HIDDEN, classes))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--train-samples", type=int, required=True)
    p.add_argument("--test-samples", type=int, required=True)
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    args = p.parse_args()
    started = time.perf_counter()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    train_x, train_y = split(args.data_dir, "train", args.train_samples)
    test_x, test_y = split(args.data_dir, "t10k", args.test_samples)
    classes = 10
    backbone = resnet("resnet18", "cifar")
    backbone.requires_grad_(False)
    backbone.eval()
    classifier = head(512, classes)
    optimizer = torch.optim.SGD(classifier.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-6)
    steps = args.train_samples // args.batch_size
    total = args.epochs * steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: END_FRACTION + (1 - END_FRACTION) * 0.5 * (1 + math.cos(math.pi * s / total)))
    setup = time.perf_counter() - started

    loop_start = time.perf_counter()
    epoch_s, acc1 = [], 0.0
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        classifier.train()
        order = torch.randperm(args.train_samples)
        for step in range(steps):
            i = order[step * args.batch_size:(step + 1) * args.batch_size]
            with torch.no_grad():
                features = backbone(train_x[i])
            loss = F.cross_entropy(classifier(features), train_y[i])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        classifier.eval()
        hits = 0
        with torch.no_grad():
            for s in range(0, args.test_samples, 256):
                logits = classifier(backbone(test_x[s:s + 256]))
                hits += (logits.argmax(1) == test_y[s:s + 256]).sum().item()
        acc1 = hits / args.test_samples
        epoch_s.append(time.perf_counter() - t0)
    print(json.dumps({
        "loop_s": time.perf_counter() - loop_start,
        "setup_s": setup,
        "epoch_s": epoch_s,
        "acc1": acc1,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
