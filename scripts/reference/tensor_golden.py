#!/usr/bin/env python3
"""Golden forward and gradient values for the sskd tensor core, computed with PyTorch.

Writes Tests/SSKDTensorTests/Fixtures/tensor_golden.json, read by GoldenTests.swift.

Each case holds: the op name, its inputs (shape, float32-representable values, whether the
input takes a gradient), op arguments, the expected output, a fixed upstream gradient shaped like
the output, and the expected gradient of every differentiable input (vector-Jacobian product
with that upstream gradient). Inputs are drawn from a seeded generator and rounded to float32;
the reference runs in float64, so the Swift side (float32) is compared with a small relative
tolerance.

Run from the repository root:  python3 scripts/reference/tensor_golden.py
"""
import json
import os

import torch
import torch.nn.functional as F

torch.manual_seed(0)
GEN = torch.Generator().manual_seed(20261127)
CASES = []


def f32(t):
    """Round to float32 values (what Swift sees), kept in float64 for the reference maths."""
    return t.to(torch.float32).to(torch.float64)


def randn(*shape):
    return f32(torch.randn(shape, generator=GEN, dtype=torch.float64))


def uniform(lo, hi, *shape):
    return f32(lo + (hi - lo) * torch.rand(shape, generator=GEN, dtype=torch.float64))


def away_from(x, points, gap=0.05):
    """Nudges values off kinks (relu/abs/clamp at `points`) so gradients are well defined."""
    x = x.clone()
    for p in points:
        near = (x - p).abs() < gap
        x[near] = (p + gap * torch.where(x[near] >= p, 1.0, -1.0)).to(x.dtype)
    return f32(x)


def tensor_json(t):
    t = t.detach().to(torch.float64)
    return {"shape": list(t.shape), "values": [float(v) for v in t.reshape(-1).tolist()]}


def add_case(name, op, inputs, fn, args=None, grad=None):
    """inputs: list of tensors; grad: list of bools (default: all take a gradient)."""
    grad = grad if grad is not None else [True] * len(inputs)
    leaves = [x.clone().requires_grad_(g) for x, g in zip(inputs, grad)]
    out = fn(*leaves)
    entry = {
        "name": name,
        "op": op,
        "args": args or {},
        "inputs": [dict(tensor_json(x), requiresGrad=g) for x, g in zip(inputs, grad)],
        "output": tensor_json(out),
    }
    if out.requires_grad:
        up = f32(torch.rand(out.shape, generator=GEN, dtype=torch.float64) + 0.5)
        out.backward(up)
        entry["upstream"] = tensor_json(up)
        entry["grads"] = [tensor_json(x.grad) if g else None for x, g in zip(leaves, grad)]
    CASES.append(entry)


# Elementwise binary ops with broadcasting.
add_case("add_broadcast_col_row", "add", [randn(3, 1), randn(1, 4)], torch.add)
add_case("add_scalar_tensor", "add", [randn(2, 3), randn()], torch.add)
add_case("sub_broadcast", "sub", [randn(2, 3, 4), randn(3, 1)], torch.sub)
add_case("mul_broadcast_last", "mul", [randn(2, 3, 4), randn(4)], torch.mul)
add_case("div_broadcast", "div", [randn(2, 3), uniform(0.5, 2.0, 3)], torch.div)
add_case("pow_tensor", "pow", [uniform(0.5, 2.0, 2, 3), randn(3)], torch.pow)
add_case("maximum", "maximum", [randn(3, 4), randn(4)], torch.maximum)
add_case("minimum", "minimum", [randn(3, 4), randn(3, 1)], torch.minimum)

# Scalar forms.
add_case("add_scalar", "add_scalar", [randn(2, 3)], lambda x: x + 1.5, {"scalar": 1.5})
add_case("mul_scalar", "mul_scalar", [randn(2, 3)], lambda x: x * -2.5, {"scalar": -2.5})
add_case("div_scalar", "div_scalar", [randn(2, 3)], lambda x: x / 3.0, {"scalar": 3.0})
add_case("rsub_scalar", "rsub_scalar", [randn(2, 3)], lambda x: 2.0 - x, {"scalar": 2.0})
add_case("rdiv_scalar", "rdiv_scalar", [uniform(0.5, 2, 2, 3)], lambda x: 2.0 / x, {"scalar": 2.0})
add_case("pow_scalar_3", "pow_scalar", [randn(2, 3)], lambda x: x ** 3, {"exponent": 3.0})
add_case("pow_scalar_half", "pow_scalar", [uniform(0.5, 2, 2, 3)], lambda x: x ** 0.5, {"exponent": 0.5})
add_case("pow_scalar_2", "pow_scalar", [randn(5)], lambda x: x ** 2, {"exponent": 2.0})

# Unary.
add_case("neg", "neg", [randn(2, 3)], torch.neg)
add_case("exp", "exp", [randn(2, 3)], torch.exp)
add_case("log", "log", [uniform(0.2, 3, 2, 3)], torch.log)
add_case("log1p", "log1p", [uniform(-0.5, 3, 2, 3)], torch.log1p)
add_case("sqrt", "sqrt", [uniform(0.2, 3, 2, 3)], torch.sqrt)
add_case("square", "square", [randn(2, 3)], torch.square)
add_case("abs", "abs", [away_from(randn(2, 3), [0])], torch.abs)
add_case("sigmoid", "sigmoid", [randn(2, 3) * 3], torch.sigmoid)
add_case("tanh", "tanh", [randn(2, 3)], torch.tanh)
add_case("relu", "relu", [away_from(randn(3, 4), [0])], torch.relu)
add_case("clamp_both", "clamp", [away_from(randn(3, 4), [-0.5, 0.5])], lambda x: x.clamp(-0.5, 0.5), {"min": -0.5, "max": 0.5})
add_case("clamp_min", "clamp", [away_from(randn(3, 4), [0.1])], lambda x: x.clamp(min=0.1), {"min": 0.1})

# Reductions.
add_case("sum_all", "sum", [randn(2, 3, 4)], lambda x: x.sum(), {"axes": []})
add_case("sum_axes_0_2", "sum", [randn(2, 3, 4)], lambda x: x.sum((0, 2)), {"axes": [0, 2]})
add_case("sum_neg_keepdim", "sum", [randn(2, 3, 4)], lambda x: x.sum(-1, keepdim=True), {"axes": [-1], "keepdim": True})
add_case("mean_axis1", "mean", [randn(2, 3, 4)], lambda x: x.mean(1), {"axes": [1]})
add_case("mean_keepdim", "mean", [randn(2, 3, 4)], lambda x: x.mean((0, 1), keepdim=True), {"axes": [0, 1], "keepdim": True})
add_case("amax_axis", "max", [randn(3, 5)], lambda x: x.amax(1), {"axes": [1]})
add_case("amax_all", "max", [randn(3, 5)], lambda x: x.amax(), {"axes": []})
add_case("amin_keepdim", "min", [randn(3, 5)], lambda x: x.amin(0, keepdim=True), {"axes": [0], "keepdim": True})
add_case("var_axis", "var", [randn(3, 5)], lambda x: x.var(1), {"axes": [1], "correction": 1})
add_case("var_all_biased", "var", [randn(3, 5)], lambda x: x.var(correction=0), {"axes": [], "correction": 0})
add_case("std_keepdim", "std", [randn(4, 3)], lambda x: x.std(0, keepdim=True), {"axes": [0], "correction": 1, "keepdim": True})
add_case("argmax", "argmax", [randn(3, 5)], lambda x: x.argmax(1).to(torch.float64), {"axis": 1}, grad=[False])
add_case("argmin_keepdim", "argmin", [randn(3, 5)], lambda x: x.argmin(0, keepdim=True).to(torch.float64), {"axis": 0, "keepdim": True}, grad=[False])

# Softmax family.
add_case("softmax_last", "softmax", [randn(3, 5) * 2], lambda x: x.softmax(-1), {"dim": -1})
add_case("softmax_mid", "softmax", [randn(2, 3, 4)], lambda x: x.softmax(1), {"dim": 1})
add_case("log_softmax", "log_softmax", [randn(3, 5) * 2], lambda x: x.log_softmax(1), {"dim": 1})
add_case("log_softmax_dim0", "log_softmax", [randn(4, 3)], lambda x: x.log_softmax(0), {"dim": 0})
add_case("logsumexp", "logsumexp", [randn(3, 4) * 3], lambda x: x.logsumexp(1), {"dims": [1]})
add_case("logsumexp_keepdim", "logsumexp", [randn(2, 3, 4)], lambda x: x.logsumexp((0, 2), keepdim=True), {"dims": [0, 2], "keepdim": True})

# Matmul.
add_case("matmul_2d", "matmul", [randn(3, 4), randn(4, 5)], torch.matmul)
add_case("matmul_vec_vec", "matmul", [randn(4), randn(4)], torch.matmul)
add_case("matmul_mat_vec", "matmul", [randn(3, 4), randn(4)], torch.matmul)
add_case("matmul_vec_batched", "matmul", [randn(4), randn(2, 4, 3)], torch.matmul)
add_case("matmul_batched", "matmul", [randn(2, 3, 4), randn(2, 4, 2)], torch.matmul)
add_case("matmul_broadcast_batch", "matmul", [randn(2, 1, 3, 4), randn(3, 4, 2)], torch.matmul)
add_case("matmul_batched_by_2d", "matmul", [randn(2, 3, 4), randn(4, 5)], torch.matmul)

# Shape ops.
add_case("reshape", "reshape", [randn(2, 3, 4)], lambda x: x.reshape(4, -1), {"shape": [4, -1]})
add_case("permute", "permute", [randn(2, 3, 4)], lambda x: x.permute(2, 0, 1), {"dims": [2, 0, 1]})
add_case("transpose", "transpose", [randn(2, 3, 4)], lambda x: x.transpose(0, 2), {"dim0": 0, "dim1": 2})
add_case("expand", "expand", [randn(3, 1)], lambda x: x.expand(2, 3, 4), {"shape": [2, 3, 4]})
add_case("narrow", "narrow", [randn(4, 5)], lambda x: x.narrow(1, 1, 3), {"dim": 1, "start": 1, "length": 3})
add_case("slice_step", "slice", [randn(7, 3)], lambda x: x[1:6:2], {"dim": 0, "start": 1, "end": 6, "step": 2})
add_case("index_select", "index_select", [randn(4, 3)], lambda x: x.index_select(0, torch.tensor([3, 0, 3])), {"dim": 0, "indices": [3, 0, 3]})
gidx = torch.tensor([[0, 2, 2], [1, 0, 1]])
add_case("gather", "gather", [randn(2, 4)], lambda x: x.gather(1, gidx), {"dim": 1, "index": tensor_json(gidx.to(torch.float64))})
add_case("cat_dim1", "cat", [randn(2, 3), randn(2, 1), randn(2, 2)], lambda *xs: torch.cat(xs, 1), {"dim": 1})
add_case("stack_dim1", "stack", [randn(2, 3), randn(2, 3)], lambda *xs: torch.stack(xs, 1), {"dim": 1})
cond = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
add_case("where", "where", [randn(2, 3), randn(3)], lambda a, b: torch.where(cond > 0, a, b), {"condition": tensor_json(cond)})

# Losses.
logits = randn(4, 5) * 2
labels = torch.tensor([1, 0, 4, 2])
labels_f = labels.to(torch.float64)
for red in ("mean", "sum", "none"):
    add_case(f"cross_entropy_idx_{red}", "cross_entropy", [logits, labels_f],
             lambda x, t, red=red: F.cross_entropy(x, t.long(), reduction=red), {"reduction": red}, grad=[True, False])
add_case("cross_entropy_smoothing", "cross_entropy", [logits, labels_f],
         lambda x, t: F.cross_entropy(x, t.long(), label_smoothing=0.1), {"reduction": "mean", "label_smoothing": 0.1}, grad=[True, False])
soft = f32(torch.softmax(randn(4, 5), 1))
add_case("cross_entropy_soft", "cross_entropy", [logits, soft],
         lambda x, t: F.cross_entropy(x, t), {"reduction": "mean"})
add_case("cross_entropy_soft_smoothing_sum", "cross_entropy", [logits, soft],
         lambda x, t: F.cross_entropy(x, t, label_smoothing=0.2, reduction="sum"), {"reduction": "sum", "label_smoothing": 0.2})
spatial = randn(2, 3, 2, 2)
spatial_labels = torch.tensor([[[0, 2], [1, 1]], [[2, 0], [0, 1]]]).to(torch.float64)
add_case("cross_entropy_spatial", "cross_entropy", [spatial, spatial_labels],
         lambda x, t: F.cross_entropy(x, t.long(), label_smoothing=0.05), {"reduction": "mean", "label_smoothing": 0.05}, grad=[True, False])
add_case("cross_entropy_unbatched_none", "cross_entropy", [randn(5), torch.tensor(3.0, dtype=torch.float64)],
         lambda x, t: F.cross_entropy(x, t.long(), reduction="none"), {"reduction": "none"}, grad=[True, False])
logp = f32(torch.log_softmax(randn(3, 4), 1))
q = f32(torch.softmax(randn(3, 4), 1))
for red in ("batchmean", "sum", "mean", "none"):
    add_case(f"kl_div_{red}", "kl_div", [logp, q], lambda x, t, red=red: F.kl_div(x, t, reduction=red), {"reduction": red})
add_case("kl_div_log_target", "kl_div", [logp, f32(q.log())],
         lambda x, t: F.kl_div(x, t, reduction="batchmean", log_target=True), {"reduction": "batchmean", "log_target": True})
add_case("mse_mean", "mse", [randn(3, 4), randn(3, 4)], F.mse_loss, {"reduction": "mean"})
add_case("mse_sum", "mse", [randn(3, 4), randn(3, 4)], lambda a, b: F.mse_loss(a, b, reduction="sum"), {"reduction": "sum"})
add_case("mse_none", "mse", [randn(3, 4), randn(3, 4)], lambda a, b: F.mse_loss(a, b, reduction="none"), {"reduction": "none"})

out_path = os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "SSKDTensorTests", "Fixtures", "tensor_golden.json")
out_path = os.path.normpath(out_path)
with open(out_path, "w") as f:
    json.dump({"generator": "scripts/reference/tensor_golden.py", "torch": torch.__version__, "cases": CASES}, f, separators=(",", ":"))
    f.write("\n")
print(f"wrote {len(CASES)} cases to {out_path} ({os.path.getsize(out_path)} bytes)")
