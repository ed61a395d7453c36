"""Shared helpers for the PyTorch reference scripts (scripts/reference/*.py).

Nothing here is needed by sskd itself or by CI; these scripts exist to measure the paper's
published PyTorch protocol (paper_torch.py) and PyTorch's CPU training speed (bench_train.py)
on the same machine as sskd.

Contents:
  data readers  : read_stl10(root, split) and read_fashion_mnist(dir, split), numpy only.
                  Images come back as uint8 arrays, N x H x W x C (RGB) or N x H x W (grayscale);
                  labels as int64 arrays in 0..9.
  subsets       : stratified_subset(), read_indices(), write_indices()
                  (index files: one zero-based index per line, the format sskd writes).
  models        : teacher_mobilenet_v2(), student_efficientnet_b0() built the way the paper's
                  script builds them (torchvision architecture, classifier[1] replaced by
                  Linear(1280 -> 10)), with an optional 1-channel stem for grayscale input;
                  the teacher optionally as sskd's mobilenet_v2_small_input variant (stride-1
                  stem, and with strides=2 a stride-1 features.2 depthwise conv).
  distillation  : kd_loss() and paper_alpha() exactly as PAPER.md states them.
  schedules     : round_half_away() (Swift's .rounded(), for batch counts sskd derives).
  process       : peak_rss_mb() from getrusage.
"""

from __future__ import annotations

import gzip
import math
import os
import resource
import struct
import sys

import numpy as np

STL10_SIDE = 96
STL10_IMAGE_BYTES = 3 * STL10_SIDE * STL10_SIDE  # 27648 bytes per image
NUM_CLASSES = 10
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


class DataError(Exception):
    """A dataset file is missing or malformed; the message names the file and what is wrong."""


# ----------------------------------------------------------------------------------------------
# STL-10 binary format (stl10_binary/)
#
#   *_X.bin : uint8, images back to back, 3 x 96 x 96 each; plane by plane (R, G, B), each
#             plane column-major: the pixel at row r, column c is byte c*96 + r of its plane.
#   *_y.bin : uint8 labels 1..10, one per image.


def _read_bytes(path: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    return np.fromfile(path, dtype=np.uint8)


def read_stl10(root: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads STL-10's labelled `train` or `test` split from `root` (the stl10_binary folder).

    Returns (images N x 96 x 96 x 3 uint8 RGB, labels N int64 in 0..9).
    """
    if split not in ("train", "test"):
        raise DataError(f"STL-10 split must be 'train' or 'test', got {split!r}")
    x_path = os.path.join(root, f"{split}_X.bin")
    y_path = os.path.join(root, f"{split}_y.bin")
    raw = _read_bytes(x_path)
    if raw.size == 0 or raw.size % STL10_IMAGE_BYTES != 0:
        raise DataError(f"{x_path}: {raw.size} bytes is not a whole number of "
                        f"{STL10_IMAGE_BYTES}-byte 3x96x96 images")
    n = raw.size // STL10_IMAGE_BYTES
    labels = _read_bytes(y_path)
    if labels.size != n:
        raise DataError(f"{y_path}: {labels.size} labels for {n} images in {x_path}")
    if labels.min() < 1 or labels.max() > NUM_CLASSES:
        raise DataError(f"{y_path}: labels must be 1..{NUM_CLASSES}, "
                        f"found {labels.min()}..{labels.max()}")
    # (N, plane, column, row) -> (N, row, column, plane)
    images = raw.reshape(n, 3, STL10_SIDE, STL10_SIDE).transpose(0, 3, 2, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64) - 1


# ----------------------------------------------------------------------------------------------
# Fashion-MNIST (IDX format, gzip; Debian package dataset-fashion-mnist)
#
#   images: big-endian header magic 0x00000803 (2051), count, rows, cols; then uint8 pixels.
#   labels: big-endian header magic 0x00000801 (2049), count; then uint8 labels 0..9.

_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _read_gzip(path: str) -> bytes:
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found (Debian: apt-get install dataset-fashion-mnist)")
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable gzip file ({e})") from e


def read_fashion_mnist(directory: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads Fashion-MNIST `train` (60000) or `test` (10000) from the IDX .gz files.

    Returns (images N x 28 x 28 uint8 grayscale, labels N int64 in 0..9).
    """
    if split not in _FASHION_FILES:
        raise DataError(f"Fashion-MNIST split must be 'train' or 'test', got {split!r}")
    img_name, lab_name = _FASHION_FILES[split]
    img_path, lab_path = os.path.join(directory, img_name), os.path.join(directory, lab_name)

    data = _read_gzip(img_path)
    if len(data) < 16:
        raise DataError(f"{img_path}: {len(data)} bytes is shorter than the 16-byte IDX header")
    magic, n, rows, cols = struct.unpack(">IIII", data[:16])
    if magic != 2051:
        raise DataError(f"{img_path}: IDX image magic must be 2051, got {magic}")
    if len(data) != 16 + n * rows * cols:
        raise DataError(f"{img_path}: header says {n}x{rows}x{cols} but holds "
                        f"{len(data) - 16} pixel bytes")
    images = np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, rows, cols).copy()

    data = _read_gzip(lab_path)
    if len(data) < 8:
        raise DataError(f"{lab_path}: {len(data)} bytes is shorter than the 8-byte IDX header")
    magic, m = struct.unpack(">II", data[:8])
    if magic != 2049:
        raise DataError(f"{lab_path}: IDX label magic must be 2049, got {magic}")
    if m != n or len(data) != 8 + m:
        raise DataError(f"{lab_path}: {len(data) - 8} labels (header {m}) for {n} images")
    labels = np.frombuffer(data, dtype=np.uint8, offset=8).astype(np.int64)
    if labels.max() >= NUM_CLASSES:
        raise DataError(f"{lab_path}: labels must be 0..{NUM_CLASSES - 1}, found {labels.max()}")
    return images, labels


# ----------------------------------------------------------------------------------------------
# Subsets and index files


def stratified_subset(labels: np.ndarray, pool: np.ndarray, count: int, seed: int,
                      what: str = "subset") -> np.ndarray:
    """`count` indices drawn from `pool` (indices into `labels`), as equal per class as possible.

    Each class gets count // 10 images; the remainder goes one each to the lowest class ids.
    Within a class, indices come from a numpy PCG64(seed) permutation of that class's pool
    members. Returns the chosen indices sorted ascending.
    """
    pool = np.asarray(pool, dtype=np.int64)
    rng = np.random.Generator(np.random.PCG64(seed))
    base, extra = divmod(count, NUM_CLASSES)
    chosen = []
    for c in range(NUM_CLASSES):
        want = base + (1 if c < extra else 0)
        members = pool[labels[pool] == c]
        if want > members.size:
            raise DataError(f"{what}: class {c} needs {want} images but only {members.size} "
                            f"are available")
        chosen.append(members[rng.permutation(members.size)[:want]])
    return np.sort(np.concatenate(chosen))


def read_indices(path: str, limit: int, what: str) -> np.ndarray:
    """Reads an index file: one zero-based index per line (blank lines and '#' comments ignored).

    Every index must be in 0..<limit and appear once; errors name the file and line.
    """
    if not os.path.isfile(path):
        raise DataError(f"{what} index file {path}: not found")
    out, seen = [], set()
    with open(path, "r", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                i = int(text)
            except ValueError:
                raise DataError(f"{path}:{lineno}: {text!r} is not an integer index") from None
            if not 0 <= i < limit:
                raise DataError(f"{path}:{lineno}: index {i} is outside 0..<{limit}")
            if i in seen:
                raise DataError(f"{path}:{lineno}: index {i} appears twice")
            seen.add(i)
            out.append(i)
    if not out:
        raise DataError(f"{what} index file {path}: no indices")
    return np.asarray(out, dtype=np.int64)


def write_indices(path: str, indices: np.ndarray) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(f"{int(i)}\n" for i in indices))


def class_counts(labels: np.ndarray, indices: np.ndarray) -> list[int]:
    return np.bincount(labels[indices], minlength=NUM_CLASSES).tolist()


# ----------------------------------------------------------------------------------------------
# Models (torch imported lazily so the data helpers stay importable without it)


def _grayscale_stem(model, pretrained: bool) -> None:
    """Replaces the first conv (3 -> 32, 3x3, pad 1, no bias; stride 2, or 1 in the teacher's
    small-input variant) by a 1-input-channel one with the same kernel, stride and padding.

    Randomly initialised models get torchvision's own conv init (kaiming normal, fan_out);
    pretrained ones keep their filters summed over R, G, B (a gray image is R = G = B, so the
    summed filter gives the same response the RGB filter gave to that image).
    """
    import torch
    from torch import nn

    old = model.features[0][0]
    new = nn.Conv2d(1, old.out_channels, kernel_size=old.kernel_size, stride=old.stride,
                    padding=old.padding, bias=False)
    if pretrained:
        with torch.no_grad():
            new.weight.copy_(old.weight.sum(dim=1, keepdim=True))
    else:
        nn.init.kaiming_normal_(new.weight, mode="fan_out")
    model.features[0][0] = new


def _load_state_dict(path: str):
    import torch

    if not os.path.isfile(path):
        raise DataError(f"weights file {path}: not found")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


def _small_input_conv(in_channels: int, out_channels: int, groups: int = 1):
    """A 3x3, stride-1, pad-1, bias-free conv with torchvision's conv init (kaiming normal,
    fan_out; PyTorch's fan out of a [out, in/groups, 3, 3] weight is out * 9 whatever the
    groups), as sskd's mobilenet_v2_small_input plugin builds its replacements."""
    from torch import nn

    conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, groups=groups,
                     bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    return conv


def teacher_mobilenet_v2(in_channels: int = 3, imagenet_weights: str | None = None,
                         small_input: bool = False, strides: int = 1):
    """MobileNetV2 (torchvision), ImageNet weights from a local file if given, classifier[1]
    replaced by Linear(1280 -> 10) as in the paper's script.

    small_input=True is sskd's model_variants.mobilenet_v2_small_input (the CIFAR-style change
    for 28x28 / 32x32 images): the stem conv features[0][0] gets stride 1 instead of 2, and with
    strides=2 the depthwise conv of the first stride-2 block (features[2].conv[1][0], 96 -> 96)
    gets stride 1 too; a 28x28 input then ends on 2x2 (strides 1) or 4x4 (strides 2) instead of
    1x1. The replacements are built right after the model, before any weights are loaded: they
    have the shapes of the convs they replace, so ImageNet weights (and state dicts saved from
    this variant) load into them unchanged.
    """
    from torch import nn
    from torchvision.models import mobilenet_v2

    if strides not in (1, 2):
        raise ValueError(f"strides must be 1 or 2, got {strides}")
    model = mobilenet_v2(weights=None)  # 1000 classes: the ImageNet checkpoint's shape
    if small_input:
        # With ImageNet weights the stem stays 3-channel here so the checkpoint loads; the
        # grayscale stem below then sums its filters (and keeps the stride 1).
        stem_in = 3 if imagenet_weights else in_channels
        model.features[0][0] = _small_input_conv(stem_in, 32)
        if strides == 2:
            model.features[2].conv[1][0] = _small_input_conv(96, 96, groups=96)
    if imagenet_weights:
        model.load_state_dict(_load_state_dict(imagenet_weights))
    model.classifier[1] = nn.Linear(model.last_channel, NUM_CLASSES)
    if in_channels != model.features[0][0].in_channels:
        _grayscale_stem(model, pretrained=bool(imagenet_weights))
    return model


def student_efficientnet_b0(in_channels: int = 3):
    """EfficientNet-B0 (torchvision defaults: stochastic depth 0.2, classifier dropout 0.2),
    random init, classifier[1] replaced by Linear(1280 -> 10)."""
    from torch import nn
    from torchvision.models import efficientnet_b0

    model = efficientnet_b0(weights=None)
    model.classifier[1] = nn.Linear(model.classifier[1].in_features, NUM_CLASSES)
    if in_channels == 1:
        _grayscale_stem(model, pretrained=False)
    return model


# ----------------------------------------------------------------------------------------------
# Distillation (PAPER.md)


def kd_loss(student_logits, teacher_logits, temperature: float):
    """KL(softmax(t/T) || log_softmax(s/T)), batch-mean reduction, times T^2."""
    import torch.nn.functional as F

    T = temperature
    return F.kl_div(F.log_softmax(student_logits / T, dim=1),
                    F.softmax(teacher_logits / T, dim=1),
                    reduction="batchmean") * (T * T)


def paper_alpha(epoch: int) -> float:
    """Alpha by zero-based epoch: 0 (CE alone) before epoch 5, then min(0.1 + 0.05 (e - 5), 0.9)."""
    if epoch < 5:
        return 0.0
    return min(0.1 + 0.05 * (epoch - 5), 0.9)


def round_half_away(x: float) -> int:
    """x rounded to the nearest integer, halves away from zero: Swift's `.rounded()`, which sskd
    uses for the unlabelled batch count (Python's round() sends halves to even: round(2.5) == 2
    where sskd gets 3)."""
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


# ----------------------------------------------------------------------------------------------
# Process


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports ru_maxrss in KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024.0 if sys.platform.startswith("linux") else kib / (1024.0 * 1024.0)


def current_rss_mb() -> float:
    """Current resident set size in MiB (from /proc/self/statm; 0 where unavailable)."""
    try:
        with open("/proc/self/statm", "r") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / (1024.0 * 1024.0)
    except (OSError, ValueError, IndexError):
        return 0.0
