"""The reference side of `cargo bench --bench augment`: torchvision v2 per-image transforms (the
VICReg CIFAR recipe) on uint8 CHW tensors in a DataLoader with one worker per core, two views per
image, batch 256. Prints images per second (views counted once per image pair)."""
import os
import sys
import time

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

N, BATCH = int(sys.argv[1]), 256
recipe = v2.Compose([
    v2.RandomResizedCrop(32, scale=(0.2, 1.0), antialias=False),
    v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
    v2.RandomGrayscale(p=0.2),
    v2.RandomSolarize(128, p=0.1),
    v2.RandomHorizontalFlip(),
    v2.ToDtype(torch.float32, scale=True),
    v2.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
])


class TwoViews(Dataset):
    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        x = self.images[i]
        return recipe(x), recipe(x)


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    images = torch.randint(0, 256, (N, 3, 32, 32), dtype=torch.uint8)
    loader = DataLoader(TwoViews(images), batch_size=BATCH, num_workers=os.cpu_count(),
                        persistent_workers=True)
    for _ in loader:  # warm-up: start the workers
        break
    start = time.perf_counter()
    seen = sum(a.shape[0] for a, _ in loader)
    print(seen / (time.perf_counter() - start))


if __name__ == "__main__":
    main()
