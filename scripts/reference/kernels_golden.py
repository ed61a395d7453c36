#!/usr/bin/env python3
"""Golden forward/backward values of the CNN kernels from torch.nn.functional.

Writes Tests/SSKDTensorTests/Fixtures/kernels_{conv,bn,pool,act,linear}.json. Each case stores its
inputs, the upstream gradient `dy`, the output and the gradient of every input, so the Swift
tests need nothing but the fixture. Inputs come from a seeded torch generator (deterministic).

    python3 scripts/reference/kernels_golden.py          # from the repository root
"""
import json
import os

import torch
import torch.nn.functional as F

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "Tests", "SSKDTensorTests", "Fixtures")
gen = torch.Generator().manual_seed(20261127)


def randn(*shape, scale=1.0, shift=0.0):
    return torch.randn(*shape, generator=gen, dtype=torch.float64).float() * scale + shift


def enc(t):
    t = t.detach().float().contiguous()
    return {"shape": list(t.shape), "data": [float(f"{v:.7g}") for v in t.reshape(-1).tolist()]}


def run(name, f, inputs, params, grad_names=None):
    """Runs f(**inputs) with grads on every input in grad_names (default: all)."""
    grad_names = list(inputs) if grad_names is None else grad_names
    leaves = {k: v.clone().requires_grad_(k in grad_names) for k, v in inputs.items()}
    y = f(**leaves)
    dy = randn(*y.shape)
    y.backward(dy)
    return {
        "name": name,
        "params": params,
        "inputs": {k: enc(v) for k, v in inputs.items()},
        "dy": enc(dy),
        "out": enc(y),
        "grads": {k: enc(leaves[k].grad) for k in grad_names},
    }


def conv_cases():
    cases = []

    def conv(name, x_shape, w_shape, bias, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1):
        x, w = randn(*x_shape), randn(*w_shape, scale=0.5)
        inputs = {"x": x, "w": w}
        if bias:
            inputs["b"] = randn(w_shape[0])
        t, b_, l, r = padding

        def f(x, w, b=None):
            return F.conv2d(F.pad(x, (l, r, t, b_)), w, b, stride=stride, dilation=dilation, groups=groups)

        params = {"stride": list(stride), "padding": list(padding), "dilation": list(dilation), "groups": groups}
        cases.append(run(name, f, inputs, params))

    conv("dense3x3_s1_p1_bias", [2, 3, 7, 9], [4, 3, 3, 3], True, padding=(1, 1, 1, 1))
    conv("dense3x3_s2_p1_odd", [2, 3, 9, 11], [5, 3, 3, 3], False, stride=(2, 2), padding=(1, 1, 1, 1))
    conv("pointwise_bias", [2, 6, 5, 7], [8, 6, 1, 1], True)
    conv("pointwise_per_image_map", [1, 3, 17, 16], [4, 3, 1, 1], True)  # HW > 256: one GEMM per image
    conv("pointwise_se_1x1_map", [3, 8, 1, 1], [5, 8, 1, 1], True)
    conv("pointwise_s2_odd", [2, 4, 7, 7], [3, 4, 1, 1], False, stride=(2, 2))
    conv("grouped2_pad12_dil21", [2, 4, 6, 7], [6, 2, 3, 3], True, padding=(1, 1, 2, 2), dilation=(2, 1), groups=2)
    conv("grouped3_2x3_s21", [1, 6, 7, 8], [3, 2, 2, 3], False, stride=(2, 1), padding=(1, 1, 0, 0), groups=3)
    conv("depthwise3x3_s1_p1_bias", [2, 5, 8, 9], [5, 1, 3, 3], True, padding=(1, 1, 1, 1), groups=5)
    conv("depthwise3x3_s1_p1_wide", [1, 3, 10, 21], [3, 1, 3, 3], False, padding=(1, 1, 1, 1), groups=3)
    conv("depthwise3x3_s2_p1_odd", [2, 4, 9, 11], [4, 1, 3, 3], True, stride=(2, 2), padding=(1, 1, 1, 1), groups=4)
    conv("depthwise3x3_s2_p1_wide", [1, 3, 13, 35], [3, 1, 3, 3], False, stride=(2, 2), padding=(1, 1, 1, 1), groups=3)
    conv("depthwise5x5_s1_p2", [1, 3, 10, 19], [3, 1, 5, 5], True, padding=(2, 2, 2, 2), groups=3)
    conv("depthwise5x5_s2_p2_odd", [1, 3, 11, 37], [3, 1, 5, 5], False, stride=(2, 2), padding=(2, 2, 2, 2), groups=3)
    conv("depthwise3x3_s2_asym_pad", [1, 3, 8, 10], [3, 1, 3, 3], False, stride=(2, 2), padding=(0, 1, 0, 1), groups=3)
    conv("depthwise_mult2_dil2", [1, 3, 8, 12], [6, 1, 3, 3], True, padding=(2, 2, 2, 2), dilation=(2, 2), groups=3)
    conv("depthwise_blocked_c11", [1, 11, 5, 4], [11, 1, 3, 3], True, padding=(1, 1, 1, 1), groups=11)  # 8 + 3 channels
    conv("depthwise7x7_generic", [1, 2, 9, 10], [2, 1, 7, 7], False, padding=(3, 3, 3, 3), groups=2)
    conv("depthwise_no_pad_s3", [1, 2, 11, 26], [2, 1, 3, 2], True, stride=(3, 3), groups=2)
    # Few input channels and rows of 8+ outputs: the direct stem kernel (StemConv.swift), with
    # ragged rows (19, 26, 29 outputs), a partial block of output channels, asymmetric padding.
    conv("stem3x3_s2_p1", [2, 3, 19, 37], [6, 3, 3, 3], True, stride=(2, 2), padding=(1, 1, 1, 1))
    conv("stem5x5_s2_asym_pad", [1, 2, 14, 53], [5, 2, 5, 5], False, stride=(2, 2), padding=(2, 1, 2, 1))
    conv("stem3x3_s1_one_channel", [2, 1, 8, 29], [4, 1, 3, 3], True, padding=(1, 1, 1, 1))
    return cases


def bn_cases():
    cases = []

    def bn(name, shape, affine, training, momentum=0.1, eps=1e-5, shift=0.0):
        c = shape[1]
        x = randn(*shape, scale=2.0, shift=shift)
        rm0, rv0 = randn(c, scale=0.3), randn(c, scale=0.2).abs() + 0.5
        inputs = {"x": x}
        if affine:
            inputs["w"], inputs["b"] = randn(c, scale=0.5, shift=1.0), randn(c, scale=0.5)
        rm, rv = rm0.clone(), rv0.clone()

        def f(x, w=None, b=None):
            return F.batch_norm(x, rm, rv, w, b, training=training, momentum=momentum, eps=eps)

        case = run(name, f, inputs, {"training": training, "momentum": momentum, "eps": eps})
        case["running_mean_in"], case["running_var_in"] = enc(rm0), enc(rv0)
        case["running_mean_out"], case["running_var_out"] = enc(rm), enc(rv)
        cases.append(case)

    bn("train_affine", [4, 3, 5, 7], True, True)
    bn("train_no_affine", [3, 4, 3, 5], False, True, momentum=0.3)
    bn("train_offset_mean", [2, 3, 9, 11], True, True, shift=50.0)
    bn("train_2d", [6, 5], True, True)
    bn("eval_affine", [2, 3, 4, 5], True, False)
    bn("eval_no_affine", [2, 2, 3, 3], False, False, eps=1e-3)
    return cases


def pool_cases():
    cases = []

    def mp(name, shape, k, s, p, d=1, ceil=False):
        f = lambda x: F.max_pool2d(x, k, s, p, d, ceil_mode=ceil)
        params = {"kind": "max", "kernel": list(k), "stride": list(s), "padding": list(p), "dilation": [d, d], "ceil_mode": ceil}
        cases.append(run(name, f, {"x": randn(*shape)}, params))

    def ap(name, shape, k, s, p, ceil=False, cip=True):
        f = lambda x: F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=cip)
        params = {"kind": "avg", "kernel": list(k), "stride": list(s), "padding": list(p), "ceil_mode": ceil, "count_include_pad": cip}
        cases.append(run(name, f, {"x": randn(*shape)}, params))

    def aap(name, shape, size):
        f = lambda x: F.adaptive_avg_pool2d(x, size)
        cases.append(run(name, f, {"x": randn(*shape)}, {"kind": "adaptive_avg", "output_size": list(size)}))

    mp("max3_s2_p1_odd", [2, 3, 9, 11], (3, 3), (2, 2), (1, 1))
    mp("max2_s2_ceil", [1, 2, 7, 7], (2, 2), (2, 2), (0, 0), ceil=True)
    mp("max3_s2_p1_ceil", [1, 2, 8, 10], (3, 3), (2, 2), (1, 1), ceil=True)
    mp("max3_s1_p1_dil2", [1, 2, 7, 8], (3, 3), (1, 1), (1, 1), d=2)
    mp("max2x3_s12", [2, 1, 6, 7], (2, 3), (1, 2), (1, 1))
    ap("avg3_s2_p1_incl", [2, 3, 9, 11], (3, 3), (2, 2), (1, 1))
    ap("avg3_s2_p1_excl", [2, 3, 9, 11], (3, 3), (2, 2), (1, 1), cip=False)
    ap("avg3_s2_p1_ceil_incl", [1, 2, 8, 8], (3, 3), (2, 2), (1, 1), ceil=True)
    ap("avg2_s2_ceil_excl", [1, 2, 7, 9], (2, 2), (2, 2), (0, 0), ceil=True, cip=False)
    aap("adaptive_1x1", [2, 5, 7, 9], (1, 1))
    aap("adaptive_3x4", [2, 3, 7, 10], (3, 4))
    aap("adaptive_up_5x5", [1, 2, 4, 3], (5, 5))
    return cases


def act_cases():
    # Values spread over [-8, 8], kept away from the kinks at -3, 0, 3 and 6.
    x = randn(4, 5, 6, scale=4.0)
    for kink in (-3.0, 0.0, 3.0, 6.0):
        near = (x - kink).abs() < 1e-2
        x = torch.where(near, x + 0.05, x)
    fs = {"relu": F.relu, "relu6": F.relu6, "silu": F.silu, "sigmoid": torch.sigmoid,
          "hardswish": F.hardswish, "hardsigmoid": F.hardsigmoid}
    return [run(name, lambda x, f=f: f(x), {"x": x}, {"kind": name}) for name, f in fs.items()]


def linear_cases():
    cases = []

    def lin(name, x_shape, out_f, bias):
        in_f = x_shape[-1]
        inputs = {"x": randn(*x_shape), "w": randn(out_f, in_f, scale=0.4)}
        if bias:
            inputs["b"] = randn(out_f)
        cases.append(run(name, lambda x, w, b=None: F.linear(x, w, b), inputs, {}))

    lin("linear_bias", [5, 7], 4, True)
    lin("linear_3d_no_bias", [2, 3, 7], 6, False)
    lin("linear_1d", [7], 3, True)
    lin("linear_classifier", [4, 64], 10, True)
    return cases


def main():
    os.makedirs(OUT, exist_ok=True)
    for fam, fn in [("conv", conv_cases), ("bn", bn_cases), ("pool", pool_cases), ("act", act_cases), ("linear", linear_cases)]:
        path = os.path.join(OUT, f"kernels_{fam}.json")
        with open(path, "w") as fh:
            json.dump({"torch": torch.__version__, "cases": fn()}, fh, separators=(",", ":"))
        print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
