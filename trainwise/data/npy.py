"""NumPy ``.npy`` files (``data.name = "npy"``), memory-mapped, for inputs larger than memory.

``data.path`` is a directory holding ``x.npy`` and ``y.npy`` (``data.target`` names the labels: ``y`` reads
``y.npy``), optionally ``x_test.npy``/``y_test.npy`` and an extra feature array ``<data.features>.npy``
(and ``<data.features>_test.npy``) for fusion models.

Inputs that fit the device (``data.loader = "auto"``, up to 4 GiB) are read whole and take the
device-resident path like any array source. Larger ones, or any with ``data.loader = "dataloader"``, stay
on disk: the file is opened with ``numpy.load(mmap_mode="r")`` in each DataLoader worker and each sample
is one row read from it, so memory holds the labels (read whole: the split needs them) and a few
batches. Splits are the seeded stratified splits of every source; with ``data.normalize`` the statistics
come from up to 10,000 training rows (a seeded sample): per feature for vectors, one mean and standard
deviation for images (N, C, H, W), as for arrays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from trainwise.config import DataConfig
from trainwise.errors import UserError

NORM_SAMPLE = 10_000


def _open(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        raise UserError(f"cannot read {path}", expected="a .npy file written by numpy.save (numbers, no objects)",
                        received=f"{type(err).__name__}: {str(err).splitlines()[0][:160]}", fix="save the array again with numpy.save") from None


class NpyDataset(Dataset):
    """Rows ``indices`` of memory-mapped ``.npy`` files as samples ``(x, y)`` or ``(x, features, y)``."""

    def __init__(self, paths: list[Path], indices: np.ndarray, targets: np.ndarray, stats: list[tuple | None]):
        self.paths, self.indices, self.targets, self.stats = paths, indices, targets, stats
        self._arrays: list[np.ndarray] | None = None  # opened lazily, once per process (workers included)

    def __getstate__(self):
        return {**self.__dict__, "_arrays": None}  # a worker maps the files itself instead of receiving their bytes

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        if self._arrays is None:
            self._arrays = [_open(p) for p in self.paths]
        row = int(self.indices[i])
        out = []
        for array, stat in zip(self._arrays, self.stats):
            x = torch.from_numpy(np.array(array[row], dtype=np.float32))
            out.append(x if stat is None else (x - stat[0]) / stat[1])
        return (*out, int(self.targets[i]))


def npy_splits(cfg: DataConfig):
    from trainwise.data import DataSplits, RawData, _split, _stratified_take, check_arrays, split_and_normalize
    from trainwise.data.datasets import DatasetData
    from trainwise.data.loader import DEVICE_RESIDENT_LIMIT_BYTES
    from trainwise.data.sources import _labels

    root = _directory(cfg)
    x_path, y_path = root / "x.npy", root / f"{cfg.target}.npy"
    for p in (x_path, y_path):
        if not p.is_file():
            raise UserError(f"{p} not found", expected=f"x.npy and {cfg.target}.npy in {root}", fix="save them with numpy.save, or set data.target")
    x, y = _open(x_path), _labels(np.asarray(_open(y_path)), y_path)
    f_path = root / f"{cfg.features}.npy" if cfg.features else None
    features = _open(f_path) if f_path else None
    has_test = (root / "x_test.npy").is_file()
    if cfg.loader == "device" or (cfg.loader == "auto" and x.nbytes <= DEVICE_RESIDENT_LIMIT_BYTES):
        test = lambda stem: np.asarray(_open(root / f"{stem}_test.npy"), dtype=np.float32) if has_test else None  # noqa: E731
        raw = RawData(x=np.asarray(x, dtype=np.float32), y=y, x_test=test("x"),
                      y_test=_labels(np.asarray(_open(root / f"{cfg.target}_test.npy")), root) if has_test else None,
                      features=None if features is None else np.asarray(features, dtype=np.float32),
                      features_test=test(cfg.features) if features is not None else None, image=x.ndim == 4)
        return split_and_normalize(raw, cfg)  # fits: read whole, device-resident
    if len(x) != len(y) or (features is not None and len(features) != len(y)):
        raise UserError(f"the arrays in {root} differ in length", expected=f"{len(y)} rows like {y_path.name}",
                        received=f"x.npy: {len(x)}" + (f", {f_path.name}: {len(features)}" if features is not None else ""))
    check_arrays(np.zeros((len(y), 1), np.float32), y, "training")
    if y.dtype.kind == "U":
        raise UserError(f"labels in {y_path} are not numeric", expected="integer class ids 0..K-1 when the arrays are read while training",
                        received="text", fix="save integer class ids, or set data.loader=device to have text labels numbered")
    if cfg.classes is None:  # the label rule of the in-memory sources: ids 0..K-1, every test class seen in training
        from trainwise.data.labels import encode_labels

        encode_labels({"training": y, "test": _labels(np.asarray(_open(root / f"{cfg.target}_test.npy")), root) if has_test else None})
    paths = [x_path] + ([f_path] if f_path else [])
    index = np.arange(len(y))
    parts: dict[str, tuple[list[Path], np.ndarray, np.ndarray]] = {}
    if has_test:
        yt = _labels(np.asarray(_open(root / f"{cfg.target}_test.npy")), root)
        parts["test"] = ([root / "x_test.npy"] + ([root / f"{cfg.features}_test.npy"] if f_path else []), np.arange(len(yt)), yt)
    else:
        train_i, test_i = _split(y, cfg.test_fraction, cfg.split_seed)
        parts["test"], index = (paths, test_i, y[test_i]), train_i
    if cfg.val_fraction > 0:
        tr, va = _split(y[index], cfg.val_fraction, cfg.split_seed)
        parts["val"], index = (paths, index[va], y[index[va]]), index[tr]
    if cfg.train_subset is not None:
        index = index[_stratified_take(y[index], cfg.train_subset, cfg.split_seed)]
    parts["train"] = (paths, index, y[index])
    stats = [None] * len(paths)
    norm: dict = {}
    if cfg.normalize:
        pick = np.sort(np.random.default_rng(cfg.split_seed).choice(index, size=min(NORM_SAMPLE, len(index)), replace=False))
        for k, (name, array) in enumerate((("input", x), ("features", features))[: len(paths)]):
            sample = np.asarray(array[pick], dtype=np.float32)
            axis = None if (name == "input" and x.ndim == 4) else 0
            # as the in-memory sources compute them (trainwise.data._standardize): float64 sums, float32 results
            mean = sample.mean(axis=axis, dtype=np.float64).astype(np.float32)
            std = sample.std(axis=axis, dtype=np.float64).astype(np.float32)
            std = np.where(std < 1e-8, 1.0, std).astype(np.float32)
            stats[k] = (torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32))
            norm[name] = {"mean": np.asarray(mean).tolist(), "std": np.asarray(std).tolist()}
    num_classes = int(max(part[2].max() for part in parts.values())) + 1

    def wrap(split: str, name: str):
        if split not in parts:
            return None
        files, rows, labels = parts[split]
        return DatasetData(NpyDataset(files, rows, labels, stats), name=name)

    return DataSplits(train=wrap("train", "training"), val=wrap("val", "validation"), test=wrap("test", "test"),
                      num_classes=num_classes, task="binary" if num_classes == 2 else "multiclass", input_shape=tuple(x.shape[1:]),
                      feature_dim=0 if features is None else int(features.shape[1]), class_names=[str(i) for i in range(num_classes)],
                      normalization=norm)


def _directory(cfg: DataConfig) -> Path:
    if not cfg.path:
        raise UserError('data.name = "npy" needs a directory', expected="data.path holding x.npy and y.npy", fix="set data.path")
    root = Path(cfg.path)
    if not root.is_dir():
        raise UserError(f"directory {str(root)!r} not found", expected="a directory holding x.npy and y.npy", fix="check data.path")
    return root
