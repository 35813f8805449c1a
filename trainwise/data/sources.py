"""Dataset sources: each returns raw NumPy arrays, before splitting and normalization.

All of them work offline: scikit-learn ships digits and breast_cancer, the ``mnist1d`` package generates
MNIST-1D, Fashion-MNIST is read from IDX files on disk, and user data comes from NPZ/CSV files.
"""

from __future__ import annotations

import gzip
import os
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainwise.config import DataConfig
from trainwise.errors import UserError, unknown_name


@dataclass
class RawData:
    """Arrays as loaded. ``x`` is (N, C, H, W) for images or (N, D) for vectors."""

    x: np.ndarray
    y: np.ndarray  # labels as the source holds them (ids, text, one-hot); see trainwise.data.labels
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    features: np.ndarray | None = None  # optional extra vector per sample (fusion models)
    features_test: np.ndarray | None = None
    class_names: list[str] | None = None
    binary: bool = False  # a two-class problem trained with BCE on one logit
    image: bool = False


def _digits(cfg: DataConfig) -> RawData:
    from sklearn.datasets import load_digits

    d = load_digits()
    # Pixel values are 0..16; images as (N, 1, 8, 8) so both MLP (flattens) and CNN can use them.
    x = d.images.astype(np.float32)[:, None] / 16.0
    return RawData(x=x, y=d.target.astype(np.int64), class_names=[str(c) for c in d.target_names], image=True)


def _breast_cancer(cfg: DataConfig) -> RawData:
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    # target 0 = malignant, 1 = benign in scikit-learn; keep its encoding and names.
    return RawData(
        x=d.data.astype(np.float32), y=d.target.astype(np.int64), class_names=list(d.target_names), binary=True
    )


def _mnist1d(cfg: DataConfig) -> RawData:
    from mnist1d.data import get_dataset_args, make_dataset

    # make_dataset generates offline (get_dataset would try the network); its default args are the
    # published MNIST-1D configuration (4000 train / 1000 test, 40 features, seed 42).
    d = make_dataset(get_dataset_args())
    return RawData(
        x=d["x"].astype(np.float32),
        y=d["y"].astype(np.int64),
        x_test=d["x_test"].astype(np.float32),
        y_test=d["y_test"].astype(np.int64),
    )


FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_FILES = {
    "x": "train-images-idx3-ubyte",
    "y": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
DEBIAN_FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def fashion_mnist_dir(configured: str | None) -> Path:
    """The directory holding the IDX files: the config's path when it names one (it must hold them: a path
    the user named is never swapped for another), else $TRAINWISE_DATA, else Debian's location."""
    candidates = [configured] if configured else [c for c in (os.environ.get("TRAINWISE_DATA"), DEBIAN_FASHION_DIR) if c]
    for c in candidates:
        for base in (Path(c), Path(c) / "fashion-mnist", Path(c) / "fashion_mnist"):
            if _find_idx(base, FASHION_FILES["x"]) is not None:
                return base
    raise UserError(
        "Fashion-MNIST IDX files not found",
        expected=f"{FASHION_FILES['x']}[.gz] and the other three files",
        received="nothing in " + ", ".join(candidates),
        fix=f"check data.path (it names {configured!r})" if configured else
        "run 'apt-get install dataset-fashion-mnist', or set data.path or $TRAINWISE_DATA to a directory with the IDX files",
    )


def _find_idx(base: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (base / name).is_file():
            return base / name
    return None


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzip'd) into a NumPy array, checking its header against its size."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as err:
        raise UserError(f"cannot read IDX file {path}", expected="a complete (gzip'd) IDX file", received=str(err),
                        fix="re-download or reinstall the dataset files") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise UserError(f"{path} is not an unsigned-byte IDX file", expected="magic 0x0000 08 NN", received=data[:4].hex())
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    expected = int(np.prod(shape))
    if body.size != expected:
        raise UserError(f"IDX file {path} is truncated", expected=f"{expected} values for shape {shape}", received=f"{body.size}",
                        fix="re-download or reinstall the dataset files")
    # frombuffer gives a read-only view; copy so torch.from_numpy can use it.
    return body.reshape(shape).copy()


def _fashion_mnist(cfg: DataConfig) -> RawData:
    base = fashion_mnist_dir(cfg.path)
    arrays = {}
    for key, stem in FASHION_FILES.items():
        path = _find_idx(base, stem)
        if path is None:
            raise UserError(f"Fashion-MNIST file {stem} missing in {base}", fix="reinstall the dataset (apt-get install dataset-fashion-mnist)")
        arrays[key] = read_idx(path)
    to_img = lambda a: (a.astype(np.float32) / 255.0)[:, None]  # noqa: E731 - (N, 1, 28, 28) in [0, 1]
    return RawData(
        x=to_img(arrays["x"]),
        y=arrays["y"].astype(np.int64),
        x_test=to_img(arrays["x_test"]),
        y_test=arrays["y_test"].astype(np.int64),
        class_names=FASHION_CLASSES,
        image=True,
    )


def _require_path(cfg: DataConfig) -> Path:
    if not cfg.path:
        raise UserError(f"data.name = {cfg.name!r} needs a file", expected="data.path", fix=f"set data.path to your .{'npz' if cfg.name == 'arrays' else 'csv'} file")
    path = Path(cfg.path)
    if not path.is_file():
        raise UserError(f"data file {str(path)!r} not found", fix="check data.path")
    return path


def _arrays(cfg: DataConfig) -> RawData:
    """NPZ with keys x, y (names configurable) and optionally x_test, y_test and an extra feature array."""
    path = _require_path(cfg)
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as err:
        raise UserError(f"cannot read {path}", expected="an NPZ file (numpy.savez)", received=str(err).splitlines()[0]) from None
    keys = set(npz.files)
    for needed in ("x", cfg.target):
        if needed not in keys:
            raise UserError(f"{path} has no array {needed!r}", expected="arrays 'x' and " + repr(cfg.target), received=sorted(keys),
                            fix="save with numpy.savez(path, x=..., y=...) or set data.target")
    try:  # members are read here, lazily: a damaged member or an object array fails now, not at np.load
        return _npz_raw(npz, keys, cfg, path)
    except (ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise UserError(f"cannot read the arrays in {path}", expected="numeric arrays saved with numpy.savez",
                        received=f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:160]}", fix="save the file again") from None


def _npz_raw(npz, keys: set[str], cfg: DataConfig, path: Path) -> RawData:
    get = lambda k: npz[k] if k in keys else None  # noqa: E731
    x = npz["x"].astype(np.float32)
    return RawData(
        x=x,
        y=npz[cfg.target],  # labels as stored: trainwise.data.labels turns them into class ids
        x_test=None if get("x_test") is None else npz["x_test"].astype(np.float32),
        y_test=get(f"{cfg.target}_test"),
        features=None if not cfg.features else _feature(npz, cfg.features, path),
        features_test=None if not cfg.features or f"{cfg.features}_test" not in keys else npz[f"{cfg.features}_test"].astype(np.float32),
        image=x.ndim == 4,
    )


def _feature(npz, key: str, path: Path) -> np.ndarray:
    if key not in npz.files:
        raise UserError(f"{path} has no array {key!r} (data.features)", received=sorted(npz.files))
    return npz[key].astype(np.float32)


def _labels(y: np.ndarray, path: Path) -> np.ndarray:
    """Labels read from a file, one per sample (trainwise.data.labels.read_labels, named by the file)."""
    from trainwise.data.labels import read_labels

    return read_labels(y, path.name)


def _csv(cfg: DataConfig) -> RawData:
    """A CSV with a header; ``data.target`` names the label column, every other column is a feature."""
    import csv

    path = _require_path(cfg)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = [r for r in csv.reader(handle) if r]  # blank lines (a trailing newline) are no rows
    except (UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"cannot read {path} as CSV", expected="UTF-8 text with comma-separated values", received=str(err)[:160]) from None
    if len(rows) < 2:
        raise UserError(f"{path} has no data rows", expected="a header line and at least one row")
    header, body = rows[0], rows[1:]
    for line, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise UserError(f"{path} line {line} has {len(r)} fields", expected=f"{len(header)} like the header",
                            received=",".join(r)[:80], fix="complete or remove the line (a truncated file?)")
    if cfg.target not in header:
        raise UserError(f"{path} has no column {cfg.target!r}", expected="the label column named by data.target", received=header, fix="set data.target to the label column")
    t = header.index(cfg.target)
    labels = [r[t].strip() for r in body]
    y = _csv_labels(labels)
    x = _csv_features(body, header, t, path)
    return RawData(x=x, y=y)


def _csv_labels(labels: list[str]) -> np.ndarray:
    """Numbers as numbers, anything else as text; trainwise.data.labels turns either into class ids."""
    for kind in (int, float):
        try:
            return np.array([kind(v) for v in labels])
        except ValueError:
            pass
    return np.array(labels)


def _csv_features(body: list[list[str]], header: list[str], target: int, path: Path) -> np.ndarray:
    """Every column but the label as float32; an empty or non-numeric cell is named by its line and column."""
    try:
        return np.array([[float(v) for i, v in enumerate(r) if i != target] for r in body], dtype=np.float32)
    except ValueError:
        pass
    for line, r in enumerate(body, start=2):  # line 1 is the header
        for i, v in enumerate(r):
            if i == target:
                continue
            try:
                float(v)
            except ValueError:
                what = "an empty cell" if not v.strip() else f"{v[:40]!r}"
                raise UserError(f"{path} line {line}, column {header[i]!r} holds {what}", expected="a number in every column but the label",
                                fix="fill in or impute the value, or remove the line") from None
    raise AssertionError("unreachable: float() failed above")


@dataclass(frozen=True)
class Source:
    """A dataset trainwise can load: its loader, its number of classes (None: the user's data decides) and
    its kind ("image", "vector", or "user" for files whose shape the user chooses)."""

    load: Callable[[DataConfig], RawData]
    classes: int | None
    kind: str


# Adding a data source is one entry here (data.name accepts these names; the doctor reads the class counts).
SOURCES: dict[str, Source] = {
    "digits": Source(_digits, classes=10, kind="image"),
    "breast_cancer": Source(_breast_cancer, classes=2, kind="vector"),
    "mnist1d": Source(_mnist1d, classes=10, kind="vector"),
    "fashion_mnist": Source(_fashion_mnist, classes=10, kind="image"),
    "arrays": Source(_arrays, classes=None, kind="user"),
    "csv": Source(_csv, classes=None, kind="user"),
}


STREAMED = ("folder", "npy")  # sources read while training, not loaded here (trainwise.data.prepare_data)
READS_FILES = ("fashion_mnist", "arrays", "csv", "folder", "npy")  # the sources data.path is for


def load_raw(cfg: DataConfig) -> RawData:
    if cfg.name not in SOURCES:
        raise unknown_name("dataset", cfg.name, [*SOURCES, *STREAMED], key="data.name")
    if cfg.path and cfg.name not in READS_FILES:  # a named path is used, or it is an error
        raise UserError(f"data.path is set but data.name = {cfg.name!r} reads no files", expected=f"data.path only with data.name = {' | '.join(READS_FILES)}",
                        received=cfg.path, fix=f"remove data.path, or set data.name to the source that reads {cfg.path!r}")
    return SOURCES[cfg.name].load(cfg)
