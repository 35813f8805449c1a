"""Image folders (``data.name = "folder"``): one subdirectory per class, PNG/JPEG/... files decoded by Pillow.

    data.path/                      or, with splits of your own:   data.path/train/<class>/...
        cat/001.png  cat/002.jpg                                    data.path/val/<class>/...   (or valid/)
        dog/001.png  ...                                            data.path/test/<class>/...

Class names are the folder names, sorted (class id = position). Without ``train/``, the files are split into
train/validation/test with the seeded stratified split every source uses (``data.split_seed``,
``data.val_fraction``, ``data.test_fraction``). Only the list of files is held in memory: each sample is
opened, decoded, converted to ``data.channels`` channels and resized to ``data.image_size`` when it is
read, in DataLoader workers. A progressive-resizing phase changes the decode size itself (the loader
passes the phase's height with each index), so small phases cost small decodes.

With ``data.normalize`` the inputs are standardized per channel with the mean and standard deviation of up
to 256 training images (a seeded sample), decoded at the full size.

A file Pillow cannot read stops training with an error naming it; with ``data.skip_corrupt = true`` it is
left out of its batch instead and the number left out is reported at the end of each epoch.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from trainwise.config import DataConfig
from trainwise.errors import UserError

log = logging.getLogger("trainwise")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SPLIT_DIRS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
NORM_SAMPLE = 256


class CorruptImage(UserError):
    """A file Pillow cannot decode. Built from one message, so that it survives DataLoader workers (which
    re-raise an exception as ``type(message_with_traceback)``): the last line is the message."""

    def __init__(self, message: str):
        lines = [line for line in str(message).splitlines() if line.strip()]
        last = lines[-1] if lines else str(message)
        Exception.__init__(self, last.split("CorruptImage: ", 1)[-1])


def find_images(root: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names (sorted subdirectory names) and (file, class id) pairs in ``root``, in a fixed order."""
    if not root.is_dir():
        raise UserError(f"image folder {str(root)!r} not found", expected="a directory with one subdirectory per class",
                        fix="set data.path to the folder of class subdirectories")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise UserError(f"{root} has {len(classes)} class folder(s)", expected="one subdirectory per class, at least two",
                        received=classes, fix="put each class's images in a subdirectory named after the class")
    samples: list[tuple[str, int]] = []
    for label, name in enumerate(classes):
        # os.walk reads file types from the directory entries: no stat per file (a folder holds many thousands)
        files = sorted(os.path.join(d, f) for d, _, names in os.walk(root / name) for f in names
                       if os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserError(f"class folder {root / name} holds no images", expected=f"files ending in {', '.join(sorted(IMAGE_SUFFIXES))}",
                            fix="add images or remove the folder")
        samples += [(f, label) for f in files]
    return classes, samples


def open_image(path: str, channels: int | None = None):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if channels is None:
                return im
            return im.convert("L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        detail = f"{type(err).__name__}: {str(err).splitlines()[0][:120]}" if str(err).strip() else type(err).__name__
        raise CorruptImage(str(UserError(f"cannot decode image {path}", expected="an image file Pillow can read", received=detail,
                                         fix="replace or delete the file, or set data.skip_corrupt=true to leave such files out"))) from None


def decode(path: str, size: tuple[int, int], channels: int) -> torch.Tensor:
    """One image as a float32 tensor (C, H, W) in [0, 1], resized to ``size`` = (H, W) (Pillow's bilinear, antialiased)."""
    from PIL import Image

    im = open_image(path, channels)
    if im.size != (size[1], size[0]):
        im = im.resize((size[1], size[0]), Image.BILINEAR)
    arr = np.asarray(im, dtype=np.uint8)
    t = torch.from_numpy(arr.copy()).float().div_(255.0)
    return t[None] if channels == 1 else t.permute(2, 0, 1).contiguous()


class FolderDataset(Dataset):
    """Samples ``(image, class id)`` of some files of an image folder, decoded when read.

    An index may come as ``(i, height)``: the image is then decoded at that height (the width keeps the
    aspect ratio of ``size``), as progressive resizing asks.
    """

    decodes_at_height = True  # the DatasetLoader may pass (index, height) pairs

    def __init__(self, samples: list[tuple[str, int]], classes: list[str], size: tuple[int, int], channels: int,
                 mean: list[float] | None = None, std: list[float] | None = None, skip_corrupt: bool = False):
        self.files = [f for f, _ in samples]
        self.targets = np.asarray([c for _, c in samples], dtype=np.int64)
        self.classes, self.size, self.channels, self.skip_corrupt = classes, size, channels, skip_corrupt
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.files)

    def size_at(self, height: int | None) -> tuple[int, int]:
        h, w = self.size
        return self.size if height is None or height == h else (height, max(1, round(w * height / h)))

    def __getitem__(self, item):
        i, height = item if isinstance(item, tuple) else (item, None)
        try:
            x = decode(self.files[i], self.size_at(height), self.channels)
        except CorruptImage:
            if self.skip_corrupt:
                return None  # dropped by skip_none_collate; the loader counts it
            raise
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return x, int(self.targets[i])


def skip_none_collate(samples: list):
    """torch's default collation of the samples that are not None (corrupt files left out)."""
    from torch.utils.data import default_collate

    kept = [s for s in samples if s is not None]
    if not kept:
        return None
    return default_collate(kept)


def _image_size(cfg: DataConfig, first: str) -> tuple[int, int]:
    if cfg.image_size is not None:
        return (cfg.image_size, cfg.image_size) if isinstance(cfg.image_size, int) else tuple(cfg.image_size)
    w, h = open_image(first).size
    return h, w


def _channels(cfg: DataConfig, first: str) -> int:
    if cfg.channels is not None:
        return cfg.channels
    return 1 if open_image(first).mode in ("1", "L", "I", "I;16", "F") else 3


def _split_dirs(root: Path) -> dict[str, Path] | None:
    """``train/`` (and ``val/``, ``test/``) under ``root``, when the folder comes split."""
    found = {split: next((root / n for n in names if (root / n).is_dir()), None) for split, names in SPLIT_DIRS.items()}
    return {k: v for k, v in found.items() if v is not None} if found["train"] is not None else None


def folder_splits(cfg: DataConfig):
    """The DataSplits of ``data.path``: three FolderDatasets, nothing decoded but the normalization sample."""
    from trainwise.data import DataSplits, _split, _stratified_take

    if not cfg.path:
        raise UserError('data.name = "folder" needs a directory', expected="data.path", fix="set data.path to the image folder")
    root = Path(cfg.path)
    given = _split_dirs(root)
    if given is not None:
        classes, train = find_images(given["train"])
        parts = {"train": train}
        for split in ("val", "test"):
            if split in given:
                names, parts[split] = find_images(given[split])
                if names != classes:
                    raise UserError(f"{given[split]} has other classes than {given['train']}", expected=classes, received=names,
                                    fix="give every split the same class folders")
        if "test" not in parts:
            parts["train"], parts["test"] = _take(parts["train"], _split(_labels(parts["train"]), cfg.test_fraction, cfg.split_seed))
        if "val" not in parts and cfg.val_fraction > 0:
            parts["train"], parts["val"] = _take(parts["train"], _split(_labels(parts["train"]), cfg.val_fraction, cfg.split_seed))
    else:
        classes, samples = find_images(root)
        train, test = _take(samples, _split(_labels(samples), cfg.test_fraction, cfg.split_seed))
        parts = {"train": train, "test": test}
        if cfg.val_fraction > 0:
            parts["train"], parts["val"] = _take(train, _split(_labels(train), cfg.val_fraction, cfg.split_seed))
    if cfg.classes is not None:
        parts, classes = _keep_classes(parts, classes, cfg.classes), [classes[c] for c in cfg.classes if c < len(classes)]
    if cfg.train_subset is not None:
        keep = _stratified_take(_labels(parts["train"]), cfg.train_subset, cfg.split_seed)
        parts["train"] = [parts["train"][i] for i in keep]
    first = parts["train"][0][0]
    size, channels = _image_size(cfg, first), _channels(cfg, first)
    mean = std = None
    norm: dict = {}
    if cfg.normalize:
        mean, std = channel_stats(parts["train"], size, channels, cfg.split_seed)
        # (C, 1, 1) lists, so that a saved run's Preprocessed module broadcasts them over (N, C, H, W)
        norm["input"] = {"mean": [[[m]] for m in mean], "std": [[[s]] for s in std]}

    def dataset(split: str) -> FolderDataset | None:
        if split not in parts:
            return None
        return FolderDataset(parts[split], classes, size, channels, mean, std, cfg.skip_corrupt)

    from trainwise.data.datasets import DatasetData

    collate = {"collate_fn": skip_none_collate} if cfg.skip_corrupt else {}
    wrap = lambda split, name: None if split not in parts else DatasetData(dataset(split), name=name, options=collate)  # noqa: E731
    return DataSplits(train=wrap("train", "training"), val=wrap("val", "validation"), test=wrap("test", "test"),
                      num_classes=len(classes), task="binary" if len(classes) == 2 else "multiclass",
                      input_shape=(channels, *size), class_names=classes, normalization=norm)


def _labels(samples: list[tuple[str, int]]) -> np.ndarray:
    return np.asarray([c for _, c in samples], dtype=np.int64)


def _take(samples, index_pair):
    a, b = index_pair
    return [samples[i] for i in a], [samples[i] for i in b]


def _keep_classes(parts: dict, classes: list[str], keep: list[int]) -> dict:
    missing = [c for c in keep if c >= len(classes)]
    if missing:
        raise UserError("data.classes names classes the folder does not have", expected=f"class ids 0..{len(classes) - 1} ({', '.join(classes)})",
                        received=missing)
    relabel = {c: i for i, c in enumerate(keep)}
    return {k: [(f, relabel[c]) for f, c in v if c in relabel] for k, v in parts.items()}


def channel_stats(samples: list[tuple[str, int]], size: tuple[int, int], channels: int, seed: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of up to NORM_SAMPLE training images (a seeded sample)."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(samples), size=min(NORM_SAMPLE, len(samples)), replace=False)
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    count = 0
    for i in sorted(pick):
        try:
            x = decode(samples[i][0], size, channels).double()
        except CorruptImage:
            continue  # the training loop reports it (or skips it) when it gets there
        total += x.sum(dim=(1, 2))
        squares += (x * x).sum(dim=(1, 2))
        count += x.shape[1] * x.shape[2]
    if count == 0:
        raise UserError("no image of the sample could be decoded", fix="check the image files in data.path")
    mean = total / count
    std = (squares / count - mean * mean).clamp_min(0).sqrt()
    std = torch.where(std < 1e-8, torch.ones_like(std), std)
    return [float(m) for m in mean], [float(s) for s in std]
