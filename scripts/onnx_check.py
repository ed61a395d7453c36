#!/usr/bin/env python3
"""Runs an exported ONNX model in onnxruntime and compares its outputs with sskd's.

Usage: onnx_check.py MODEL.onnx IO.safetensors [--tolerance 1e-4] [--bench SECONDS]

IO.safetensors holds sskd's side: tensors "input" [N, C, H, W] and "logits" [N, K] (more pairs as
"input.K" / "logits.K", e.g. another batch size for a dynamic batch). Each input runs through
onnxruntime (CPU, one session); the check passes when, for every pair,
    max |ort - sskd| <= tolerance * max(1, max |sskd|)
i.e. 1e-4 relative to the logits' scale. Prints one JSON line per pair and, with --bench, the
img/s of onnxruntime at the first pair's batch size. Exit status 1 on any mismatch.
"""
import argparse, json, sys, time

import numpy as np
import onnx
import onnxruntime as ort
from safetensors.numpy import load_file


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("io")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--bench", type=float, default=0.0, help="seconds of timed runs (0: none)")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0: onnxruntime's default)")
    args = ap.parse_args()

    model = onnx.load(args.model)
    onnx.checker.check_model(model, full_check=True)
    opts = ort.SessionOptions()
    if args.threads:
        opts.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name
    io = load_file(args.io)
    pairs = sorted(k[len("input"):] for k in io if k.startswith("input"))
    ok = True
    for suffix in pairs:
        x, want = io["input" + suffix], io["logits" + suffix]
        got = sess.run(None, {in_name: x})[0]
        if got.shape != want.shape:
            print(json.dumps({"pair": suffix, "error": f"shape {got.shape} != {want.shape}"}))
            ok = False
            continue
        scale = max(1.0, float(np.abs(want).max()))
        err = float(np.abs(got - want).max())
        passed = err <= args.tolerance * scale
        ok &= passed
        print(json.dumps({"pair": suffix or "0", "batch": int(x.shape[0]), "max_abs_err": err, "scale": scale,
                          "relative_err": err / scale, "argmax_equal": bool((got.argmax(1) == want.argmax(1)).all()),
                          "ok": passed}))
    if args.bench > 0:
        x = io["input" + pairs[0]]
        sess.run(None, {in_name: x})
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args.bench:
            sess.run(None, {in_name: x})
            n += 1
        dt = time.perf_counter() - t0
        print(json.dumps({"bench": "onnxruntime", "batch": int(x.shape[0]), "runs": n, "img_per_s": n * x.shape[0] / dt,
                          "threads": args.threads or "default"}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
