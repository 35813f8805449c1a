"""The image-folder pipeline against the device-resident path: Fashion-MNIST as 70,000 PNG files.

    python benchmarks/data_pipeline.py write /tmp/fmnist-png          # once: train/<class>/*.png, test/<class>/*.png
    python benchmarks/data_pipeline.py cpu /tmp/fmnist-png --workers 0 2 4 --images 6000
    python benchmarks/data_pipeline.py gpu /tmp/fmnist-png --workers 4 8 12 --epochs 4

``cpu``: images/s of a training epoch read through ``data.name = "folder"`` with 0, 2 and 4 DataLoader
workers (a small CNN, batch 128, on ``--images`` training files). ``gpu``: the seconds per epoch of the
same training on all 60,000 files against ``data.name = "fashion_mnist"`` on the device (the resident
path), their ratio, and the peak host memory of each; plus the folder path on a sixth of the files, to
show that memory does not grow with the folder. Each measurement runs in its own process, so that its
peak memory (``ru_maxrss`` of the process and of its largest worker) is its own; epoch times are the
median of the epochs after the first (which starts the workers).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODEL = {"model.name": "cnn", "model.channels": [32, 64], "data.batch_size": 128, "optim.lr": 2e-3}
QUIET = {"train.progress": "none", "train.report": False, "doctor.live": False, "data.val_fraction": 0.0}


def write_pngs(root: Path) -> None:
    """Fashion-MNIST's IDX files (Debian's dataset-fashion-mnist, or $TRAINWISE_DATA) as one PNG per image."""
    import numpy as np
    from PIL import Image

    from trainwise.data.sources import FASHION_CLASSES, FASHION_FILES, _find_idx, fashion_mnist_dir, read_idx

    base = fashion_mnist_dir(None)
    started = time.perf_counter()
    for split, (xk, yk) in {"train": ("x", "y"), "test": ("x_test", "y_test")}.items():
        images, labels = read_idx(_find_idx(base, FASHION_FILES[xk])), read_idx(_find_idx(base, FASHION_FILES[yk]))
        for k, name in enumerate(FASHION_CLASSES):
            (root / split / name.replace("/", "-")).mkdir(parents=True, exist_ok=True)
        for i, (img, y) in enumerate(zip(images, labels)):
            Image.fromarray(np.ascontiguousarray(img), mode="L").save(root / split / FASHION_CLASSES[y].replace("/", "-") / f"{i:05d}.png")
    n = sum(1 for _ in root.rglob("*.png"))
    print(f"wrote {n} PNG files under {root} in {time.perf_counter() - started:.1f} s")


def measure(settings: dict) -> dict:
    """One training run in this process: epoch times and peak memory."""
    import torch

    import trainwise
    from trainwise.config import Config

    torch.set_num_threads(settings.pop("threads"))
    run = trainwise.fit(Config().replace(settings))
    times = [r["time_s"] for r in run.history.records]
    steady = times[1:] or times
    per_epoch = statistics.median(steady)
    n = run.history.records[-1]["samples_per_s"] * times[-1]
    out = {"epoch_s": per_epoch, "first_epoch_s": times[0], "images_per_s": n / per_epoch, "test_acc": run.summary["test"]["acc"]}
    del run
    gc.collect()  # the DataLoaders go, and with them their (persistent) workers: now they count as finished children
    return out | {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_worker_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def run_one(settings: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "one", json.dumps(settings)], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def folder(root: Path, workers: int, device: str, epochs: int, images: int | None, threads: int) -> dict:
    s = {**MODEL, **QUIET, "data.name": "folder", "data.path": str(root), "data.num_workers": workers, "train.device": device,
         "train.epochs": epochs, "threads": threads}
    return s | ({"data.train_subset": images} if images else {})


def row(label: str, r: dict, base: float | None = None) -> str:
    ratio = f"{r['epoch_s'] / base:5.2f}x" if base else "     "
    return (f"{label:<34} {r['epoch_s']:8.2f} {ratio} {r['images_per_s']:9.0f} {r['first_epoch_s']:8.2f} "
            f"{r['peak_rss_mib']:8.0f} {r['peak_worker_rss_mib']:8.0f} {r['test_acc']:7.4f}")


HEADER = f"{'path':<34} {'epoch s':>8} {'ratio':>6} {'images/s':>9} {'1st ep s':>8} {'RSS MiB':>8} {'worker':>8} {'test acc':>7}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["write", "cpu", "gpu", "one"])
    p.add_argument("root", help="folder of PNG files (write: where to put them); one: the settings as JSON")
    p.add_argument("--workers", type=int, nargs="+", default=None)
    p.add_argument("--images", type=int, default=6000, help="cpu: training files read per epoch")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch threads of the training process")
    args = p.parse_args(argv)
    if args.mode == "one":
        print(json.dumps(measure(json.loads(args.root))))
        return 0
    root = Path(args.root)
    if args.mode == "write":
        write_pngs(root)
        return 0
    if not (root / "train").is_dir():
        raise SystemExit(f"{root} has no train/ folder: run 'python benchmarks/data_pipeline.py write {root}' first")
    if args.mode == "cpu":
        epochs, threads = args.epochs or 2, args.threads or 2
        print(f"CPU, {args.images} training images per epoch, {epochs} epochs, {threads} torch threads")
        print(HEADER)
        for w in args.workers or [0, 2, 4]:
            print(row(f"folder, {w} workers", run_one(folder(root, w, "cpu", epochs, args.images, threads))), flush=True)
        return 0
    epochs, threads = args.epochs or 4, args.threads or 4
    print(f"GPU, 60000 training images per epoch, {epochs} epochs")
    print(HEADER)
    resident = run_one({**MODEL, **QUIET, "data.name": "fashion_mnist", "train.device": "cuda", "train.epochs": epochs, "threads": threads})
    print(row("resident (fashion_mnist on device)", resident), flush=True)
    for w in args.workers or [4, 8, 12]:
        print(row(f"folder, {w} workers", run_one(folder(root, w, "cuda", epochs, None, threads)), resident["epoch_s"]), flush=True)
    w = max(args.workers or [4, 8, 12])
    print(row(f"folder, {w} workers, 10000 images", run_one(folder(root, w, "cuda", epochs, 10000, threads))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
