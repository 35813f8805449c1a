"""Image folders (``data.name = "folder"``): one subdirectory per class, PNG/JPEG/... files decoded by Pillow (PNG files
through OpenCV when it is installed and gives the same pixels: trainwise/data/decoders.py).

    data.path/                      or, with splits of your own:   data.path/train/<class>/...
        cat/001.png  cat/002.jpg                                    data.path/val/<class>/...   (or valid/)
        dog/001.png  ...                                            data.path/test/<class>/...

Class names are the folder names, sorted (class id = position). Without ``train/``, the files are split into
train/validation/test with the seeded stratified split every source uses (``data.split_seed``,
``data.val_fraction``, ``data.test_fraction``). Only the list of files is held in memory: DataLoader workers
fetch whole batches, opening, decoding, converting (to ``data.channels`` channels) and resizing (to
``data.image_size``) each file into one uint8 array per batch; a GPU gets that array and finishes it
(floats, normalization) on the device (:class:`FolderDataset`). A progressive-resizing phase changes the
decode size itself (the loader passes the phase's height with each index), so small phases cost small
decodes.

With ``data.normalize`` the inputs are standardized per channel with the mean and standard deviation of up
to 256 training images (a seeded sample), decoded at the full size.

A file that cannot be decoded stops training with an error naming it; with ``data.skip_corrupt = true`` it is
left out of its batch instead and the number left out is reported at the end of each epoch.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from trainwise.config import DataConfig
from trainwise.data import decoders
from trainwise.data.datasets import BatchGroup
from trainwise.errors import UserError

log = logging.getLogger("trainwise")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SPLIT_DIRS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
NORM_SAMPLE = 256
# Batches up to this size leave a worker as numpy arrays, copied through the DataLoader's pipe; larger ones as
# tensors in shared memory. Measured on the CPU machine with 2 workers (the training process's CPU time per
# batch): 0.1 MiB 0.1 ms by value against 0.7 ms shared (a file descriptor per tensor, passed over a socket);
# 1 MiB about 1.3 ms either way; 8 MiB 8-11 ms by value against 3.4 ms shared.
BY_VALUE_BYTES = 2**20
# Small batches travel several to a DataLoader fetch (FolderDataset.fetch_group), up to BY_VALUE_BYTES of
# pixels and at most this many batches: each fetch's fixed cost in the training process (the DataLoader's
# queues and pipe, pinning, the copy to the device, finish_batch's kernels) is paid once for the group, on
# the thread that also launches the model's kernels.
MAX_GROUP = 8


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
    """The decoded image at ``path`` (as Pillow reads it, or converted to ``channels``); CorruptImage if it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            mode = None if channels is None else ("L" if channels == 1 else "RGB")
            return im if mode is None or im.mode == mode else im.convert(mode)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise _corrupt(path, err) from None


def _corrupt(path: str, err: Exception) -> CorruptImage:
    detail = f"{type(err).__name__}: {str(err).splitlines()[0][:120]}" if str(err).strip() else type(err).__name__
    return CorruptImage(str(UserError(f"cannot decode image {path}", expected="an image file Pillow can read", received=detail,
                                      fix="replace or delete the file, or set data.skip_corrupt=true to leave such files out")))


def decode_pixels(path: str, size: tuple[int, int], channels: int, decoder: str = "pillow") -> np.ndarray:
    """One image as uint8 pixels, (H, W) for one channel or (H, W, 3), resized to ``size`` = (H, W) (Pillow's
    bilinear filter, antialiased when shrinking). ``decoder = "opencv"``: a PNG file stored as it is needed
    is read through OpenCV (trainwise/data/decoders.py: the same pixels, about twice as fast).

    Few Python calls per image, as small files make them the cost: ``tobytes`` loads and copies out in one
    call (cheaper than ``load`` then ``numpy.asarray``), and an image already in the wanted mode is not
    converted.
    """
    from PIL import Image, UnidentifiedImageError

    mode = "L" if channels == 1 else "RGB"
    stored = decoders.png_as_stored(path, channels) if decoder == "opencv" and path[-4:].lower() == ".png" else None
    if stored is not None and stored.shape[:2] == tuple(size):
        return stored
    try:
        # OpenCV's pixels at another size are resized below exactly as an image Pillow decoded itself
        with Image.open(path) if stored is None else Image.fromarray(stored, mode) as im:
            if im.mode != mode:
                im = im.convert(mode)
            if im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.BILINEAR)
            raw = im.tobytes()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise _corrupt(path, err) from None
    return np.frombuffer(raw, dtype=np.uint8).reshape(size if channels == 1 else (*size, 3))


def decode(path: str, size: tuple[int, int], channels: int, decoder: str = "pillow") -> torch.Tensor:
    """One image as a float32 tensor (C, H, W) in [0, 1] (see :func:`decode_pixels`)."""
    return host_floats(decode_pixels(path, size, channels, decoder)[None], channels)[0]


def host_floats(pixels: np.ndarray, channels: int, mean: np.ndarray | None = None, std: np.ndarray | None = None) -> torch.Tensor:
    """uint8 pixels (N, H, W, 3), or (N, H, W) for one channel, as float32 (N, C, H, W) in [0, 1], then
    ``(x - mean) / std`` when given ((1, C, 1, 1) float32 arrays).

    In numpy, on one thread: in a worker, or in a training process whose torch threads are busy with the
    model, a batch this small gains nothing from torch's thread pool and can wait on it. Every step is one
    IEEE float32 operation, the same that :meth:`FolderDataset.finish_batch` makes with torch on a CPU, so
    both give the same values bit for bit.
    """
    x = pixels[:, None] if channels == 1 else pixels.transpose(0, 3, 1, 2)
    x = np.ascontiguousarray(x, dtype=np.float32)
    x /= np.float32(255.0)
    if mean is not None:
        x -= mean
        x /= std
    return torch.from_numpy(x)


class DecodedBatch(NamedTuple):
    """A batch as the workers decode it: uint8 pixels (N, H, W[, 3]) and int64 class ids, or, for training
    on the CPU, the finished float32 inputs (N, C, H, W). Numpy arrays up to BY_VALUE_BYTES, tensors above
    (the loader makes tensors of arrays)."""

    pixels: torch.Tensor | np.ndarray
    targets: torch.Tensor | np.ndarray

    def pin_memory(self) -> DecodedBatch:
        """Pinned tensors of the batch. The DataLoader's pin thread calls this (torch pins any object with a
        ``pin_memory`` method), so the numpy arrays a worker sent by value are pinned beside the training
        loop instead of on the thread that launches its kernels."""
        return DecodedBatch(*(torch.from_numpy(t).pin_memory() if isinstance(t, np.ndarray) else t.pin_memory() for t in self))


class FolderDataset(Dataset):
    """Samples ``(image, class id)`` of some files of an image folder, decoded when read.

    The DataLoader fetches whole batches (``__getitems__``, which torch's map-style fetcher calls when a
    dataset defines it): a worker decodes a batch's files straight into one preallocated uint8 array, with
    no per-sample tensors and no per-sample collation. With ``raw_batches`` (set by the loader when it
    trains on a GPU) the uint8 batch crosses to the device as it is, a quarter of float32's bytes, and the
    loader converts and normalizes it there (``finish_batch``); otherwise the worker does that itself (on
    the CPU the worker processes are where the spare cores are). ``dataset[i]`` gives one sample as a float
    tensor, the same values bit for bit.

    An index may come as ``(i, height)``: the image is then decoded at that height (the width keeps the
    aspect ratio of ``size``), as progressive resizing asks.
    """

    decodes_at_height = True  # the DatasetLoader may pass (index, height) pairs
    raw_batches = False  # True: __getitems__ leaves the pixels uint8, for finish_batch on the training device

    def __init__(self, samples: list[tuple[str, int]], classes: list[str], size: tuple[int, int], channels: int,
                 mean: list[float] | None = None, std: list[float] | None = None, skip_corrupt: bool = False,
                 decoder: str = "pillow"):
        self.files = [f for f, _ in samples]
        self.decoder = decoder  # "pillow" or "opencv" (decoders.resolve): who decodes PNG files
        self.targets = np.asarray([c for _, c in samples], dtype=np.int64)
        self.classes, self.size, self.channels, self.skip_corrupt = classes, size, channels, skip_corrupt
        # (1, C, 1, 1) float32 statistics for the host (numpy) and, copied once per device, for finish_batch
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
        self.std = None if std is None else np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
        self._stats_on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.files)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_stats_on": {}}  # workers get the host statistics, not device copies

    def size_at(self, height: int | None) -> tuple[int, int]:
        h, w = self.size
        return self.size if height is None or height == h else (height, max(1, round(w * height / h)))

    def __getitem__(self, item):
        i, height = item if isinstance(item, tuple) else (item, None)
        try:
            pixels = decode_pixels(self.files[i], self.size_at(height), self.channels, self.decoder)
        except CorruptImage:
            if self.skip_corrupt:
                return None  # dropped by folder_collate; the loader counts it
            raise
        return host_floats(pixels[None], self.channels, self.mean, self.std)[0], int(self.targets[i])

    def fetch_group(self, batch_size: int) -> int:
        """How many consecutive batches one fetch carries (see MAX_GROUP), from the full-size pixels' bytes."""
        h, w = self.size
        nbytes = batch_size * h * w * (1 if self.channels == 1 else 3) * (1 if self.raw_batches else 4)
        return max(1, min(MAX_GROUP, BY_VALUE_BYTES // max(1, nbytes)))

    def __getitems__(self, items: list) -> DecodedBatch | BatchGroup | None:
        """The samples ``items`` (indices, or ``(index, height)`` pairs of one height) as one DecodedBatch;
        a list of such batches (a group, see :meth:`fetch_group`) as one BatchGroup. Corrupt files are left
        out with ``data.skip_corrupt`` (None when all of them are)."""
        grouped = bool(items) and isinstance(items[0], list)
        batches = items if grouped else [items]
        heights = {item[1] for batch in batches for item in batch if isinstance(item, tuple)}
        size = self.size_at(heights.pop() if heights else None)
        total = sum(len(batch) for batch in batches)
        pixels = np.empty((total, *size) if self.channels == 1 else (total, *size, 3), dtype=np.uint8)
        kept, counts = [], []
        for batch in batches:
            before = len(kept)
            for item in batch:
                i = item[0] if isinstance(item, tuple) else item
                try:
                    pixels[len(kept)] = decode_pixels(self.files[i], size, self.channels, self.decoder)
                except CorruptImage:
                    if not self.skip_corrupt:
                        raise
                    continue
                kept.append(i)
            counts.append(len(kept) - before)
        if not kept:
            return None
        pixels = pixels[:len(kept)]
        x = pixels if self.raw_batches else host_floats(pixels, self.channels, self.mean, self.std).numpy()
        targets = self.targets[kept]
        if x.nbytes > BY_VALUE_BYTES:  # large batches cross to the training process in shared memory
            decoded = DecodedBatch(torch.from_numpy(x), torch.from_numpy(targets))
        else:
            decoded = DecodedBatch(x, targets)
        return BatchGroup(decoded, tuple(counts)) if grouped else decoded

    def finish_batch(self, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """uint8 pixels (a raw batch, already on the training device) as float32 (N, C, H, W), scaled to
        [0, 1] and standardized there, in the steps of :func:`host_floats`; float inputs (batches the
        workers finished) pass through. (On a GPU, torch divides by a number as a multiplication by its
        inverse, so the values can differ from the host's in the last bit.)"""
        x = inputs[0]
        if x.dtype != torch.uint8:
            return inputs
        x = x[:, None] if self.channels == 1 else x.permute(0, 3, 1, 2)
        x = x.to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)
        if self.mean is not None:
            if x.device not in self._stats_on:
                self._stats_on[x.device] = (torch.from_numpy(self.mean).to(x.device), torch.from_numpy(self.std).to(x.device))
            mean, std = self._stats_on[x.device]
            x = x.sub_(mean).div_(std)
        return (x, *inputs[1:])


def folder_collate(batch):
    """A DecodedBatch or BatchGroup as it is; a list of single samples (``dataset[i]``) through torch's default collation,
    without those that are None (corrupt files left out)."""
    from torch.utils.data import default_collate

    if batch is None or isinstance(batch, (DecodedBatch, BatchGroup)):
        return batch
    kept = [s for s in batch if s is not None]
    return default_collate(kept) if kept else None


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
    decoder = decoders.resolve(cfg.decoder)
    mean = std = None
    norm: dict = {}
    if cfg.normalize:
        mean, std = channel_stats(parts["train"], size, channels, cfg.split_seed, decoder)
        # (C, 1, 1) lists, so that a saved run's Preprocessed module broadcasts them over (N, C, H, W)
        norm["input"] = {"mean": [[[m]] for m in mean], "std": [[[s]] for s in std]}

    def dataset(split: str) -> FolderDataset | None:
        if split not in parts:
            return None
        return FolderDataset(parts[split], classes, size, channels, mean, std, cfg.skip_corrupt, decoder)

    from trainwise.data.datasets import DatasetData

    collate = {"collate_fn": folder_collate}
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


def channel_stats(samples: list[tuple[str, int]], size: tuple[int, int], channels: int, seed: int,
                  decoder: str = "pillow") -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of up to NORM_SAMPLE training images (a seeded sample)."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(samples), size=min(NORM_SAMPLE, len(samples)), replace=False)
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    count = 0
    for i in sorted(pick):
        try:
            x = decode(samples[i][0], size, channels, decoder).double()  # the conversion the batches get
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
