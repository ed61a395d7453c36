#!/usr/bin/env python3
"""onnxruntime's eval throughput on an exported model: img/s at a batch size and thread count.

Usage: bench_onnx.py MODEL.onnx --batch 32 --threads 1 [--seconds 10] [--warmup 3]
Prints one JSON line: {"model", "batch", "threads", "runs", "img_per_s"}. Random input (seed 0).
"""
import argparse, json, time

import numpy as np
import onnxruntime as ort

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--seconds", type=float, default=10.0)
ap.add_argument("--warmup", type=int, default=3)
args = ap.parse_args()

opts = ort.SessionOptions()
opts.intra_op_num_threads = args.threads
opts.inter_op_num_threads = 1
sess = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
inp = sess.get_inputs()[0]
shape = [args.batch] + [int(d) for d in inp.shape[1:]]
x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
for _ in range(args.warmup):
    sess.run(None, {inp.name: x})
runs, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < args.seconds or runs < 3:
    sess.run(None, {inp.name: x})
    runs += 1
dt = time.perf_counter() - t0
print(json.dumps({"model": args.model, "batch": args.batch, "threads": args.threads, "runs": runs,
                  "img_per_s": round(runs * args.batch / dt, 1)}))
