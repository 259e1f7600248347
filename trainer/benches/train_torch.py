"""The reference side of `cargo bench --bench train`: one supervised training step of a whole
network as the seed papers' PyTorch code does it, fp32 on CPU.

    train_torch.py --arch preact18|wrn --warmup W --steps N --batch B --threads T

Per step: RandomCrop(32, padding=4) + RandomHorizontalFlip per image on uint8 tensors (what a
DataLoader worker does, here in-process), Normalize, forward in training mode, linear classifier,
cross-entropy, backward, SGD (momentum 0.9, weight decay 5e-4). The networks are the reference
definitions of tests/python/model_reference.py (SSR's PreAct ResNet-18, WRN-28-10).
Prints JSON: images_per_s (batch / median step seconds over the N timed steps) and step times.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
from torchvision import transforms

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/python"))
from model_reference import build  # noqa: E402

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", required=True)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    width, depth = (64, None) if a.arch == "preact18" else (10, 28)
    model = build(a.arch, width, depth, 10)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    augment = transforms.Compose(
        [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()]
    )
    normalize = transforms.Normalize(MEAN, STD)
    images = torch.randint(0, 256, (a.batch, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (a.batch,))
    times = []
    for step in range(a.warmup + a.steps):
        start = time.perf_counter()
        x = torch.stack([augment(img) for img in images]).float().div_(255)
        loss = torch.nn.functional.cross_entropy(model(normalize(x)), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= a.warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(json.dumps({"images_per_s": a.batch / median, "step_s": times, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
