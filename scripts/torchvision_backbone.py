#!/usr/bin/env python3
"""A torchvision ResNet's weights as a backbone `trainer evaluate/train --backbone` starts from.

The real-world presets start, as their papers do, from torchvision's ImageNet-pretrained
ResNet-50 (`models.resnet50(pretrained=True)` in DivideMix, ELR and SSR). This writes its
weights, the classifier `fc` left out, as OUT/backbone.safetensors with the card
OUT/backbone.json (arch, ImageNet stem, width 64, ImageNet normalization), the export format
`trainer pretrain` writes:

    python scripts/torchvision_backbone.py --arch resnet50 --weights IMAGENET1K_V1 --out runs/imagenet_r50
    python scripts/torchvision_backbone.py --arch resnet50 --checkpoint resnet50-0676ba61.pth --out DIR

`--weights` names torchvision's weights (downloaded once into $TORCH_HOME, or read from there on a
node without network); `--checkpoint` reads a saved state_dict. Both files are written atomically.
"""

import argparse
import json
import os
import struct
import sys
import tempfile

import torch
import torchvision

ARCHS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048}
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64", torch.float16: "F16"}


def state_dict(args):
    """The network's weights without its classifier, checked against the architecture."""
    model = getattr(torchvision.models, args.arch)(weights=args.weights)
    if args.checkpoint:
        loaded = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        loaded = loaded.get("state_dict", loaded)
        try:  # strict: the names and shapes of the architecture
            model.load_state_dict(loaded)
        except RuntimeError as e:
            sys.exit(f"{args.checkpoint} is not a {args.arch} state_dict: {e}")
    return {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}


def safetensors_bytes(tensors):
    """The safetensors layout: header length (u64 LE), JSON header, the tensors' bytes."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        if t.dtype not in DTYPES:
            sys.exit(f"{name}: dtype {t.dtype} has no safetensors name here")
        blob = t.numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def write_atomically(path, data):
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", choices=sorted(ARCHS), required=True)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--weights", help="torchvision's weights, e.g. IMAGENET1K_V1")
    source.add_argument("--checkpoint", help="a saved state_dict of the architecture")
    p.add_argument("--out", required=True, help="folder for backbone.safetensors and .json")
    args = p.parse_args()
    tensors = state_dict(args)
    os.makedirs(args.out, exist_ok=True)
    card = {
        "format": "torchvision-resnet-state-dict",
        "arch": args.arch,
        "stem": "imagenet",
        "width": 64,
        "embedding_dim": ARCHS[args.arch],
        "classifier_prefix": "fc",
        "normalization": IMAGENET,
        "source": args.weights or os.path.abspath(args.checkpoint),
    }
    write_atomically(os.path.join(args.out, "backbone.safetensors"), safetensors_bytes(tensors))
    write_atomically(os.path.join(args.out, "backbone.json"),
                     (json.dumps(card, indent=2) + "\n").encode())
    print(f"{args.arch}: {len(tensors)} tensors written to {args.out}/backbone.safetensors")


if __name__ == "__main__":
    main()
