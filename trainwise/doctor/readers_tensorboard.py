"""TensorBoard event files, read with the ``tensorboard`` package's own event reader: scalars by tag.

A path is an event file or a directory holding them. Event files whose directory is named after a split
(``train/``, ``validation/``, as Keras' TensorBoard callback writes them) are one run, their tags
prefixed with the split (``validation/epoch_loss`` -> ``val_loss``); event files in several other
directories are several runs, and the reader asks for one. Scalars written as ``simple_value``
(PyTorch's ``SummaryWriter``) and as scalar tensors (TensorFlow 2) are both read. Rows are steps in the
order written (several files of one directory: by their first event's time), so a step counter that
restarts shows up as a second run. The epoch of a step comes from an ``epoch`` tag when one exists
(Lightning, trainwise), from the step itself for Keras' ``epoch_*`` tags, and otherwise from the
evaluations.
"""

from __future__ import annotations

import bisect
import math
from pathlib import Path

from trainwise.doctor.readers_names import SPLIT_WORDS, with_split, words
from trainwise.doctor.readers_rows import Table
from trainwise.errors import UserError

EVENT_GLOB = "events.out.tfevents.*"


def is_event_file(path: Path) -> bool:
    return path.is_file() and path.name.startswith("events.out.tfevents")


def event_files(path: Path) -> list[Path]:
    return [path] if is_event_file(path) else sorted(p for p in path.rglob(EVENT_GLOB) if p.is_file())


def _run_dir(file: Path) -> Path:
    parent = file.parent
    return parent.parent if parent.name.lower() in SPLIT_WORDS else parent


def _scalars(file: Path) -> tuple[float, list[tuple[int, str, float]]]:
    """(wall time of the first event, [(step, tag, value)]) for one event file."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    points: list[tuple[int, str, float]] = []
    first = math.inf
    try:
        for event in EventFileLoader(str(file)).Load():
            first = min(first, event.wall_time)
            for value in event.summary.value:
                kind = value.WhichOneof("value")
                if kind == "simple_value":
                    points.append((int(event.step), value.tag, float(value.simple_value)))
                elif kind == "tensor":
                    arr = tensor_util.make_ndarray(value.tensor)
                    if arr.size == 1 and arr.dtype.kind in "fiu":
                        points.append((int(event.step), value.tag, float(arr.reshape(-1)[0])))
    except Exception as err:  # a truncated or foreign file: the reader's own message is the useful part
        raise UserError(f"cannot read the TensorBoard event file {str(file)!r}", received=f"{type(err).__name__}: {err}",
                        fix="pass an events.out.tfevents.* file written by TensorBoard") from None
    return first, points


def read_table(path: Path) -> Table:
    files = event_files(path)
    if not files:
        raise UserError(f"no TensorBoard event files in {str(path)!r}", expected="events.out.tfevents.* files",
                        fix="pass the log directory the training wrote")
    runs = sorted({_run_dir(f) for f in files})
    if len(runs) > 1:
        listing = ", ".join(str(r.relative_to(path)) if r != path else "." for r in runs[:6])
        raise UserError(f"{str(path)!r} holds TensorBoard logs of several runs", received=listing,
                        fix="pass the directory of one run")
    loaded = sorted((_scalars(f) + (f,) for f in files), key=lambda t: t[0])
    rows: list[dict[str, float]] = []
    index: dict[tuple[int, int], int] = {}  # (file number, step) -> row
    for n, (_, points, file) in enumerate(loaded):
        split = file.parent.name.lower() if file.parent.name.lower() in SPLIT_WORDS else None
        for step, tag, value in points:
            name = with_split(tag, split) if split else tag
            key = (n if split is None else 0, step)  # a split's files share steps with the others
            if key not in index:
                index[key] = len(rows)
                rows.append({"step": float(step)})
            rows[index[key]][name] = value
    if all(f.parent.name.lower() in SPLIT_WORDS for _, _, f in loaded):
        rows.sort(key=lambda r: r["step"])  # train/ and validation/ files interleave by step
    table = Table(rows=rows, fmt="tensorboard", lines=[int(r["step"]) for r in rows], position_word="step")
    _epochs(table)
    return table


def _epochs(table: Table) -> None:
    """Give each row its epoch when the tags say it."""
    rows = table.rows
    names = {n for r in rows for n in r}
    unsplit = [[w for w in words(n) if w not in SPLIT_WORDS] for n in names]
    if "epoch" not in names and any(len(w) > 1 and w[0] == "epoch" for w in unsplit):
        for r in rows:  # Keras' epoch_* tags are written with the epoch as the step
            r["epoch"] = r["step"]
        table.assumptions.append("Keras TensorBoard epoch_* tags: the step is the epoch")
        return
    if "epoch" in names:
        marks = sorted((r["step"], r["epoch"]) for r in rows if "epoch" in r)
        steps = [s for s, _ in marks]
        for r in rows:
            if "epoch" not in r:  # a step logged between epoch marks belongs to the next mark's epoch
                i = min(bisect.bisect_left(steps, r["step"]), len(marks) - 1)
                r["epoch"] = marks[i][1]
