#!/usr/bin/env python3
"""PyTorch side of `sskd bench ops`: times the same ops at the same shapes, forward and backward.

    sskd bench ops --spec > spec.json
    python3 scripts/reference/bench_ops.py --spec spec.json --threads 1 [--budget 0.3]

Prints a JSON list of {op, name, shape, forward_ms, backward_ms (minimum over the repetitions),
forward_median_ms, backward_median_ms}, in spec order. Backward calls the op's own node,
y.grad_fn(dy), exactly like the Swift side (Node.apply): no accumulation into .grad.

With --serve it reads case indices (into the spec), one per line on stdin, and answers each with
one JSON line (or {"error": ...}), like `sskd bench ops --serve`; scripts/bench_ops.sh drives both.
"""
import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F
import torchvision.ops


def label(c):
    s = "x".join(map(str, c["input"]))
    if c["op"] == "conv2d":
        w = c["weight"]
        s += f" {c['input'][1]}->{w[0]} k{w[2]} s{c.get('stride') or 1}" + (f" g{c['groups']}" if (c.get("groups") or 1) > 1 else "")
    if c["op"] == "linear":
        s += f" ->{c['weight'][0]}"
    if c.get("kernel") is not None:
        s += f" k{c['kernel']} s{c.get('stride') or c['kernel']}"
    if c.get("output") is not None:
        s += f" ->{c['output']}"
    return s


def make(c):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(*c["input"], generator=g).requires_grad_()
    op = c["op"]
    if op == "conv2d":
        w = (torch.randn(*c["weight"], generator=g) * 0.1).requires_grad_()
        b = torch.randn(c["weight"][0], generator=g).requires_grad_() if c.get("bias") else None
        ins = [x, w] + ([b] if b is not None else [])
        return ins, lambda: F.conv2d(x, w, b, stride=c.get("stride") or 1, padding=c.get("padding") or 0, groups=c.get("groups") or 1)
    if op == "batch_norm":
        ch = c["input"][1]
        w, b = torch.ones(ch, requires_grad=True), torch.zeros(ch, requires_grad=True)
        rm, rv = torch.zeros(ch), torch.ones(ch)
        return [x, w, b], lambda: F.batch_norm(x, rm, rv, w, b, training=True)
    if op == "relu6":
        return [x], lambda: F.relu6(x)
    if op == "silu":
        return [x], lambda: F.silu(x)
    if op == "sigmoid":
        return [x], lambda: torch.sigmoid(x)
    if op == "max_pool2d":
        return [x], lambda: F.max_pool2d(x, c["kernel"], c["stride"], c["padding"])
    if op == "avg_pool2d":
        return [x], lambda: F.avg_pool2d(x, c["kernel"], c["stride"], c["padding"])
    if op == "adaptive_avg_pool2d":
        return [x], lambda: F.adaptive_avg_pool2d(x, c["output"])
    if op == "linear":
        w = (torch.randn(*c["weight"], generator=g) * 0.05).requires_grad_()
        b = torch.zeros(c["weight"][0], requires_grad=True)
        return [x, w, b], lambda: F.linear(x, w, b)
    if op == "dropout":
        return [x], lambda: F.dropout(x, c["p"], training=True)
    if op == "stochastic_depth":
        return [x], lambda: torchvision.ops.stochastic_depth(x, c["p"], "row", training=True)
    raise ValueError(op)


CLOCK = time.perf_counter


def time_ms(fn, budget, min_reps=5, max_reps=200):
    """(min, median) milliseconds after two warm-up runs."""
    fn(); fn()
    times = []
    start = CLOCK()
    while len(times) < min_reps or (len(times) < max_reps and CLOCK() - start < budget):
        t0 = CLOCK()
        fn()
        times.append((CLOCK() - t0) * 1000)
    times.sort()
    return times[0], times[len(times) // 2]


def measure(c, budget):
    ins, fwd = make(c)
    f = time_ms(fwd, budget)
    y = fwd()
    dy = torch.randn(y.shape)
    node = y.grad_fn
    with torch.no_grad():
        b = time_ms(lambda: node(dy), budget)
    return {"op": c["op"], "name": c["name"], "shape": label(c), "forward_ms": f[0], "backward_ms": b[0],
            "forward_median_ms": f[1], "backward_median_ms": b[1]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--budget", type=float, default=0.3)
    ap.add_argument("--clock", choices=["cpu", "wall"], help="cpu (process CPU time, default with 1 thread) or wall")
    ap.add_argument("--serve", action="store_true", help="answer case indices read from stdin, one JSON line each")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if (args.clock or ("cpu" if args.threads == 1 else "wall")) == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cases = json.load(open(args.spec))
    if args.serve:
        for line in sys.stdin:
            text = line.strip()
            if not text:
                continue
            try:
                i = int(text)
                if not 0 <= i < len(cases):
                    raise IndexError(f"expected a case index in 0..<{len(cases)}")
                reply = measure(cases[i], args.budget)
            except Exception as e:  # a bad request is answered, the server keeps serving
                reply = {"error": f"case {text!r}: {type(e).__name__}: {e}"}
            print(json.dumps(reply), flush=True)
        return
    print(json.dumps([measure(c, args.budget) for c in cases]))


if __name__ == "__main__":
    main()
