"""The training loader of an image folder alone (no model): images per second per decoder and worker count.

    python benchmarks/folder_loader.py /tmp/fmnist-png --device cuda --workers 8 12 --decoders pillow opencv

Each measurement is ``data_pipeline.py``'s loader-alone reading (``read_only``) in its own process: epoch 1
starts the workers, epoch 2 is timed (on a GPU the raw uint8 batches are copied and finished on the device,
as in training, and the clock waits for the device). Write the folder first with
``python benchmarks/data_pipeline.py write DIR``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import data_pipeline  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root")
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    p.add_argument("--decoders", nargs="+", default=["pillow", "opencv"])
    p.add_argument("--threads", type=int, default=2, help="torch threads of the reading process")
    args = p.parse_args(argv)
    print(f"{args.device}: the training loader alone, epoch 2, images/s\n| workers | " + " | ".join(args.decoders) + " |")
    print("|---|" + "---|" * len(args.decoders))
    for w in args.workers:
        settings = {"data.path": args.root, "data.num_workers": w, "threads": args.threads, "device": args.device}
        rates = [data_pipeline.run_one(settings | {"data.decoder": d}, None, "read")["images_per_s"] for d in args.decoders]
        print(f"| {w} | " + " | ".join(f"{r:,.0f}" for r in rates) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
