"""Data: load a source, check it, split it, normalize with training statistics, hand out tensors.

``prepare_data(config)`` is the one entry point the Trainer uses for named datasets;
``from_arrays`` wraps a user's own tensors/arrays with the same checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from trainwise.config import DataConfig
from trainwise.data.datasets import DatasetData, as_split, dataset_labels
from trainwise.data.sources import RawData, load_raw
from trainwise.errors import UserError


@dataclass
class TensorData:
    """A split: model inputs (one tensor, or image + extra feature vector) and integer targets."""

    inputs: tuple[torch.Tensor, ...]
    targets: torch.Tensor

    def __len__(self) -> int:
        return len(self.targets)

    def to(self, device: torch.device) -> TensorData:
        return TensorData(tuple(t.to(device) for t in self.inputs), self.targets.to(device))

    def subset(self, index: torch.Tensor) -> TensorData:
        return TensorData(tuple(t[index] for t in self.inputs), self.targets[index])

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.inputs, self.targets))

    def head(self, n: int) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """The first ``n`` samples as one batch ``(inputs, targets)``."""
        return tuple(t[:n] for t in self.inputs), self.targets[:n]


@dataclass
class DataSplits:
    """The three splits: tensors (TensorData) or samples read from a Dataset (DatasetData)."""

    train: TensorData | DatasetData
    val: TensorData | DatasetData | None
    test: TensorData | DatasetData | None
    num_classes: int
    task: str  # "multiclass" | "binary"
    input_shape: tuple[int, ...]  # one sample of the main input, e.g. (1, 28, 28) or (30,)
    feature_dim: int = 0  # size of the extra feature vector (0: none)
    class_names: list[str] = field(default_factory=list)
    normalization: dict = field(default_factory=dict)


def check_arrays(x: np.ndarray, y: np.ndarray, name: str, num_classes: int | None = None) -> None:
    """Fail early, naming the first bad sample, instead of training on garbage."""
    if len(x) == 0:
        raise UserError(f"the {name} set is empty", expected="at least one sample", fix="check the data file or the split fractions")
    if len(x) != len(y):
        raise UserError(f"the {name} inputs and labels differ in length", expected=f"{len(x)} labels", received=f"{len(y)}")
    finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if not finite.all():
        bad = int(np.argmin(finite))
        raise UserError(f"the {name} inputs contain NaN or Inf", expected="finite numbers", received=f"a non-finite value in sample {bad}",
                        fix="clean or impute the data before training")
    if y.min() < 0 or (num_classes is not None and y.max() >= num_classes):
        bad = int(np.argmax((y < 0) | ((y >= num_classes) if num_classes is not None else False)))
        expected = f"labels in 0..{num_classes - 1}" if num_classes is not None else "labels >= 0"
        raise UserError(f"the {name} labels are out of range", expected=expected, received=f"label {int(y[bad])} at sample {bad}",
                        fix="encode classes as 0..K-1 (or set data.classes)")


def _stratified_take(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    if n >= len(y):
        return np.arange(len(y))
    idx, _ = _train_test_split(y, f"keep data.train_subset={n} of {len(y)} training samples", train_size=n, random_state=seed)
    return np.sort(idx)


def _train_test_split(y: np.ndarray, what: str, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's stratified split of ``range(len(y))``; too few samples is a UserError saying what was asked."""
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(np.arange(len(y)), stratify=_stratify_or_none(y), **kwargs)
    except ValueError as err:
        raise UserError(f"cannot {what}", expected="enough samples for every split and class", received=str(err).splitlines()[0],
                        fix="use more data, or change data.val_fraction, data.test_fraction or data.train_subset") from None


def _stratify_or_none(y: np.ndarray) -> np.ndarray | None:
    # Stratification needs >= 2 samples per class; fall back to a plain shuffle split otherwise.
    counts = np.bincount(y)
    return y if counts[counts > 0].min() >= 2 else None


def _split(n_labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    what = f"hold out a share of {fraction:g} of {len(n_labels)} samples"
    a, b = _train_test_split(n_labels, what, test_size=fraction, random_state=seed)
    return np.sort(a), np.sort(b)


def prepare_data(cfg: DataConfig) -> DataSplits:
    if cfg.name == "folder":  # decoded from disk while training (trainwise.data.folder)
        from trainwise.data.folder import folder_splits

        return folder_splits(cfg)
    if cfg.name == "npy":  # memory-mapped when too large for the device (trainwise.data.npy)
        from trainwise.data.npy import npy_splits

        return npy_splits(cfg)
    from trainwise.data import cache

    cached = cache.load(cfg)  # built-in datasets prepared by an earlier run (see trainwise.data.cache)
    if cached is not None:
        return cached
    data = split_and_normalize(load_raw(cfg), cfg)
    cache.store(cfg, data)
    return data


def split_and_normalize(raw: RawData, cfg: DataConfig) -> DataSplits:
    check_arrays(raw.x, raw.y, "training", 2 if raw.binary else None)
    if raw.x_test is not None:
        check_arrays(raw.x_test, raw.y_test, "test", 2 if raw.binary else None)
    for name, features, labels in (("training", raw.features, raw.y), ("test", raw.features_test, raw.y_test)):
        if features is not None:
            check_arrays(features, labels, f"{name} feature")
    if len(np.unique(raw.y)) < 2:
        raise UserError("the training labels hold a single class", expected="at least two classes", received=f"only label {int(raw.y[0])}",
                        fix="check data.target and the label column")
    x, y, f = raw.x, raw.y, raw.features
    xt, yt, ft = raw.x_test, raw.y_test, raw.features_test
    class_names = raw.class_names
    if cfg.classes is not None:
        # Keep only the named classes and relabel them 0..k-1 in the order given.
        mapping = {c: i for i, c in enumerate(cfg.classes)}
        keep = np.isin(y, cfg.classes)
        if not keep.any():
            raise UserError("data.classes selects no samples", expected=f"class ids present in {sorted(set(y.tolist()))}", received=cfg.classes)
        x, y, f = x[keep], np.vectorize(mapping.get)(y[keep]), None if f is None else f[keep]
        if xt is not None:
            kt = np.isin(yt, cfg.classes)
            xt, yt, ft = xt[kt], np.vectorize(mapping.get)(yt[kt]), None if ft is None else ft[kt]
        class_names = [class_names[c] for c in cfg.classes] if class_names else [str(c) for c in cfg.classes]
    if xt is None:
        train_idx, test_idx = _split(y, cfg.test_fraction, cfg.split_seed)
        xt, yt, ft = x[test_idx], y[test_idx], None if f is None else f[test_idx]
        x, y, f = x[train_idx], y[train_idx], None if f is None else f[train_idx]
    if cfg.val_fraction > 0:
        train_idx, val_idx = _split(y, cfg.val_fraction, cfg.split_seed)
        xv, yv, fv = x[val_idx], y[val_idx], None if f is None else f[val_idx]
        x, y, f = x[train_idx], y[train_idx], None if f is None else f[train_idx]
    else:
        xv = yv = fv = None
    if cfg.train_subset is not None:
        keep = _stratified_take(y, cfg.train_subset, cfg.split_seed)
        x, y, f = x[keep], y[keep], None if f is None else f[keep]

    num_classes = int(max(y.max(), yt.max() if yt is not None else 0, yv.max() if yv is not None else 0)) + 1
    # Two classes are a binary task whatever the source (one logit, BCE), as for CSV files and tensors.
    binary = raw.binary or num_classes == 2
    norm: dict = {}
    if cfg.normalize:
        # Statistics from the training split only, so validation and test stay unseen.
        x, xv, xt, norm["input"] = _standardize(x, xv, xt, per_feature=not raw.image)
        if f is not None:
            f, fv, ft, norm["features"] = _standardize(f, fv, ft, per_feature=True)

    def pack(xs, ys, fs) -> TensorData | None:
        if xs is None:
            return None
        inputs = (torch.from_numpy(np.ascontiguousarray(xs)),)
        if fs is not None:
            inputs += (torch.from_numpy(np.ascontiguousarray(fs)),)
        return TensorData(inputs, torch.from_numpy(np.ascontiguousarray(ys)).long())

    return DataSplits(
        train=pack(x, y, f),
        val=pack(xv, yv, fv),
        test=pack(xt, yt, ft),
        num_classes=2 if binary else num_classes,
        task="binary" if binary else "multiclass",
        input_shape=tuple(x.shape[1:]),
        feature_dim=0 if f is None else int(f.shape[1]),
        class_names=class_names or [str(i) for i in range(num_classes)],
        normalization=norm,
    )


def _standardize(x, xv, xt, per_feature: bool):
    axis = 0 if per_feature else None
    mean = x.mean(axis=axis, dtype=np.float64).astype(np.float32)
    std = x.std(axis=axis, dtype=np.float64).astype(np.float32)
    std = np.where(std < 1e-8, 1.0, std).astype(np.float32)  # constant features stay constant, not NaN
    fix = lambda a: None if a is None else ((a - mean) / std).astype(np.float32)  # noqa: E731
    stats = {"mean": np.asarray(mean).tolist(), "std": np.asarray(std).tolist()}
    return fix(x), fix(xv), fix(xt), stats


def from_arrays(
    train, val=None, test=None, *, num_classes: int | None = None, task: str | None = None, class_names=None
) -> DataSplits:
    """Wrap user data: per split a tuple ``(x, y)`` or ``(x, features, y)`` of arrays/tensors, a torch
    ``Dataset`` (map-style, or iterable with a length) or a ``DataLoader`` (see trainwise.data.datasets).

    The data is used as given (no normalization, no split): split and normalize it yourself, or use
    ``data.name = "arrays"`` with an NPZ file to have trainwise do it. The classes are counted from the
    labels (a Dataset's ``classes`` or ``targets`` attribute spares a pass over its samples).
    """

    def to_np(a):
        return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)

    def pack(split, name) -> TensorData | DatasetData | None:
        if split is None:
            return None
        wrapped = as_split(split, name)
        if wrapped is not None:
            if isinstance(wrapped, TensorData):
                for a in wrapped.inputs:
                    check_arrays(a.numpy(), wrapped.targets.numpy(), name, num_classes)
            return wrapped
        if not isinstance(split, (tuple, list)) or len(split) not in (2, 3):
            raise UserError(f"bad {name} data", expected="a tuple (x, y) or (x, features, y), a torch Dataset or a DataLoader",
                            received=type(split).__name__)
        *xs, y = [to_np(a) for a in split]
        y = y.astype(np.int64) if y.dtype.kind in "iub" or (y.dtype.kind == "f" and np.all(y == np.round(y))) else y
        if y.dtype.kind not in "iu":
            raise UserError(f"{name} labels are not integers", expected="class ids 0..K-1", received=str(y.dtype))
        for a in xs:
            check_arrays(a.astype(np.float32), y, name, num_classes)
        return TensorData(tuple(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in xs), torch.from_numpy(y.astype(np.int64)))

    tr, va, te = pack(train, "training"), pack(val, "validation"), pack(test, "test")
    names = class_names or getattr(getattr(tr, "dataset", None), "classes", None)
    k = num_classes or (len(names) if names else None) or max(_largest_label(s) for s in (tr, va, te) if s is not None) + 1
    task = task or ("binary" if k == 2 else "multiclass")
    inputs, _ = tr.head(2)
    return DataSplits(
        train=tr, val=va, test=te, num_classes=k, task=task,
        input_shape=tuple(inputs[0].shape[1:]),
        feature_dim=int(inputs[1].shape[1]) if len(inputs) > 1 else 0,
        class_names=[str(c) for c in names] if names else [str(i) for i in range(k)],
    )


def _largest_label(split: TensorData | DatasetData) -> int:
    """The largest class id of a split, checking that every label is a class id (>= 0, whole)."""
    labels = split.targets.numpy() if isinstance(split, TensorData) else dataset_labels(split)
    name = getattr(split, "name", "training")
    if labels.dtype.kind not in "iub" or (len(labels) and labels.min() < 0):
        bad = labels[0] if labels.dtype.kind not in "iub" else labels.min()
        raise UserError(f"the {name} labels are not class ids", expected="integers 0..K-1", received=f"label {bad!r} ({labels.dtype})",
                        fix="make the Dataset's labels integer class ids")
    return int(labels.max()) if len(labels) else 0
