"""The reference side of `cargo bench --bench pretrain` and scripts/gpu-check.sh: one VICReg (or
SimCLR) pretraining step as the VICReg reference code does it (torchvision ResNet-18 with the
CIFAR stem, 1024-1024-1024 projector, VICReg loss 25/25/1 or NT-Xent T 0.5, the reference LARS):
fp32 on CPU; on CUDA bf16 autocast for the network, the loss in fp32, channels-last.

    pretrain_torch.py --mode step|e2e --data-dir D --warmup W --steps N
                      [--device cpu|cuda] [--batch B] [--method vicreg|simclr]

step: two random pre-augmented views already on the device; forward, loss, backward, optimizer
      step (on CUDA: the best eager PyTorch step).
e2e:  CIFAR-10 binary files in D as PIL images, the solo-learn VICReg transform for two views, a
      DataLoader with one worker per core (pinned, copied without blocking on CUDA), then the
      same step (on CUDA: the usual DataLoader training loop).
Prints JSON: images_per_s (batch / median step seconds over the N timed steps) and the step times.
"""
import argparse
import glob
import itertools
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from torchvision.models import resnet18

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/python"))
from ssl_reference import nt_xent, vicreg  # noqa: E402
from vicreg_lars import LARS, exclude_bias_and_norm  # noqa: E402

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def backbone():
    net = resnet18(zero_init_residual=True)
    net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return net


def projector(dims=(512, 1024, 1024, 1024)):
    layers = []
    for a, b in zip(dims[:-2], dims[1:-1]):
        layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU(True)]
    layers.append(nn.Linear(dims[-2], dims[-1], bias=False))
    return nn.Sequential(*layers)


class SSL(nn.Module):
    """main_vicreg.py's VICReg.forward for one process (the gathers are identities), or SimCLR
    with the same networks; the losses are the tests' references (tests/python/ssl_reference.py),
    computed in fp32 outside autocast."""

    def __init__(self, method, autocast):
        super().__init__()
        self.backbone, self.projector = backbone(), projector()
        self.method, self.autocast = method, autocast

    def forward(self, x, y):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast):
            x = self.projector(self.backbone(x))
            y = self.projector(self.backbone(y))
        x, y = x.float(), y.float()
        if self.method == "simclr":
            return nt_xent(x, y, 0.5)
        return vicreg(x, y, 25.0, 25.0, 1.0)[0]


def vicreg_transform():
    return transforms.Compose([
        transforms.RandomResizedCrop(32, scale=(0.2, 1.0)),
        transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
        transforms.RandomGrayscale(p=0.2),
        transforms.RandomSolarize(threshold=128, p=0.1),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(MEAN, STD),
    ])


class CifarBinary(Dataset):
    """data_batch_*.bin as torchvision's CIFAR10 holds it: uint8 HWC arrays, PIL per item."""

    def __init__(self, data_dir):
        files = sorted(glob.glob(os.path.join(data_dir, "**", "data_batch_*.bin"), recursive=True))
        if not files:
            raise SystemExit(f"no data_batch_*.bin under {data_dir}")
        raw = np.concatenate([np.fromfile(f, dtype=np.uint8).reshape(-1, 3073) for f in files])
        self.labels = raw[:, 0].astype(np.int64)
        self.images = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
        self.transform = vicreg_transform()

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i])
        return (self.transform(img), self.transform(img)), self.labels[i]


def batches(args, device):
    """Endless (view1, view2) batches on `device` for the chosen mode."""
    layout = torch.channels_last if device.type == "cuda" else torch.contiguous_format

    def put(v):
        return v.to(device, non_blocking=True).contiguous(memory_format=layout)

    if args.mode == "step":
        x, y = torch.randn(args.batch, 3, 32, 32), torch.randn(args.batch, 3, 32, 32)
        return itertools.repeat((put(x), put(y)))
    loader = DataLoader(CifarBinary(args.data_dir), batch_size=args.batch, shuffle=True,
                        num_workers=args.threads, drop_last=True, persistent_workers=True,
                        pin_memory=device.type == "cuda")
    epochs = itertools.chain.from_iterable(iter(loader) for _ in itertools.count())
    return ((put(x), put(y)) for (x, y), _ in epochs)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=["step", "e2e"], required=True)
    p.add_argument("--data-dir", help="folder with CIFAR-10 binary data_batch_*.bin (e2e)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--method", choices=["vicreg", "simclr"], default="vicreg")
    args = p.parse_args()
    if args.mode == "e2e" and not args.data_dir:
        p.error("--mode e2e needs --data-dir")
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    torch.backends.cudnn.benchmark = cuda
    model = SSL(args.method, autocast=cuda).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    optimizer = LARS(model.parameters(), lr=0.2, weight_decay=1e-6,
                     weight_decay_filter=exclude_bias_and_norm, lars_adaptation_filter=exclude_bias_and_norm)
    source = batches(args, device)
    times, losses = [], []
    last = time.perf_counter()
    for step in range(args.warmup + args.steps):
        x, y = next(source)
        optimizer.zero_grad()
        loss = model(x, y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        now = time.perf_counter()
        if step >= args.warmup:
            times.append(now - last)
        last = now
    print(json.dumps({
        "mode": args.mode,
        "method": args.method,
        "device": args.device,
        "batch": args.batch,
        "images_per_s": args.batch / statistics.median(times),
        "step_s": times,
        "loss": losses,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
