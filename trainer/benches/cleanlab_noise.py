"""Reference timing for the noise benchmark: cleanlab's noise matrix + noisy labels.

Reads {"labels": [...], "k": K, "trace": T, "sparsity": S, "seeds": [...]} on stdin and prints
{"seconds": [...], "flip_rate": [...], "zero_rates": [...]} (one entry per seed).
"""
import json
import sys
import time

import numpy as np
from cleanlab.benchmarking.noise_generation import (
    generate_noise_matrix_from_trace,
    generate_noisy_labels,
)

req = json.load(sys.stdin)
y = np.asarray(req["labels"])
k = req["k"]
out = {"seconds": [], "flip_rate": [], "zero_rates": []}
for seed in req["seeds"]:
    start = time.perf_counter()
    nm = generate_noise_matrix_from_trace(
        k, req["trace"], frac_zero_noise_rates=req["sparsity"], valid_noise_matrix=False, seed=seed
    )
    np.random.seed(seed)
    s = generate_noisy_labels(y, nm)
    out["seconds"].append(time.perf_counter() - start)
    out["flip_rate"].append(float(np.mean(s != y)))
    off_diagonal = ~np.eye(k, dtype=bool)
    out["zero_rates"].append(int(np.sum(nm[off_diagonal] == 0)))
print(json.dumps(out))
