"""History: one record per epoch, kept in memory and mirrored to ``history.jsonl``.

A record is a flat dict of JSON scalars. Keys every trainwise run writes:
``epoch`` (1-based), ``train_loss``, ``train_acc``, ``train_precision``, ``train_recall``, ``train_f1``, ``val_loss``, ``val_acc``, ``val_precision``,
``val_recall``, ``val_f1``, ``val_macro_f1``, ``lr`` (at the end of the epoch), ``time_s`` (seconds of the
epoch), ``samples_per_s``, ``step`` (optimizer steps so far). Optional keys: ``phase`` (a label that
changes at a schedule/phase boundary), monitor values (``grad_norm``, ``grad_norm/<layer>``,
``update_ratio/<layer>``, ``dead_frac/<layer>`` ...), ``event`` (e.g. "nan_rollback"). Readers must
ignore keys they do not know.

The file is rewritten atomically after every epoch (it is small), so a kill never leaves a torn line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from trainwise import atomic, integrity
from trainwise.errors import UserError


def _clean(value: Any) -> Any:
    """JSON has no NaN/Inf; store them as strings that readers map back."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _restore(value: Any) -> Any:
    if value in ("nan", "inf", "-inf"):
        return float(value)
    return value


class History:
    """Append-only list of per-epoch records."""

    def __init__(self, records: list[dict[str, Any]] | None = None, path: str | Path | None = None,
                 before_rename: Callable[[Path], None] | None = None):
        self.records: list[dict[str, Any]] = list(records or [])
        self.path = Path(path) if path is not None else None
        self.before_rename = before_rename  # a run directory's checksum manifest (trainwise.rundir)

    def append(self, record: dict[str, Any]) -> None:
        self.records.append({k: _clean(v) for k, v in record.items()})
        if self.path is not None:
            self.save(self.path)

    def save(self, path: str | Path) -> None:
        hook = self.before_rename if self.path is not None and Path(path) == self.path else None
        atomic.write_text(path, "".join(json.dumps(r) + "\n" for r in self.records), hook)

    @classmethod
    def load(cls, path: str | Path) -> History:
        """Read a history.jsonl; anything but one JSON object per line is a UserError naming the line."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise UserError(f"cannot read history {path}", expected="a UTF-8 history.jsonl written by trainwise",
                            received=f"{type(err).__name__}: {err}") from None
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError) as err:
                raise UserError(f"{path} line {number} is not valid JSON", expected="one JSON object per line",
                                received=f"{line[:60]!r} ({str(err).splitlines()[0][:80]})", fix="restore the file or delete the bad line") from None
            if not isinstance(record, dict):
                raise UserError(f"{path} line {number} is not a record", expected="one JSON object per line",
                                received=f"a JSON {type(record).__name__}: {line[:60]!r}", fix="restore the file or delete the bad line")
            records.append({k: _restore(v) for k, v in record.items()})
        integrity.verify(path)  # after parsing: a torn line is named by its number; other damage by the checksum
        return cls(records)

    def column(self, key: str) -> list[Any]:
        """Values of ``key`` over epochs (None where an epoch lacks it)."""
        return [r.get(key) for r in self.records]

    def keys(self) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.records:
            seen.update(dict.fromkeys(r))
        return list(seen)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.records[i]

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` records (used on resume to drop epochs past the checkpoint)."""
        del self.records[n:]
