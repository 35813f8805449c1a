"""Compare run directories: what changed in the config, what it did to the metrics, and to the diagnosis.

``compare_runs([a, b, ...])`` reads only the run directories (config.toml, history.jsonl, summary.json,
env.json) and, when the doctor is installed, ``trainwise.doctor.diagnose(run_dir)``. The first run is
the baseline: every difference is "other minus first". Findings are compared by their stable ``code``:
which appeared, which disappeared, which changed severity. Any objects with ``code`` and ``severity``
work, so the comparison does not depend on the doctor's internals.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainwise.metrics import resolve_mode
from trainwise.tools._shared import (Diagnose, codes, final_metrics, findings_of, flatten, fmt, fmt_delta, is_number,
                                     load_diagnose, read_run, text_table)

DEFAULT_METRICS = ("train_loss", "val_loss", "train_acc", "val_acc", "val_macro_f1")
OUTCOME_KEYS = ("epochs_run", "best_epoch", "restored_epoch", "stop_reason", "time_s")
ENV_KEYS = ("trainwise", "torch", "python", "device", "threads", "git_revision")
TEXT_EPOCH_ROWS = 12  # per-epoch rows in the text table: a 300-epoch run stays a screenful (JSON and HTML keep every epoch)
FINAL_ORDER = ("test_acc", "test_loss", "test_macro_f1", "val_acc", "val_loss", "val_macro_f1", "train_acc", "train_loss")


def sampled_rows(rows: list, at_most: int) -> list:
    """At most ``at_most`` rows spread evenly over ``rows``, the first and the last always among them."""
    if len(rows) <= at_most:
        return rows
    picks = sorted({round(i * (len(rows) - 1) / (at_most - 1)) for i in range(at_most)})
    return [rows[i] for i in picks]


@dataclass
class Comparison:
    names: list[str]  # A, B, C ...
    run_dirs: list[str]
    config_diff: list[tuple[str, list[Any]]]  # key, value in each run (None: absent)
    env_diff: list[tuple[str, list[Any]]]
    final: list[tuple[str, list[float | None]]]  # metric, value in each run
    outcome: list[tuple[str, list[Any]]]
    per_epoch: dict[str, list[tuple[int, list[float | None]]]]  # metric -> (epoch, value in each run)
    findings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["config_diff"] = [{"key": k, "values": v} for k, v in self.config_diff]
        d["env_diff"] = [{"key": k, "values": v} for k, v in self.env_diff]
        d["final"] = [{"metric": k, "values": v, "delta": deltas(v)} for k, v in self.final]
        d["outcome"] = [{"key": k, "values": v} for k, v in self.outcome]
        d["per_epoch"] = {m: [{"epoch": e, "values": v, "delta": deltas(v)} for e, v in rows] for m, rows in self.per_epoch.items()}
        return d

    # ------------------------------------------------------------------------------------ text
    def to_text(self) -> str:
        parts = ["runs: " + ", ".join(f"{n} = {d}" for n, d in zip(self.names, self.run_dirs))]
        others = self.names[1:]
        delta_cols = [f"{n}-{self.names[0]}" for n in others]
        if self.config_diff:
            parts.append(f"config differences ({len(self.config_diff)})\n"
                         + text_table(["key", *self.names], [[k, *(_cell(v) for v in vals)] for k, vals in self.config_diff]))
        else:
            parts.append("config differences: none")
        if self.env_diff:
            parts.append("environment differences\n" + text_table(["key", *self.names], [[k, *(_cell(v) for v in vals)] for k, vals in self.env_diff]))
        if self.final:
            rows = [[m, *vals, *(_judged(m, d) for d in deltas(vals))] for m, vals in self.final]
            parts.append("at the end (restored epoch if early stopping restored one; test on the final weights)\n"
                         + text_table(["metric", *self.names, *delta_cols], rows))
        if self.outcome:
            parts.append("outcome\n" + text_table(["", *self.names], [[k, *(_cell(v) for v in vals)] for k, vals in self.outcome]))
        for metric, rows in self.per_epoch.items():
            shown = sampled_rows(rows, TEXT_EPOCH_ROWS)
            title = f"{metric} per epoch" + (f" ({len(shown)} of {len(rows)} epochs; all of them: --json FILE or --html FILE)"
                                             if len(shown) < len(rows) else "")
            parts.append(f"{title}\n" + text_table(["epoch", *self.names, *delta_cols],
                                                   [[e, *vals, *(fmt_delta(d) for d in deltas(vals))] for e, vals in shown]))
        parts.append(self._findings_text())
        return "\n\n".join(parts) + "\n"

    def _findings_text(self) -> str:
        f = self.findings
        if not f.get("available"):
            return f"doctor findings: {f.get('reason', 'doctor not available')}"
        lines = ["doctor findings"]
        for name, found in zip(self.names, f["per_run"]):
            listed = ", ".join(f"{c} ({s})" for c, s in codes(found).items()) if found is not None else "not available"
            lines.append(f"  {name}: {listed or 'none'}")
        for change in f["changes"]:
            if change.get("reason"):
                lines.append(f"  {change['run']} vs {self.names[0]}: {change['reason']}")
                continue
            bits = [f"appeared: {_codes_text(change['appeared'])}", f"disappeared: {_codes_text(change['disappeared'])}"]
            if change["severity_changed"]:
                bits.append("severity changed: " + ", ".join(f"{c['code']} {c['from']} -> {c['to']}" for c in change["severity_changed"]))
            lines.append(f"  {change['run']} vs {self.names[0]}: " + "; ".join(bits))
        return "\n".join(lines)

    # ------------------------------------------------------------------------------------ html
    def to_html(self) -> str:
        """One self-contained HTML page: the same tables, deltas coloured better/worse, and curves."""
        esc = html.escape
        others = self.names[1:]
        delta_heads = [f"{n} &minus; {self.names[0]}" for n in others]
        body = [f"<h1>Comparison of {len(self.names)} runs</h1>",
                "<ul>" + "".join(f"<li><b>{esc(n)}</b>: <code>{esc(d)}</code></li>" for n, d in zip(self.names, self.run_dirs)) + "</ul>"]
        body.append(f"<h2>Config differences ({len(self.config_diff)})</h2>")
        body.append(_html_table(["key", *map(esc, self.names)], [[f"<code>{esc(k)}</code>", *(esc(_cell(v)) for v in vals)]
                                                                   for k, vals in self.config_diff]) if self.config_diff else "<p>none</p>")
        if self.env_diff:
            body.append("<h2>Environment differences</h2>")
            body.append(_html_table(["key", *map(esc, self.names)], [[esc(k), *(esc(_cell(v)) for v in vals)] for k, vals in self.env_diff]))
        if self.final:
            body.append("<h2>At the end</h2>")
            body.append(_html_table(["metric", *map(esc, self.names), *delta_heads],
                                    [[esc(m), *(fmt(v) for v in vals), *(_html_delta(m, d) for d in deltas(vals))] for m, vals in self.final]))
        if self.outcome:
            body.append("<h2>Outcome</h2>")
            body.append(_html_table(["", *map(esc, self.names)], [[esc(k), *(esc(_cell(v)) for v in vals)] for k, vals in self.outcome]))
        body.append("<h2>Doctor findings</h2>")
        body.append(f"<pre>{esc(self._findings_text())}</pre>")
        for metric, rows in self.per_epoch.items():
            body.append(f"<h2>{esc(metric)} per epoch</h2>")
            body.append(f'<img alt="{esc(metric)}" src="data:image/png;base64,{_curve_png(metric, self.names, rows)}">')
            body.append(_html_table(["epoch", *map(esc, self.names), *delta_heads],
                                    [[str(e), *(fmt(v) for v in vals), *(_html_delta(metric, d) for d in deltas(vals))] for e, vals in rows]))
        style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:.5em 0 1.5em}"
                 "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}td:first-child,th:first-child{text-align:left}"
                 ".better{color:#1a7f37}.worse{color:#cf222e}img{max-width:36em;display:block}")
        return f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>trainwise compare</title><style>{style}</style></head><body>\n" \
               + "\n".join(body) + "\n</body></html>\n"


# ---------------------------------------------------------------------------------------- build

def compare_runs(run_dirs: list[str | Path], metrics: list[str] | None = None, diagnose: Diagnose | None | str = "auto") -> Comparison:
    """Compare run directories; the first is the baseline. ``diagnose``: "auto" (the doctor if installed),
    None (skip the doctor), or any callable ``run_dir -> findings``."""
    from trainwise.errors import UserError

    if len(run_dirs) < 2:
        raise UserError("compare needs at least two run directories", received=len(run_dirs), fix="trainwise compare RUN_A RUN_B [RUN_C ...]")
    runs = [read_run(d) for d in run_dirs]
    names = [chr(ord("A") + i) if i < 26 else f"R{i}" for i in range(len(runs))]
    configs = [flatten(r["config"]) for r in runs]
    config_diff = _differences(configs, sorted(set().union(*configs)))
    env_diff = _differences([r["env"] for r in runs], [k for k in ENV_KEYS if any(k in r["env"] for r in runs)])

    finals = [final_metrics(r) for r in runs]
    keys = set().union(*finals)
    ordered = [k for k in FINAL_ORDER if k in keys] + sorted(k for k in keys - set(FINAL_ORDER) if not k.startswith("per_class"))
    final = [(k, [f.get(k) for f in finals]) for k in ordered]
    outcome = [(k, [r["summary"].get(k) for r in runs]) for k in OUTCOME_KEYS if any(k in r["summary"] for r in runs)]

    wanted = metrics or [m for m in DEFAULT_METRICS if any(m in rec for r in runs for rec in r["history"])]
    per_epoch = {}
    for metric in wanted:
        by_epoch = [{rec["epoch"]: rec.get(metric) for rec in r["history"]} for r in runs]
        epochs = sorted(set().union(*by_epoch))
        per_epoch[metric] = [(e, [_number(b.get(e)) for b in by_epoch]) for e in epochs]

    return Comparison(names=names, run_dirs=[str(d) for d in run_dirs], config_diff=config_diff, env_diff=env_diff, final=final,
                      outcome=outcome, per_epoch=per_epoch, findings=compare_findings(run_dirs, names, diagnose))


def compare_findings(run_dirs: list[str | Path], names: list[str], diagnose: Diagnose | None | str = "auto") -> dict[str, Any]:
    """Per run findings, and for each run after the first: appeared / disappeared / severity changed."""
    diagnose = load_diagnose() if diagnose == "auto" else diagnose
    if diagnose is None:
        return {"available": False, "reason": "doctor not available", "per_run": [], "changes": []}
    found = [findings_of(d, diagnose) for d in run_dirs]
    per_run = [f for f, _ in found]
    changes = []
    base = per_run[0]
    for name, (other, why) in zip(names[1:], found[1:]):
        if base is None or other is None:
            changes.append({"run": name, "reason": why or found[0][1]})
            continue
        changes.append({"run": name} | diff_findings(base, other))
    return {"available": True, "per_run": per_run, "changes": changes}


def diff_findings(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, list]:
    """Compare two lists of findings (dicts with code and severity) by code."""
    a, b = codes(before), codes(after)
    return {
        "appeared": [{"code": c, "severity": s} for c, s in b.items() if c not in a],
        "disappeared": [{"code": c, "severity": s} for c, s in a.items() if c not in b],
        "severity_changed": [{"code": c, "from": a[c], "to": s} for c, s in b.items() if c in a and a[c] != s],
        "unchanged": [c for c, s in b.items() if a.get(c) == s],
    }


def deltas(values: list[Any]) -> list[float | None]:
    """Each later value minus the first (None where either is not a number)."""
    base = values[0]
    return [v - base if is_number(v) and is_number(base) else None for v in values[1:]]


def _differences(dicts: list[dict[str, Any]], keys: list[str]) -> list[tuple[str, list[Any]]]:
    return [(k, [d.get(k) for d in dicts]) for k in keys if any(d.get(k) != dicts[0].get(k) for d in dicts)]


def _number(v: Any) -> float | None:
    return v if is_number(v) else None


def _cell(v: Any) -> str:
    """A config or outcome value as written: 0.002, not 0.0020."""
    if v is None:
        return "(absent)"
    return format(v, ".6g") if isinstance(v, float) else str(v)


def _codes_text(items: list[dict[str, str]]) -> str:
    return ", ".join(f"{i['code']} ({i['severity']})" for i in items) or "none"


NEGLIGIBLE = 1e-4  # smaller differences get no better/worse verdict (float noise between equal predictions)


def _verdict(metric: str, delta: float | None) -> str:
    if delta is None or abs(delta) < NEGLIGIBLE or metric.startswith("time"):
        return ""
    better = delta < 0 if resolve_mode(metric, "auto") == "min" else delta > 0
    return "better" if better else "worse"


def _judged(metric: str, delta: float | None) -> str:
    verdict = _verdict(metric, delta)
    return fmt_delta(delta) + (f" {verdict}" if verdict else "")


# ------------------------------------------------------------------------------------------ html

def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_delta(metric: str, delta: float | None) -> str:
    verdict = _verdict(metric, delta)
    return f'<span class="{verdict}">{fmt_delta(delta)}</span>' if verdict else fmt_delta(delta)


def _curve_png(metric: str, names: list[str], rows: list[tuple[int, list[float | None]]]) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.2), layout="constrained")
    ax = fig.add_subplot()
    for i, name in enumerate(names):
        points = [(e, vals[i]) for e, vals in rows if vals[i] is not None]
        if points:
            ax.plot(*zip(*points), marker="o", ms=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return base64.b64encode(buf.getvalue()).decode()
