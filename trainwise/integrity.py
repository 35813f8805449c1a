"""Checksums of the files a run writes (``manifest.json``), verified when they are read back.

A byte flipped inside ``last.pt`` or a ``.safetensors`` file still loads: the formats check their
structure, not their contents, and the run would continue from (or evaluate) damaged weights. So every
file trainwise writes into a run directory is listed in ``RUN/manifest.json`` with its SHA-256 and size,
and readers compare before they trust a file.

The entry is written *before* the new file is renamed into place, and it keeps the checksum of the
version it replaces (``previous``). A kill between the two leaves either version on disk, and both are
accepted; anything else is damage (:class:`DamagedFile`, a one-line UserError that names the file).
Files the manifest does not list (runs written before it existed, files added by hand) are read as
they are.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from trainwise.errors import UserError

MANIFEST = "manifest.json"
FORMAT = 1
log = logging.getLogger("trainwise")


class DamagedFile(UserError):
    """A run file whose bytes are not the ones trainwise wrote."""

    def __init__(self, path: Path, why: str):
        super().__init__(f"{path} is damaged: {why}",
                         expected=f"the file trainwise wrote (its checksum is in {path_to_manifest(path) or MANIFEST})",
                         fix="restore the file from a copy or train the run again; to read it anyway, delete its entry in manifest.json")
        self.path, self.why = path, why


def path_to_manifest(path: Path) -> Path | None:
    root = run_root(path)
    return root / MANIFEST if root is not None else None


def sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def run_root(path: Path) -> Path | None:
    """The run directory that lists ``path`` in its manifest: its folder, or the one above (checkpoints/)."""
    for root in (path.parent, path.parent.parent):
        if (root / MANIFEST).is_file():
            return root
    return None


def read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
        files = data["files"]
        if not isinstance(files, dict) or not all(isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in files.values()):
            raise ValueError("the files table is malformed")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path} is damaged", expected="the JSON checksum table trainwise writes",
                        received=f"{type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}",
                        fix="delete manifest.json to read the run's files without checking them") from None
    return files


def record(root: Path, entries: dict[str, Path]) -> None:
    """Before ``entries`` (name in the run -> the new file, not yet in place) replace the files of those
    names: list their checksums, keeping the current ones as ``previous``."""
    files = _readable_manifest(root)
    for name, new in entries.items():
        old = files.get(name, {}).get("sha256")
        files[name] = {"sha256": sha256(new), "size": new.stat().st_size} | ({"previous": old} if old else {})
    _write(root, files)


def record_rotation(root: Path, last: str, previous: str, ready: Path) -> None:
    """Before ``last`` becomes ``previous`` and ``ready`` becomes ``last`` (checkpoint rotation): list both."""
    files = _readable_manifest(root)
    old_last, old_previous = files.get(last), files.get(previous, {}).get("sha256")
    if old_last is not None and (root / last).is_file():
        files[previous] = {"sha256": old_last["sha256"], "size": old_last.get("size")} | ({"previous": old_previous} if old_previous else {})
    entry = {"sha256": sha256(ready), "size": ready.stat().st_size}
    files[last] = entry | ({"previous": old_last["sha256"]} if old_last else {})
    _write(root, files)


def settle(root: Path) -> None:
    """At the start of a writer: make each entry the version on disk (a killed write may have listed a
    version that never replaced the file), so that the next write keeps the right ``previous``."""
    files, changed = _readable_manifest(root), False
    for name, entry in files.items():
        path = root / name
        if not path.is_file() or "previous" not in entry:
            continue
        digest = sha256(path)
        if digest in (entry["sha256"], entry["previous"]):
            files[name] = {"sha256": digest, "size": path.stat().st_size}
            changed = True
    if changed:
        _write(root, files)


def _readable_manifest(root: Path) -> dict[str, Any]:
    try:
        return read_manifest(root)
    except UserError:  # a writer replaces a damaged manifest: the files it lists were just checked or are being rewritten
        log.warning(f"warning: {root / MANIFEST} was damaged; starting it again")
        return {}


def verify(path: str | Path) -> None:
    """Raise :class:`DamagedFile` when ``path`` is listed in its run's manifest and matches neither the
    checksum written last nor the one before it."""
    path = Path(path)
    root = run_root(path)
    if root is None or not path.is_file():
        return
    entry = read_manifest(root).get(path.relative_to(root).as_posix())
    if entry is None:
        return
    digest = sha256(path)
    if digest in (entry["sha256"], entry.get("previous")):
        return
    size = path.stat().st_size
    why = (f"it holds {size} bytes, {entry['size']} were written" if entry.get("size") not in (None, size)
           else f"its SHA-256 is {digest[:12]}..., {entry['sha256'][:12]}... was written")
    raise DamagedFile(path, why)


def verify_all(root: Path, names: Iterable[str]) -> None:
    for name in names:
        verify(root / name)


def forget(root: Path, names: Iterable[str]) -> None:
    """Drop entries (files a new run will write again, or removed ones)."""
    names = set(names)
    files = _readable_manifest(root)
    if not names & files.keys():
        return
    _write(root, {k: v for k, v in files.items() if k not in names})


def _write(root: Path, files: dict[str, Any]) -> None:
    from trainwise import atomic

    atomic.write_text(root / MANIFEST, json.dumps({"format": FORMAT, "files": dict(sorted(files.items()))}, indent=1) + "\n")
