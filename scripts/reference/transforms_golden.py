#!/usr/bin/env python3
"""Golden outputs of torchvision's functional transforms for Tests/SSKDDataTests.

Writes Tests/SSKDDataTests/Fixtures/transforms_golden.json: input images (uint8, CHW) and the
outputs of torchvision.transforms.functional (tensor path, float32 images in [0, 1]) with
explicit parameters, base64 float32 little-endian. The Swift tests run the same kernels with the
same parameters and compare.

    python3 scripts/reference/transforms_golden.py
"""
import base64, json, os, sys

import numpy as np
import torch
import torchvision
import torchvision.transforms.functional as TF
import torchvision.transforms.v2.functional as TF2
from torchvision.transforms import InterpolationMode

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "SSKDDataTests", "Fixtures", "transforms_golden.json")


def b64(a, dtype):
    return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode()


def main():
    rng = np.random.default_rng(6)
    # A smooth-ish RGB image (gradients + noise) and a grayscale one, uint8 CHW.
    h, w = 24, 30
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([
        (xx * 255 / (w - 1)),
        (yy * 255 / (h - 1)),
        ((xx + yy) % 16) * 16,
    ]).astype(np.float64) + rng.integers(-30, 31, size=(3, h, w))
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    gray = rng.integers(0, 256, size=(1, 16, 18), dtype=np.uint8)
    inputs = {"rgb": rgb, "gray": gray}

    cases = []

    def add(name, inp, op, params, out):
        out = out.detach().to(torch.float32).contiguous()
        cases.append({"name": name, "input": inp, "op": op, "params": params,
                      "shape": list(out.shape), "output": b64(out.numpy(), "<f4")})

    for key, arr in inputs.items():
        x = torch.from_numpy(arr).to(torch.float32) / 255.0
        add(f"{key} hflip", key, "hflip", {}, TF.hflip(x))
        add(f"{key} pad", key, "pad", {"left": 4, "top": 2, "right": 1, "bottom": 3, "fill": 0.0},
            TF.pad(x, [4, 2, 1, 3], fill=0.0, padding_mode="constant"))
        add(f"{key} crop", key, "crop", {"top": 3, "left": 5, "height": 17, "width": 11},
            TF.crop(x, 3, 5, 17, 11))
        add(f"{key} crop outside", key, "crop", {"top": -2, "left": 10, "height": 12, "width": 12},
            TF.crop(x, -2, 10, 12, 12))
        for (oh, ow) in [(13, 17), (7, 9), (37, 41), (20, 56), (24, 30)]:
            add(f"{key} resize {oh}x{ow}", key, "resize", {"height": oh, "width": ow},
                TF2.resize(x, [oh, ow], interpolation=InterpolationMode.BILINEAR, antialias=True))
        for angle in [10.0, -7.25, 3.3, 45.0, 90.0]:
            add(f"{key} rotate {angle}", key, "rotate", {"angle": angle, "fill": 0.0},
                TF.rotate(x, angle, interpolation=InterpolationMode.NEAREST, expand=False, center=None, fill=0.0))
        add(f"{key} rotate fill", key, "rotate", {"angle": 33.0, "fill": 0.5},
            TF.rotate(x, 33.0, interpolation=InterpolationMode.NEAREST, fill=[0.5] * x.shape[0]))
        for f in [0.8, 1.2]:
            add(f"{key} brightness {f}", key, "brightness", {"factor": f}, TF.adjust_brightness(x, f))
            add(f"{key} contrast {f}", key, "contrast", {"factor": f}, TF.adjust_contrast(x, f))
            add(f"{key} saturation {f}", key, "saturation", {"factor": f}, TF.adjust_saturation(x, f))
        for f in [0.07, -0.2, 0.5]:
            add(f"{key} hue {f}", key, "hue", {"factor": f}, TF.adjust_hue(x, f))
        # ColorJitter's body with fixed parameters: adjustments in a given order.
        order, fb, fc, fs, fh = [2, 0, 3, 1], 1.17, 0.83, 1.09, 0.05
        y = x
        for k in order:
            y = [lambda t: TF.adjust_brightness(t, fb), lambda t: TF.adjust_contrast(t, fc),
                 lambda t: TF.adjust_saturation(t, fs), lambda t: TF.adjust_hue(t, fh)][k](y)
        add(f"{key} jitter", key, "jitter", {"order": order, "brightness": fb, "contrast": fc,
                                             "saturation": fs, "hue": fh}, y)
        add(f"{key} grayscale", key, "grayscale", {"channels": 3}, TF.rgb_to_grayscale(x, num_output_channels=3))
        add(f"{key} resized crop", key, "resized_crop", {"top": 2, "left": 3, "height": 11, "width": 14, "size": 9},
            TF2.resized_crop(x, 2, 3, 11, 14, [9, 9], interpolation=InterpolationMode.BILINEAR, antialias=True))
        add(f"{key} normalize", key, "normalize",
            {"mean": [0.5, 0.4, 0.3][: x.shape[0]], "std": [0.2, 0.25, 0.3][: x.shape[0]]},
            TF.normalize(x, [0.5, 0.4, 0.3][: x.shape[0]], [0.2, 0.25, 0.3][: x.shape[0]]))

    doc = {
        "generator": "scripts/reference/transforms_golden.py",
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "inputs": {k: {"shape": list(v.shape), "data": b64(v, "u1")} for k, v in inputs.items()},
        "cases": cases,
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=0)
    print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    sys.exit(main())
