#!/usr/bin/env python3
"""Cross-checks sskd's torch.save / torch.load files with the real safetensors library.

    torch_save_check.py check FILE     read a file torch.save wrote; print it as JSON, assert it is consistent
    torch_save_check.py write FILE     write one tensor per dtype (F16, BF16, F64, I64, ...) for torch.load;
                                       print the values sskd should read, as JSON

`check` reads the tensors with `safetensors.torch.load_file` and the metadata with
`safetensors.safe_open`, then asserts what the layout promises (Sources/SSKDNN/SavedValue.swift):
every tensor is F32, the `sskd.torch.save` metadata is JSON naming each tensor once, and every
tensor in the file is named by it. It prints {"tensors": {name: {"dtype", "shape", "values"}},
"metadata": {...}, "value": <the decoded description>}.

`write` saves a file with torch dtypes (float16, bfloat16, float64, int64, int32, int16, int8,
uint8, bool) and metadata, and prints {name: {"dtype", "shape", "float32": values as float32,
"inexact": how many values float32 does not hold exactly}}; sskd's torch.load must return those
float32 values and report those dtypes and counts.

Without PyTorch (or with --numpy) the same is done with `safetensors.numpy` (numpy has no
bfloat16: the BF16 entry is left out). sskd's test suite runs this script that way
(SaveLoadTests, Python from $SSKD_PYTHON or .build/pyenv).
"""
import argparse
import json
import sys

import numpy as np

try:
    import torch
except ImportError:  # the numpy path below covers everything but bfloat16
    torch = None

KEY = "sskd.torch.save"

# name -> (dtype name in safetensors, numpy dtype or None for bfloat16, values)
SAMPLES = {
    "half": ("F16", np.float16, [1.0, -2.5, 65504.0, 2.0 ** -24, 0.0]),
    "bfloat": ("BF16", None, [1.0, -0.5, 3.0e38, 2.0 ** -100]),
    "double": ("F64", np.float64, [0.5, 0.1, -1e-50, 123456789.0, 1e300]),
    "long": ("I64", np.int64, [0, -7, 2 ** 24, 2 ** 24 + 1, 2 ** 53 + 1, -(2 ** 62)]),
    "int": ("I32", np.int32, [1, -2 ** 31, 2 ** 24 + 1]),
    "short": ("I16", np.int16, [-32768, 32767]),
    "char": ("I8", np.int8, [-128, 127]),
    "byte": ("U8", np.uint8, [0, 200, 255]),
    "mask": ("BOOL", np.bool_, [True, False, True]),
}
TORCH_DTYPES = {"F16": "float16", "BF16": "bfloat16", "F64": "float64", "I64": "int64", "I32": "int32",
                "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def number(x):
    """A float for JSON: non-finite values as the strings "inf", "-inf", "nan" (as sskd writes them)."""
    x = float(x)
    return x if np.isfinite(x) else ("nan" if x != x else ("inf" if x > 0 else "-inf"))


def check(path, use_numpy):
    from safetensors import safe_open
    if use_numpy:
        from safetensors.numpy import load_file
        tensors = load_file(path)
    else:
        from safetensors.torch import load_file
        tensors = {k: v.numpy() for k, v in load_file(path).items()}
    with safe_open(path, framework="numpy") as f:
        metadata = f.metadata() or {}
    for name, t in tensors.items():
        assert t.dtype == np.float32, f"{name}: expected F32, got {t.dtype}"
    assert KEY in metadata, f"no '{KEY}' metadata: not a torch.save file"
    description = json.loads(metadata[KEY])
    assert description["version"] == 1, description["version"]

    named = set()

    def walk(node):
        (kind,) = [k for k in node if k != "requires_grad"]
        if kind == "tensor":
            assert node["tensor"] in tensors, f"description names '{node['tensor']}', not in the file"
            named.add(node["tensor"])
        elif kind == "array":
            for item in node["array"]:
                walk(item)
        elif kind == "table":
            for key, value in node["table"]:
                assert len(key) == 1 and next(iter(key)) in ("integer", "number", "string", "bytes", "boolean"), key
                walk(value)

    walk(description["value"])
    assert named == set(tensors), f"tensors not in the description: {sorted(set(tensors) - named)}"
    out = {
        "tensors": {k: {"dtype": "F32", "shape": list(v.shape), "values": [number(x) for x in v.reshape(-1).tolist()]} for k, v in tensors.items()},
        "metadata": {k: v for k, v in metadata.items() if k != KEY},
        "value": description["value"],
    }
    json.dump(out, sys.stdout, ensure_ascii=False, allow_nan=False)
    print()


def write(path, use_numpy):
    expected, arrays = {}, {}
    for name, (dtype, np_dtype, values) in SAMPLES.items():
        if np_dtype is None and use_numpy:
            continue  # numpy has no bfloat16
        if use_numpy:
            arrays[name] = np.array(values, dtype=np_dtype)
            stored = arrays[name].tolist()
        else:
            arrays[name] = torch.tensor(values, dtype=getattr(torch, TORCH_DTYPES[dtype]))
            # What the file holds, exactly: Python ints for integer dtypes, floats (doubles) otherwise.
            stored = arrays[name].tolist() if dtype in ("I64", "I32", "I16", "I8", "U8", "BOOL") else arrays[name].double().tolist()
        with np.errstate(over="ignore"):  # 1e300 becomes inf in float32: that is the point
            f32 = [float(np.float32(v)) for v in stored]
        inexact = sum(1 for a, b in zip(f32, stored) if a != b and not (isinstance(b, float) and b != b))
        expected[name] = {"dtype": dtype, "shape": [len(values)], "float32": [number(x) for x in f32], "inexact": inexact}
    metadata = {"writer": "torch_save_check.py", "format": "pt"}
    if use_numpy:
        from safetensors.numpy import save_file
    else:
        from safetensors.torch import save_file
    save_file(arrays, path, metadata=metadata)
    json.dump({"tensors": expected, "metadata": metadata}, sys.stdout, allow_nan=False)
    print()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["check", "write"])
    p.add_argument("file")
    p.add_argument("--numpy", action="store_true", help="use safetensors.numpy even when torch is installed")
    a = p.parse_args()
    use_numpy = a.numpy or torch is None
    (check if a.mode == "check" else write)(a.file, use_numpy)


if __name__ == "__main__":
    main()
