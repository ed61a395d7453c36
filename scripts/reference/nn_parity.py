#!/usr/bin/env python3
"""Reference fixtures for sskd's nn / optim layers, computed with torchvision (CPU, float32).

Subcommands
  fixtures   (default) regenerate the committed fixtures:
             Tests/SSKDOptimTests/Fixtures/parity_{mobilenet_v2,efficientnet}.safetensors
                 reduced-width models (every block type, dropout and stochastic depth 0):
                 weights (with non-trivial BatchNorm statistics), input, eval logits,
                 train logits + CE loss + every parameter's gradient, BatchNorm buffers after
                 the train forward, parameters after one Adam step and after two SGD-momentum
                 steps (the first step of momentum SGD alone would not exercise the buffer).
             Tests/SSKDOptimTests/Fixtures/optim_rules.safetensors  SGD/Adam/AdamW variants,
                 three steps on small tensors, two parameter groups.
             Tests/SSKDOptimTests/Fixtures/schedules.json  LR sequences of PyTorch schedulers.
             Tests/SSKDNNTests/Fixtures/torchvision_reference.json  printed trees, state-dict
                 keys and shapes, parameter counts and multiply-adds of torchvision models.
  full       full-size check: EfficientNet-B0 and MobileNetV2 (10 classes, 2x3x96x96) fixtures
             written to a temporary directory, then `swift test --filter FullParity` with
             SSKD_FULL_PARITY_DIR pointing at it. Prints the test output and exits with its code.

Usage: python3 scripts/reference/nn_parity.py [fixtures|full] [--keep DIR]
"""
import argparse, copy, json, math, os, subprocess, sys, tempfile

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
from torchvision.models import mobilenet_v2
from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf
from torchvision.models import efficientnet_b0, efficientnet_b1, efficientnet_b2, efficientnet_b3, \
    efficientnet_b4, efficientnet_b5, efficientnet_b6, efficientnet_b7

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
torch.set_num_threads(1)  # deterministic reductions


def build(meta):
    """A torchvision model from the metadata the Swift tests also read."""
    classes = int(meta["classes"])
    if meta["model"] == "mobilenet_v2":
        return mobilenet_v2(num_classes=classes, width_mult=float(meta["width_mult"]), dropout=float(meta["dropout"]))
    setting, last = _efficientnet_conf("efficientnet_b0", width_mult=float(meta["width_mult"]),
                                       depth_mult=float(meta["depth_mult"]))
    return EfficientNet(setting, float(meta["dropout"]), stochastic_depth_prob=float(meta["stochastic_depth"]),
                        num_classes=classes, last_channel=last)


def macs(model, size):
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            total[0] += out[0].numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, nn.Linear):
            total[0] += out[0].numel() * mod.in_features

    hs = [m.register_forward_hook(hook) for m in model.modules()]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for h in hs:
        h.remove()
    return total[0]


def parity_case(meta, size, batch, seed, store_f64=False):
    """Everything one model's parity test compares, as a name -> tensor dict."""
    torch.manual_seed(seed)
    model = build(meta)
    # Non-trivial BatchNorm state so the eval path and the loaded buffers matter.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.num_batches_tracked.fill_(3)
    out = {}
    for k, v in model.state_dict().items():
        out["weights." + k] = v.clone()
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, int(meta["classes"]), (batch,))
    out["input"] = x
    out["target"] = y.float()

    model.eval()
    with torch.no_grad():
        out["eval_logits"] = model(x)

    model.train()
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    out["train_logits"] = logits.detach()
    out["train_loss"] = loss.detach().reshape([])
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    for k, g in grads.items():
        out["grad." + k] = g
    for k, b in model.named_buffers():
        out["bn_after." + k] = b.clone()

    # Conditioning: PyTorch's own float32 gradients against a float64 evaluation of the same
    # network. Reductions over N*H*W and ReLU6 clipping make some tensors ill-conditioned; the
    # Swift test allows sskd twice this distance from PyTorch (both err independently from the
    # exact value), and never less than 1e-4. Exactly-zero gradients (BN biases followed only by
    # conv + train-mode BN) are rounding noise and are skipped here, as in the test.
    # Which float32 summation order a kernel uses decides which side of a ReLU6 kink a value
    # near 0 or 6 lands on, so on MobileNetV2 the distance is luck as much as accuracy: sskd's
    # own kernel variants gave 1e-4, 8e-2 and 0.19 against the exact gradients. The distance is
    # therefore the largest over PyTorch float32 runs that differ only in summation order:
    # the default, channels-last tensors, oneDNN off, and one thread.
    weights = {k[len("weights."):]: v for k, v in out.items() if k.startswith("weights.")}
    m64 = copy.deepcopy(model).double()
    m64.load_state_dict(weights)
    m64.zero_grad()
    m64.train()
    F.cross_entropy(m64(x.double()), y).backward()
    gmax = max(g.abs().max().item() for g in grads.values())

    def distance(g32):
        d = 0.0
        for k, p in m64.named_parameters():
            scale = p.grad.abs().max().item()
            if scale >= 1e-6 * gmax:
                d = max(d, (g32[k].double() - p.grad).abs().max().item() / scale)
        return d

    def float32_grads(channels_last=False):
        m = copy.deepcopy(model)
        m.load_state_dict(weights)
        m.zero_grad()
        m.train()
        xi = x
        if channels_last:
            m = m.to(memory_format=torch.channels_last)
            xi = x.contiguous(memory_format=torch.channels_last)
        F.cross_entropy(m(xi), y).backward()
        return {k: p.grad for k, p in m.named_parameters()}

    variants = {"default": distance(grads), "channels_last": distance(float32_grads(channels_last=True))}
    with torch.backends.mkldnn.flags(enabled=False):
        variants["onednn_off"] = distance(float32_grads())
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if threads > 1 else 2)
    variants["threads_%d" % torch.get_num_threads()] = distance(float32_grads())
    torch.set_num_threads(threads)
    cond = max(variants.values())
    meta["f32_grad_error"] = repr(cond)
    meta["f32_grad_error_variants"] = json.dumps(variants)
    if store_f64:
        # The float64 gradients (rounded to float32), so the test can also measure sskd's own
        # distance from the exact values.
        for k, p in m64.named_parameters():
            out["grad64." + k] = p.grad.float()
        # How ill-conditioned is the problem itself? Perturb every weight by ~1e-7 relative
        # (float32's resolution) and recompute in float64: no float32 implementation can be
        # expected to agree with another closer than this.
        mp = copy.deepcopy(m64)
        mp.zero_grad()
        gen = torch.Generator().manual_seed(99)
        with torch.no_grad():
            for p in mp.parameters():
                p.mul_(1 + 1e-7 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        F.cross_entropy(mp(x.double()), y).backward()
        sens = 0.0
        for (k, p), (_, q) in zip(m64.named_parameters(), mp.named_parameters()):
            scale = p.grad.abs().max().item()
            if scale >= 1e-6 * gmax:
                sens = max(sens, (p.grad - q.grad).abs().max().item() / scale)
        meta["f64_grad_change_for_1e-7_weight_perturbation"] = repr(sens)
        print(f"  {meta['model']}: float64 gradients change by up to {sens:.2e} (relative) when the weights move by 1e-7")
    print(f"  {meta['model']}: PyTorch float32 vs float64 gradients, max relative error {cond:.2e} "
          f"(" + ", ".join(f"{k} {v:.2e}" for k, v in variants.items()) + ")")

    # Optimizer steps on the reference gradients, from the initial weights.
    params0 = {k: out["weights." + k].clone() for k, _ in model.named_parameters()}

    def run(opt_fn, steps):
        ps = {k: v.clone().requires_grad_(True) for k, v in params0.items()}
        opt = opt_fn(list(ps.values()))
        for _ in range(steps):
            for k, p in ps.items():
                p.grad = grads[k].clone()
            opt.step()
        return {k: p.detach().clone() for k, p in ps.items()}

    for k, v in run(lambda ps: torch.optim.Adam(ps, lr=float(meta["adam_lr"]), weight_decay=float(meta["adam_wd"])), 1).items():
        out["adam." + k] = v
    for k, v in run(lambda ps: torch.optim.SGD(ps, lr=float(meta["sgd_lr"]), momentum=float(meta["sgd_momentum"]),
                                               weight_decay=float(meta["sgd_wd"])), 2).items():
        out["sgd." + k] = v
    return {k: v.contiguous() for k, v in out.items()}


def reduced_cases():
    common = {"classes": "4", "dropout": "0.0", "adam_lr": "0.01", "adam_wd": "0.001",
              "sgd_lr": "0.1", "sgd_momentum": "0.9", "sgd_wd": "0.0001", "image": "64", "batch": "2"}
    return {
        "mobilenet_v2": dict(common, model="mobilenet_v2", width_mult="0.1"),
        "efficientnet": dict(common, model="efficientnet", width_mult="0.1", depth_mult="0.34", stochastic_depth="0.0"),
    }


def full_cases():
    common = {"classes": "10", "dropout": "0.0", "adam_lr": "0.001", "adam_wd": "0.0",
              "sgd_lr": "0.01", "sgd_momentum": "0.9", "sgd_wd": "0.0001", "image": "96", "batch": "2"}
    return {
        "full_mobilenet_v2": dict(common, model="mobilenet_v2", width_mult="1.0"),
        "full_efficientnet_b0": dict(common, model="efficientnet", width_mult="1.0", depth_mult="1.0", stochastic_depth="0.0"),
    }


def write_cases(cases, directory, prefix, store_f64=False):
    os.makedirs(directory, exist_ok=True)
    for name, meta in cases.items():
        tensors = parity_case(meta, int(meta["image"]), int(meta["batch"]), seed=1234, store_f64=store_f64)
        path = os.path.join(directory, f"{prefix}{name}.safetensors")
        save_file(tensors, path, metadata=meta)
        print(f"wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB)")


def optim_rules(path):
    """Small tensors, three steps with different gradients, for each optimizer variant."""
    g = torch.Generator().manual_seed(7)
    shapes = [(7, 5), (3,), (2, 3, 2, 2)]
    p0 = [torch.randn(s, generator=g) for s in shapes]
    grads = [[torch.randn(s, generator=g) for s in shapes] for _ in range(3)]
    out = {}
    for i, p in enumerate(p0):
        out[f"init.{i}"] = p
        for t in range(3):
            out[f"grad.{t}.{i}"] = grads[t][i]
    variants = {
        "sgd_plain": lambda ps: torch.optim.SGD(ps, lr=0.1),
        "sgd_momentum": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01),
        "sgd_dampening": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, dampening=0.3),
        "sgd_nesterov": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.001),
        "sgd_maximize": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.5, maximize=True),
        "adam": lambda ps: torch.optim.Adam(ps),
        "adam_wd_amsgrad": lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True),
        "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.01),
        "adamw_amsgrad": lambda ps: torch.optim.AdamW(ps, lr=0.02, weight_decay=0.05, amsgrad=True),
        # Two groups: the first two tensors at lr 0.01 (no decay), the last at lr 0.1 with decay.
        "adam_groups": lambda ps: torch.optim.Adam([{"params": ps[:2], "lr": 0.01},
                                                    {"params": ps[2:], "lr": 0.1, "weight_decay": 0.01}]),
    }
    for name, make in variants.items():
        ps = [p.clone().requires_grad_(True) for p in p0]
        opt = make(ps)
        for t in range(3):
            for i, p in enumerate(ps):
                p.grad = grads[t][i].clone()
            opt.step()
            for i, p in enumerate(ps):
                out[f"{name}.{t}.{i}"] = p.detach().clone()
    save_file({k: v.contiguous() for k, v in out.items()}, path)
    print(f"wrote {path} ({os.path.getsize(path) / 1e3:.1f} kB)")


def schedules(path):
    def seq(make, n=30, lr=0.1, opt="sgd"):
        p = torch.zeros(1, requires_grad=True)
        o = torch.optim.SGD([p], lr=lr, momentum=0.9) if opt == "sgd" else torch.optim.Adam([p], lr=lr)
        s = make(o)
        lrs, moms = [], []
        for _ in range(n):
            g = o.param_groups[0]
            lrs.append(g["lr"])
            moms.append(g["momentum"] if opt == "sgd" else g["betas"][0])
            o.step()
            s.step()
        return {"lr": lrs, "momentum": moms}

    S = torch.optim.lr_scheduler
    out = {
        "step": seq(lambda o: S.StepLR(o, step_size=7, gamma=0.5)),
        "multistep": seq(lambda o: S.MultiStepLR(o, milestones=[5, 12, 20], gamma=0.3)),
        "exponential": seq(lambda o: S.ExponentialLR(o, gamma=0.9)),
        "cosine": seq(lambda o: S.CosineAnnealingLR(o, T_max=30, eta_min=0.001)),
        "cosine_warmup": seq(lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.25, total_iters=5),
                                                          S.CosineAnnealingLR(o, T_max=25, eta_min=0.0)], milestones=[5])),
        "onecycle_sgd": seq(lambda o: S.OneCycleLR(o, max_lr=0.5, total_steps=30)),
        "onecycle_adam_linear": seq(lambda o: S.OneCycleLR(o, max_lr=0.01, total_steps=30, pct_start=0.25,
                                                           anneal_strategy="linear"), opt="adam"),
        "onecycle_three_phase": seq(lambda o: S.OneCycleLR(o, max_lr=0.2, total_steps=30, three_phase=True)),
    }
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {path}")


def torchvision_reference(path):
    ref = {"models": {}}
    builders = {"mobilenet_v2": lambda: mobilenet_v2(num_classes=10)}
    for i, fn in enumerate([efficientnet_b0, efficientnet_b1, efficientnet_b2, efficientnet_b3,
                            efficientnet_b4, efficientnet_b5, efficientnet_b6, efficientnet_b7]):
        builders[f"efficientnet_b{i}"] = (lambda fn=fn: fn(num_classes=10))
    builders["mobilenet_v2_w0.35_c1000"] = lambda: mobilenet_v2(width_mult=0.35)
    builders["mobilenet_v2_w1.4_c1000"] = lambda: mobilenet_v2(width_mult=1.4)
    for name, make in builders.items():
        torch.manual_seed(0)
        m = make()
        entry = {"parameters": sum(p.numel() for p in m.parameters())}
        if name in ("mobilenet_v2", "efficientnet_b0"):
            entry["macs_96"] = macs(m, 96)
            entry["state_dict"] = [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in m.state_dict().items()]
            entry["repr"] = repr(m)
        ref["models"][name] = entry
    for name, meta in reduced_cases().items():
        ref["models"]["reduced_" + name] = {"repr": repr(build(meta)),
                                            "parameters": sum(p.numel() for p in build(meta).parameters())}
    with open(path, "w") as f:
        json.dump(ref, f, indent=0)
    print(f"wrote {path} ({os.path.getsize(path) / 1e3:.1f} kB)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", nargs="?", default="fixtures", choices=["fixtures", "full"])
    ap.add_argument("--keep", help="full: write the fixtures here instead of a temporary directory")
    args = ap.parse_args()
    if args.command == "fixtures":
        optim_dir = os.path.join(ROOT, "Tests", "SSKDOptimTests", "Fixtures")
        nn_dir = os.path.join(ROOT, "Tests", "SSKDNNTests", "Fixtures")
        write_cases(reduced_cases(), optim_dir, "parity_")
        optim_rules(os.path.join(optim_dir, "optim_rules.safetensors"))
        schedules(os.path.join(optim_dir, "schedules.json"))
        os.makedirs(nn_dir, exist_ok=True)
        torchvision_reference(os.path.join(nn_dir, "torchvision_reference.json"))
        return 0
    directory = args.keep or tempfile.mkdtemp(prefix="sskd-full-parity-")
    write_cases(full_cases(), directory, "", store_f64=True)
    env = dict(os.environ, SSKD_FULL_PARITY_DIR=directory)
    cmd = ["swift", "test", "--filter", "FullParity"]
    print("running:", " ".join(cmd), f"(SSKD_FULL_PARITY_DIR={directory})", flush=True)
    return subprocess.call(cmd, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
