"""Turn the rows of a foreign log into one trainwise record per epoch, saying every guess it makes.

Every reader (CSV, Hugging Face, TensorBoard, text) produces a ``Table``: rows of source-named numbers in
file order. ``to_records`` then, in this order:

1. maps names onto trainwise keys (``readers_names.canonical``; ``columns`` overrides);
2. sets aside a final test evaluation (rows holding only ``test_*`` values, e.g. Lightning's
   ``trainer.test``): it is not an epoch;
3. splits several runs appended to one file (the epoch or step counter restarts, or the header repeats
   with the counter back at its start) and keeps one, the last unless ``run`` says otherwise. A counter
   that steps back only part of the way is a resumed run: the repeated epochs keep their later values.
   Runs are never averaged;
4. groups rows into epochs: by the epoch column; without one, by evaluation (the training steps up to and
   including each validation row) or, with no validation rows either, by a fixed number of steps;
5. within an epoch, an epoch-level value (``*_epoch``) wins over step-level ones; training values logged
   per step are averaged, validation and test values and ``lr``/``step`` take the last one;
6. uses ``test_*`` per epoch as the held-out curve when there is no validation data;
7. turns accuracies logged in percent into fractions and 0-based epochs into 1-based ones.

Each step that guessed adds a sentence to ``assumptions``.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

from trainwise.doctor.readers_names import SPLIT_WORDS, Level, canonical, words
from trainwise.errors import UserError

LAST_VALUE_KEYS = ("lr", "step")
ACCURACY_KEYS = ("train_acc", "val_acc", "test_acc")
KNOWN_METRICS = ("train_loss", "val_loss", "train_acc", "val_acc", "test_loss", "test_acc")
MAX_GROUPS = 100  # a long step-level log without epochs or evaluations is cut into about this many groups
STEP_GROUPS = 20  # ... and a short run's steps (fewer than 4 epochs) into this many


@dataclass
class Table:
    """What a reader found, before any interpretation."""

    rows: list[dict[str, float]]  # source name -> value; only numeric cells
    fmt: str
    lines: list[int] | None = None  # where each row sits in the file (for messages)
    header_repeats: set[int] = field(default_factory=set)  # indices of rows that follow a repeated header
    renames: dict[str, str] = field(default_factory=dict)  # format-specific meanings, e.g. fastai's accuracy
    assumptions: list[str] = field(default_factory=list)
    fractional_epochs: bool = False  # epochs are progress (0.5 = half-way through the first), as in HF
    group_by: str | None = None  # force "evaluation" grouping (HF logs evaluating every n steps)
    position_word: str = "row"  # how to name a row in messages: "line", "step", "entry"
    run_names: list[str] | None = None  # a text column naming each row's run (a new name starts a new run)
    phases: list[str] | None = None  # each row's phase within one run (records carry it as ``phase``)


def split_of(key: str) -> str | None:
    for w in words(key):
        if w in SPLIT_WORDS:
            return SPLIT_WORDS[w]
    return None


def _mapping(names: list[str], columns: dict[str, str] | None, renames: dict[str, str]) -> dict[str, tuple[str, Level]]:
    """Source name -> (key, level); a second name for the same (key, level) keeps its own name."""
    out: dict[str, tuple[str, Level]] = {}
    taken: set[tuple[str, Level]] = set()
    for name in names:
        if columns and name in columns:
            target: tuple[str, Level] = (columns[name], None)
        elif name in renames:
            target = (renames[name], None)
        else:
            target = canonical(name)
        if target in taken and target[0] not in ("epoch", "step"):
            target = (name, None)
        if target in taken:
            continue  # a second epoch/step column (e.g. "Epoch" and "epoch") adds nothing
        taken.add(target)
        out[name] = target
    return out


def _is_final_test(row: dict[tuple[str, Level], float]) -> bool:
    splits = {split_of(k) for (k, _) in row if k not in ("epoch", "step", "lr")}
    return "test" in splits and not (splits - {"test", None})


def _position(row: dict[tuple[str, Level], float], counter: str = "epoch") -> float | None:
    v = row.get((counter, None))
    return v if v is not None and math.isfinite(v) else None


def _counter(rows: list[dict[tuple[str, Level], float]]) -> str:
    """The column that counts progress: the epoch when most rows have one, else the step. One counter for
    all rows, so a row that lacks the epoch (an LR-monitor row) is not compared by its step."""
    with_epoch = sum(1 for r in rows if _position(r, "epoch") is not None)
    return "epoch" if with_epoch >= 0.5 * len(rows) else "step"


def _where(table: Table, index: int) -> str:
    if table.lines is not None:
        return f"{table.position_word} {table.lines[index]}"
    return f"row {index + 1}"


def _split_runs(table: Table, mapped: list[dict[tuple[str, Level], float]], order: list[int], run: int | None,
                assumptions: list[str]) -> tuple[list[int], int]:
    """(indices into mapped of the run to diagnose, number of runs in the log)."""
    counter = _counter([mapped[i] for i in order]) if order else "epoch"
    runs: list[list[int]] = []
    starts: list[str] = []
    resumed: list[str] = []
    start_pos: float | None = None
    prev: float | None = None
    for i in order:
        pos = _position(mapped[i], counter)
        new = not runs
        named = table.run_names is not None and runs and table.run_names[i] != table.run_names[runs[-1][-1]]
        if named:
            new = True
        elif runs and pos is not None and prev is not None and (pos < prev or i in table.header_repeats):
            if start_pos is not None and pos <= start_pos:
                new = True  # the counter is back at the run's start: another run
            elif pos < prev or (pos == prev and i in table.header_repeats):
                # A resumed run repeats the epochs after its last checkpoint: later values replace earlier.
                runs[-1] = [j for j in runs[-1] if (_position(mapped[j], counter) or -math.inf) < pos]
                resumed.append(_where(table, i))
        elif runs and i in table.header_repeats and pos is None:
            new = True
        if new:
            runs.append([])
            start_pos = pos
            if len(runs) > 1:
                starts.append(_where(table, i))
        runs[-1].append(i)
        if pos is not None:
            prev = pos
            start_pos = pos if start_pos is None else start_pos
    if resumed:
        assumptions.append(f"the counter steps back at {', '.join(resumed)} without returning to its start: "
                           "read as a resumed run, the repeated epochs keep their later values")
    if len(runs) == 1:
        if run not in (None, 1):
            raise UserError(f"run={run} asked for, but the log holds one run", expected="run=1 or no run",
                            fix="drop run (CLI --run)")
        return runs[0], 1
    chosen = len(runs) if run is None else run
    if not 1 <= chosen <= len(runs):
        raise UserError(f"run={run} asked for, but the log holds {len(runs)} runs", expected=f"a run from 1 to {len(runs)}",
                        fix=f"pass run=1..{len(runs)} (CLI --run)")
    how = (f"named {', '.join(table.run_names[r[0]] for r in runs)}" if table.run_names
           else f"the counter restarts at {', '.join(starts)}")
    name = f" {table.run_names[runs[chosen - 1][0]]!r}" if table.run_names else ""
    assumptions.append(
        f"the log holds {len(runs)} runs ({how}); diagnosed {'the last' if run is None else 'the one asked for'}, "
        f"run {chosen}{name} of {len(runs)} ({len(runs[chosen - 1])} rows); runs are never averaged; "
        "pick another with run=K (CLI --run K)")
    return runs[chosen - 1], len(runs)


def _group_keys(table: Table, rows: list[dict[tuple[str, Level], float]], assumptions: list[str]) -> list[int]:
    """An epoch number (grouping key) per row, in order; rows with None are dropped."""
    epochs = _epochs_from_steps(rows)
    with_epoch = [e for e in epochs if e is not None and math.isfinite(e)]
    if table.group_by != "evaluation" and with_epoch and len(with_epoch) >= 0.5 * len(rows):
        fractional = table.fractional_epochs or any(abs(e - round(e)) > 1e-6 for e in with_epoch)
        if fractional:  # progress through training: 0.5 is half-way through the first epoch
            keys = [None if e is None or not math.isfinite(e) else max(1, math.ceil(e - 1e-6)) for e in epochs]
        else:
            base = 1 if min(with_epoch) == 0 else 0  # Keras and Lightning count from 0, trainwise from 1
            keys = [None if e is None or not math.isfinite(e) else int(round(e)) + base for e in epochs]
        per_group = len(rows) / max(1, len({k for k in keys if k is not None}))
        if per_group > 1.5 and any(lvl == "step" or k.startswith("train") for r in rows for (k, lvl) in r):
            assumptions.append(f"step-level rows (about {per_group:.0f} per epoch) are grouped by epoch")
        return keys
    held_out = [i for i, r in enumerate(rows) if any(split_of(k) in ("val", "test") for (k, _) in r)]
    if table.group_by == "evaluation" or (held_out and len(held_out) < 0.6 * len(rows)):
        keys, g, evaluation = [], 1, set(held_out)
        for i in range(len(rows)):
            keys.append(g)
            if i in evaluation:
                g += 1
        steps = [r.get(("step", None)) for r in rows]
        between = _typical_gap([steps[i] for i in held_out])
        every = f" (every {between:g} steps)" if between else ""
        why = "" if table.group_by == "evaluation" else "no epoch column: "
        assumptions.append(f"{why}the {len(held_out)} evaluations{every} are the epochs here; each one's training "
                           "values are the mean of the steps logged since the previous evaluation")
        return keys
    if table.group_by == "steps" or len(rows) > MAX_GROUPS * 2:
        size = math.ceil(len(rows) / (STEP_GROUPS if table.group_by == "steps" else MAX_GROUPS))
        steps = [r.get(("step", None)) for r in rows]
        span = _typical_gap(steps[::size])
        what = f"{size} logged rows" + (f" ({span:g} steps)" if span else "")
        assumptions.append(f"no epoch column and no evaluations: every {what} are grouped into one epoch")
        return [i // size + 1 for i in range(len(rows))]
    if len(rows) > 1:
        assumptions.append("no epoch column: each row is taken as one epoch")
    return list(range(1, len(rows) + 1))


def _epochs_from_steps(rows: list[dict[tuple[str, Level], float]]) -> list[float | None]:
    """Each row's epoch; a row without one (Lightning's LearningRateMonitor rows) takes the epoch of the first
    row at or after its step that has one."""
    epochs = [r.get(("epoch", None)) for r in rows]
    marks = sorted((r[("step", None)], e) for r, e in zip(rows, epochs) if e is not None and ("step", None) in r)
    if not marks or all(e is not None for e in epochs):
        return epochs
    steps = [s for s, _ in marks]
    out = []
    for r, e in zip(rows, epochs):
        if e is None and ("step", None) in r:
            i = bisect.bisect_left(steps, r[("step", None)])
            e = marks[i][1] if i < len(marks) else None
        out.append(e)
    return out


def _typical_gap(values: list[float | None]) -> float | None:
    v = [x for x in values if x is not None and math.isfinite(x)]
    gaps = sorted(b - a for a, b in zip(v, v[1:]) if b > a)
    return gaps[len(gaps) // 2] if gaps else None


def _aggregate(epoch: int, rows: list[dict[tuple[str, Level], float]], averaged: dict[str, int]) -> dict[str, Any]:
    chosen: dict[str, tuple[Level, list[float]]] = {}
    values: dict[tuple[str, Level], list[float]] = {}
    for r in rows:
        for (key, level), v in r.items():
            if key != "epoch":
                values.setdefault((key, level), []).append(v)
    rank = {"epoch": 0, None: 1, "step": 2}  # an epoch-level value beats an unlabelled one beats step-level ones
    for (key, level), vals in values.items():
        if key not in chosen or rank[level] < rank[chosen[key][0]]:
            chosen[key] = (level, vals)
    record: dict[str, Any] = {"epoch": epoch}
    for key, (_, vals) in chosen.items():
        if key in LAST_VALUE_KEYS or split_of(key) in ("val", "test"):
            record[key] = vals[-1]
        else:
            record[key] = sum(vals) / len(vals)
            if len(vals) > 1:
                averaged[key] = averaged.get(key, 0) + 1
    return record


def to_records(table: Table, columns: dict[str, str] | None = None, run: int | None = None, source: str = "the log"
               ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(records, meta) with ``meta["assumptions"]`` (sentences) and ``meta["test"]`` (a final test row)."""
    assumptions = list(table.assumptions)
    names: list[str] = []
    seen: set[str] = set()
    for row in table.rows:
        for name in row:
            if name not in seen:
                seen.add(name)
                names.append(name)
    mapping = _mapping(names, columns, table.renames)
    _one_output_accuracy(mapping, assumptions)
    mapped = [{mapping[n]: v for n, v in row.items() if n in mapping} for row in table.rows]
    keys = {k for (k, _) in mapping.values()}
    if not keys & set(KNOWN_METRICS):
        raise UserError(f"cannot read a training history from {source!r}: no loss or accuracy found",
                        expected="columns or tags such as loss, val_loss, accuracy, val_accuracy",
                        received=f"columns {', '.join(names[:10]) or '(none)'}",
                        fix="name the columns with a mapping, e.g. columns={'my_loss': 'train_loss', 'my_val_loss': 'val_loss'} "
                            "(CLI: --column my_loss=train_loss)")
    # A test evaluation after training (rows with only test_* values, all at one position) is not an epoch.
    tests = [i for i, r in enumerate(mapped) if _is_final_test(r)]
    final_test: dict[str, float] = {}
    if tests and len({(_position(mapped[i], "epoch"), _position(mapped[i], "step")) for i in tests}) == 1:
        for i in tests:
            final_test |= {k: v for (k, _), v in mapped[i].items() if split_of(k) == "test"}
        assumptions.append(f"the test row at {_where(table, tests[-1])} is a final evaluation, not an epoch "
                           f"({', '.join(f'{k} {v:.4g}' for k, v in final_test.items())})")
    else:
        tests = []
    order = [i for i in range(len(mapped)) if i not in set(tests) and mapped[i]]
    chosen, n_runs = _split_runs(table, mapped, order, run, assumptions)
    rows = [mapped[i] for i in chosen]
    group = _group_keys(table, rows, assumptions)
    buckets: dict[int, list[dict[tuple[str, Level], float]]] = {}
    phase_of: dict[int, str] = {}
    for i, g, r in zip(chosen, group, rows):
        if g is not None:
            buckets.setdefault(g, []).append(r)
            if table.phases is not None:
                phase_of[g] = table.phases[i]  # an epoch's phase: that of its last row
    averaged: dict[str, int] = {}
    records = [_aggregate(g, buckets[g], averaged) | ({"phase": phase_of[g]} if g in phase_of else {}) for g in sorted(buckets)]
    records = [r for r in records if set(r) - {"epoch", "step", "lr", "phase"}]
    _drop_evaluations_after_training(records, assumptions)
    if not records:
        raise UserError(f"cannot read a training history from {source!r}: a header but no numeric rows", expected="per-epoch or per-step values",
                        fix="check that the file holds training values")
    if averaged and not any("grouped" in a or "evaluations" in a for a in assumptions):
        assumptions.append(f"{', '.join(sorted(averaged))} logged several times per epoch: the epoch's mean is used")
    _held_out_from_test(records, assumptions)
    _percent_to_fraction(records, assumptions)
    composite = _composite_loss(mapping, assumptions)
    meta: dict[str, Any] = {"format": table.fmt, "assumptions": assumptions, "runs": n_runs}
    if composite:
        meta["composite_loss"] = True
    if final_test:
        meta["test"] = final_test
    return records, meta


def _drop_evaluations_after_training(records: list[dict[str, Any]], assumptions: list[str]) -> None:
    """Held-out-only epochs after the last training epoch (``trainer.validate`` after ``fit``) are not epochs."""
    trained = [i for i, r in enumerate(records) if any(split_of(k) == "train" for k in r)]
    if not trained or trained[-1] == len(records) - 1:
        return
    tail = records[trained[-1] + 1:]
    del records[trained[-1] + 1:]
    said = ", ".join(f"{k} {v:.4g}" for r in tail for k, v in r.items() if k not in ("epoch", "step"))
    assumptions.append(f"{len(tail)} evaluation(s) after the last training epoch ({said}) are not epochs and are left out")


def _one_output_accuracy(mapping: dict[str, tuple[str, Level]], assumptions: list[str]) -> None:
    """A Keras multi-output model logs ``<output>_accuracy`` and ``val_<output>_accuracy`` per output, and no
    plain accuracy. When exactly one output has an accuracy (a classifier head beside a reconstruction or
    regression head), that accuracy is the run's: without it every rule that reads accuracy against chance
    would be blind to the classifier."""
    if any(key in ("train_acc", "val_acc") for key, _ in mapping.values()):
        return
    heads = []
    for name, (key, _) in mapping.items():
        w = words(name)
        if key == name and len(w) >= 2 and w[-1] in ("acc", "accuracy") and split_of(name) is None:
            head = name[: len(name) - len(name.split("_")[-1]) - 1]
            if f"val_{name}" in mapping and f"{head}_loss" in mapping:
                heads.append((head, name))
    if len(heads) != 1:
        return
    head, name = heads[0]
    mapping[name], mapping[f"val_{name}"] = ("train_acc", None), ("val_acc", None)
    assumptions.append(f"accuracy is output {head}'s ({name}, val_{name}): the only output with an accuracy")


def _composite_loss(mapping: dict[str, tuple[str, Level]], assumptions: list[str]) -> bool:
    """Keras names a multi-output model's losses ``<output>_loss`` and logs their weighted sum as ``loss``."""
    heads = sorted(name for name, (key, _) in mapping.items() if key == name and name.lower().endswith("_loss")
                   and split_of(name) is None and f"val_{name}" in mapping)
    if len(heads) >= 2 and any(key == "train_loss" for key, _ in mapping.values()):
        assumptions.append(f"the loss is the weighted sum of {len(heads)} output losses ({', '.join(heads)}), "
                           "not one cross-entropy: it is not judged against ln K")
        return True
    return False


def _held_out_from_test(records: list[dict[str, Any]], assumptions: list[str]) -> None:
    has_val = any(split_of(k) == "val" for r in records for k in r)
    test_keys = sorted({k for r in records for k in r if split_of(k) == "test"})
    if has_val or not test_keys or sum(1 for r in records if any(k in r for k in test_keys)) < 2:
        return
    for r in records:
        for k in test_keys:
            if k in r:
                r[_val_name(k)] = r.pop(k)
    assumptions.append(f"no validation data: the per-epoch test values ({', '.join(test_keys)}) are used as the held-out curve")


def _val_name(key: str) -> str:
    if key.startswith("test_"):
        return "val_" + key[len("test_"):]
    return key.replace("test", "val", 1)


def _percent_to_fraction(records: list[dict[str, Any]], assumptions: list[str]) -> None:
    scaled = []
    for key in ACCURACY_KEYS:
        vals = [r[key] for r in records if isinstance(r.get(key), float) and math.isfinite(r[key])]
        if vals and max(vals) > 1.0 and max(vals) <= 100.0:
            for r in records:
                if isinstance(r.get(key), float):
                    r[key] /= 100.0
            scaled.append(key)
    if scaled:
        assumptions.append(f"{', '.join(scaled)} logged in percent: divided by 100")
