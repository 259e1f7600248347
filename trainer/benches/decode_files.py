"""JPEGs for benches/decode.rs: `decode_files.py DIR N --threads _` writes N pictures of 500x375
(ImageNet's typical size) with smooth structure and texture, quality 90, 4:2:0, and prints their
paths as JSON."""
import argparse
import json
import os

import numpy as np
from PIL import Image


def main(out, n):
    rng = np.random.RandomState(0)
    y, x = np.mgrid[0:375, 0:500]
    paths = []
    for i in range(n):
        f = rng.uniform(3, 20, 3)
        img = np.stack([np.sin(x / f[c] + i) * 70 + np.cos(y / f[(c + 1) % 3]) * 50 + 128
                        for c in range(3)], -1) + rng.normal(0, 10, (375, 500, 3))
        path = os.path.join(out, f"{i:05d}.jpg")
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    with open(os.path.join(out, "files.txt"), "w") as f:
        f.write("\n".join(paths))
    print(json.dumps(paths))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("n", type=int)
    p.add_argument("--threads", type=int)
    a = p.parse_args()
    main(a.dir, a.n)
