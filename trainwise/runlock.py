"""One writer per run directory: ``train`` and ``resume`` hold an exclusive lock on ``RUN/.lock``.

Two processes training into one directory would delete each other's temporary files and interleave
their checkpoints. The lock is ``fcntl.flock`` on an open file, so the kernel drops it when the holder
exits, however it dies (no stale lock after a kill). A second writer gets a one-line error naming the
holder's process id, which the kernel's lock table gives (nothing is written into the file: a resume
with nothing to do changes no file). Within one process the lock is re-entrant (``resume`` takes it
before it reads the checkpoint, and the training loop it starts takes it again).
"""

from __future__ import annotations

import os
from pathlib import Path

from trainwise.errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a second writer is not detected there
    fcntl = None  # type: ignore[assignment]

_held: dict[Path, list] = {}  # resolved run directory -> [open lock file, how many times taken]


class RunLock:
    def __init__(self, run_dir: str | Path, name: str = ".lock"):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / name
        self.key = self.path.resolve()

    def acquire(self) -> RunLock:
        if self.key in _held:
            _held[self.key][1] += 1
            return self
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a")
        except OSError as err:
            raise unwritable(self.run_dir, err) from None
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _holder(self.path)
                handle.close()
                raise UserError(f"{self.run_dir} is in use: {holder} is training into it",
                                expected="one train or resume at a time per run directory",
                                fix="wait for it to finish (or stop it), or pass another --out") from None
        _held[self.key] = [handle, 1]  # nothing is written into it: a resume that has nothing to do changes no file
        return self

    def release(self) -> None:
        entry = _held.get(self.key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del _held[self.key]
            if fcntl is not None:
                # unlock before closing: forked children (DataLoader workers still alive) share the open file,
                # and closing it here alone would leave the lock held until they exit
                fcntl.flock(entry[0].fileno(), fcntl.LOCK_UN)
            entry[0].close()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _holder(path: Path) -> str:
    """Who holds the lock: the kernel's table of locks names the process (Linux /proc/locks), by the file's inode."""
    try:
        inode = os.stat(path).st_ino
        with open("/proc/locks") as table:
            for line in table:
                fields = line.split()  # 1: FLOCK ADVISORY WRITE 4711 08:01:1234 0 EOF
                if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode):
                    return f"process {fields[4]}"
    except (OSError, ValueError):
        pass
    return "another process"


def unwritable(run_dir: Path, err: OSError) -> UserError:
    """The one line for a run directory that cannot be created or written."""
    import errno

    why = {errno.EEXIST: "a file of that name exists", errno.ENOTDIR: "a part of the path is a file, not a directory",
           errno.EROFS: "the filesystem is read-only", errno.EACCES: "permission denied",
           errno.EPERM: "permission denied"}.get(err.errno, err.strerror or type(err).__name__)
    if err.errno == errno.EEXIST and run_dir.exists() and not run_dir.is_dir():
        why = "it is a file, not a directory"
    return UserError(f"cannot write the run directory {run_dir}", expected="a directory that can be created and written",
                     received=why, fix="choose another --out (a new or writable directory)")
