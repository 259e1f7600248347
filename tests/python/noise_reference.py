"""Re-implementations of the seed papers' label-noise code in numpy, for the statistical
comparisons of trainer/tests/noise_variants.rs (numpy's draws are not ours, so the tests compare
statistics, not labels).

Reads one JSON object on stdin: {"variant", "labels", "k", "noise", "seed"[, "pixels", "d"]};
writes {"labels": [...]} (the noisy labels) on stdout.

- elr_cifar100_asym: ELR's data_loader/cifar100.py asymmetric_noise: P built block by block with
  build_for_cifar100(5, noise) (i -> i+1 within the block, 4 -> 0), then multiclass_noisify: one
  multinomial draw per sample from row P[y] (per-sample Bernoulli, not exact counts).
- ieg_uniform: IEG's load_train_val_uniform_noise: mask = rand(n) <= noise, masked labels replaced
  by np.random.choice(n_classes) (uniform over all classes, possibly the true one).
- cheng_instance: Cheng et al. 2023 (after Xia et al. 2020) with one shared W of shape d x K:
  q_i ~ N(noise, 0.1^2) truncated to [0, 1] by rejection, x_i in [0, 1], A = x_i W, A[y] = -inf,
  A = q_i softmax(A), A[y] += 1 - q_i, label ~ Categorical(A).
"""

import json
import sys

import numpy as np


def build_for_cifar100(size, noise):
    p = (1.0 - noise) * np.eye(size)
    for i in range(size - 1):
        p[i, i + 1] = noise
    p[size - 1, 0] = noise
    return p


def elr_cifar100_asym(y, k, noise, seed):
    p = np.eye(k)
    for b in range(k // 5):
        p[b * 5:(b + 1) * 5, b * 5:(b + 1) * 5] = build_for_cifar100(5, noise)
    flipper = np.random.RandomState(seed)
    out = y.copy()
    for i, c in enumerate(y):
        out[i] = np.argmax(flipper.multinomial(1, p[c, :], 1)[0])
    return out


def ieg_uniform(y, k, noise, seed):
    np.random.seed(seed)
    out = y.copy()
    mask = np.random.rand(len(y)) <= noise
    out[mask] = np.random.choice(k, mask.sum())
    return out


def truncated_rates(n, mean, rng):
    rates = np.empty(n)
    for i in range(n):
        while True:
            q = rng.normal(mean, 0.1)
            if 0.0 <= q <= 1.0:
                rates[i] = q
                break
    return rates


def cheng_instance(y, k, noise, seed, x):
    rng = np.random.RandomState(seed)
    q = truncated_rates(len(y), noise, rng)
    w = rng.randn(x.shape[1], k)
    out = y.copy()
    for i, c in enumerate(y):
        a = x[i] @ w
        a[c] = -np.inf
        a = np.exp(a - a.max())
        a = q[i] * a / a.sum()
        a[c] += 1.0 - q[i]
        out[i] = rng.choice(k, p=a / a.sum())
    return out


def main():
    req = json.load(sys.stdin)
    y = np.array(req["labels"], dtype=np.int64)
    k, noise, seed = req["k"], req["noise"], req["seed"]
    variant = req["variant"]
    if variant == "elr_cifar100_asym":
        out = elr_cifar100_asym(y, k, noise, seed)
    elif variant == "ieg_uniform":
        out = ieg_uniform(y, k, noise, seed)
    elif variant == "cheng_instance":
        x = np.array(req["pixels"], dtype=np.float64).reshape(len(y), req["d"]) / 255.0
        out = cheng_instance(y, k, noise, seed, x)
    else:
        raise SystemExit(f"unknown variant {variant}")
    json.dump({"labels": out.tolist()}, sys.stdout)


if __name__ == "__main__":
    main()
