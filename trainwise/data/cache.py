"""A cache of prepared splits: a second run on the same data reads one tensor file instead of preparing it again.

Preparing Fashion-MNIST (decompressing four IDX files, the stratified split through scikit-learn, the
normalization) takes seconds in a cold process, mostly imports; reading the prepared float tensors back
from a safetensors file takes a fraction of one. ``data.cache = true`` (the default) keeps them under
``$TRAINWISE_CACHE`` (default ``~/.cache/trainwise/data``), for the built-in datasets only
(``CACHED_SOURCES``); a user's files and Datasets are always read as they are.

The key is a hash of everything the prepared splits depend on: the whole ``[data]`` section, the source
files' paths, sizes and modification times, the versions of the libraries that generate or split the
data, and the source code of ``trainwise/data/`` itself, so that a change to any of them misses the
cache instead of reading stale tensors. Each tensor's CRC-32 is stored beside it and checked on read,
so a file that cannot be read back whole (damaged bytes, truncated, another format) is a miss: the data is prepared again and the file rewritten. Writes are atomic, so parallel
runs at worst prepare the same data twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from pathlib import Path

import torch

from trainwise.config import DataConfig

CACHED_SOURCES = ("digits", "breast_cancer", "mnist1d", "fashion_mnist")
# How the prepared splits are batched and loaded does not change them: these keys stay out of the key.
LOADER_KEYS = ("batch_size", "eval_batch_size", "drop_last", "loader", "num_workers", "pin_memory", "persistent_workers",
               "prefetch_factor", "cache")
FORMAT = 1


def _crc(t: torch.Tensor) -> int:
    return zlib.crc32(memoryview(t.contiguous().view(torch.uint8).numpy()))


def cache_dir() -> Path:
    return Path(os.environ.get("TRAINWISE_CACHE") or Path.home() / ".cache" / "trainwise") / "data"


def _source_files(cfg: DataConfig) -> list[Path]:
    if cfg.name != "fashion_mnist":
        return []
    from trainwise.data.sources import FASHION_FILES, _find_idx, fashion_mnist_dir

    base = fashion_mnist_dir(cfg.path)
    return [p for stem in FASHION_FILES.values() if (p := _find_idx(base, stem)) is not None]


def _versions(cfg: DataConfig) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    names = {"digits": ["scikit-learn"], "breast_cancer": ["scikit-learn"], "mnist1d": ["mnist1d", "scikit-learn"],
             "fashion_mnist": ["scikit-learn"]}[cfg.name]
    out = {"numpy": version("numpy")}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def _code_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def cache_key(cfg: DataConfig) -> str:
    files = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in _source_files(cfg)]
    data = {k: v for k, v in cfg.model_dump(mode="json").items() if k not in LOADER_KEYS}
    material = {"format": FORMAT, "data": data, "files": files, "versions": _versions(cfg), "code": _code_digest()}
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _path(cfg: DataConfig) -> Path:
    return cache_dir() / f"{cfg.name}-{cache_key(cfg)}.safetensors"


def load(cfg: DataConfig):
    """The cached DataSplits for this config, or None (not cached, caching off, or unreadable)."""
    if not cfg.cache or cfg.name not in CACHED_SOURCES:
        return None
    path = _path(cfg)
    if not path.exists():
        return None
    from safetensors import SafetensorError, safe_open

    from trainwise.data import DataSplits, TensorData

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["splits"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if {k: _crc(t) for k, t in tensors.items()} != meta["crc32"]:
            return None  # damaged bytes: prepared again and rewritten
        splits = {}
        for split in ("train", "val", "test"):
            n = meta["inputs"].get(split)
            splits[split] = None if n is None else TensorData(tuple(tensors[f"{split}.input{i}"] for i in range(n)), tensors[f"{split}.targets"])
        return DataSplits(**splits, num_classes=meta["num_classes"], task=meta["task"], input_shape=tuple(meta["input_shape"]),
                          feature_dim=meta["feature_dim"], class_names=meta["class_names"], normalization=meta["normalization"])
    except (OSError, KeyError, ValueError, TypeError, SafetensorError):
        return None  # prepared again and rewritten by store()


def store(cfg: DataConfig, data) -> None:
    """Write the prepared splits (tensor splits only) for the next run; a failure to write is not an error."""
    if not cfg.cache or cfg.name not in CACHED_SOURCES:
        return
    from safetensors.torch import save_file

    from trainwise.data import TensorData

    tensors: dict[str, torch.Tensor] = {}
    inputs: dict[str, int | None] = {}
    for split in ("train", "val", "test"):
        part = getattr(data, split)
        if part is not None and not isinstance(part, TensorData):
            return
        inputs[split] = None if part is None else len(part.inputs)
        if part is not None:
            for i, t in enumerate(part.inputs):
                tensors[f"{split}.input{i}"] = t.contiguous()
            tensors[f"{split}.targets"] = part.targets.contiguous()
    meta = {"inputs": inputs, "num_classes": data.num_classes, "task": data.task, "input_shape": list(data.input_shape),
            "feature_dim": data.feature_dim, "class_names": data.class_names, "normalization": data.normalization,
            "crc32": {k: _crc(t) for k, t in tensors.items()}}
    path = _path(cfg)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(tmp), metadata={"splits": json.dumps(meta)})
        os.replace(tmp, path)  # atomic: a reader sees the old file or the whole new one
    except Exception:  # a cache that cannot be written must never fail the run it would only have sped up
        tmp.unlink(missing_ok=True)
