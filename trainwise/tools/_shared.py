"""Small pieces the tools share: reading run directories, the doctor when present, plain-text tables."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from trainwise.config import flatten_dotted as flatten  # {"optim": {"lr": 0.1}} -> {"optim.lr": 0.1}

# ------------------------------------------------------------------------------------ run directories


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """Config (as a dict), history records, summary and environment of a run directory (absent parts empty)."""
    from trainwise.rundir import RunDir

    return RunDir(run_dir).read()


def final_metrics(run: dict[str, Any]) -> dict[str, float]:
    """The numbers a run ends with: the last epoch's metrics (or the restored epoch's) and the test metrics."""
    history, summary = run["history"], run["summary"]
    out: dict[str, float] = {}
    if history:
        epoch = summary.get("restored_epoch") or history[-1]["epoch"]
        record = next((r for r in history if r.get("epoch") == epoch), history[-1])
        out |= {k: v for k, v in record.items() if k.startswith(("train_", "val_")) and is_number(v)}
    out |= {f"test_{k}": v for k, v in summary.get("test", {}).items() if is_number(v)}
    return out


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ---------------------------------------------------------------------------------------- doctor

Diagnose = Callable[[Path], Sequence[Any]]


def load_diagnose() -> Diagnose | None:
    """The doctor's ``diagnose(run_dir)``, or None when this installation has no doctor."""
    try:
        from trainwise.doctor import diagnose
    except ImportError:
        return None
    return diagnose


def findings_of(run_dir: str | Path, diagnose: Diagnose | None) -> tuple[list[dict[str, Any]] | None, str]:
    """The run's findings as dicts, or (None, why not)."""
    if diagnose is None:
        return None, "doctor not available"
    try:
        return [finding_dict(f) for f in diagnose(Path(run_dir))], ""
    except Exception as err:  # an old or partial run must not stop a comparison
        return None, f"doctor failed: {type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"


def finding_dict(finding: Any) -> dict[str, Any]:
    """Any object with ``code`` and ``severity`` (and perhaps ``epochs``, ``message``) as a dict."""
    if hasattr(finding, "to_dict"):
        return finding.to_dict()
    d = {"code": finding.code, "severity": finding.severity}
    for name in ("epochs", "message"):
        if hasattr(finding, name):
            value = getattr(finding, name)
            d[name] = list(value) if isinstance(value, tuple) else value
    return d


SEVERITY_ORDER = {"info": 0, "warning": 1, "error": 2}


def codes(findings: list[dict[str, Any]]) -> dict[str, str]:
    """code -> the highest severity it was reported with."""
    out: dict[str, str] = {}
    for f in findings:
        if f["code"] not in out or SEVERITY_ORDER.get(f["severity"], 0) > SEVERITY_ORDER.get(out[f["code"]], 0):
            out[f["code"]] = f["severity"]
    return out


# ---------------------------------------------------------------------------------------- tables


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}" if abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.{digits}f}"


def fmt_delta(value: float | None) -> str:
    return "-" if value is None else ("+" if value > 0 else "") + fmt(value)


def text_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with aligned columns (numbers right-aligned)."""
    cells = [[str(h) for h in header]] + [[c if isinstance(c, str) else fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [all(_looks_numeric(r[i]) for r in cells[1:]) for i in range(len(header))]

    def line(row):
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)).rstrip()

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]])


def _looks_numeric(text: str) -> bool:
    try:
        float(text.replace("±", "").split()[0])
        return True
    except (ValueError, IndexError):
        return text == "-"
