#!/usr/bin/env python3
"""The paper's SS-KD protocol in PyTorch: a faithful mirror of its published script (PAPER.md),
plus the fourth phase of sskd's protocol (scripts/protocol.lua), distillation on unlabelled images.

Four phases, each timed:
  teacher      : MobileNetV2 (torchvision), ImageNet weights from a local file when given
                 (otherwise random init, said loudly), classifier Linear(1280 -> 10);
                 cross-entropy, Adam lr 5e-4, 25 epochs, batch 32 (--batch-teacher), no early
                 stopping. --teacher-model mobilenet_v2_small_input is sskd's variant for small
                 images: the stem conv features[0][0] has stride 1 instead of 2 (with
                 --teacher-strides 2 also the depthwise conv features[2].conv[1][0]), so a 28x28
                 input ends on 2x2 (4x4) instead of 1x1.
  alone        : EfficientNet-B0 (stochastic depth 0.2, dropout 0.2), random init, classifier
                 Linear(1280 -> 10); cross-entropy, Adam lr 1e-3, batch 32, at most 30 epochs,
                 early stopping (patience 5) on the selection split, best weights restored.
  kd           : the same student (same init seed) trained with
                 loss = alpha(e) * KL(softmax(t/T) || log_softmax(s/T)) * T^2 + (1 - alpha(e)) * CE,
                 T = 3, alpha(e) = 0 for e < 5 else min(0.1 + 0.05 (e - 5), 0.9), teacher in eval
                 mode without gradient on the same augmented batch; same early stopping.
  kd_unlabeled : sskd's "SS-KD + unlabeled": the same student (same init seed), Adam, batch and
                 early stopping as kd, at most --epochs-unlabeled epochs (default: as the other
                 students). Labelled batches (the student's samples) as in kd, with alpha the
                 paper's schedule or a constant (--unlabeled-alpha). Between them, spread evenly,
                 batches of images WITHOUT labels, each its own optimizer step on the KD term
                 alone (whatever alpha is; the teacher sees the same augmented batch): per epoch
                 U = min(full unlabelled batches, round(ratio * L)), L the labelled batches
                 (--limit-batches included), and after labelled batch b (zero-based) unlabelled
                 batches run while u < (b + 1) * U // L. The unlabelled pool is every labelled
                 train image outside the samples and the validation split, labels hidden
                 (--unlabeled-indices replaces it); its loader reshuffles each epoch from its own
                 seeded generator, augments like the student's and drops the last partial batch.

The students' LR is constant (the paper) unless --student-schedule (alone, kd) or
--unlabeled-schedule (kd_unlabeled) is cosine: CosineAnnealingLR(T_max = the phase's maximum
epochs, eta_min = 0), stepped once per epoch after its batches.

Datasets: STL-10 (binary stl10_binary/ folder, read with numpy) or Fashion-MNIST (the Debian
package's IDX .gz files; 28x28 grayscale, both models get a 1-input-channel first conv).

Selection split (`--select`): `test` is what the published script does (early stopping looks at
the test set, so the reported figure is optimistic); `val` holds out a stratified validation split
of the labelled train data, disjoint from the student's samples, and reports test accuracy of the
weights chosen on it.

Writes to --out: metrics.jsonl (a row per epoch per phase), summary.json, table.md, and the index
files actually used (samples.txt, teacher.txt, val.txt, and unlabeled.txt when kd_unlabeled runs;
one zero-based index per line, the format sskd reads and writes).

Examples:
  # quick smoke run (about 20-30 s at one thread; accuracies meaningless)
  python3 scripts/reference/paper_torch.py --dataset fashion-mnist --samples 500 \\
      --epochs-teacher 2 --epochs-student 2 --limit-batches 5 --threads 1 --out /tmp/pt-smoke
  # sskd's Fashion-MNIST quickstart on the images it used (long: hours on 2 cores)
  python3 scripts/reference/paper_torch.py --dataset fashion-mnist --samples 2500 \\
      --indices runs/quickstart-2500-s0/samples.txt --val-indices runs/quickstart-2500-s0/val.txt \\
      --teacher-indices runs/quickstart-2500-s0/teacher.txt --select val --teacher-data outside \\
      --teacher-model mobilenet_v2_small_input --epochs-teacher 5 --lr-teacher 4e-3 --pad 1 \\
      --teacher-schedule onecycle --unlabeled-ratio 4 --unlabeled-alpha 0.5 \\
      --unlabeled-schedule cosine --epochs-unlabeled 20 --threads 1 --out runs/torch-quickstart-2500-s0
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (sibling helper module)

PHASES = ("teacher", "alone", "kd", "kd_unlabeled")
STUDENT_PHASES = ("alone", "kd", "kd_unlabeled")
TEACHER_MODELS = ("mobilenet_v2", "mobilenet_v2_small_input")
# The unlabelled loader's own shuffle seed is the run's seed XOR this ("UNLABEL" in ASCII), as in
# sskd's Trainer; the numbers drawn differ from sskd's anyway (another generator), but the stream
# is separate from the labelled loader's in both.
UNLABELED_SEED_XOR = 0x554E_4C41_4245_4C


# ----------------------------------------------------------------------------------------------
# Command line


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="The SS-KD paper's PyTorch protocol (teacher, student alone, SS-KD student) "
                    "and sskd's fourth phase (SS-KD plus distillation on unlabelled images).",
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
    g.add_argument("--unlabeled-indices", default=None,
                   help="kd_unlabeled: file of the train indices whose images (never their "
                        "labels) form the unlabelled pool. Default: every labelled train image "
                        "outside the samples and the validation split, labels hidden (sskd's)")
    g.add_argument("--size", type=int, default=None,
                   help="input side: resize target and random-crop size (default 96 for stl10, "
                        "28 for fashion-mnist)")
    g.add_argument("--pad", type=int, default=4,
                   help="zero padding of the random crop, in pixels (the paper: 4 at 96 pixels; "
                        "sskd's Fashion-MNIST quickstart scales it to 1 at 28 pixels)")

    g = p.add_argument_group("models and training")
    g.add_argument("--teacher-model", choices=TEACHER_MODELS, default="mobilenet_v2",
                   help="mobilenet_v2 (the paper) or sskd's mobilenet_v2_small_input: stride-1 "
                        "stem conv (and, --teacher-strides 2, a stride-1 features.2 depthwise "
                        "conv) so 28x28 inputs keep a 2x2 (4x4) map to the end")
    g.add_argument("--teacher-strides", type=int, choices=[1, 2], default=1,
                   help="mobilenet_v2_small_input: how many of the first two stride-2 convs get "
                        "stride 1")
    g.add_argument("--teacher-weights", default=None,
                   help="local ImageNet MobileNetV2 state dict (.pth or .safetensors, 1000 "
                        "classes). Without it the teacher starts from random init")
    g.add_argument("--load-teacher", default=None,
                   help="a fine-tuned 10-class teacher state dict saved by --save-teacher: skip "
                        "the teacher phase and use it")
    g.add_argument("--save-teacher", default=None, help="write the fine-tuned teacher here")
    g.add_argument("--phases", default="teacher,alone,kd,kd_unlabeled",
                   help="comma list of phases to run: teacher, alone, kd, kd_unlabeled")
    g.add_argument("--epochs-teacher", type=int, default=25)
    g.add_argument("--epochs-student", type=int, default=30, help="maximum student epochs")
    g.add_argument("--batch", type=int, default=32,
                   help="training batch of the student phases (labelled and unlabelled batches)")
    g.add_argument("--batch-teacher", type=int, default=None,
                   help="training batch of the teacher phase (default: --batch)")
    g.add_argument("--eval-batch", type=int, default=256,
                   help="evaluation batch (eval mode: does not change the results)")
    g.add_argument("--lr-teacher", type=float, default=5e-4)
    g.add_argument("--teacher-schedule", choices=["constant", "onecycle"], default="constant",
                   help="teacher LR: constant (the paper) or one-cycle up to --lr-teacher, stepped "
                        "per batch (the sskd quickstart's short pre-training from scratch)")
    g.add_argument("--teacher-no-augment", action="store_true",
                   help="train the teacher on un-augmented images (sskd: teacher_augment=false; "
                        "its quickstart trains the teacher on augmented images, as this "
                        "script does by default)")
    g.add_argument("--lr-student", type=float, default=1e-3)
    g.add_argument("--student-schedule", choices=["constant", "cosine"], default="constant",
                   help="LR of the alone and kd phases: constant (the paper) or cosine "
                        "(CosineAnnealingLR to 0 over --epochs-student, stepped per epoch)")
    g.add_argument("--temperature", type=float, default=3.0)
    g.add_argument("--patience", type=int, default=5)
    g.add_argument("--teacher-eval-each-epoch", action="store_true",
                   help="also evaluate the teacher on the selection split after every epoch "
                        "(logging only; the teacher has no early stopping)")

    g = p.add_argument_group("kd_unlabeled (SS-KD plus distillation on unlabelled images)")
    g.add_argument("--epochs-unlabeled", type=int, default=None,
                   help="maximum epochs of the phase (default: --epochs-student)")
    g.add_argument("--unlabeled-ratio", type=float, default=1.0,
                   help="unlabelled batches per labelled batch: round(ratio x labelled batches) "
                        "per epoch, at most the full batches the pool holds")
    g.add_argument("--unlabeled-alpha", default="paper",
                   help="alpha of the labelled batches: a number in [0, 1] (constant) or 'paper' "
                        "(the kd phase's gradual schedule; sskd's 'paper_gradual' is accepted "
                        "too). The unlabelled batches are KD alone whatever it is")
    g.add_argument("--unlabeled-schedule", choices=["constant", "cosine"], default="constant",
                   help="LR of the phase: constant or cosine (CosineAnnealingLR to 0 over "
                        "--epochs-unlabeled, stepped per epoch)")

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
    for phase in ("kd", "kd_unlabeled"):
        if phase in a.phases and "teacher" not in a.phases and not a.load_teacher:
            p.error(f"--phases {phase} without teacher needs --load-teacher")
    if a.teacher_strides != 1 and a.teacher_model != "mobilenet_v2_small_input":
        p.error("--teacher-strides applies to --teacher-model mobilenet_v2_small_input only")
    if a.batch_teacher is None:
        a.batch_teacher = a.batch
    if a.epochs_unlabeled is None:
        a.epochs_unlabeled = a.epochs_student
    for name in ("samples", "batch", "batch_teacher", "eval_batch", "size", "val_size"):
        if getattr(a, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    for name in ("epochs_teacher", "epochs_student", "epochs_unlabeled", "patience"):
        if getattr(a, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0")
    if not a.unlabeled_ratio > 0:  # also rejects NaN
        p.error(f"--unlabeled-ratio must be > 0 (unlabelled batches per labelled batch), got "
                f"{a.unlabeled_ratio}")
    if a.unlabeled_alpha in ("paper", "paper_gradual"):
        a.unlabeled_alpha = "paper"
    else:
        try:
            a.unlabeled_alpha = float(a.unlabeled_alpha)
        except ValueError:
            p.error(f"--unlabeled-alpha must be a number in [0, 1] or 'paper', got "
                    f"{a.unlabeled_alpha!r}")
        if not 0.0 <= a.unlabeled_alpha <= 1.0:
            p.error(f"--unlabeled-alpha must be in [0, 1], got {a.unlabeled_alpha}")
    if a.unlabeled_indices and "kd_unlabeled" not in a.phases:
        p.error("--unlabeled-indices is for the kd_unlabeled phase, which --phases leaves out")
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


def choose_unlabeled(a, n, samples, val):
    """The kd_unlabeled phase's pool: indices into the labelled train split whose images are used
    without their labels. sskd's default is the "rest" of its split: every image outside the
    samples and the validation split (so with --teacher-data outside, the teacher's own images)."""
    if a.unlabeled_indices:
        pool = common.read_indices(a.unlabeled_indices, n, "unlabeled")
        # Not an error (sskd takes any image set), but worth seeing: the samples would be seen
        # twice per epoch, and validation images would leak into training (without labels).
        for what, other in (("student's samples", samples), ("validation split", val)):
            if other is not None:
                shared = np.intersect1d(pool, other)
                if shared.size:
                    print(f"WARNING: the unlabelled pool shares {shared.size} images with the "
                          f"{what} (first: {shared[0]})", flush=True)
        return pool
    excluded = samples if val is None else np.union1d(samples, val)
    pool = np.setdiff1d(np.arange(n, dtype=np.int64), excluded)
    if pool.size == 0:
        raise common.DataError("kd_unlabeled: no train images are left outside the samples and "
                               "validation split for the unlabelled pool")
    return pool


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
        T.RandomCrop(a.size, padding=a.pad),
        jitter,
        T.ToTensor(),  # uint8 HWC -> float CHW in [0, 1]; no mean/std normalisation
    ])
    test = T.Compose([T.Resize((a.size, a.size)), T.ToTensor()])
    return train, test


def make_dataset(images, labels, indices, transform):
    """A map-style dataset over rows `indices` of uint8 `images`, giving PIL images to the
    transform the way torchvision's STL10 / FashionMNIST datasets do.

    labels=None makes an unlabelled dataset: items are the image tensors alone, so no code
    downstream can read a label (sskd's unlabeled view)."""
    import torch
    from PIL import Image

    class ArrayDataset(torch.utils.data.Dataset):
        def __len__(self):
            return len(indices)

        def __getitem__(self, k):
            i = int(indices[k])
            img = Image.fromarray(images[i])  # uint8 HxW -> mode "L", HxWx3 -> "RGB"
            if labels is None:
                return transform(img)
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


def unlabeled_batch_count(ratio, labelled_batches, full_unlabeled_batches):
    """U, the unlabelled batches of one epoch: round(ratio x L), at most the pool's full batches.
    Rounded half away from zero as sskd's Swift does (Python's round(2.5) would give 2)."""
    return min(full_unlabeled_batches, common.round_half_away(ratio * labelled_batches))


def train_epoch(model, loader, optimizer, limit=None, teacher=None, alpha=0.0, temperature=3.0,
                scheduler=None, unlabeled=None, unlabeled_ratio=1.0):
    """One epoch. With a teacher and alpha > 0 the loss is the paper's blend, else CE alone.

    With `unlabeled` (a drop-last loader of images without labels: the kd_unlabeled phase) the
    epoch also runs U = unlabeled_batch_count(unlabeled_ratio, L, len(unlabeled)) unlabelled
    batches, L the labelled batches, spread evenly as sskd's Trainer does: after labelled batch b
    (zero-based), unlabelled batches while u < (b + 1) * U // L. Each is its own optimizer step
    (and scheduler step, for a per-batch scheduler) on the KD term alone, whatever alpha is.

    Returns a dict: loss, ce, kd, acc (top-1 %) as means over the labelled images (kd only
    counts where it was computed, alpha > 0); unlabeled_kd, the mean KD over the unlabelled
    images; images (labelled + unlabelled), labelled_batches, unlabeled_batches,
    unlabeled_images, steps (optimizer steps) and seconds.
    """
    import torch
    import torch.nn.functional as F

    model.train()
    if teacher is not None:
        teacher.eval()
    # L is known up front (the interleaving needs it); islice also stops before loading (and
    # augmenting) a batch past --limit-batches.
    labelled_batches = len(loader) if limit is None else min(limit, len(loader))
    unlabeled_batches = 0
    if unlabeled is not None:
        if teacher is None:
            raise ValueError("unlabelled batches need a teacher to distil from")
        if not unlabeled.drop_last:
            raise ValueError("the unlabelled loader must drop its last incomplete batch")
        unlabeled_batches = unlabeled_batch_count(unlabeled_ratio, labelled_batches,
                                                  len(unlabeled))
    # A fresh iterator draws a fresh shuffle from the unlabelled loader's own generator.
    unlabeled_it = iter(unlabeled) if unlabeled_batches > 0 else None
    sums = {"loss": 0.0, "ce": 0.0, "kd": 0.0, "unlabeled_kd": 0.0}
    correct, seen, unlabeled_seen, steps, u = 0, 0, 0, 0, 0
    t0 = time.perf_counter()

    def step(loss):  # one optimizer step (and a per-batch LR step), labelled or not
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()

    for b, (x, y) in enumerate(itertools.islice(loader, labelled_batches)):
        logits = model(x)
        ce = F.cross_entropy(logits, y)
        if teacher is not None and alpha > 0:
            with torch.no_grad():
                t_logits = teacher(x)
            kd = common.kd_loss(logits, t_logits, temperature)
            # alpha 1: KD alone, as sskd builds the loss (no 0 * CE term)
            loss = kd if alpha >= 1.0 else alpha * kd + (1.0 - alpha) * ce
            sums["kd"] += kd.item() * y.numel()
        else:
            loss = ce
        step(loss)
        steps += 1
        sums["loss"] += loss.item() * y.numel()
        sums["ce"] += ce.item() * y.numel()
        correct += (logits.argmax(1) == y).sum().item()
        seen += y.numel()

        # The unlabelled batches due after labelled batch b: U spread evenly over the L.
        while u < (b + 1) * unlabeled_batches // labelled_batches:
            xu = next(unlabeled_it)  # U <= len(unlabeled): never exhausted
            with torch.no_grad():
                t_logits = teacher(xu)
            kd = common.kd_loss(model(xu), t_logits, temperature)
            step(kd)
            steps += 1
            u += 1
            sums["unlabeled_kd"] += kd.item() * xu.shape[0]
            unlabeled_seen += xu.shape[0]
    seconds = time.perf_counter() - t0
    out = {k: v / max(seen, 1) for k, v in sums.items() if k != "unlabeled_kd"}
    out.update(acc=100.0 * correct / max(seen, 1), images=seen + unlabeled_seen,
               labelled_batches=labelled_batches, unlabeled_batches=u,
               unlabeled_images=unlabeled_seen,
               unlabeled_kd=sums["unlabeled_kd"] / unlabeled_seen if unlabeled_seen else None,
               steps=steps, seconds=seconds)
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
        # `loader` batches by --batch-teacher, so this is the teacher's own batch count.
        per_epoch = len(loader) if a.limit_batches is None else min(a.limit_batches, len(loader))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr_teacher,
                                                    total_steps=a.epochs_teacher * per_epoch)
    for epoch in range(a.epochs_teacher):
        t0 = time.perf_counter()
        lr = opt.param_groups[0]["lr"]
        tr = train_epoch(teacher, loader, opt, limit=a.limit_batches, scheduler=sched)
        row = {"phase": "teacher", "epoch": epoch, "lr": lr, "alpha": None,
               "train_loss": tr["loss"], "train_ce": tr["ce"], "train_acc": tr["acc"],
               "batch": a.batch_teacher, "optimizer_steps": tr["steps"],
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


def student_phase_settings(a, phase):
    """(maximum epochs, LR schedule, alpha by zero-based epoch) of a student phase."""
    if phase == "kd_unlabeled":
        if a.unlabeled_alpha == "paper":
            return a.epochs_unlabeled, a.unlabeled_schedule, common.paper_alpha
        return a.epochs_unlabeled, a.unlabeled_schedule, lambda epoch: a.unlabeled_alpha
    if phase == "kd":
        return a.epochs_student, a.student_schedule, common.paper_alpha
    return a.epochs_student, a.student_schedule, lambda epoch: 0.0


def run_student(a, phase, student, loader, select_loader, log, teacher=None, unlabeled=None):
    """Trains the student with early stopping on the selection split; restores the best weights.

    `unlabeled` (kd_unlabeled) is the loader of images without labels interleaved with the
    labelled batches (see train_epoch). Returns (best selection accuracy, best epoch
    (zero-based), epochs run).
    """
    import torch

    epochs, schedule, alpha_of = student_phase_settings(a, phase)
    opt = torch.optim.Adam(student.parameters(), lr=a.lr_student)
    sched = None
    if schedule == "cosine":
        # Over the phase's maximum epochs (early stopping does not shorten it), stepped once per
        # epoch after its batches, as sskd's fit/distill step an epoch scheduler.
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1), eta_min=0.0)
    best_acc, best_epoch, best_state, stale = -1.0, -1, None, 0
    epochs_run = 0
    for epoch in range(epochs):
        t0 = time.perf_counter()
        lr = opt.param_groups[0]["lr"]
        alpha = alpha_of(epoch) if teacher is not None else 0.0
        tr = train_epoch(student, loader, opt, limit=a.limit_batches, teacher=teacher,
                         alpha=alpha, temperature=a.temperature, unlabeled=unlabeled,
                         unlabeled_ratio=a.unlabeled_ratio)
        if sched is not None:
            sched.step()
        acc, loss = evaluate(student, select_loader, a.limit_eval_batches)
        epochs_run = epoch + 1
        improved = acc > best_acc
        if improved:
            best_acc, best_epoch, stale = acc, epoch, 0
            best_state = {k: v.detach().clone() for k, v in student.state_dict().items()}
        else:
            stale += 1
        row = {"phase": phase, "epoch": epoch, "lr": lr, "schedule": schedule, "alpha": alpha,
               "temperature": a.temperature if teacher is not None else None,
               "train_loss": tr["loss"], "train_ce": tr["ce"],
               "train_kd": tr["kd"] if alpha > 0 else None, "train_acc": tr["acc"],
               "labelled_batches": tr["labelled_batches"], "optimizer_steps": tr["steps"],
               "train_images": tr["images"], "train_seconds": tr["seconds"],
               "images_per_s": tr["images"] / max(tr["seconds"], 1e-9),
               "select_split": a.select, "select_acc": acc, "select_loss": loss,
               "best_select_acc": best_acc, "best_epoch": best_epoch,
               "epochs_without_improvement": stale,
               "seconds": time.perf_counter() - t0}
        extra = ""
        if unlabeled is not None:
            # train_loss/ce/kd/acc above are over the labelled images; these over the others.
            row.update(unlabeled_batches=tr["unlabeled_batches"],
                       unlabeled_images=tr["unlabeled_images"], unlabeled_kd=tr["unlabeled_kd"])
            extra = (f"  +{tr['unlabeled_batches']} unlabelled"
                     + (f" (kd {tr['unlabeled_kd']:.4f})" if tr["unlabeled_kd"] is not None
                        else ""))
        log.write(row)
        print(f"[{phase:5s}] epoch {epoch + 1:2d}/{epochs}  alpha {alpha:.2f}  lr {lr:.2e}  "
              f"loss {tr['loss']:.4f}  train acc {tr['acc']:6.2f}%{extra}  steps {tr['steps']}  "
              f"{a.select} acc {acc:6.2f}%{' *' if improved else '  '}  "
              f"{row['images_per_s']:.1f} img/s  {row['seconds']:.1f}s", flush=True)
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
              "kd": "SS-KD student", "kd_unlabeled": "SS-KD + unlabelled"}
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
    unlabeled_idx = None
    if "kd_unlabeled" in a.phases:
        unlabeled_idx = choose_unlabeled(a, train_y.size, samples, val)
        common.write_indices(os.path.join(a.out, "unlabeled.txt"), unlabeled_idx)

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
    if unlabeled_idx is not None:
        full = unlabeled_idx.size // a.batch
        print(f"unlabelled pool (kd_unlabeled): {unlabeled_idx.size} images "
              + (f"from {a.unlabeled_indices}" if a.unlabeled_indices else
                 "outside the samples" + (" and the validation split" if val is not None else "")
                 + ", labels hidden")
              + f"; {full} full batches of {a.batch}; ratio {a.unlabeled_ratio:g}, alpha "
              + (f"{a.unlabeled_alpha:g}" if a.unlabeled_alpha != "paper" else "paper schedule")
              + f", LR {a.unlabeled_schedule}, at most {a.epochs_unlabeled} epochs")
        if full == 0:
            print(f"WARNING: the unlabelled pool holds no full batch of {a.batch}: kd_unlabeled "
                  f"runs no unlabelled batch", flush=True)
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
    teacher_name = "MobileNetV2"
    teacher_short = "MobileNetV2" + (" small-input" if a.teacher_model != "mobilenet_v2" else "")
    if a.teacher_model == "mobilenet_v2_small_input":
        teacher_name += (" small-input (stride-1 stem" +
                         (" and features.2" if a.teacher_strides == 2 else "") + ")")
    if a.load_teacher:
        teacher_desc = f"fine-tuned {teacher_name} loaded from {a.load_teacher}"
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
        teacher_desc = (f"{teacher_name}, {origin}, trained {a.epochs_teacher} epochs "
                        f"(batch {a.batch_teacher}) on {data_desc}"
                        + (f", one-cycle LR to {a.lr_teacher:g}" if a.teacher_schedule == "onecycle" else "")
                        + (", without augmentation" if a.teacher_no_augment else ""))
    bar = "!" * 78 if (not a.teacher_weights and not a.load_teacher
                       and a.teacher_data == "subset" and not a.teacher_indices) else "-" * 78
    print(f"{bar}\nTEACHER: {teacher_desc}\n{bar}", flush=True)

    log = MetricsLog(os.path.join(a.out, "metrics.jsonl"))
    result = {p: None for p in PHASES}
    walls = {p: None for p in PHASES}
    best = {}

    teacher = None
    if any(p in a.phases for p in ("teacher", "kd", "kd_unlabeled")):
        torch.manual_seed(a.seed)
        # The small-input variant's convs are replaced inside, right after the model is built and
        # before any weights (ImageNet or --load-teacher) are loaded into it.
        teacher = common.teacher_mobilenet_v2(
            in_channels, a.teacher_weights,
            small_input=a.teacher_model == "mobilenet_v2_small_input", strides=a.teacher_strides)
        if a.load_teacher:
            teacher.load_state_dict(common._load_state_dict(a.load_teacher))
    if "teacher" in a.phases and not a.load_teacher:
        t0 = time.perf_counter()
        loader = DataLoader(teacher_ds, batch_size=a.batch_teacher, shuffle=True)
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

    for phase in STUDENT_PHASES:
        if phase not in a.phases:
            continue
        # Same seed for every student: identical initial weights, shuffling and augmentation
        # draws, so alone and kd coincide until alpha first becomes non-zero (epoch 5), and
        # kd_unlabeled starts from the same weights (it departs at its first unlabelled batch,
        # whose augmentation also draws from the global generator).
        torch.manual_seed(a.seed + 1)
        student = common.student_efficientnet_b0(in_channels)
        loader = DataLoader(student_ds, batch_size=a.batch, shuffle=True)
        unlabeled = None
        if phase == "kd_unlabeled":
            # Images only (the dataset has no labels), the student's augmentation and batch, a
            # fresh shuffle each epoch from its own generator, the last partial batch dropped.
            gen = torch.Generator()
            gen.manual_seed(a.seed ^ UNLABELED_SEED_XOR)
            unlabeled = DataLoader(make_dataset(train_x, None, unlabeled_idx, train_tf),
                                   batch_size=a.batch, shuffle=True, drop_last=True,
                                   generator=gen)
        t0 = time.perf_counter()
        sel_acc, best_epoch, epochs_run = run_student(
            a, phase, student, loader, select_loader, log,
            teacher=teacher if phase in ("kd", "kd_unlabeled") else None, unlabeled=unlabeled)
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
        f"| Dataset | Samples | Select on | Teacher ({teacher_short}) "
        f"| Student alone (EfficientNet-B0) | SS-KD student | SS-KD + unlabelled |\n"
        f"|---|---:|---|---:|---:|---:|---:|\n"
        f"| {a.dataset} | {samples.size} | {a.select} | {fmt(result['teacher'])} "
        f"| {fmt(result['alone'])} | {fmt(result['kd'])} | {fmt(result['kd_unlabeled'])} |\n"
        f"| wall time (s) | | | {fmt_t(walls['teacher'])} | {fmt_t(walls['alone'])} "
        f"| {fmt_t(walls['kd'])} | {fmt_t(walls['kd_unlabeled'])} |\n")
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
        "teacher_model": a.teacher_model,
        "unlabeled_images": None if unlabeled_idx is None else int(unlabeled_idx.size),
        "accuracy": {"teacher": result["teacher"], "student_alone": result["alone"],
                     "sskd": result["kd"], "sskd_unlabeled": result["kd_unlabeled"]},
        "student_runs": best,
        "wall_seconds": {"teacher": walls["teacher"], "student_alone": walls["alone"],
                         "sskd": walls["kd"], "sskd_unlabeled": walls["kd_unlabeled"],
                         "total": total},
        "threads": a.threads,
        "peak_rss_mb": common.peak_rss_mb(),
        "smoke": a.limit_batches is not None or a.limit_eval_batches is not None,
        "config": {k: v for k, v in vars(a).items()},
        "files": {"samples": "samples.txt", "teacher": "teacher.txt",
                  "val": None if val is None else "val.txt",
                  "unlabeled": None if unlabeled_idx is None else "unlabeled.txt",
                  "metrics": "metrics.jsonl",
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
