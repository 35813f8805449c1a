"""The image-folder pipeline against the device-resident path: Fashion-MNIST as 70,000 PNG files.

    python benchmarks/data_pipeline.py write /tmp/fmnist-png          # once: train/<class>/*.png, test/<class>/*.png
    python benchmarks/data_pipeline.py cpu /tmp/fmnist-png --workers 0 2 4 --images 6000 [--baseline DIR]
    python benchmarks/data_pipeline.py gpu /tmp/fmnist-png --workers 4 8 12 --epochs 4 [--groups 1 8]
    python benchmarks/data_pipeline.py gpu /tmp/fmnist-png --workers 8 --baseline OLD_CHECKOUT --repeat 3

``write`` reads Fashion-MNIST's IDX files ($TRAINWISE_DATA, else Debian's dataset-fashion-mnist) and
writes one PNG per image, in ``--jobs`` processes. ``cpu``: images/s of a training epoch read through
``data.name = "folder"`` with 0, 2 and 4 DataLoader workers (a small CNN, batch 128, on ``--images``
training files); ``--baseline DIR`` (another checkout of trainwise, e.g. an older commit) runs the same
measurement with that code beside each row, so that the two are compared under the same load. ``gpu``:
the seconds per epoch of the same training on all 60,000 files (``--images``: fewer) against
``data.name = "fashion_mnist"`` on the device (the resident path), their ratio, and the peak host memory
of each; plus the folder path on a sixth of the files, to show that memory does not grow with the
folder (``--device cpu`` runs the same table on a CPU, to check the script). Each measurement runs in its
own process, so that its peak memory (``ru_maxrss`` of the process and of its largest worker) is its
own; epoch times are the median of the epochs after the first (which starts the workers).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODEL = {"model.name": "cnn", "model.channels": [32, 64], "data.batch_size": 128, "optim.lr": 2e-3}
QUIET = {"train.progress": "none", "train.report": False, "doctor.live": False, "data.val_fraction": 0.0}


def _write_part(job: tuple) -> int:
    """Images ``lo:hi`` of one split as PNG files (one process of ``write``)."""
    import numpy as np
    from PIL import Image

    from trainwise.data.sources import FASHION_CLASSES, FASHION_FILES, _find_idx, fashion_mnist_dir, read_idx

    root, split, lo, hi = job
    xk, yk = {"train": ("x", "y"), "test": ("x_test", "y_test")}[split]
    base = fashion_mnist_dir(None)
    images, labels = read_idx(_find_idx(base, FASHION_FILES[xk])), read_idx(_find_idx(base, FASHION_FILES[yk]))
    for i in range(lo, min(hi, len(images))):
        folder = Path(root) / split / FASHION_CLASSES[labels[i]].replace("/", "-")
        Image.fromarray(np.ascontiguousarray(images[i]), mode="L").save(folder / f"{i:05d}.png")
    return max(0, min(hi, len(images)) - lo)


def write_pngs(root: Path, jobs: int) -> None:
    """Fashion-MNIST's IDX files (Debian's dataset-fashion-mnist, or $TRAINWISE_DATA) as one PNG per image."""
    from concurrent.futures import ProcessPoolExecutor

    from trainwise.data.sources import FASHION_CLASSES, fashion_mnist_dir

    fashion_mnist_dir(None)  # the IDX files are there (or one clear error)
    started = time.perf_counter()
    for split in ("train", "test"):
        for name in FASHION_CLASSES:
            (root / split / name.replace("/", "-")).mkdir(parents=True, exist_ok=True)
    step = 2500
    parts = [(str(root), split, lo, lo + step) for split, n in (("train", 60000), ("test", 10000)) for lo in range(0, n, step)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        written = sum(pool.map(_write_part, parts))
    print(f"wrote {written} PNG files under {root} in {time.perf_counter() - started:.1f} s ({jobs} processes)")


def measure(settings: dict) -> dict:
    """One training run in this process: epoch times and peak memory."""
    import torch

    import trainwise
    from trainwise.config import Config

    torch.set_num_threads(settings.pop("threads"))
    if "group" in settings:  # --groups: batches per DataLoader fetch, at most (the workers copy the module's value)
        from trainwise.data import folder

        folder.MAX_GROUP = settings.pop("group")
    run = trainwise.fit(Config().replace(settings))
    times = [r["time_s"] for r in run.history.records]
    steady = times[1:] or times
    per_epoch = statistics.median(steady)
    n = run.history.records[-1]["samples_per_s"] * times[-1]
    out = {"epoch_s": per_epoch, "first_epoch_s": times[0], "images_per_s": n / per_epoch, "test_acc": run.summary["test"]["acc"]}
    # The (persistent) workers end here and are waited for: only then does RUSAGE_CHILDREN count them. They
    # are killed rather than asked to stop, which would wait for each in turn (up to 5 s a worker).
    for worker in multiprocessing.active_children():
        worker.kill()
        worker.join()
    return out | {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_worker_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def read_only(settings: dict) -> dict:
    """Images/s of the training loader alone (no model): what the workers can feed, epoch 2 (epoch 1 starts them).
    ``settings["device"]`` (default cpu): on a GPU the raw batches are copied and finished there, as in
    training, and the clock waits for the device; ``data.decoder`` as in the config (default auto)."""
    import torch

    from trainwise.config import DataConfig
    from trainwise.data import prepare_data
    from trainwise.data.loader import loader_options, make_loader

    torch.set_num_threads(settings["threads"])
    device = torch.device(settings.get("device", "cpu"))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    d = prepare_data(DataConfig(name="folder", path=settings["data.path"], train_subset=settings.get("data.train_subset"), val_fraction=0.0,
                                decoder=settings.get("data.decoder", "auto")))
    loader = make_loader(d.train, 128, device, shuffle=True, options=loader_options(settings["data.num_workers"], device))
    for _ in loader.batches(1):
        pass
    sync()
    started, n = time.perf_counter(), 0
    for (x, *_), y in loader.batches(2):
        n += len(y)
    sync()
    seconds = time.perf_counter() - started
    for worker in multiprocessing.active_children():
        worker.kill()
        worker.join()
    return {"epoch_s": seconds, "images_per_s": n / seconds}


def fastest(r: dict) -> float:
    return r["images_per_s"]


def run_one(settings: dict, code: Path | None = None, mode: str = "one") -> dict:
    """One measurement in a fresh process, with this checkout's trainwise or the one at ``code``."""
    extra = ["--code", str(code)] if code is not None else []
    proc = subprocess.run([sys.executable, __file__, mode, json.dumps(settings), *extra], capture_output=True, text=True)
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
    p.add_argument("mode", choices=["write", "cpu", "gpu", "one", "read"])
    p.add_argument("root", help="folder of PNG files (write: where to put them); one: the settings as JSON")
    p.add_argument("--workers", type=int, nargs="+", default=None)
    p.add_argument("--images", type=int, default=None, help="training files read per epoch (cpu: 6000; gpu: all 60000)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch threads of the training process")
    p.add_argument("--baseline", type=Path, default=None, help="cpu, gpu: a checkout of trainwise to measure beside this one")
    p.add_argument("--device", default="cuda", help="gpu: the training device (cpu: check the script on a small --images)")
    p.add_argument("--groups", type=int, nargs="+", default=None, help="gpu: rows with at most these batches per fetch (MAX_GROUP)")
    p.add_argument("--variants", default=None, help='gpu: JSON {"name": {config overrides}} of folder rows to run beside each other')
    p.add_argument("--jobs", type=int, default=os.cpu_count(), help="write: processes writing the files")
    p.add_argument("--repeat", type=int, default=3, help="cpu: measurements of the loader alone per row (the best counts); "
                   "gpu with --baseline: rounds")
    p.add_argument("--code", type=Path, default=None, help=argparse.SUPPRESS)  # one/read: import trainwise from this checkout
    args = p.parse_args(argv)
    if args.mode in ("one", "read"):
        if args.code is not None:
            sys.path.insert(0, str(args.code.resolve()))
        print(json.dumps((measure if args.mode == "one" else read_only)(json.loads(args.root))), flush=True)
        os._exit(0)  # the DataLoaders' workers are gone already; nothing else to wait for
    root = Path(args.root)
    if args.mode == "write":
        write_pngs(root, args.jobs)
        return 0
    if not (root / "train").is_dir():
        raise SystemExit(f"{root} has no train/ folder: run 'python benchmarks/data_pipeline.py write {root}' first")
    if args.mode == "cpu":
        epochs, threads, images = args.epochs or 2, args.threads or 2, args.images or 6000
        print(f"CPU, {images} training images per epoch, {epochs} epochs, {threads} torch threads")
        print(HEADER)
        reads = []
        for w in args.workers or [0, 2, 4]:
            settings = folder(root, w, "cpu", epochs, images, threads)
            if args.baseline is not None:  # old code first, then this one: the ratio compares neighbours in time
                old = run_one(dict(settings), args.baseline)
                print(row(f"baseline, {w} workers", old), flush=True)
                print(row(f"folder, {w} workers", run_one(settings), old["epoch_s"]) + "  (ratio: to the baseline)", flush=True)
                pairs = [(run_one(dict(settings), args.baseline, "read"), run_one(dict(settings), None, "read")) for _ in range(args.repeat)]
                reads.append((w, max((a for a, _ in pairs), key=fastest), max((b for _, b in pairs), key=fastest)))
            else:
                print(row(f"folder, {w} workers", run_one(settings)), flush=True)
                reads.append((w, None, max((run_one(dict(settings), None, "read") for _ in range(args.repeat)), key=fastest)))
        print(f"\nthe loader alone (no model), {images} images, epoch 2, images/s (best of {args.repeat}, alternating)")
        print(f"{'workers':>7} {'baseline':>9} {'this':>9} {'speed-up':>8}")
        for w, old, new in reads:
            base = f"{old['images_per_s']:9.0f}" if old else f"{'':>9}"
            gain = f"{new['images_per_s'] / old['images_per_s']:7.2f}x" if old else ""
            print(f"{w:>7} {base} {new['images_per_s']:9.0f} {gain}", flush=True)
        return 0
    epochs, threads, device = args.epochs or 4, args.threads or 4, args.device
    images = args.images
    subset = {"data.train_subset": images} if images else {}
    print(f"{device}, {images or 60000} training images per epoch, {epochs} epochs, median of epochs 2..{epochs}")
    print(HEADER)
    resident_settings = {**MODEL, **QUIET, **subset, "data.name": "fashion_mnist", "train.device": device, "train.epochs": epochs, "threads": threads}
    if args.baseline is not None:
        return _gpu_against_baseline(args, root, resident_settings, epochs, images, threads, device)
    resident = run_one(resident_settings)
    print(row("resident (fashion_mnist on device)", resident), flush=True)
    variants = json.loads(args.variants) if args.variants else {"": {}}
    for w in args.workers or [4, 8, 12]:
        for g in args.groups or [None]:
            for name, extra in variants.items():
                settings = folder(root, w, device, epochs, images, threads) | ({} if g is None else {"group": g}) | extra
                label = f"folder, {w} workers" + ("" if g is None else f", groups of <= {g}") + (f", {name}" if name else "")
                print(row(label, run_one(settings), resident["epoch_s"]), flush=True)
    w, sixth = max(args.workers or [4, 8, 12]), (images or 60000) // 6
    print(row(f"folder, {w} workers, {sixth} images", run_one(folder(root, w, device, epochs, sixth, threads))), flush=True)
    return 0


def _gpu_against_baseline(args, root: Path, resident_settings: dict, epochs: int, images: int | None, threads: int, device: str) -> int:
    """``--repeat`` rounds of: the resident path, then per worker count the baseline checkout's folder path and
    this one's, one after the other; the ratios to each round's resident epoch, and their medians."""
    ratios: dict[tuple[str, int], list[float]] = {}
    for r in range(args.repeat):
        resident = run_one(dict(resident_settings))
        print(row(f"round {r + 1}: resident", resident), flush=True)
        for w in args.workers or [8]:
            for name, code in (("baseline", args.baseline), ("this", None)):
                result = run_one(folder(root, w, device, epochs, images, threads), code)
                ratios.setdefault((name, w), []).append(result["epoch_s"] / resident["epoch_s"])
                print(row(f"round {r + 1}: {name}, {w} workers", result, resident["epoch_s"]), flush=True)
    print(f"\nfolder epoch / resident epoch, median over {args.repeat} rounds (each round's own resident row)")
    for (name, w), values in ratios.items():
        print(f"{name:>8}, {w:>2} workers: median {statistics.median(values):.3f}x  (rounds: {', '.join(f'{v:.3f}' for v in values)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
