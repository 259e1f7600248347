"""The reference for benches/decode.rs: torchvision's ImageNet training input (PIL decode,
RandomResizedCrop(224), RandomHorizontalFlip, PILToTensor) in a DataLoader with one worker per
core. Usage: decode_torchvision.py LIST_FILE EPOCHS --threads CORES; prints JSON: images/s
(the epochs after the first, which starts the workers) and the peak RSS in MiB of this process
plus its workers."""
import argparse
import json
import resource
import time

import torch
from PIL import Image
from torchvision import transforms


class Files(torch.utils.data.Dataset):
    def __init__(self, paths):
        self.paths = paths
        self.t = transforms.Compose([transforms.RandomResizedCrop(224),
                                     transforms.RandomHorizontalFlip(),
                                     transforms.PILToTensor()])

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with open(self.paths[i], "rb") as f:
            return self.t(Image.open(f).convert("RGB"))


def main(list_file, cores, epochs):
    torch.set_num_threads(1)
    paths = open(list_file).read().split()
    loader = torch.utils.data.DataLoader(Files(paths), batch_size=64, num_workers=cores,
                                         persistent_workers=True, shuffle=True)
    for _ in loader:  # starts the workers
        pass
    start = time.perf_counter()
    for _ in range(epochs - 1):
        for batch in loader:
            assert batch.shape[1:] == (3, 224, 224)
    rate = len(paths) * (epochs - 1) / (time.perf_counter() - start)
    kib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
           + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps({"images_per_s": rate, "peak_rss_mib": kib / 1024}))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("list_file")
    p.add_argument("epochs", type=int)
    p.add_argument("--threads", type=int, required=True)
    a = p.parse_args()
    main(a.list_file, a.threads, a.epochs)
