"""Checks a GPU machine end to end with the trainer binary and the PyTorch already installed there
(no network, no Rust): run it through scripts/gpu-check.sh, which sets the library path.

Sections, each a row (or rows) of one results table (gpu-check.md and gpu-check.json in --out):
  cuda        CUDA registered (torch's view, and the trainer's own log line)
  throughput  pretraining images/s of ours against the repo's PyTorch references on the same GPU:
              the DataLoader loop and the best eager step, SimCLR and VICReg, batch 256 and 1024;
              SMs busy over each of our runs (nvidia-smi dmon)
  resume      a run stopped by SIGUSR1 and resumed against one that was not, tensor by tensor
  evaluate    freeze, finetune, and each method (mwn, ssr, rkd, ieg) on the whole network
  ranks       NCCL's own group on one rank (dist-check); two ranks on one GPU (Gloo with CUDA
              tensors): dist-check and pretraining; two NCCL ranks where the machine has two GPUs

--dry-run runs every section on the CPU at toy sizes (CI does, to keep the script working);
its figures mean nothing, its table says which steps ran.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "trainer/benches/pretrain_torch.py"
EXIT_RESTART = 75


class Check:
    """Collects the rows; a failed step becomes a FAIL row, never an aborted check."""

    def __init__(self, out):
        self.out, self.rows = out, []

    def row(self, section, what, status, result, detail=""):
        self.rows.append(dict(section=section, what=what, status=status, result=result,
                              detail=detail))
        print(f"[gpu-check] {section:<10} {what:<44} {status:<4} {result} {detail}", flush=True)

    def run(self, section, what, fn):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - every failure is reported as a row
            said = str(e).strip().splitlines() or [repr(e)]
            self.row(section, what, "FAIL", "", said[-1][:300])

    def write(self):
        lines = ["| section | check | status | result | detail |", "|---|---|---|---|---|"]
        lines += [f"| {r['section']} | {r['what']} | {r['status']} | {r['result']} | {r['detail']} |"
                  for r in self.rows]
        table = "\n".join(lines) + "\n"
        (self.out / "gpu-check.md").write_text(table)
        (self.out / "gpu-check.json").write_text(json.dumps(self.rows, indent=1))
        print(table)
        return all(r["status"] != "FAIL" for r in self.rows)


class Setup:
    """What every section shares: the binary, the device, the sizes and the synthetic data."""

    def __init__(self, args):
        self.trainer, self.dry = str(args.trainer), args.dry_run
        self.out = args.out
        self.device = "cpu" if self.dry else "cuda"
        self.batches = [16] if self.dry else [256, 1024]
        self.warmup, self.steps = (1, 2) if self.dry else (10, 40)
        self.threads = os.cpu_count() or 1
        images = 64 if self.dry else 50_000
        # Keyed by size: a dry run and a real one may share --out.
        self.data = self.out / f"cifar-{images}"
        write_cifar(self.data, images)
        # Small networks where the figure is not the point.
        self.small = ["--arch", "resnet18", "--width", "8", "--mlp", "64-64"]

    def trainer_cmd(self, *args):
        return [self.trainer, *args, "--device", self.device]

    def pretrain(self, exp, *extra, batch=None, epochs=1):
        return self.trainer_cmd(
            "pretrain", "--data-dir", str(self.data), "--exp-dir", str(exp), "--epochs", str(epochs),
            "--batch-size", str(batch or self.batches[0]), "--knn-every", "0",
            "--backend", "gloo" if self.dry else "auto", *extra)


def write_cifar(root, images):
    """CIFAR-10 binary files whose classes differ in mean colour, so probes can learn."""
    folder = root / "cifar-10-batches-bin"
    if (folder / "test_batch.bin").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def records(n):
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        pixels = rng.integers(0, 128, (n, 3 * 32 * 32), dtype=np.uint8)
        pixels += (labels[:, None] * 12).astype(np.uint8)
        return np.concatenate([labels[:, None], pixels], axis=1)

    for i in range(1, 6):
        records(images // 5).tofile(folder / f"data_batch_{i}.bin")
    records(max(images // 5, 32)).tofile(folder / "test_batch.bin")
    (folder / "batches.meta.txt").write_text(
        "\n".join(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]) + "\n")


def run(cmd, timeout=600):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])} exited {p.returncode}: {p.stderr[-600:]}")
    return p


def fresh(exp):
    """A run folder emptied of an earlier check's run (which would otherwise be resumed)."""
    shutil.rmtree(exp, ignore_errors=True)
    return exp


def metrics(exp):
    return [json.loads(line) for line in (Path(exp) / "metrics.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------------------------------- cuda
def check_cuda(check, s):
    import torch

    if s.dry:
        check.row("cuda", "torch.cuda.is_available()", "skip", "dry run on the CPU")
    else:
        ok = torch.cuda.is_available()
        name = torch.cuda.get_device_name(0) if ok else "none"
        check.row("cuda", "torch.cuda.is_available()", "ok" if ok else "FAIL",
                  f"{torch.cuda.device_count()} × {name}", f"torch {torch.__version__}")

    def trainer_log():
        exp = fresh(s.out / "cuda")
        p = run(s.pretrain(exp, *s.small, "--max-steps", "1"))
        want = "on Cpu" if s.dry else "on Cuda(0), bf16 autocast, channels-last"
        line = next((l for l in p.stderr.splitlines() if "parameters) on" in l), "")
        check.row("cuda", "trainer pretrain runs on the device", "ok" if want in line else "FAIL",
                  line.split("parameters) ")[-1].strip(), "")

    check.run("cuda", "trainer pretrain runs on the device", trainer_log)


# ---------------------------------------------------------------------------------- throughput
class SmMonitor:
    """nvidia-smi dmon's SM-busy column, sampled every second while a run lasts."""

    def __init__(self, active):
        self.proc = None
        if active:
            self.proc = subprocess.Popen(["nvidia-smi", "dmon", "-s", "u", "-d", "1"],
                                         stdout=subprocess.PIPE, text=True)

    def stop(self):
        if self.proc is None:
            return "n/a"
        self.proc.terminate()
        out, _ = self.proc.communicate()
        sm = [int(parts[1]) for parts in (l.split() for l in out.splitlines())
              if len(parts) > 1 and not parts[0].startswith("#") and parts[1].isdigit()]
        if not sm:
            return "n/a"
        return f"{statistics.median(sm):.0f}% (max {max(sm)}%)"


def ours_images_per_s(s, method, batch):
    exp = fresh(s.out / f"throughput-{method}-{batch}")
    steps = s.warmup + s.steps
    log_every = 1 if s.dry else 10
    monitor = SmMonitor(not s.dry)
    try:
        run(s.pretrain(exp, "--method", method, "--arch", "resnet18", "--mlp", "1024-1024-1024",
                       "--optimizer", "lars", "--max-steps", str(steps), "--log-every",
                       str(log_every), batch=batch))
    finally:
        busy = monitor.stop()
    timed = [m["images_per_s"] for m in metrics(exp) if m.get("step", 0) > s.warmup
             and "images_per_s" in m]
    if not timed:
        raise RuntimeError(f"{exp}/metrics.jsonl has no timed steps")
    return statistics.median(timed), busy


def reference_images_per_s(s, method, batch, mode):
    p = run([sys.executable, str(REFERENCE), "--mode", mode, "--data-dir", str(s.data),
             "--warmup", str(s.warmup), "--steps", str(s.steps), "--device", s.device,
             "--batch", str(batch), "--method", method, "--threads",
             str(min(s.threads, 2) if s.dry else s.threads)])
    return json.loads(p.stdout.strip().splitlines()[-1])["images_per_s"]


def check_throughput(check, s):
    for method in ("vicreg", "simclr"):
        for batch in s.batches:
            what = f"{method} batch {batch}"

            def measure(method=method, batch=batch, what=what):
                ours, busy = ours_images_per_s(s, method, batch)
                loop = reference_images_per_s(s, method, batch, "e2e")
                step = reference_images_per_s(s, method, batch, "step")
                check.row("throughput", what, "ok",
                          f"{ours:,.0f} img/s: {ours / loop:.2f}× loop, {ours / step:.2f}× eager",
                          f"loop {loop:,.0f}, eager step {step:,.0f}; SMs busy {busy}")

            check.run("throughput", what, measure)


# -------------------------------------------------------------------------------------- resume
def read_safetensors(path):
    """name → (dtype, shape, bytes) without the safetensors package."""
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    return {k: (v["dtype"], v["shape"], body[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in header.items() if k != "__metadata__"}


def newest_checkpoint(exp):
    return max((Path(exp) / "checkpoints").glob("ckpt-*.safetensors"))


def check_resume(check, s):
    def resume():
        # Dry run: 4 epochs of 4 steps, so the signal lands with steps to spare.
        steps, epochs = (16, 4) if s.dry else (60, 1)
        # --deterministic: cuDNN's benchmark mode may pick other algorithms after a restart.
        args = [*s.small, "--method", "vicreg", "--max-steps", str(steps), "--log-every", "1",
                "--seed", "3", "--deterministic"]
        straight, stopped = fresh(s.out / "resume-straight"), fresh(s.out / "resume-stopped")
        run(s.pretrain(straight, *args, epochs=epochs))
        at = steps // 4
        proc = subprocess.Popen(s.pretrain(stopped, *args, epochs=epochs),
                                stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if (stopped / "metrics.jsonl").exists() and any(
                    m["step"] >= at for m in metrics(stopped)):
                proc.send_signal(signal.SIGUSR1)
                break
            time.sleep(0.005)
        code = proc.wait(timeout=300)
        if code != EXIT_RESTART:
            raise RuntimeError(f"the signalled run exited {code}, not {EXIT_RESTART}")
        stopped_at = json.loads((stopped / "stop.json").read_text())["step"]
        run(s.pretrain(stopped, *args, epochs=epochs))
        a, b = read_safetensors(newest_checkpoint(straight)), read_safetensors(
            newest_checkpoint(stopped))
        differ = sorted(k for k in a if a[k] != b.get(k))
        missing = sorted(set(a) ^ set(b))
        status = "ok" if not differ and not missing else "FAIL"
        check.row("resume", f"SIGUSR1 at step {stopped_at} of {steps}, resumed", status,
                  f"{len(a) - len(differ)} of {len(a)} tensors identical",
                  ", ".join(differ[:5] + missing[:5]))

    check.run("resume", "SIGUSR1, resumed, tensor by tensor", resume)


# ------------------------------------------------------------------------------------ evaluate
def small_backbone(s):
    """The resume section's export, or a fresh few-step one when that section did not run."""
    backbone = s.out / "resume-straight" / "backbone.safetensors"
    if not backbone.exists():
        exp = fresh(s.out / "backbone")
        run(s.pretrain(exp, *s.small, "--max-steps", "4"))
        backbone = exp / "backbone.safetensors"
    return backbone


def check_evaluate(check, s):
    backbone = small_backbone(s)
    samples = "64" if s.dry else "5000"
    base = ["--data-dir", str(s.data), "--kind", "symmetric", "--noise", "0.4", "--epochs", "1",
            "--train-samples", samples, "--test-samples", samples, "--batch-size", "32",
            "--stopping", "0", "--backend", "gloo" if s.dry else "auto"]
    whole = ["--weights", "finetune", "--head", "linear", "--geometry", "crop"]
    runs = {
        "freeze": ["--backbone", str(backbone), "--weights", "freeze"],
        "finetune": ["--backbone", str(backbone), *whole],
        "mwn": ["--backbone", str(backbone), *whole, "--method", "mwn", "--holdout-trusted", "20",
                "--meta-batch", "10"],
        "ssr": ["--backbone", str(backbone), *whole, "--method", "ssr", "--ssr-k", "5"],
        "rkd": ["--backbone", str(backbone), *whole, "--method", "rkd"],
        "ieg": ["--backbone", str(backbone), *whole, "--method", "ieg", "--holdout-trusted", "20"],
    }
    for name, flags in runs.items():
        def evaluate(name=name, flags=flags):
            exp = fresh(s.out / f"evaluate-{name}")
            started = time.time()
            run(s.trainer_cmd("train", *base, *flags, "--exp-dir", str(exp)))
            acc = json.loads((exp / "results.json").read_text())["metrics"]["acc1"]
            check.row("evaluate", name, "ok", f"test top-1 {acc:.3f}",
                      f"{time.time() - started:.0f} s")

        check.run("evaluate", name, evaluate)


# --------------------------------------------------------------------------------------- ranks
def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def on_ranks(cmd, world, timeout=300):
    port = free_port()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "RANK": str(r), "LOCAL_RANK": str(r),
                                   "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1",
                                   "MASTER_PORT": str(port)})
             for r in range(world)]
    outs = [p.communicate(timeout=timeout) for p in procs]
    for r, (p, (_, err)) in enumerate(zip(procs, outs)):
        if p.returncode != 0:
            raise RuntimeError(f"rank {r} exited {p.returncode}: {err[-600:]}")
    return outs


def check_ranks(check, s):
    import torch

    gpus = 0 if s.dry else torch.cuda.device_count()
    if gpus >= 1:
        # A lone dist-check still builds the NCCL group: the one NCCL check one GPU allows.
        def lone_nccl():
            outs = on_ranks(s.trainer_cmd("dist-check", "--backend", "nccl", "--rounds", "3"), 1)
            check.row("ranks", "nccl dist-check: one rank", "ok", outs[0][0].strip().splitlines()[-1])

        check.run("ranks", "nccl dist-check: one rank", lone_nccl)
    backends = [("gloo", "two ranks, one device")]
    if gpus >= 2:
        backends.append(("nccl", "two ranks, two GPUs"))
    else:
        check.row("ranks", "nccl: two ranks, two GPUs", "skip", f"{gpus} GPU(s) here")
    for backend, what in backends:
        def dist_check(backend=backend, what=what):
            outs = on_ranks(s.trainer_cmd("dist-check", "--backend", backend, "--rounds", "3"), 2)
            said = [o.strip().splitlines()[-1] for o, _ in outs]
            check.row("ranks", f"{backend} dist-check: {what}", "ok", said[0])

        def pretrain(backend=backend, what=what):
            exp = fresh(s.out / f"ranks-{backend}")
            cmd = s.pretrain(exp, *s.small, "--max-steps", "4", "--log-every", "1")
            cmd[cmd.index("--backend") + 1] = backend
            on_ranks(cmd, 2)
            losses = [m["loss"] for m in metrics(exp)]
            check.row("ranks", f"{backend} pretrain: {what}", "ok",
                      f"4 steps, loss {losses[0]:.3f} → {losses[-1]:.3f}")

        check.run("ranks", f"{backend} dist-check: {what}", dist_check)
        check.run("ranks", f"{backend} pretrain: {what}", pretrain)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trainer", type=Path, required=True, help="the trainer binary")
    p.add_argument("--out", type=Path, help="results folder (default: a new temporary one)")
    p.add_argument("--dry-run", action="store_true", help="every section on the CPU, toy sizes")
    p.add_argument("--only", nargs="*", help="sections to run (default: all)")
    args = p.parse_args()
    args.out = args.out or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    check = Check(args.out)
    s = Setup(args)
    sections = dict(cuda=check_cuda, throughput=check_throughput, resume=check_resume,
                    evaluate=check_evaluate, ranks=check_ranks)
    for name, section in sections.items():
        if not args.only or name in args.only:
            section(check, s)
    ok = check.write()
    print(f"[gpu-check] {'all checks passed' if ok else 'some checks FAILED'} in "
          f"{time.time() - started:.0f} s; table in {args.out / 'gpu-check.md'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
