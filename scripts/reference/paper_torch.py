#!/usr/bin/env python3
"""The paper's SS-KD protocol in PyTorch: a faithful mirror of its published script (PAPER.md).

Three phases, each timed:
  teacher : MobileNetV2 (torchvision), ImageNet weights from a local file when given (otherwise
            random init, said loudly), classifier Linear(1280 -> 10); cross-entropy, Adam lr 5e-4,
            25 epochs, batch 32, no early stopping.
  alone   : EfficientNet-B0 (stochastic depth 0.2, dropout 0.2), random init, classifier
            Linear(1280 -> 10); cross-entropy, Adam lr 1e-3, batch 32, at most 30 epochs, early
            stopping (patience 5) on the selection split, best weights restored.
  kd      : the same student (same init seed) trained with
            loss = alpha(e) * KL(softmax(t/T) || log_softmax(s/T)) * T^2 + (1 - alpha(e)) * CE,
            T = 3, alpha(e) = 0 for e < 5 else min(0.1 + 0.05 (e - 5), 0.9), teacher in eval mode
            without gradient on the same augmented batch; same early stopping.

Datasets: STL-10 (binary stl10_binary/ folder, read with numpy) or Fashion-MNIST (the Debian
package's IDX .gz files; 28x28 grayscale, both models get a 1-input-channel first conv).

Selection split (`--select`): `test` is what the published script does (early stopping looks at
the test set, so the reported figure is optimistic); `val` holds out a stratified validation split
of the labelled train data, disjoint from the student's samples, and reports test accuracy of the
weights chosen on it.

Writes to --out: metrics.jsonl (a row per epoch per phase), summary.json, table.md, and the index
files actually used (samples.txt, teacher.txt, val.txt; one zero-based index per line, the format
sskd reads and writes).

Example (quick smoke run, seconds):
  python3 scripts/reference/paper_torch.py --dataset fashion-mnist --samples 500 \\
      --epochs-teacher 2 --epochs-student 2 --limit-batches 5 --threads 1 --out /tmp/pt-smoke
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (sibling helper module)

PHASES = ("teacher", "alone", "kd")


# ----------------------------------------------------------------------------------------------
# Command line


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="The SS-KD paper's PyTorch protocol (teacher, student alone, SS-KD student).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=["stl10", "fashion-mnist"], required=True)
    g.add_argument("--root", default=None,
                   help="stl10: the stl10_binary folder (required); fashion-mnist: folder of the "
                        "IDX .gz files (default /usr/share/datasets/fashion-mnist)")
    g.add_argument("--samples", type=int, default=5000,
                   help="stratified labelled training subset size for the student")
    g.add_argument("--seed", type=int, default=0,
                   help="subset draw (numpy PCG64), weight init, shuffling and augmentation")
    g.add_argument("--indices", default=None,
                   help="file of the student's training indices (one zero-based index per line, "
                        "as sskd writes them); overrides --samples/--seed for the draw")
    g.add_argument("--teacher-indices", default=None,
                   help="file of the teacher's training indices; overrides --teacher-data")
    g.add_argument("--teacher-data", choices=["subset", "outside"], default=None,
                   help="teacher trains on the student's subset, or on every labelled train image "
                        "outside it (and outside the validation split). Default: subset for "
                        "stl10 (the paper), outside for fashion-mnist (stands in for ImageNet "
                        "pretraining, as the sskd quickstart does)")
    g.add_argument("--select", choices=["test", "val"], default="test",
                   help="early-stopping split: test (the published script) or a held-out "
                        "validation split of the labelled train data")
    g.add_argument("--val-size", type=int, default=1000,
                   help="--select val: stratified validation split size (drawn before the samples, "
                        "disjoint from them)")
    g.add_argument("--val-indices", default=None,
                   help="--select val: file of the validation indices (one per line)")
    g.add_argument("--size", type=int, default=None,
                   help="input side: resize target and random-crop size (default 96 for stl10, "
                        "28 for fashion-mnist)")

    g = p.add_argument_group("models and training")
    g.add_argument("--teacher-weights", default=None,
                   help="local ImageNet MobileNetV2 state dict (.pth or .safetensors, 1000 "
                        "classes). Without it the teacher starts from random init")
    g.add_argument("--load-teacher", default=None,
                   help="a fine-tuned 10-class teacher state dict saved by --save-teacher: skip "
                        "the teacher phase and use it")
    g.add_argument("--save-teacher", default=None, help="write the fine-tuned teacher here")
    g.add_argument("--phases", default="teacher,alone,kd",
                   help="comma list of phases to run: teacher, alone, kd")
    g.add_argument("--epochs-teacher", type=int, default=25)
    g.add_argument("--epochs-student", type=int, default=30, help="maximum student epochs")
    g.add_argument("--batch", type=int, default=32)
    g.add_argument("--eval-batch", type=int, default=256,
                   help="evaluation batch (eval mode: does not change the results)")
    g.add_argument("--lr-teacher", type=float, default=5e-4)
    g.add_argument("--teacher-schedule", choices=["constant", "onecycle"], default="constant",
                   help="teacher LR: constant (the paper) or one-cycle up to --lr-teacher, stepped "
                        "per batch (the sskd quickstart's short pre-training from scratch)")
    g.add_argument("--teacher-no-augment", action="store_true",
                   help="train the teacher on un-augmented images (the sskd quickstart's default)")
    g.add_argument("--lr-student", type=float, default=1e-3)
    g.add_argument("--temperature", type=float, default=3.0)
    g.add_argument("--patience", type=int, default=5)
    g.add_argument("--teacher-eval-each-epoch", action="store_true",
                   help="also evaluate the teacher on the selection split after every epoch "
                        "(logging only; the teacher has no early stopping)")

    g = p.add_argument_group("run")
    g.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    g.add_argument("--limit-batches", type=int, default=None,
                   help="smoke runs: at most this many training batches per epoch")
    g.add_argument("--limit-eval-batches", type=int, default=None,
                   help="smoke runs: at most this many evaluation batches (default: "
                        "--limit-batches)")
    g.add_argument("--out", default=None,
                   help="output folder (default runs/paper_torch-<dataset>-<samples>-s<seed>)")
    a = p.parse_args(argv)

    if a.dataset == "stl10" and not a.root:
        p.error("--dataset stl10 needs --root (the stl10_binary folder)")
    if a.root is None:
        a.root = common.FASHION_MNIST_DIR
    if a.size is None:
        a.size = 96 if a.dataset == "stl10" else 28
    if a.teacher_data is None:
        a.teacher_data = "subset" if a.dataset == "stl10" else "outside"
    a.phases = [s.strip() for s in a.phases.split(",") if s.strip()]
    bad = [s for s in a.phases if s not in PHASES]
    if bad or not a.phases:
        p.error(f"--phases: unknown phase(s) {bad}; choose from {', '.join(PHASES)}")
    if "kd" in a.phases and "teacher" not in a.phases and not a.load_teacher:
        p.error("--phases kd without teacher needs --load-teacher")
    for name in ("samples", "batch", "eval_batch", "size", "val_size"):
        if getattr(a, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    for name in ("epochs_teacher", "epochs_student", "patience"):
        if getattr(a, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0")
    if a.limit_eval_batches is None:
        a.limit_eval_batches = a.limit_batches
    if a.out is None:
        a.out = os.path.join("runs", f"paper_torch-{a.dataset}-{a.samples}-s{a.seed}")
    return a


# ----------------------------------------------------------------------------------------------
# Data


def load_dataset(a):
    if a.dataset == "stl10":
        train = common.read_stl10(a.root, "train")
        test = common.read_stl10(a.root, "test")
    else:
        train = common.read_fashion_mnist(a.root, "train")
        test = common.read_fashion_mnist(a.root, "test")
    return train, test


def choose_indices(a, train_labels):
    """Returns (samples, val or None, teacher indices), all into the labelled train split."""
    n = train_labels.size
    everything = np.arange(n, dtype=np.int64)

    given = common.read_indices(a.indices, n, "samples") if a.indices else None
    val = None
    if a.select == "val":
        if a.val_indices:
            val = common.read_indices(a.val_indices, n, "validation")
        else:
            # Drawn before the samples (its own seed stream) so the samples can avoid it; from
            # outside the given samples when an index file fixes them.
            pool = everything if given is None else np.setdiff1d(everything, given)
            val = common.stratified_subset(train_labels, pool, a.val_size,
                                           seed=a.seed + 1_000_003, what="validation split")

    if given is not None:
        samples = given
    else:
        pool = everything if val is None else np.setdiff1d(everything, val)
        if a.samples > pool.size:
            raise common.DataError(
                f"--samples {a.samples} exceeds the {pool.size} labelled train images available"
                + ("" if val is None else f" outside the {val.size}-image validation split"))
        samples = common.stratified_subset(train_labels, pool, a.samples, seed=a.seed,
                                           what="samples")
    if val is not None:
        overlap = np.intersect1d(samples, val)
        if overlap.size:
            raise common.DataError(f"samples and validation split share {overlap.size} images "
                                   f"(first: {overlap[0]}); they must be disjoint")

    if a.teacher_indices:
        teacher = common.read_indices(a.teacher_indices, n, "teacher")
    elif a.teacher_data == "subset":
        teacher = samples
    else:
        excluded = samples if val is None else np.union1d(samples, val)
        teacher = np.setdiff1d(everything, excluded)
        if teacher.size == 0:
            raise common.DataError("--teacher-data outside: no labelled train images are left "
                                   "outside the samples and validation split")
    if val is not None:
        leak = np.intersect1d(teacher, val)
        if leak.size:
            print(f"WARNING: the teacher's training images include {leak.size} validation "
                  f"images", flush=True)
    return samples, val, teacher


def make_transforms(a, grayscale: bool):
    from torchvision import transforms as T

    if grayscale:
        # Saturation has no meaning for one channel (torchvision leaves gray images unchanged
        # by it), so the grayscale jitter is brightness and contrast only.
        jitter = T.ColorJitter(brightness=0.2, contrast=0.2)
    else:
        jitter = T.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2)
    train = T.Compose([
        T.Resize((a.size, a.size)),
        T.RandomHorizontalFlip(),
        T.RandomRotation(10),
        T.RandomCrop(a.size, padding=4),
        jitter,
        T.ToTensor(),  # uint8 HWC -> float CHW in [0, 1]; no mean/std normalisation
    ])
    test = T.Compose([T.Resize((a.size, a.size)), T.ToTensor()])
    return train, test


def make_dataset(images, labels, indices, transform):
    """A map-style dataset over rows `indices` of uint8 `images`, giving PIL images to the
    transform the way torchvision's STL10 / FashionMNIST datasets do."""
    import torch
    from PIL import Image

    class ArrayDataset(torch.utils.data.Dataset):
        def __len__(self):
            return len(indices)

        def __getitem__(self, k):
            i = int(indices[k])
            img = Image.fromarray(images[i])  # uint8 HxW -> mode "L", HxWx3 -> "RGB"
            return transform(img), int(labels[i])

    return ArrayDataset()


# ----------------------------------------------------------------------------------------------
# Training and evaluation


def evaluate(model, loader, limit=None):
    """(top-1 accuracy in %, mean cross-entropy) of `model` in eval mode over `loader`."""
    import torch
    import torch.nn.functional as F

    model.eval()
    correct, total, loss_sum = 0, 0, 0.0
    with torch.no_grad():
        for b, (x, y) in enumerate(loader):
            if limit is not None and b >= limit:
                break
            logits = model(x)
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            total += y.numel()
    return 100.0 * correct / max(total, 1), loss_sum / max(total, 1)


def train_epoch(model, loader, optimizer, limit=None, teacher=None, alpha=0.0, temperature=3.0,
                scheduler=None):
    """One epoch. With a teacher and alpha > 0 the loss is the paper's blend, else CE alone.

    Returns a dict of means over the epoch's images: loss, ce, kd, acc (top-1 %), images, seconds.
    """
    import torch
    import torch.nn.functional as F

    model.train()
    if teacher is not None:
        teacher.eval()
    sums = {"loss": 0.0, "ce": 0.0, "kd": 0.0}
    correct, seen = 0, 0
    t0 = time.perf_counter()
    for b, (x, y) in enumerate(loader):
        if limit is not None and b >= limit:
            break
        logits = model(x)
        ce = F.cross_entropy(logits, y)
        if teacher is not None and alpha > 0:
            with torch.no_grad():
                t_logits = teacher(x)
            kd = common.kd_loss(logits, t_logits, temperature)
            loss = alpha * kd + (1.0 - alpha) * ce
            sums["kd"] += kd.item() * y.numel()
        else:
            loss = ce
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        sums["loss"] += loss.item() * y.numel()
        sums["ce"] += ce.item() * y.numel()
        correct += (logits.argmax(1) == y).sum().item()
        seen += y.numel()
    seconds = time.perf_counter() - t0
    out = {k: v / max(seen, 1) for k, v in sums.items()}
    out.update(acc=100.0 * correct / max(seen, 1), images=seen, seconds=seconds)
    return out


class MetricsLog:
    def __init__(self, path):
        self.f = open(path, "w", encoding="utf-8")

    def write(self, row):
        self.f.write(json.dumps(row) + "\n")
        self.f.flush()

    def close(self):
        self.f.close()


def run_teacher(a, teacher, loader, select_loader, log):
    import torch

    opt = torch.optim.Adam(teacher.parameters(), lr=a.lr_teacher)
    sched = None
    if a.teacher_schedule == "onecycle":
        per_epoch = len(loader) if a.limit_batches is None else min(a.limit_batches, len(loader))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr_teacher,
                                                    total_steps=a.epochs_teacher * per_epoch)
    for epoch in range(a.epochs_teacher):
        t0 = time.perf_counter()
        lr = opt.param_groups[0]["lr"]
        tr = train_epoch(teacher, loader, opt, limit=a.limit_batches, scheduler=sched)
        row = {"phase": "teacher", "epoch": epoch, "lr": lr, "alpha": None,
               "train_loss": tr["loss"], "train_ce": tr["ce"], "train_acc": tr["acc"],
               "train_images": tr["images"], "train_seconds": tr["seconds"],
               "images_per_s": tr["images"] / max(tr["seconds"], 1e-9)}
        msg = ""
        if a.teacher_eval_each_epoch:
            acc, loss = evaluate(teacher, select_loader, a.limit_eval_batches)
            row.update(select_split=a.select, select_acc=acc, select_loss=loss)
            msg = f"  {a.select} acc {acc:6.2f}%"
        row["seconds"] = time.perf_counter() - t0
        log.write(row)
        print(f"[teacher] epoch {epoch + 1:2d}/{a.epochs_teacher}  loss {tr['loss']:.4f}  "
              f"train acc {tr['acc']:6.2f}%{msg}  {row['images_per_s']:.1f} img/s  "
              f"{row['seconds']:.1f}s", flush=True)


def run_student(a, phase, student, loader, select_loader, log, teacher=None):
    """Trains the student with early stopping on the selection split; restores the best weights.

    Returns (best selection accuracy, best epoch (zero-based), epochs run).
    """
    import torch

    opt = torch.optim.Adam(student.parameters(), lr=a.lr_student)
    best_acc, best_epoch, best_state, stale = -1.0, -1, None, 0
    epochs_run = 0
    for epoch in range(a.epochs_student):
        t0 = time.perf_counter()
        alpha = common.paper_alpha(epoch) if teacher is not None else 0.0
        tr = train_epoch(student, loader, opt, limit=a.limit_batches, teacher=teacher,
                         alpha=alpha, temperature=a.temperature)
        acc, loss = evaluate(student, select_loader, a.limit_eval_batches)
        epochs_run = epoch + 1
        improved = acc > best_acc
        if improved:
            best_acc, best_epoch, stale = acc, epoch, 0
            best_state = {k: v.detach().clone() for k, v in student.state_dict().items()}
        else:
            stale += 1
        row = {"phase": phase, "epoch": epoch, "lr": a.lr_student, "alpha": alpha,
               "temperature": a.temperature if teacher is not None else None,
               "train_loss": tr["loss"], "train_ce": tr["ce"],
               "train_kd": tr["kd"] if alpha > 0 else None, "train_acc": tr["acc"],
               "train_images": tr["images"], "train_seconds": tr["seconds"],
               "images_per_s": tr["images"] / max(tr["seconds"], 1e-9),
               "select_split": a.select, "select_acc": acc, "select_loss": loss,
               "best_select_acc": best_acc, "best_epoch": best_epoch,
               "epochs_without_improvement": stale,
               "seconds": time.perf_counter() - t0}
        log.write(row)
        print(f"[{phase:5s}] epoch {epoch + 1:2d}/{a.epochs_student}  alpha {alpha:.2f}  "
              f"loss {tr['loss']:.4f}  train acc {tr['acc']:6.2f}%  {a.select} acc {acc:6.2f}%"
              f"{' *' if improved else '  '}  {row['images_per_s']:.1f} img/s  "
              f"{row['seconds']:.1f}s", flush=True)
        if stale >= a.patience:
            print(f"[{phase:5s}] early stop: {a.patience} epochs without improvement; best "
                  f"epoch {best_epoch + 1} ({best_acc:.2f}%)", flush=True)
            break
    if best_state is not None:
        student.load_state_dict(best_state)
    return best_acc, best_epoch, epochs_run


def write_plot(metrics_path, png_path):
    """Selection accuracy per epoch to a PNG, as the published script does; needs matplotlib
    (optional: without it the data is in metrics.jsonl and no plot is written)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no accuracy plot (the data is in metrics.jsonl)")
        return None
    series, split = {}, "selection"
    with open(metrics_path, "r", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row.get("select_acc") is not None:
                series.setdefault(row["phase"], []).append((row["epoch"] + 1, row["select_acc"]))
                split = row["select_split"]
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    labels = {"teacher": "teacher (MobileNetV2)", "alone": "student alone",
              "kd": "SS-KD student"}
    for phase, pts in series.items():
        ax.plot([e for e, _ in pts], [v for _, v in pts], marker="o", label=labels[phase])
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{split} accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return os.path.basename(png_path)


# ----------------------------------------------------------------------------------------------
# Main


def main(argv=None):
    a = parse_args(argv)
    import torch
    import torchvision

    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    os.makedirs(a.out, exist_ok=True)
    wall0 = time.perf_counter()

    (train_x, train_y), (test_x, test_y) = load_dataset(a)
    grayscale = train_x.ndim == 3
    in_channels = 1 if grayscale else 3
    samples, val, teacher_idx = choose_indices(a, train_y)
    common.write_indices(os.path.join(a.out, "samples.txt"), samples)
    common.write_indices(os.path.join(a.out, "teacher.txt"), teacher_idx)
    if val is not None:
        common.write_indices(os.path.join(a.out, "val.txt"), val)

    train_tf, test_tf = make_transforms(a, grayscale)
    DataLoader = torch.utils.data.DataLoader
    student_ds = make_dataset(train_x, train_y, samples, train_tf)
    teacher_ds = make_dataset(train_x, train_y, teacher_idx,
                              test_tf if a.teacher_no_augment else train_tf)
    test_ds = make_dataset(test_x, test_y, np.arange(test_y.size), test_tf)
    test_loader = DataLoader(test_ds, batch_size=a.eval_batch, shuffle=False)
    if val is not None:
        select_loader = DataLoader(make_dataset(train_x, train_y, val, test_tf),
                                   batch_size=a.eval_batch, shuffle=False)
    else:
        select_loader = test_loader

    print(f"dataset {a.dataset}: train {train_y.size}, test {test_y.size}, "
          f"{a.size}x{a.size}x{in_channels}; torch {torch.__version__}, "
          f"torchvision {torchvision.__version__}, {a.threads} thread(s)")
    print(f"student samples: {samples.size} "
          f"({'from ' + a.indices if a.indices else f'stratified, seed {a.seed}'}), "
          f"per class {common.class_counts(train_y, samples)}")
    if val is not None:
        print(f"validation split: {val.size} images "
              f"({'from ' + a.val_indices if a.val_indices else 'stratified, held out'})")
    print(f"early stopping on: {a.select}"
          + ("  (the published script's behaviour: selects on the test set)"
             if a.select == "test" else ""))
    if grayscale:
        print("grayscale input: first conv of both models takes 1 channel; colour jitter is "
              "brightness 0.2 + contrast 0.2 only (saturation does not apply to one channel)")
    if a.limit_batches is not None or a.limit_eval_batches is not None:
        print(f"SMOKE RUN: at most {a.limit_batches} train / {a.limit_eval_batches} eval batches "
              f"per epoch; accuracies are not meaningful")

    # Teacher description, said loudly when there is no ImageNet pretraining.
    if a.load_teacher:
        teacher_desc = f"fine-tuned MobileNetV2 loaded from {a.load_teacher}"
    else:
        origin = (f"ImageNet weights from {a.teacher_weights}" if a.teacher_weights
                  else "RANDOM INIT (no --teacher-weights: no ImageNet pretraining)")
        if a.teacher_indices:
            data_desc = f"{teacher_idx.size} images from {a.teacher_indices}"
        elif a.teacher_data == "subset":
            data_desc = f"the student's {teacher_idx.size} samples"
        else:
            data_desc = (f"the {teacher_idx.size} labelled train images outside the student's "
                         f"subset" + (" and the validation split" if val is not None else "")
                         + " (standing in for ImageNet pretraining)")
        teacher_desc = (f"MobileNetV2, {origin}, trained {a.epochs_teacher} epochs on "
                        f"{data_desc}"
                        + (f", one-cycle LR to {a.lr_teacher:g}" if a.teacher_schedule == "onecycle" else "")
                        + (", without augmentation" if a.teacher_no_augment else ""))
    bar = "!" * 78 if (not a.teacher_weights and not a.load_teacher
                       and a.teacher_data == "subset" and not a.teacher_indices) else "-" * 78
    print(f"{bar}\nTEACHER: {teacher_desc}\n{bar}", flush=True)

    log = MetricsLog(os.path.join(a.out, "metrics.jsonl"))
    result = {"teacher": None, "alone": None, "kd": None}
    walls = {"teacher": None, "alone": None, "kd": None}
    best = {}

    teacher = None
    if "teacher" in a.phases or "kd" in a.phases:
        torch.manual_seed(a.seed)
        teacher = common.teacher_mobilenet_v2(in_channels, a.teacher_weights)
        if a.load_teacher:
            teacher.load_state_dict(common._load_state_dict(a.load_teacher))
    if "teacher" in a.phases and not a.load_teacher:
        t0 = time.perf_counter()
        loader = DataLoader(teacher_ds, batch_size=a.batch, shuffle=True)
        run_teacher(a, teacher, loader, select_loader, log)
        result["teacher"], _ = evaluate(teacher, test_loader, a.limit_eval_batches)
        walls["teacher"] = time.perf_counter() - t0
        if a.save_teacher:
            torch.save(teacher.state_dict(), a.save_teacher)
            print(f"teacher saved to {a.save_teacher}")
        print(f"[teacher] test accuracy {result['teacher']:.2f}%  ({walls['teacher']:.1f}s)",
              flush=True)
    elif teacher is not None:
        t0 = time.perf_counter()
        result["teacher"], _ = evaluate(teacher, test_loader, a.limit_eval_batches)
        walls["teacher"] = time.perf_counter() - t0
        print(f"[teacher] (loaded) test accuracy {result['teacher']:.2f}%", flush=True)

    for phase in ("alone", "kd"):
        if phase not in a.phases:
            continue
        # Same seed for both students: identical initial weights, shuffling and augmentation
        # draws, so the two runs coincide until alpha first becomes non-zero (epoch 5).
        torch.manual_seed(a.seed + 1)
        student = common.student_efficientnet_b0(in_channels)
        loader = DataLoader(student_ds, batch_size=a.batch, shuffle=True)
        t0 = time.perf_counter()
        sel_acc, best_epoch, epochs_run = run_student(
            a, phase, student, loader, select_loader, log,
            teacher=teacher if phase == "kd" else None)
        if a.select == "test" and epochs_run > 0:
            test_acc = sel_acc  # best weights restored; their test accuracy is the best seen
        else:
            test_acc, _ = evaluate(student, test_loader, a.limit_eval_batches)
        walls[phase] = time.perf_counter() - t0
        result[phase] = test_acc
        best[phase] = {"best_epoch": best_epoch, "epochs_run": epochs_run,
                       "best_select_acc": sel_acc}
        print(f"[{phase:5s}] test accuracy {test_acc:.2f}% (best epoch {best_epoch + 1}, "
              f"{epochs_run} epochs, {walls[phase]:.1f}s)", flush=True)
    log.close()

    total = time.perf_counter() - wall0

    def fmt(v):
        return "-" if v is None else f"{v:.2f} %"

    def fmt_t(v):
        return "-" if v is None else f"{v:.0f}"

    table = (
        f"| Dataset | Samples | Select on | Teacher (MobileNetV2) | Student alone (EfficientNet-B0)"
        f" | SS-KD student |\n"
        f"|---|---:|---|---:|---:|---:|\n"
        f"| {a.dataset} | {samples.size} | {a.select} | {fmt(result['teacher'])} "
        f"| {fmt(result['alone'])} | {fmt(result['kd'])} |\n"
        f"| wall time (s) | | | {fmt_t(walls['teacher'])} | {fmt_t(walls['alone'])} "
        f"| {fmt_t(walls['kd'])} |\n")
    print()
    print(f"Test accuracy (top-1), PyTorch reference, seed {a.seed}, {a.threads} thread(s); "
          f"teacher: {teacher_desc}")
    print(table)
    print(f"total wall time {total:.1f}s, peak RSS {common.peak_rss_mb():.0f} MiB")
    with open(os.path.join(a.out, "table.md"), "w", encoding="utf-8") as f:
        f.write(table)

    summary = {
        "tool": "paper_torch.py",
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "dataset": a.dataset, "input": [in_channels, a.size, a.size],
        "samples": int(samples.size), "seed": a.seed, "select": a.select,
        "val_size": None if val is None else int(val.size),
        "teacher_images": int(teacher_idx.size), "teacher": teacher_desc,
        "accuracy": {"teacher": result["teacher"], "student_alone": result["alone"],
                     "sskd": result["kd"]},
        "student_runs": best,
        "wall_seconds": {"teacher": walls["teacher"], "student_alone": walls["alone"],
                         "sskd": walls["kd"], "total": total},
        "threads": a.threads,
        "peak_rss_mb": common.peak_rss_mb(),
        "smoke": a.limit_batches is not None or a.limit_eval_batches is not None,
        "config": {k: v for k, v in vars(a).items()},
        "files": {"samples": "samples.txt", "teacher": "teacher.txt",
                  "val": None if val is None else "val.txt", "metrics": "metrics.jsonl",
                  "table": "table.md"},
    }
    plot = write_plot(os.path.join(a.out, "metrics.jsonl"), os.path.join(a.out, "accuracy.png"))
    summary["files"]["plot"] = plot
    with open(os.path.join(a.out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    print(f"wrote {a.out}/summary.json, metrics.jsonl, table.md")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except common.DataError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
