"""Labels -> class ids 0..K-1, by one rule for every source (named datasets, NPZ, CSV, tensors):

1. One label per sample. One-hot rows (a single 1, the rest 0) are read as the index of their 1; other
   2-D labels (multi-label, soft targets) are refused.
2. Integers (or whole-number floats, or booleans) that are exactly 0..K-1 in the training labels are the
   class ids as they are. Floats that are not whole numbers are refused: they look like a regression
   target, not classes.
3. Text labels are numbered 0..K-1 in sorted order, with a note; the class names keep the text.
4. Other integers -- gaps such as {0, 7} or {0, 1, 1000}, negative ones, 10**12 -- are refused: they are
   often the wrong column or a damaged value. The message lists the values and the fix that works:
   ``data.classes = [0, 7]`` keeps the listed values and numbers them 0..k-1 in the order given (the
   class names keep the values). A listed value that no training label has is an error. For text
   labels, data.classes lists their sorted-order ids.
5. Every class of the validation and test labels must occur in the training labels.

A torch Dataset's labels are read as they are (no renumbering): :func:`dataset_class_count` applies rules
2, 4 and 5 to them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from trainwise.errors import UserError

log = logging.getLogger("trainwise")


def read_labels(y, name: str) -> np.ndarray:
    """One label per sample as a 1-D array of int64 or of str (rule 1 and the float part of rule 3)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 2:
        if y.dtype.kind in "biuf" and np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all():
            return np.argmax(y, axis=1).astype(np.int64)  # one-hot
        raise UserError(f"the {name} labels are {y.shape[1]} values per sample", expected="one class per sample: ids, text, or one-hot rows",
                        received=f"an array shaped {y.shape} whose rows are not one-hot",
                        fix="give each sample's class (for one-hot rows: y.argmax(axis=1)); multi-label targets are not supported")
    if y.ndim != 1:
        raise UserError(f"the {name} labels have the wrong shape", expected="one label per sample, shaped (N,)", received=f"shape {y.shape}")
    if y.dtype.kind == "b":
        return y.astype(np.int64)
    if y.dtype.kind in "iu":
        return y.astype(np.int64)
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            bad = int(np.argmin(np.isfinite(y)))
            raise UserError(f"the {name} labels contain NaN or Inf", expected="a class for every sample", received=f"{y[bad]} at sample {bad}")
        whole = y == np.round(y)
        if not whole.all():
            bad = int(np.argmin(whole))
            raise UserError(f"the {name} labels are not whole numbers", expected="classes: integer ids, or text",
                            received=f"{y[bad]:g} at sample {bad}",
                            fix="trainwise trains classifiers; if these values are class codes, give them as integers or text")
        return y.astype(np.int64)
    if y.dtype.kind in "USO":
        return np.array([str(v) for v in y.tolist()])
    raise UserError(f"the {name} labels are not classes", expected="integer ids, text or one-hot rows", received=str(y.dtype))


@dataclass
class Encoded:
    """Class ids per split, a mask of the samples kept (data.classes; None: all) and the class names."""

    ids: dict[str, np.ndarray]
    keep: dict[str, np.ndarray | None]
    class_names: list[str]


def encode_labels(splits: dict[str, np.ndarray | None], classes: list[int] | None = None,
                  class_names: list[str] | None = None) -> Encoded:
    """Rules 2-5 over labels already read (``read_labels``); the first split is the training split."""
    train_name = next(iter(splits))
    train = splits[train_name]
    text = train.dtype.kind == "U"
    values = np.unique(train)  # sorted
    if text:  # text is numbered in sorted order first; data.classes then refers to those ids
        class_names = [str(v) for v in values]
        splits = {k: None if y is None else _text_ids(y, values, k, train_name) for k, y in splits.items()}
        train, values = splits[train_name], np.arange(len(values))
    keep: dict[str, np.ndarray | None] = {k: None for k in splits}
    if classes is not None:
        missing = [c for c in classes if c not in set(values.tolist())]
        if missing:
            raise UserError(f"data.classes names {missing[0]}, which no {train_name} label has",
                            expected=f"label values present in the data: {_list(values)}", received=classes,
                            fix=f"set data.classes to some of {_list(values)}")
        keep = {k: None if y is None else np.isin(y, classes) for k, y in splits.items()}
        order = np.asarray(classes)
        names = [(class_names[c] if class_names and c < len(class_names) else str(c)) for c in classes]
    elif len(values) and values[0] == 0 and values[-1] == len(values) - 1:
        order = values
        names = [str(n) for n in class_names[: len(values)]] if class_names and len(class_names) >= len(values) else [str(c) for c in values]
    else:
        listed = ",".join(str(v) for v in values.tolist())
        raise UserError(f"the {train_name} labels are not class ids 0..{len(values) - 1}", expected=f"{len(values)} classes numbered 0..{len(values) - 1}",
                        received=f"label values {_list(values)}",
                        fix=f"renumber them, or keep and number them in the order you choose: data.classes=[{listed}] (--set data.classes=[{listed}])")
    if text and classes is None:
        shown = ", ".join(f"{n}={i}" for i, n in enumerate(names[:8])) + (", ..." if len(names) > 8 else "")
        log.warning(f"note: the {train_name} labels are text: {len(names)} classes numbered in sorted order ({shown})")
    ids = {}
    for k, y in splits.items():
        if y is None:
            ids[k] = None
            continue
        y = y if keep[k] is None else y[keep[k]]
        unseen = np.setdiff1d(y, order)
        if unseen.size:
            raise UserError(f"the {k} labels hold class {_value(unseen[0], text, class_names)}, which no {train_name} label has",
                            expected=f"classes seen in training: {_list(order) if not text else ', '.join(names)}",
                            fix="put samples of every class in the training data, or leave the class out (data.classes)")
        ids[k] = np.searchsorted(order, y, sorter=np.argsort(order)).astype(np.int64) if classes is None else _ordered(y, order)
    return Encoded(ids, keep, names)


def check_seen_in_training(train_ids: np.ndarray, others: dict[str, np.ndarray | None], class_names: list[str]) -> None:
    """Rule 5 after a split: a class in validation or test that the training split lacks is an error."""
    seen = set(np.unique(train_ids).tolist())
    for name, y in others.items():
        if y is None:
            continue
        unseen = sorted(set(np.unique(y).tolist()) - seen)
        if unseen:
            label = class_names[unseen[0]] if unseen[0] < len(class_names) else str(unseen[0])
            raise UserError(f"the {name} split holds class {label!r}, which the training split lacks", expected="every class in the training split",
                            received=f"{int((y == unseen[0]).sum())} {name} sample(s) of it and none for training",
                            fix="give that class more samples, or leave it out with data.classes")


def dataset_class_count(present: dict[str, np.ndarray], train_name: str) -> int:
    """Rules 2, 4 and 5 for a torch Dataset's labels, which trainwise does not renumber (so data.classes
    cannot be the fix): ``present`` holds each split's distinct class ids, and K comes from the training
    ones, which must be exactly 0..K-1. A gap ({20..29}, {0, 7}) is most often an offset or the wrong
    field, and would train K - k empty classes."""
    ids = present[train_name]
    k = int(ids.max()) + 1 if len(ids) else 0
    if len(ids) != k:
        shown = ", ".join(str(v) for v in ids[:8]) + (", ..." if len(ids) > 8 else "")
        raise UserError(f"the {train_name} labels are not the class ids 0..K-1", expected=f"each of 0..{k - 1} in the {train_name} labels",
                        received=f"{len(ids)} distinct values: {shown}",
                        fix="make the Dataset return ids 0..K-1 (e.g. a lookup from its values), or give it a `classes` list of "
                            "K names (or from_arrays(..., num_classes=K)) when classes 0..K-1 are meant and some have no training samples")
    for name, other in present.items():
        unseen = np.setdiff1d(other, ids)
        if unseen.size:
            raise UserError(f"the {name} labels hold classes that the {train_name} labels lack", expected=f"class ids 0..{k - 1}",
                            received=", ".join(str(v) for v in unseen[:8].tolist()),
                            fix=f"check the {name} Dataset's labels against the {train_name} one's")
    return k


def _text_ids(y: np.ndarray, values: np.ndarray, name: str, train_name: str) -> np.ndarray:
    if y.dtype.kind != "U":
        y = np.array([str(v) for v in y.tolist()])
    unseen = np.setdiff1d(y, values)
    if unseen.size:
        raise UserError(f"the {name} labels hold class {str(unseen[0])!r}, which no {train_name} label has",
                        expected=f"classes seen in training: {', '.join(map(str, values[:20]))}",
                        fix="put samples of every class in the training data, or leave the class out")
    return np.searchsorted(values, y).astype(np.int64)


def _ordered(y: np.ndarray, order: np.ndarray) -> np.ndarray:
    lookup = {int(c): i for i, c in enumerate(order.tolist())}
    return np.fromiter((lookup[int(v)] for v in y.tolist()), dtype=np.int64, count=len(y))


def _value(v, text: bool, class_names: list[str] | None) -> str:
    return repr(class_names[int(v)]) if text and class_names else str(v)


def _list(values: np.ndarray, limit: int = 12) -> str:
    items = [str(v) for v in np.asarray(values).tolist()]
    return "{" + ", ".join(items[:limit]) + (", ..." if len(items) > limit else "") + "}"
