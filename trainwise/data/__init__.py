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
from trainwise.data.labels import check_seen_in_training, dataset_class_count, encode_labels, read_labels
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
    """Fail early, naming the first bad sample, instead of training on garbage.

    Labels are checked against ``num_classes`` only when it is given; otherwise trainwise.data.labels
    turns whatever labels there are into class ids.
    """
    if len(x) == 0:
        raise UserError(f"the {name} set is empty", expected="at least one sample", fix="check the data file or the split fractions")
    if len(x) != len(y):
        raise UserError(f"the {name} inputs and labels differ in length", expected=f"{len(x)} labels", received=f"{len(y)}")
    finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if not finite.all():
        bad = int(np.argmin(finite))
        raise UserError(f"the {name} inputs contain NaN or Inf", expected="finite numbers", received=f"a non-finite value in sample {bad}",
                        fix="clean or impute the data before training")
    if num_classes is not None and (y.min() < 0 or y.max() >= num_classes):
        bad = int(np.argmax((y < 0) | (y >= num_classes)))
        raise UserError(f"the {name} labels are out of range", expected=f"labels in 0..{num_classes - 1}", received=f"label {int(y[bad])} at sample {bad}",
                        fix=f"encode classes as 0..{num_classes - 1}, or leave num_classes out to have the labels mapped")


def check_same_sample_shape(train: np.ndarray, other: np.ndarray | None, what: str) -> None:
    """Test (or validation) samples shaped like the training samples: a model built for one cannot take the other."""
    if other is not None and tuple(other.shape[1:]) != tuple(train.shape[1:]):
        raise UserError(f"the {what} have another shape than the training ones", expected=f"samples shaped {tuple(train.shape[1:])} as for training",
                        received=f"samples shaped {tuple(other.shape[1:])}", fix="give every split the same features (columns) in the same order")


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
    y, yt = read_labels(raw.y, "training"), None if raw.y_test is None else read_labels(raw.y_test, "test")
    check_arrays(raw.x, y, "training")
    check_same_sample_shape(raw.x, raw.x_test, "test inputs")
    if raw.features is not None:
        check_same_sample_shape(raw.features, raw.features_test, "test feature vectors")
    if raw.x_test is not None:
        check_arrays(raw.x_test, yt, "test")
    for name, features, labels in (("training", raw.features, y), ("test", raw.features_test, yt)):
        if features is not None:
            check_arrays(features, labels, f"{name} feature")
    if len(np.unique(y)) < 2:
        raise UserError("the training labels hold a single class", expected="at least two classes", received=f"only label {y[0]}",
                        fix="check data.target and the label column")
    enc = encode_labels({"training": y, "test": yt}, cfg.classes, raw.class_names)
    pick = lambda a, mask: a if a is None or mask is None else a[mask]  # noqa: E731 - data.classes keeps some samples
    x, y, f = pick(raw.x, enc.keep["training"]), enc.ids["training"], pick(raw.features, enc.keep["training"])
    xt, yt, ft = pick(raw.x_test, enc.keep["test"]), enc.ids["test"], pick(raw.features_test, enc.keep["test"])
    class_names = enc.class_names
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

    check_seen_in_training(y, {"validation": yv, "test": yt}, class_names)
    num_classes = len(class_names)
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
        class_names=class_names,
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
    train, val=None, test=None, *, num_classes: int | None = None, task: str | None = None, class_names=None,
    normalize: bool = False, classes: list[int] | None = None,
) -> DataSplits:
    """Wrap user data: per split a tuple ``(x, y)`` or ``(x, features, y)`` of arrays/tensors, a torch
    ``Dataset`` (map-style, or iterable with a length) or a ``DataLoader`` (see trainwise.data.datasets).

    Tuples and TensorDatasets: the splits are used as given (no split). Labels follow
    trainwise.data.labels (``num_classes``: the labels are ids 0..num_classes-1 as they are). ``normalize``: standardize inputs with statistics of
    the training split only, as for named datasets (``fit`` passes ``data.normalize``); ``classes``:
    keep only these label values, as ``data.classes``. With a Dataset or DataLoader among the splits,
    the labels must be class ids 0..K-1 and the inputs are used as given (normalize in the Dataset).
    """

    def to_np(a):
        return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)

    named = {"training": train, "validation": val, "test": test}
    wrapped = {name: as_split(split, name) for name, split in named.items() if split is not None}
    if any(isinstance(w, DatasetData) for w in wrapped.values()):
        return _from_datasets(train, val, test, num_classes=num_classes, task=task, class_names=class_names)
    given = {}
    for name, split in named.items():
        if split is None:
            continue
        if isinstance(wrapped.get(name), TensorData):  # a TensorDataset: its tensors, as a tuple would give them
            split = (*wrapped[name].inputs, wrapped[name].targets)
        if not isinstance(split, (tuple, list)) or len(split) not in (2, 3):
            raise UserError(f"bad {name} data", expected="a tuple (x, y) or (x, features, y), a torch Dataset or a DataLoader",
                            received=type(split).__name__)
        *xs, y = [to_np(a) for a in split]
        y = read_labels(y, name)
        for a in xs:
            check_arrays(a.astype(np.float32), y, name, num_classes if y.dtype.kind == "i" else None)
        given[name] = ([np.ascontiguousarray(a, dtype=np.float32) for a in xs], y)
    if "training" not in given:
        raise UserError("no training data", expected="train=(x, y) or (x, features, y)")
    train_xs = given["training"][0]
    for name, (xs, _) in given.items():
        if len(xs) != len(train_xs):
            raise UserError(f"the {name} data has {len(xs)} input array(s)", expected=f"{len(train_xs)} as the training data")
        for a, b, what in zip(train_xs, xs, ("inputs", "feature vectors")):
            check_same_sample_shape(a, b, f"{name} {what}")
    if num_classes is not None:
        if given["training"][1].dtype.kind != "i":
            raise UserError("num_classes needs integer labels", expected="class ids 0..num_classes-1", received="text labels")
        ids = {k: y for k, (_, y) in given.items()}
        names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        keep = {k: None for k in given}
    else:
        enc = encode_labels({k: y for k, (_, y) in given.items()}, classes, list(class_names) if class_names else None)
        ids, names, keep = enc.ids, enc.class_names, enc.keep
        check_seen_in_training(ids["training"], {k: v for k, v in ids.items() if k != "training"}, names)
    xs = {k: [a if keep[k] is None else a[keep[k]] for a in arrays] for k, (arrays, _) in given.items()}
    norm: dict = {}
    if normalize:
        image = xs["training"][0].ndim == 4
        for i, key, per_feature in ((0, "input", not image), (1, "features", True)):
            if i < len(xs["training"]):
                parts = [xs[k][i] if k in xs else None for k in ("training", "validation", "test")]
                a, b, c, norm[key] = _standardize(*parts, per_feature=per_feature)
                for k, v in zip(("training", "validation", "test"), (a, b, c)):
                    if k in xs:
                        xs[k][i] = v

    def pack(name) -> TensorData | None:
        if name not in xs:
            return None
        return TensorData(tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in xs[name]), torch.from_numpy(ids[name].astype(np.int64)))

    tr, va, te = pack("training"), pack("validation"), pack("test")
    k = num_classes or len(names)
    task = task or ("binary" if k == 2 else "multiclass")
    return DataSplits(
        train=tr, val=va, test=te, num_classes=k, task=task,
        input_shape=tuple(tr.inputs[0].shape[1:]),
        feature_dim=int(tr.inputs[1].shape[1]) if len(tr.inputs) > 1 else 0,
        class_names=names, normalization=norm,
    )


def _from_datasets(train, val, test, *, num_classes: int | None, task: str | None, class_names) -> DataSplits:
    """Splits of which one at least is a torch Dataset or DataLoader: labels must be class ids 0..K-1, inputs are used as given."""

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
    if num_classes or names:
        k = num_classes or len(names)
    else:  # the ids themselves say K (labels.py: dataset_class_count)
        splits = {"training": tr, "validation": va, "test": te}
        present = {name: np.unique(_class_ids(s, name)) for name, s in splits.items() if s is not None}
        k = dataset_class_count(present, "training")
    task = task or ("binary" if k == 2 else "multiclass")
    inputs, _ = tr.head(2)
    return DataSplits(
        train=tr, val=va, test=te, num_classes=k, task=task,
        input_shape=tuple(inputs[0].shape[1:]),
        feature_dim=int(inputs[1].shape[1]) if len(inputs) > 1 else 0,
        class_names=[str(c) for c in names] if names else [str(i) for i in range(k)],
    )


def _class_ids(split: TensorData | DatasetData, name: str) -> np.ndarray:
    """The labels of a split, checking that every one is a class id (>= 0, whole)."""
    labels = split.targets.numpy() if isinstance(split, TensorData) else dataset_labels(split)
    if labels.dtype.kind not in "iub" or (len(labels) and labels.min() < 0):
        bad = labels[0] if labels.dtype.kind not in "iub" else labels.min()
        raise UserError(f"the {name} labels are not class ids", expected="integers 0..K-1", received=f"label {bad!r} ({labels.dtype})",
                        fix="make the Dataset's labels integer class ids")
    return labels
