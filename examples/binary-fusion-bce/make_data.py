"""Build fusion.npz: Fashion-MNIST T-shirt (0) vs shirt (1) images plus 58 features computed from each image.

Features: the mean intensity of each of the 28 rows and 28 columns, and the image's mean and standard
deviation. Usage: python make_data.py [OUT.npz] [N_TRAIN]
"""
import sys
from pathlib import Path

import numpy as np

from trainwise.data.sources import fashion_mnist_dir, read_idx

CLASSES = (0, 6)  # T-shirt/top, shirt


def load(stem: str, base: Path) -> np.ndarray:
    return read_idx(next(base.glob(stem + "*")))


def features(x: np.ndarray) -> np.ndarray:
    img = x[:, 0]
    return np.concatenate([img.mean(2), img.mean(1), img.mean((1, 2))[:, None], img.std((1, 2))[:, None]], 1).astype(np.float32)


def pick(x: np.ndarray, y: np.ndarray, n: int | None, rng: np.random.Generator):
    keep = np.flatnonzero(np.isin(y, CLASSES))
    if n is not None:
        keep = np.sort(rng.choice(keep, n, replace=False))
    xs = (x[keep].astype(np.float32) / 255.0)[:, None]
    return xs, features(xs), (y[keep] == CLASSES[1]).astype(np.int64)


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "fusion.npz"
    n_train = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    base, rng = fashion_mnist_dir(None), np.random.default_rng(0)
    x, f, y = pick(load("train-images-idx3-ubyte", base), load("train-labels-idx1-ubyte", base), n_train, rng)
    xt, ft, yt = pick(load("t10k-images-idx3-ubyte", base), load("t10k-labels-idx1-ubyte", base), None, rng)
    np.savez(out, x=x, features=f, y=y, x_test=xt, features_test=ft, y_test=yt)
    print(f"{out}: x {x.shape}, features {f.shape}, y {np.bincount(y)}; test x {xt.shape}, y {np.bincount(yt)}")


if __name__ == "__main__":
    main()
