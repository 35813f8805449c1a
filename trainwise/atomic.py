"""Atomic file writes: write to a temporary file in the same directory, fsync, then rename.

A rename within one filesystem is atomic, so a reader (or a resumed run after a kill) sees either the
old file or the new one, never half of each. If the write fails, the temporary file is removed and the
previous file is left intact; a full disk (or quota) becomes :class:`DiskFull`, a one-line UserError.
A kill leaves at most a stray ``.NAME.*.tmp`` file, which :func:`remove_stale_temps` clears on resume.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from trainwise import faults
from trainwise.errors import UserError

_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
# mkstemp creates files readable by the owner only; the files of a run get the mode open() would give them.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class DiskFull(UserError):
    """No space left (or quota exceeded) while writing ``path``; its previous version is intact."""

    def __init__(self, path: Path):
        super().__init__(f"disk full while writing {path}; its previous version is intact",
                         fix="free disk space, then continue the run with trainwise resume RUN_DIR "
                             "(it restarts from the last complete checkpoint)")
        self.path = path


def is_disk_full(err: BaseException | None) -> bool:
    """Whether ``err`` or an exception it was raised from is ENOSPC/EDQUOT (torch.save wraps it in a RuntimeError)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError) and err.errno in _NO_SPACE:
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


def _interrupt_in(err: BaseException | None) -> KeyboardInterrupt | None:
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None], before_rename: Callable[[Path], None] | None = None) -> None:
    """Write ``path`` through ``write(handle)``; ``before_rename(tmp)`` runs on the complete temporary file
    just before it replaces ``path`` (the run's checksum manifest is updated there)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_UMASK)
    except OSError as err:
        if is_disk_full(err):
            raise DiskFull(path) from None
        raise
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            faults.point("write/" + path.name)
            handle.flush()
            os.fsync(handle.fileno())
        if before_rename is not None:
            before_rename(Path(tmp))
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if is_disk_full(err):
            raise DiskFull(path) from None
        interrupt = _interrupt_in(err)
        if interrupt is not None and interrupt is not err:  # Ctrl-C inside torch.save surfaces as torch's RuntimeError
            raise interrupt from None
        raise


def remove_stale_temps(directory: str | Path) -> list[Path]:
    """Delete the temporary files that killed atomic writes left in ``directory``; returns them."""
    stale = sorted(Path(directory).glob(".*.tmp"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def write_text(path: str | Path, text: str, before_rename: Callable[[Path], None] | None = None) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode()), before_rename)


def write_json(path: str | Path, obj: Any, before_rename: Callable[[Path], None] | None = None) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n", before_rename)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
