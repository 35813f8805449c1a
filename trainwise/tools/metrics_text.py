"""Metrics as a few lines a person reads: the headline numbers and the confusion matrix as a small table.

``evaluate`` and ``ensemble`` print this by default; ``--json`` prints the full dict instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainwise.tools._shared import fmt, text_table

HEADLINE = ("acc", "loss", "macro_f1", "precision", "recall", "f1")
MAX_CONFUSION_CLASSES = 20  # beyond this a table is no longer small: --json has it


def class_names_of(run_dir: str | Path, k: int) -> list[str]:
    """The run's class names (preprocess.json, read only), or 0..k-1."""
    from trainwise.errors import UserError
    from trainwise.rundir import PREPROCESS, RunDir

    try:
        names = RunDir(run_dir).read_json(PREPROCESS).get("class_names")
    except UserError:  # damaged: the numbers will do
        names = None
    return [str(n) for n in names] if isinstance(names, list) and len(names) == k else [str(i) for i in range(k)]


def metrics_text(metrics: dict[str, Any], class_names: list[str], title: str) -> str:
    """``title``, one line of headline metrics, and the confusion matrix (rows: true class, columns: predicted)."""
    headline = " | ".join(f"{k} {fmt(metrics[k])}" for k in HEADLINE if isinstance(metrics.get(k), (int, float)))
    lines = [f"{title}: {headline}"]
    confusion = metrics.get("confusion")
    if confusion:
        k = len(confusion)
        if k <= MAX_CONFUSION_CLASSES:
            names = [n[:12] for n in class_names]
            rows = [[f"true {names[i]}", *row] for i, row in enumerate(confusion)]
            lines += ["confusion matrix (rows: true class, columns: predicted)", text_table(["", *names], rows)]
        else:
            lines.append(f"confusion matrix: {k} x {k} classes (printed with --json)")
    return "\n".join(lines)
