"""torchvision's supervised augmentations, for trainer/tests/augment_train.rs.

ops IN OUT:      every AutoAugment op (torchvision's own `_apply_image_or_video_transform`) on
                 each uint8 image x[i] with magnitude mags[k, i]; crop/flip and resized crop.
policy OUT:      the published policies' expected frequencies of (slot, op, |magnitude|).
"""
import json
import sys

import numpy as np
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

OPS = ["ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
       "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize", "Invert"]


def ops(inp, out):
    d = np.load(inp)
    x = torch.from_numpy(d["x"])
    mags = d["mags"]
    aug = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)
    res = {}
    for k, name in enumerate(OPS):
        res[name] = torch.stack([
            aug._apply_image_or_video_transform(
                x[i], name, float(mags[k, i]), interpolation=aug.interpolation, fill=aug._fill)
            for i in range(x.shape[0])]).numpy()
    pad = int(d["padding"][0])
    size = int(d["size"][0])

    def crop(i):
        top, left = (int(v) for v in d["crop"][i])
        y = F.crop(F.pad(x[i], [pad] * 4, fill=0), top, left, size, size)
        return F.horizontal_flip(y) if d["flip"][i] else y

    def resized(i):
        t, l, h, w = (int(v) for v in d["resized"][i])
        y = F.resized_crop(x[i], t, l, h, w, [size, size],
                           interpolation=F.InterpolationMode.BILINEAR, antialias=False)
        return F.horizontal_flip(y) if d["flip"][i] else y

    res["crop"] = torch.stack([crop(i) for i in range(x.shape[0])]).numpy()
    res["resized"] = torch.stack([resized(i) for i in range(x.shape[0])]).numpy()
    np.savez(out, **res)


def policy(out, side, bins, magnitude):
    """Expected P(slot k holds (op, |m|)) for AutoAugment (CIFAR10 and IMAGENET) and
    RandAugment."""
    rows = []
    for tag, table in [("autoaugment", v2.AutoAugmentPolicy.CIFAR10),
                       ("autoaugment-imagenet", v2.AutoAugmentPolicy.IMAGENET)]:
        aa = v2.AutoAugment(table)
        subs = aa._policies
        for sub in subs:
            for k, (name, p, idx) in enumerate(sub):
                fn, _ = aa._AUGMENTATION_SPACE[name]
                m = fn(10, side, side)
                value = 0.0 if m is None else abs(float(m[idx]))
                rows.append({"policy": tag, "slot": k, "op": name, "value": value,
                             "p": p / len(subs)})
    ra = v2.RandAugment(num_ops=2, magnitude=magnitude, num_magnitude_bins=bins)
    space = ra._AUGMENTATION_SPACE
    for name, (fn, _) in space.items():
        m = fn(bins, side, side)
        value = 0.0 if m is None else abs(float(m[magnitude]))
        rows.append({"policy": "randaugment", "slot": 0, "op": name, "value": value,
                     "p": 1.0 / len(space)})
    with open(out, "w") as f:
        json.dump(rows, f)


if __name__ == "__main__":
    if sys.argv[1] == "ops":
        ops(sys.argv[2], sys.argv[3])
    else:
        policy(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
