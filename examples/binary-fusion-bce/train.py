"""Train the binary fusion classifier on fusion.npz with BCE on one logit, through trainwise.fit.

Usage: python train.py [DATA.npz] [RUN_DIR]. The NPZ arrays are passed as (x, features, y) tuples, for
which trainwise trains a two-class problem with BCE on one logit; the rest comes from config.toml.
"""
import sys
from pathlib import Path

import numpy as np

import trainwise

HERE = Path(__file__).parent


def main() -> None:
    data = np.load(sys.argv[1] if len(sys.argv) > 1 else "fusion.npz")
    out = sys.argv[2] if len(sys.argv) > 2 else "runs/binary-fusion-bce"
    n = len(data["y"])
    order = np.random.default_rng(0).permutation(n)
    val, train = order[: n // 10], order[n // 10:]  # 10% held out for validation, early stopping and the plateau schedule
    pack = lambda idx: (data["x"][idx], data["features"][idx], data["y"][idx])  # noqa: E731
    run = trainwise.fit(HERE / "config.toml", train=pack(train), val=pack(val),
                        test=(data["x_test"], data["features_test"], data["y_test"]), out=out)
    print("task", run.summary["task"], "| test acc", run.summary["test"]["acc"], "| best epoch", run.summary["best_epoch"])


if __name__ == "__main__":
    main()
