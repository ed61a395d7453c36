#!/usr/bin/env python3
"""Drives `sskd bench ops --serve` and `bench_ops.py --serve` side by side and prints the ratio table.

    python3 scripts/reference/compare_ops.py --bin .build/release/sskd --spec spec.json --threads 2 \
        [--rounds 3] [--budget 0.3] [--filter TEXT]

Both servers stay up for the whole run. Each round asks both sides for every op in turn, so the two
timings of an op are taken seconds apart, with the side that goes first alternating from op to op
and round to round. On this shared VM the cache and memory bandwidth an op gets drift over minutes;
timing all ops on one side and then all on the other (the old process-per-round scheme) let that
drift land on one side only.

Two figures per op direction:
- best: each side's minimum over the rounds, and their ratio (what a quiet machine would show);
- paired: the ratio within each round (two timings seconds apart, under the same neighbours),
  its median over the rounds, and in how many rounds sskd was at least as fast. A memory-bound op
  whose best times drift 2x with the neighbours' cache use can lose the best-of comparison to one
  lucky quiet moment of the other side; the paired median says which side wins most of the time.
An op counts as slower than PyTorch when its paired median is below 1; ops below 1 by best-of only
are listed too.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time


class Server:
    def __init__(self, name, argv, env):
        self.name = name
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True, bufsize=1)
        except OSError as e:
            sys.exit(f"compare_ops: cannot start the {name} server ({argv[0]}): {e}")

    def ask(self, index):
        self.proc.stdin.write(f"{index}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            sys.exit(f"compare_ops: the {self.name} server exited (code {self.proc.wait()}) while timing case {index}")
        reply = json.loads(line)
        if "error" in reply:
            sys.exit(f"compare_ops: {self.name} failed on case {index}: {reply['error']}")
        return reply

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="the sskd binary (release build)")
    ap.add_argument("--spec", required=True, help="case list from `sskd bench ops --spec` (same --filter)")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--budget", type=float, default=0.3)
    ap.add_argument("--filter", help="the --filter the spec was made with")
    args = ap.parse_args()
    cases = json.load(open(args.spec))
    if not cases:
        sys.exit("compare_ops: the spec has no cases (filter matched nothing?)")
    env = dict(os.environ, SSKD_THREADS=str(args.threads))
    filt = ["--filter", args.filter] if args.filter else []
    # Case i must mean the same op on both sides.
    try:
        ours = json.loads(subprocess.run([args.bin, "bench", "ops", "--spec"] + filt, capture_output=True, text=True, check=True).stdout)
    except (OSError, subprocess.CalledProcessError, json.JSONDecodeError) as e:
        sys.exit(f"compare_ops: cannot read the case list from {args.bin}: {e}")
    if ours != cases:
        sys.exit(f"compare_ops: {args.spec} is not the case list of `sskd bench ops --spec{' --filter ' + args.filter if args.filter else ''}` "
                 f"({len(cases)} against {len(ours)} cases); make both with the same --filter")
    # PyTorch gets the malloc policy `sskd bench ops` sets for itself (Allocator.tuneForImages):
    # buffers up to 32 MiB come from the heap and freed memory stays there. With glibc's dynamic
    # default, a fresh PyTorch process maps and unmaps every large buffer (page faults on each
    # call) until it has freed a large block: a 32x240x12x12 5x5 depthwise forward took 11.7 ms
    # cold and 2.6 ms after one stem convolution had run, so which ops ran first decided its times.
    torch_env = dict(env, MALLOC_MMAP_THRESHOLD_=str(32 << 20), MALLOC_TRIM_THRESHOLD_=str(256 << 20))
    here = os.path.dirname(os.path.abspath(__file__))
    sides = {
        "sskd": Server("sskd", [args.bin, "bench", "ops", "--serve", "--threads", str(args.threads), "--budget", str(args.budget)] + filt, env),
        "torch": Server("torch", [sys.executable, os.path.join(here, "bench_ops.py"), "--serve", "--spec", args.spec,
                                  "--threads", str(args.threads), "--budget", str(args.budget)], torch_env),
    }
    # runs[side][i]: that side's result for case i in each round.
    runs = {side: [[] for _ in cases] for side in sides}
    for r in range(args.rounds):
        print(f"compare_ops: threads {args.threads}, round {r + 1} of {args.rounds}", file=sys.stderr)
        for i in range(len(cases)):
            order = ["sskd", "torch"] if (r + i) % 2 == 0 else ["torch", "sskd"]
            for side in order:
                # Let the other side's worker threads stop spinning (OpenMP, our pool) first.
                time.sleep(0.02)
                runs[side][i].append(sides[side].ask(i))
    for s in sides.values():
        s.close()

    print(f"\n### threads {args.threads} ({args.rounds} interleaved rounds)\n")
    print("| op | shape | dir | sskd ms | torch ms | ratio | paired median | sskd won |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    logs, paired_logs, slower, slower_best = [], [], [], []
    tot = {side: 0.0 for side in sides}
    for ours, theirs in zip(runs["sskd"], runs["torch"]):
        a, b = ours[0], theirs[0]
        if a["shape"] != b["shape"]:
            sys.exit(f"compare_ops: the sides disagree on the case list: {a['shape']} vs {b['shape']}")
        for d in ("forward", "backward"):
            key = d + "_ms"
            x, y = min(r[key] for r in ours), min(r[key] for r in theirs)
            tot["sskd"] += x
            tot["torch"] += y
            ratio = y / x if x > 0 else float("inf")
            paired = sorted(t[key] / o[key] if o[key] > 0 else float("inf") for o, t in zip(ours, theirs))
            median = paired[len(paired) // 2] if len(paired) % 2 else math.sqrt(paired[len(paired) // 2 - 1] * paired[len(paired) // 2])
            won = sum(p >= 1 for p in paired)
            logs.append(math.log(ratio))
            paired_logs.append(math.log(median))
            label = f"{a['op']} {a['shape']} {d}"
            if median < 1:
                slower.append(f"{label}: paired median {median:.2f} (won {won} of {len(paired)}), best-of {ratio:.2f} ({x:.3f} vs {y:.3f} ms)")
            elif ratio < 1:
                slower_best.append(f"{label}: best-of {ratio:.2f} ({x:.3f} vs {y:.3f} ms), paired median {median:.2f} (won {won} of {len(paired)})")
            print(f"| {a['op']} | {a['shape']} | {d[:3]} | {x:.3f} | {y:.3f} | {ratio:.2f} | {median:.2f} | {won}/{len(paired)} |")
    geo = lambda v: math.exp(sum(v) / len(v))
    print(f"\ntotal sskd {tot['sskd']:.1f} ms, torch {tot['torch']:.1f} ms (best of rounds), ratio {tot['torch'] / tot['sskd']:.2f}; "
          f"geometric mean ratio {geo(logs):.2f} best-of, {geo(paired_logs):.2f} paired")
    print(f"slower than torch (paired median < 1): {len(slower)} of {len(logs)}")
    for s in slower:
        print("  slower:", s)
    print(f"slower by best-of only: {len(slower_best)} of {len(logs)}")
    for s in slower_best:
        print("  best-of only:", s)

if __name__ == "__main__":
    main()
