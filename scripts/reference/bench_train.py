#!/usr/bin/env python3
"""PyTorch CPU training and inference throughput: the reference side of `sskd bench train`.

At 96x96 RGB, 10 classes, batch 32 (the paper's setting), it times:

  student_train    EfficientNet-B0 train step: forward, cross-entropy, backward, Adam step
  teacher_train    MobileNetV2 train step, same
  kd_step          teacher eval-mode forward without grad + student train step with the KD blend
                   loss = 0.5 * KL(softmax(t/3) || log_softmax(s/3)) * 9 + 0.5 * CE
  student_eval32   EfficientNet-B0 eval-mode forward, no grad, batch 32
  student_eval256  same, batch 256
  teacher_eval32   MobileNetV2 eval-mode forward, no grad, batch 32
  teacher_eval256  same, batch 256

Models are torchvision's (classifier Linear(1280 -> 10), random init); dropout and stochastic
depth at torchvision defaults, active in train mode. Adam with lr 1e-3 (student) and 5e-4
(teacher). Inputs are fixed uniform [0, 1) tensors with random labels; data loading and
augmentation are not part of the step.

Each (case, thread count) runs in a fresh subprocess (`--case NAME`) so its peak resident memory
(getrusage ru_maxrss) is that case's alone; the driver collects one JSON line from each and
prints a table. Images/s = batch * timed iterations / their total wall time, after warm-up.

  python3 scripts/reference/bench_train.py --threads 1 2 --warmup 3 --iters 20 --json bench.json
  python3 scripts/reference/bench_train.py --case kd_step --threads 1 --iters 5   # one case
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (sibling helper module)

CASES = {
    # name: (model, kind, batch or None for --batch)
    "student_train": ("student", "train", None),
    "teacher_train": ("teacher", "train", None),
    "kd_step": ("student", "kd", None),
    "student_eval32": ("student", "eval", 32),
    "student_eval256": ("student", "eval", 256),
    "teacher_eval32": ("teacher", "eval", 32),
    "teacher_eval256": ("teacher", "eval", 256),
}
KD_ALPHA = 0.5
KD_TEMPERATURE = 3.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="PyTorch CPU throughput of the SS-KD train, KD and eval steps.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--cases", default=",".join(CASES),
                   help="comma list of cases to run (driver mode)")
    p.add_argument("--case", choices=list(CASES), default=None,
                   help="run exactly this case in this process and print one JSON line "
                        "(what the driver spawns; also usable by hand)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                   help="thread counts (torch.set_num_threads); with --case, exactly one")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations first")
    p.add_argument("--iters", type=int, default=10, help="timed iterations")
    p.add_argument("--batch", type=int, default=32, help="batch of the train and KD steps")
    p.add_argument("--size", type=int, default=96, help="input side (3 x size x size)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write all results as JSON here ('-' = stdout)")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    a = p.parse_args(argv)
    if a.warmup < 0 or a.iters <= 0 or a.batch <= 0 or a.size <= 0:
        p.error("--warmup must be >= 0; --iters, --batch and --size must be positive")
    if any(t <= 0 for t in a.threads):
        p.error("--threads values must be positive")
    if a.case is not None and len(a.threads) != 1:
        p.error("--case runs one thread count: give exactly one --threads value")
    a.cases = [c.strip() for c in a.cases.split(",") if c.strip()]
    unknown = [c for c in a.cases if c not in CASES]
    if unknown:
        p.error(f"--cases: unknown {unknown}; choose from {', '.join(CASES)}")
    return a


# ----------------------------------------------------------------------------------------------
# One case, in this process


def run_case(name: str, threads: int, warmup: int, iters: int, batch: int, size: int,
             seed: int) -> dict:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(seed)
    rss_after_import = common.current_rss_mb()

    model_name, kind, fixed_batch = CASES[name]
    n = fixed_batch or batch
    if model_name == "student":
        model = common.student_efficientnet_b0()
        lr = 1e-3
    else:
        model = common.teacher_mobilenet_v2()
        lr = 5e-4
    x = torch.rand(n, 3, size, size)
    y = torch.randint(0, common.NUM_CLASSES, (n,))

    if kind == "eval":
        model.eval()

        def step():
            with torch.no_grad():
                model(x)
    else:
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        teacher = None
        if kind == "kd":
            teacher = common.teacher_mobilenet_v2().eval()

        def step():
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            if teacher is not None:
                with torch.no_grad():
                    t_logits = teacher(x)
                kd = common.kd_loss(logits, t_logits, KD_TEMPERATURE)
                loss = KD_ALPHA * kd + (1.0 - KD_ALPHA) * loss
            opt.zero_grad()
            loss.backward()
            opt.step()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    total = sum(times)
    return {
        "case": name, "model": model_name, "kind": kind, "threads": threads, "batch": n,
        "size": size, "warmup": warmup, "iters": iters,
        "images_per_s": n * iters / total,
        "ms_per_iter_mean": 1000.0 * total / iters,
        "ms_per_iter_median": 1000.0 * statistics.median(times),
        "ms_per_iter_min": 1000.0 * min(times),
        "peak_rss_mb": common.peak_rss_mb(),
        "rss_after_import_mb": rss_after_import,
        "torch": torch.__version__,
    }


# ----------------------------------------------------------------------------------------------
# Driver: one fresh subprocess per (case, threads)


def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", "r") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "loadavg_at_start": load,
            "python": platform.python_version()}


def spawn(a, name: str, threads: int) -> dict:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env["MKL_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, os.path.abspath(__file__), "--case", name, "--threads", str(threads),
           "--warmup", str(a.warmup), "--iters", str(a.iters), "--batch", str(a.batch),
           "--size", str(a.size), "--seed", str(a.seed)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"case {name} at {threads} thread(s) failed (exit "
                           f"{proc.returncode}): " + " | ".join(tail))
    return json.loads(lines[-1])


def table(results) -> str:
    rows = ["| case | threads | batch | images/s | ms/iter (median) | peak RSS (MiB) |",
            "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        rows.append(f"| {r['case']} | {r['threads']} | {r['batch']} | {r['images_per_s']:.1f} "
                    f"| {r['ms_per_iter_median']:.1f} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(rows)


def main(argv=None):
    a = parse_args(argv)
    if a.list:
        for name, (model, kind, b) in CASES.items():
            print(f"{name:16s} {model:8s} {kind:5s} batch {b or a.batch}")
        return 0
    if a.case is not None:
        print(json.dumps(run_case(a.case, a.threads[0], a.warmup, a.iters, a.batch, a.size,
                                  a.seed)), flush=True)
        return 0

    # With --json - the JSON document owns stdout; the human lines go to stderr.
    out = sys.stderr if a.json == "-" else sys.stdout
    info = machine_info()
    results = []
    for threads in a.threads:
        for name in a.cases:
            r = spawn(a, name, threads)
            results.append(r)
            print(f"{name:16s} {threads} thread(s)  batch {r['batch']:3d}  "
                  f"{r['images_per_s']:8.1f} images/s  {r['ms_per_iter_median']:8.1f} ms/iter  "
                  f"peak RSS {r['peak_rss_mb']:.0f} MiB", file=out, flush=True)
    torch_version = results[0]["torch"] if results else None
    print(file=out)
    print(f"PyTorch {torch_version} CPU, {a.size}x{a.size} RGB, 10 classes, warm-up {a.warmup}, "
          f"timed {a.iters}; {info['cpu']} ({info['logical_cpus']} logical CPUs, load "
          f"{info['loadavg_at_start']})", file=out)
    print(table(results), file=out)
    if a.json:
        doc = {"tool": "bench_train.py", "torch": torch_version, "machine": info,
               "settings": {"batch": a.batch, "size": a.size, "warmup": a.warmup,
                            "iters": a.iters, "seed": a.seed, "kd_alpha": KD_ALPHA,
                            "kd_temperature": KD_TEMPERATURE},
               "results": results}
        text = json.dumps(doc, indent=2) + "\n"
        if a.json == "-":
            sys.stdout.write(text)
        else:
            with open(a.json, "w", encoding="utf-8") as f:
                f.write(text)
            print(f"wrote {a.json}", file=out)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
