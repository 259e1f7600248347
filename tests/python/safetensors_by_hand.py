"""A safetensors reader written from the format's description (8-byte little-endian header
length, JSON header, raw little-endian data), independent of the Rust writer and of the
`safetensors` package, for tests that check what the trainer wrote."""
import json
import struct

import numpy as np

DTYPES = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "I32": "<i4", "U8": "u1", "BOOL": "?"}


def load(path):
    """(metadata, header without metadata, data bytes)."""
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    assert max(i["data_offsets"][1] for i in header.values()) == len(data)
    return meta, header, data


def array(info, data):
    s, e = info["data_offsets"]
    return np.frombuffer(data[s:e], dtype=np.dtype(DTYPES[info["dtype"]])).reshape(info["shape"])


def state_dict(path):
    """Every tensor of the file as a torch tensor, and the metadata."""
    import torch

    meta, header, data = load(path)
    tensors = {name: torch.from_numpy(array(info, data).copy()) for name, info in header.items()}
    return tensors, meta
