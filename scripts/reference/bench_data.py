#!/usr/bin/env python3
"""torchvision's side of `sskd bench data`: images/s through the paper's train transform.

Reads the same STL-10-format file as the Swift benchmark and builds each sample the way
torchvision.datasets.STL10 does (numpy transpose of the column-major planes, PIL image), then
applies the paper's transform (PIL path, transforms v1, as the published script):
Resize(96), RandomHorizontalFlip, RandomRotation(10), RandomCrop(96, padding=4),
ColorJitter(0.2, 0.2, 0.2), ToTensor. Also times the same pipeline through a DataLoader with
batch 32 and as many worker processes as SSKD_THREADS (or the core count).

    python3 scripts/reference/bench_data.py --root DIR [--images 2000]
"""
import argparse, os, time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms


class STL10File(Dataset):
    def __init__(self, root, split, n, transform):
        x = np.fromfile(os.path.join(root, f"{split}_X.bin"), dtype=np.uint8)
        # As torchvision.datasets.STL10.__loadfile: (N, 3, 96, 96) column-major planes -> transpose.
        self.data = np.transpose(np.reshape(x, (-1, 3, 96, 96)), (0, 1, 3, 2))[:n]
        self.transform = transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        img = Image.fromarray(np.transpose(self.data[i], (1, 2, 0)))
        return self.transform(img), 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--split", default="train")
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    threads = int(os.environ.get("SSKD_THREADS", os.cpu_count() or 1))
    torch.set_num_threads(1)
    torch.manual_seed(1)

    t = transforms.Compose([
        transforms.Resize(96), transforms.RandomHorizontalFlip(), transforms.RandomRotation(10),
        transforms.RandomCrop(96, padding=4),
        transforms.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2), transforms.ToTensor(),
    ])
    ds = STL10File(args.root, args.split, args.images, t)
    n = len(ds)
    for i in range(min(n, 64)):
        ds[i]
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        for i in range(n):
            ds[i]
        best = min(best, time.perf_counter() - start)
    print(f"torch_transform_images_per_s {n / best:.1f}")

    # The same transform on uint8 tensors through torchvision.transforms.v2 (no PIL).
    from torchvision.transforms import v2
    t2 = v2.Compose([
        v2.Resize(96), v2.RandomHorizontalFlip(), v2.RandomRotation(10), v2.RandomCrop(96, padding=4),
        v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2), v2.ToDtype(torch.float32, scale=True),
    ])
    data = torch.from_numpy(np.ascontiguousarray(ds.data))
    for i in range(min(n, 64)):
        t2(data[i])
    best2 = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        for i in range(n):
            t2(data[i])
        best2 = min(best2, time.perf_counter() - start)
    print(f"torch_v2_tensor_transform_images_per_s {n / best2:.1f}")

    loader = DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=threads, persistent_workers=False)
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        seen = 0
        for x, _ in loader:
            seen += x.shape[0]
        best = min(best, time.perf_counter() - start)
    print(f"torch_loader_images_per_s {n / best:.1f}")
    print(f"torch_loader_workers {threads}")


if __name__ == "__main__":
    main()
