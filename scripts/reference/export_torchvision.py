#!/usr/bin/env python3
"""Export a torchvision MobileNetV2 / EfficientNet-B0..B7 state dict to safetensors for sskd.

The keys are torchvision's own (`features.0.0.weight`, ..., `classifier.1.bias`), which are
exactly sskd's, so `model.load(path)` (strict) or `model.load(path, strict: false)` reads the
file directly. BatchNorm's `num_batches_tracked` stays int64, as in PyTorch.

Weights (never downloaded):
  --weights FILE    a local ImageNet checkpoint: a .pth/.pt state dict (or a dict with a
                    'state_dict' / 'model' entry, or a pickled nn.Module) or a .safetensors file.
  --cached          torchvision's ImageNet weights if they are already in the torch hub cache
                    ($TORCH_HOME/hub/checkpoints, the file name torchvision would download);
                    an error naming the expected path otherwise.
  (neither)         random initialisation with torchvision's scheme, seeded by --seed.

Head: --classes N builds the model with N outputs. With ImageNet weights (1000 classes) and
N != 1000 the pretrained classifier is dropped and `classifier.1` is a freshly initialised
Linear(last_channel -> N), as the paper does for its teacher (Linear(1280 -> 10)).

Examples
  python3 scripts/reference/export_torchvision.py mobilenet_v2 --weights mobilenet_v2-b0353104.pth --classes 10 -o teacher.safetensors
  python3 scripts/reference/export_torchvision.py mobilenet_v2 --cached -o mobilenet_v2-imagenet.safetensors
  python3 scripts/reference/export_torchvision.py efficientnet_b0 --classes 10 --seed 0 -o student-init.safetensors
"""
import argparse, os, sys

import torch
import torch.nn as nn
import torchvision
from torchvision import models as tvm

ARCHS = ["mobilenet_v2"] + [f"efficientnet_b{i}" for i in range(8)]
WEIGHTS_ENUM = {
    "mobilenet_v2": "MobileNet_V2_Weights",
    **{f"efficientnet_b{i}": f"EfficientNet_B{i}_Weights" for i in range(8)},
}


def fail(msg):
    print(f"export_torchvision: {msg}", file=sys.stderr)
    sys.exit(2)


def read_checkpoint(path):
    if not os.path.isfile(path):
        fail(f"{path}: file not found")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        return load_file(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - report any unpickling problem with the file name
        fail(f"{path}: cannot read checkpoint ({e})")
    if isinstance(obj, nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            # Checkpoints saved from DataParallel carry a "module." prefix.
            return {k[7:] if k.startswith("module.") else k: v for k, v in obj.items()}
    fail(f"{path}: not a state dict (a mapping of names to tensors)")


def cached_weights_path(arch):
    enum = getattr(tvm, WEIGHTS_ENUM[arch])
    url = enum.DEFAULT.url
    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
    if not os.path.isfile(path):
        fail(f"--cached: {path} is not in the torch hub cache (this script never downloads; "
             f"fetch {url} yourself and pass --weights FILE)")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("arch", choices=ARCHS)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--weights", metavar="FILE", help="local ImageNet checkpoint (.pth/.pt/.safetensors)")
    src.add_argument("--cached", action="store_true", help="torchvision's ImageNet weights from the torch hub cache")
    ap.add_argument("--classes", type=int, default=1000, help="classifier outputs (default 1000)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random initialisation (default 0)")
    ap.add_argument("-o", "--out", required=True, help="output .safetensors path")
    args = ap.parse_args()
    if args.classes <= 0:
        fail(f"--classes must be positive, got {args.classes}")

    from safetensors.torch import save_file

    torch.manual_seed(args.seed)
    builder = getattr(tvm, args.arch)
    source = f"random init (torchvision scheme, torch.manual_seed({args.seed}))"
    ckpt = args.weights or (cached_weights_path(args.arch) if args.cached else None)
    if ckpt:
        sd = read_checkpoint(ckpt)
        model = builder(num_classes=1000)
        missing, unexpected = model.load_state_dict(sd, strict=False)
        if missing or unexpected:
            fail(f"{ckpt}: does not match torchvision {args.arch}: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                 f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
        source = f"pretrained weights from {os.path.basename(ckpt)}"
        if args.classes != 1000:
            head = model.classifier[1]
            model.classifier[1] = nn.Linear(head.in_features, args.classes)
            # The model's own scheme for a fresh head (MobileNetV2: N(0, 0.01); EfficientNet: U(+-1/sqrt(out))).
            if args.arch == "mobilenet_v2":
                nn.init.normal_(model.classifier[1].weight, 0, 0.01)
            else:
                r = 1.0 / (args.classes ** 0.5)
                nn.init.uniform_(model.classifier[1].weight, -r, r)
            nn.init.zeros_(model.classifier[1].bias)
            source += f", classifier.1 replaced by Linear({head.in_features} -> {args.classes}) (random, seed {args.seed})"
    else:
        model = builder(num_classes=args.classes)
        print(f"export_torchvision: no --weights/--cached given: RANDOM initialisation", file=sys.stderr)

    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    meta = {"arch": args.arch, "classes": str(args.classes), "source": source,
            "torchvision": torchvision.__version__, "format": "torchvision state_dict"}
    tmp = args.out + ".tmp"
    save_file(tensors, tmp, metadata=meta)
    os.replace(tmp, args.out)
    n = sum(v.numel() for k, v in model.named_parameters())
    print(f"wrote {args.out}: {args.arch}, {args.classes} classes, {n:,} parameters, {len(tensors)} tensors; {source}")


if __name__ == "__main__":
    main()
