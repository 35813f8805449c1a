"""The run report: one self-contained HTML file (inline SVG plots, one small inline script, no network).

It reads only what a run leaves on disk (History, summary, config, environment, findings), never the
Trainer, so it works on old runs and on other tools' logs that the doctor's readers understand.

Sections: findings (with their epochs shaded on the curves), learning curves (loss, accuracy), the
learning-rate schedule, gradient norms per layer, update-to-weight ratios, activation health, the test
confusion matrix with per-class metrics, the config and the environment. Hovering a plot reads out
the values under the pointer (trainwise.report_hover); every epoch marker also has an SVG ``<title>``.
"""

from __future__ import annotations

import html
import io
import json
import math
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainwise import atomic, report_hover
from trainwise.rundir import ENV, FIX, REPORT, STEPS, SUMMARY, RunDir

SEVERITY_COLOURS = {"error": "#d62728", "warning": "#ff7f0e", "info": "#1f77b4"}


@dataclass
class ReportInput:
    records: list[dict[str, Any]]
    title: str
    summary: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)
    repairs: dict[str, Any] | None = None  # a fix chain (fix.json) made from this run
    steps: list[dict[str, Any]] = field(default_factory=list)  # steps.jsonl: loss and LR of every optimizer step


def load_report_input(path: str | Path, findings: list | None = None, repairs: dict | None = None) -> ReportInput:
    """A run directory, or any history file the doctor can read."""
    path = Path(path)
    if path.is_dir():
        run = RunDir(path)
        config = run.read_config_dict() if run.is_run() else {}
        data = ReportInput(records=run.load_history().records, title=path.name, summary=run.read_json(SUMMARY), config=config,
                           env=run.read_json(ENV), repairs=repairs or run.read_json(FIX) or None, steps=_read_steps(run.file(STEPS)))
    else:
        from trainwise.doctor.readers import read_history

        records, _meta = read_history(path)
        data = ReportInput(records=records, title=path.name)
    if findings is None:
        findings = _diagnose(path)
    data.findings = [f.to_dict() if hasattr(f, "to_dict") else dict(f) for f in findings]
    return data


def _read_steps(path: Path) -> list[dict[str, Any]]:
    """steps.jsonl's records; a torn last line (a kill during its append) is left out, other damage is one line."""
    if not path.is_file():
        return []
    from trainwise.errors import UserError

    try:
        lines = [line for line in path.read_bytes().decode("utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as err:
        raise UserError(f"cannot read {path}", expected="UTF-8 JSON lines as trainwise writes them", received=f"bytes that are not UTF-8 ({err.reason})",
                        fix="delete steps.jsonl (the report then leaves out the per-step plots)") from None
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not all(k in record for k in ("step", "loss", "lr")):
                raise ValueError("not a step record")
        except ValueError as err:
            if number == len(lines):
                break
            raise UserError(f"{path} line {number} is damaged", expected="one JSON object with step, loss and lr per line",
                            received=f"{line[:60]!r} ({str(err).splitlines()[0][:60]})",
                            fix="delete steps.jsonl (the report then leaves out the per-step plots)") from None
        records.append(record)
    return records


def step_plot(steps: list[dict[str, Any]], records, key: str, ylabel: str, log: bool = False) -> str | None:
    """``key`` of every optimizer step against the step, with the epochs' ends as vertical lines."""
    points = [(s["step"], s[key]) for s in steps if isinstance(s.get(key), (int, float)) and math.isfinite(s[key])]
    if not points:
        return None
    fig, ax = _figure()
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    ax.plot(xs, ys, lw=0.8, label=f"{key} per step", gid="tw-step")
    ends = [r["step"] for r in records if isinstance(r.get("step"), int)]
    if ends:  # one collection of lines, not one line per epoch
        ax.vlines(ends, 0, 1, transform=ax.get_xaxis_transform(), color="0.85", lw=0.6, zorder=0)
    if log:
        _log_y(ax)
    ax.set_xlabel("optimizer step (grey lines: epoch ends)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return _svg(fig, (ax, "step", [(key, xs, ys)]))


def _diagnose(path: Path) -> list:
    try:
        from trainwise.doctor import diagnose
    except ImportError:
        return []
    return diagnose(path)


# ------------------------------------------------------------------------------------------- plots

# Margins of the curve plots, in inches (left, bottom, right, top): room for the tick labels and axis titles.
# Fixed rather than tight_layout(), which lays every text out one more time: it took 40% of a plot's time.
MARGINS = (0.85, 0.55, 0.12, 0.12)


def _figure(width: float = 6.4, height: float = 3.4):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height))
    left, bottom, right, top = MARGINS
    fig.subplots_adjust(left=left / width, bottom=bottom / height, right=1 - right / width, top=1 - top / height)
    ax.grid(alpha=0.3)
    return fig, ax


def _log_y(ax) -> None:
    """A log y axis labelled in plain text (``1e-03``, ``0.02``): the default labels are mathtext, whose
    parsing took a third of a log plot's time."""
    from matplotlib.ticker import LogFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(LogFormatter())
    ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.4)))


def _svg(fig, hover: tuple | None = None, tight: bool = False) -> str:
    """The figure as inline SVG; ``hover = (ax, x label, [(name, xs, ys), ...])`` adds the hover readout;
    ``tight``: laid out around its labels first (labels of any length, such as class names)."""
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    if tight:
        fig.tight_layout()
    data = report_hover.hover_data(fig, *hover) if hover else None  # after the layout: it fixes the axes' box
    # No RDF metadata block: it only names matplotlib and a date, and makes reports differ run to run.
    fig.savefig(buf, format="svg", metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    plt.close(fig)
    text = buf.getvalue()
    return report_hover.wrap(text[text.index("<svg"):], data)  # without the XML prologue, so it embeds in HTML


def _series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in records:
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            xs.append(r.get("epoch", len(xs) + 1))
            ys.append(float(v))
    return xs, ys


def _mark_findings(ax, findings: list[dict]) -> None:
    from trainwise.doctor.codes import VERDICTS  # the run was diagnosed already: no new import

    for f in findings:
        if f.get("code") in VERDICTS or not f.get("epochs"):
            continue
        first, last = f["epochs"]
        colour = SEVERITY_COLOURS.get(f.get("severity"), "#777")
        ax.axvspan(first - 0.5, last + 0.5, color=colour, alpha=0.12, lw=0)
        ax.annotate(f["code"], xy=(first, 1), xycoords=("data", "axes fraction"), fontsize=7, color=colour,
                    va="top", rotation=90)


def _phase_lines(ax, records: list[dict]) -> None:
    previous = None
    for r in records:
        phase = r.get("phase")
        if previous is not None and phase != previous:
            ax.axvline(r["epoch"] - 0.5, color="#555", ls=":", lw=1)
            ax.annotate(str(phase), xy=(r["epoch"] - 0.5, 0.02), xycoords=("data", "axes fraction"), fontsize=7, color="#555")
        previous = phase


def curve_plot(records, keys, ylabel, findings, log=False) -> str | None:
    series = {k: _series(records, k) for k in keys}
    if not any(ys for _, ys in series.values()):
        return None
    fig, ax = _figure()
    hovers: dict[str, list[str]] = {}
    for i, (k, (xs, ys)) in enumerate(series.items()):
        if ys:
            ax.plot(xs, ys, marker="o", ms=3, label=k, gid=f"tw-{i}")
            hovers[f"tw-{i}"] = [f"epoch {x}: {k} = {y:.4g}" for x, y in zip(xs, ys)]
    if log:
        _log_y(ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    _mark_findings(ax, findings)
    _phase_lines(ax, records)
    ax.legend(fontsize=8)
    return _with_titles(_svg(fig, (ax, "epoch", [(k, xs, ys) for k, (xs, ys) in series.items() if ys])), hovers)


def _with_titles(svg: str, hovers: dict[str, list[str]]) -> str:
    for gid, labels in hovers.items():
        svg = with_hover_titles(svg, gid, labels)
    return svg


def with_hover_titles(svg: str, gid: str, labels: list[str]) -> str:
    """Give each marker of the line drawn with ``gid`` a <title> (the browser shows it on hover): the file
    stays self-contained and needs no script. Markers matplotlib left out (a log axis and a value <= 0)
    would misalign the labels: then the line keeps no titles."""
    start = svg.find(f'<g id="{gid}">')
    if start < 0:
        return svg
    ends = [i for i in (svg.find('<g id="tw-', start + 1), svg.find('<g id="legend', start + 1)) if i >= 0]
    end = min(ends, default=len(svg))  # the next line's group, or the legend (its markers are no data)
    part = svg[start:end]
    uses = part.count("<use ")
    if uses != len(labels):
        return svg
    pieces = part.split("<use ")
    out = [pieces[0]]
    for label, piece in zip(labels, pieces[1:]):
        close = piece.index("/>")
        out.append(f"<use {piece[:close]}><title>{html.escape(label)}</title></use>{piece[close + 2:]}")
    return svg[:start] + "".join(out) + svg[end:]


def per_layer_plot(records, prefix, ylabel, findings, log=True, band: tuple[float, float] | None = None) -> str | None:
    keys = list(dict.fromkeys(k for r in records for k in r if k.startswith(prefix)))  # as written: input side first
    if not keys:
        return None
    fig, ax = _figure(6.4, 3.8)
    drawn, hovers = [], {}
    for i, k in enumerate(keys):
        xs, ys = _series(records, k)
        if log:
            xs, ys = zip(*[(x, y) for x, y in zip(xs, ys) if y > 0]) if any(y > 0 for y in ys) else ([], [])
        if ys:
            layer = k[len(prefix):]
            ax.plot(xs, ys, marker=".", label=layer, gid=f"tw-{i}")
            drawn.append((layer, list(xs), list(ys)))
            hovers[f"tw-{i}"] = [f"epoch {x}: {layer} = {y:.4g}" for x, y in zip(xs, ys)]
    if band:
        ax.axhspan(*band, color="#2ca02c", alpha=0.08, lw=0)
    if log:
        _log_y(ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    _mark_findings(ax, findings)
    ax.legend(fontsize=7, ncol=2)
    return _with_titles(_svg(fig, (ax, "epoch", drawn)), hovers)


def confusion_plot(confusion: list[list[int]], class_names: list[str]) -> str:
    import numpy as np

    m = np.asarray(confusion, dtype=float)
    k = len(m)
    fig, ax = _figure(min(2.2 + 0.4 * k, 6.4), min(1.8 + 0.36 * k, 5.6))
    ax.grid(False)
    rows = m / np.maximum(m.sum(1, keepdims=True), 1)
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    names = class_names if len(class_names) == k else [str(i) for i in range(k)]
    ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            if m[i, j]:
                ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7, color="white" if rows[i, j] > 0.5 else "black")
    return _svg(fig, tight=True)


POOL_TIMEOUT_S = 30  # ~1 s is usual; a worker that has not answered by then is taken for hung: the plots are drawn here


def _draw(job: tuple) -> str | None:
    function, args = job
    return function(*args)


def _worker_start() -> None:
    import signal

    # A SIGTERM handler inherited from the caller (one that records the signal and carries on) would let
    # a worker outlive the pool's terminate(), which sends SIGTERM and then waits for it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


_warmed = False


def warm_up() -> None:
    """One small plot: matplotlib's import and its first-use caches (fonts, log ticks, markers, the SVG
    writer) paid once, before workers are forked, so that every worker shares them."""
    global _warmed
    if not _warmed:
        curve_plot([{"epoch": 1, "x": 1.0}, {"epoch": 2, "x": 0.1}], ["x"], "x", [], log=True)
        _warmed = True


def draw_plots(jobs: list[tuple], workers: int | None = None, server: bool = True) -> list[str | None]:
    """Each ``(plot function, arguments)``'s SVG, in order. The plots are independent and each costs
    0.05-0.2 s of CPU, so with several cores they are drawn in forked worker processes: the report sits
    at the end of a training run, on the user's wall clock. A plot server that got ready while the run
    trained (trainwise.report_server) draws them when there is one (``server``). The sequential path stays
    the reference: with one core, off Linux, for a report without a history, or on any failure of the pool,
    this process draws them, and the SVGs are the same either way (tests/test_report_parallel.py)."""
    from trainwise import report_server

    plot_server = report_server.take() if server and workers != 1 else None
    if plot_server is not None:
        drawn = plot_server.draw(jobs, workers)
        if drawn is not None:
            return drawn
    cores = report_server.cores()
    workers = min(len(jobs), cores) if workers is None else min(workers, len(jobs))
    # Fork only on Linux (it is unsafe on macOS), so workers start in milliseconds with matplotlib
    # already imported. The training process may hold a CUDA context: the workers get plain lists and
    # dicts, draw with matplotlib alone and return text, so they never touch torch or the GPU.
    if workers >= 2 and sys.platform.startswith("linux"):
        import multiprocessing

        warm_up()
        try:
            with warnings.catch_warnings():  # Python 3.12 warns that fork in a threaded process may deadlock:
                warnings.simplefilter("ignore", DeprecationWarning)  # POOL_TIMEOUT_S answers that
                with multiprocessing.get_context("fork").Pool(workers, _worker_start) as pool:  # leaving it kills the workers
                    return pool.map_async(_draw, jobs, chunksize=1).get(timeout=POOL_TIMEOUT_S)
        except Exception:  # a worker killed, hung or failing: draw here, never lose the report
            pass
    return [_draw(job) for job in jobs]


# -------------------------------------------------------------------------------------------- HTML

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:1rem}
.card{border:1px solid #e3e3e3;border-radius:6px;padding:.6rem}
.card svg{width:100%;height:auto}
table{border-collapse:collapse;font-size:.9rem} td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:left}
.finding{border-left:5px solid #999;padding:.4rem .8rem;margin:.6rem 0;background:#fafafa}
.error{border-color:#d62728}.warning{border-color:#ff7f0e}.info{border-color:#1f77b4}.healthy{border-color:#2ca02c}
code,pre{background:#f4f4f4;border-radius:3px} pre{padding:.6rem;overflow:auto;font-size:.8rem}
.muted{color:#777;font-size:.9rem}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def findings_html(findings: list[dict]) -> str:
    if not findings:
        return "<p class='muted'>No diagnosis available for this run.</p>"
    parts = []
    for f in findings:
        cls = "healthy" if f.get("code") == "healthy" else f.get("severity", "info")
        epochs = f.get("epochs")
        where = f" — epochs {epochs[0]}–{epochs[1]}" if epochs else ""
        evidence = ", ".join(f"{_e(k)} = {_e(_fmt(v))}" for k, v in (f.get("evidence") or {}).items())
        fixes = "".join(f"<li><code>{_e(x)}</code></li>" for x in f.get("fixes") or [])
        parts.append(
            f"<div class='finding {cls}'><b>{_e(f.get('code'))}</b> <span class='muted'>({_e(f.get('severity'))}{where})</span>"
            f"<p>{_e(f.get('message', ''))}</p>"
            + (f"<p class='muted'>evidence: {evidence}</p>" if evidence else "")
            + (f"<p>try:</p><ul>{fixes}</ul>" if fixes else "") + "</div>"
        )
    return "\n".join(parts)


def summary_class_names(summary: dict) -> list[str]:
    """The run's class names, else the class ids of its test confusion matrix."""
    test = summary.get("test") or {}
    return summary.get("class_names") or [str(i) for i in range(len(test.get("confusion", [])))]


def test_html(summary: dict, plot: str) -> str:
    """The test split's metrics and per-class table beside ``plot``, its confusion matrix's SVG (drawn with the other plots)."""
    test = summary.get("test")
    if not test:
        return "<p class='muted'>No test split in this run.</p>"
    names = summary_class_names(summary)
    head = " ".join(f"<b>{k}</b> {_fmt(test[k])}" for k in ("acc", "loss", "precision", "recall", "f1", "macro_f1") if k in test)
    rows = "".join(
        f"<tr><td>{_e(n)}</td><td>{_fmt(p)}</td><td>{_fmt(r)}</td><td>{_fmt(f)}</td><td>{sum(row)}</td></tr>"
        for n, p, r, f, row in zip(names, test.get("per_class_precision", []), test.get("per_class_recall", []),
                                   test.get("per_class_f1", []), test.get("confusion", []))
    )
    table = f"<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>{rows}</table>"
    return f"<p>{head}</p><div class='grid'><div class='card'>{plot}</div><div>{table}</div></div>"


def render_html(data: ReportInput, workers: int | None = None) -> str:
    """``workers``: processes drawing the plots (default: one per core, up to one per plot; 1: this process)."""
    r, fnd = data.records, data.findings
    test = data.summary.get("test") or {}
    jobs = [  # (title, plot function, its arguments): plain lists and dicts, so a worker process can draw it
        ("Loss", curve_plot, (r, ["train_loss", "val_loss", "val_loss_ema"], "loss", fnd)),
        ("Accuracy", curve_plot, (r, ["train_acc", "val_acc", "val_acc_ema"], "accuracy", fnd)),
        ("F1", curve_plot, (r, ["train_f1", "val_f1"], "F1", fnd)),
        ("Loss per step", step_plot, (data.steps, r, "loss", "training batch loss", True)),
        ("Learning rate per step", step_plot, (data.steps, r, "lr", "learning rate")),
        ("Learning rate", curve_plot, (r, ["lr"], "learning rate", [], True)),
        ("Time per epoch", curve_plot, (r, ["time_s"], "seconds (training)", [])),
        ("Gradient norm per layer", per_layer_plot, (r, "grad_norm/", "||grad||", fnd)),
        ("Update-to-weight ratio per layer", per_layer_plot, (r, "update_ratio/", "||Δw|| / ||w||", fnd, True, (1e-4, 1e-2))),
        ("Dead units per layer", per_layer_plot, (r, "dead_frac/", "fraction dead", fnd, False)),
        ("Saturated units per layer", per_layer_plot, (r, "saturated_frac/", "fraction saturated", fnd, False)),
    ]
    if test.get("confusion"):
        jobs.append(("confusion", confusion_plot, (test["confusion"], summary_class_names(data.summary))))
    workers = workers if r else 1  # no history: at most the confusion matrix, not worth a pool
    svgs = dict(zip([t for t, _, _ in jobs], draw_plots([(f, a) for _, f, a in jobs], workers)))
    confusion = svgs.pop("confusion", "")
    cards = "".join(f"<div class='card'><h3>{_e(t)}</h3>{svg}</div>" for t, svg in svgs.items() if svg)
    s = data.summary
    headline = ""
    if s:
        test_acc = s.get("test", {}).get("acc")
        headline = (f"<p class='muted'>{s.get('epochs_run', len(r))} epochs, stopped: {_e(s.get('stop_reason', '?'))}"
                    + (f"; best epoch {s['best_epoch']} by {_e(s.get('monitor'))}" if s.get("best_epoch") else "")
                    + (f"; test accuracy <b>{test_acc:.4f}</b>" if isinstance(test_acc, float) else "") + "</p>")
    config = _e(_toml(data.config)) if data.config else ""
    env = _e(json.dumps(data.env, indent=2)) if data.env else ""
    from trainwise.autofix.report_section import repairs_html

    repairs = repairs_html(data.repairs, s.get("repairs"))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>trainwise report: {_e(data.title)}</title>
<style>{CSS}{report_hover.CSS}</style></head><body>
<h1>trainwise report: {_e(data.title)}</h1>{headline}
<h2>Diagnosis</h2>{findings_html(fnd)}
{f"<h2>Repairs</h2>{repairs}" if repairs else ""}
<h2>Training curves</h2><div class="grid">{cards or "<p class='muted'>No history.</p>"}</div>
<h2>Test split</h2>{test_html(s, confusion)}
<h2>Config</h2>{f"<pre>{config}</pre>" if config else "<p class='muted'>No config recorded.</p>"}
<h2>Environment</h2>{f"<pre>{env}</pre>" if env else "<p class='muted'>No environment recorded.</p>"}
<p class="muted">Self-contained file written by trainwise; it needs no network. Hover a plot to read its values.</p>
<script>{report_hover.HOVER_JS}</script>
</body></html>
"""


def _toml(config: dict) -> str:
    import tomli_w

    try:
        return tomli_w.dumps(config)
    except (TypeError, ValueError):  # a config from elsewhere may hold values TOML cannot express
        return json.dumps(config, indent=2)


def render_report(path: str | Path, out: str | Path | None = None, findings: list | None = None,
                  repairs: dict | None = None, workers: int | None = None) -> Path:
    """Write the report for a run directory (default ``RUN/report.html``) or a history file.

    ``repairs``: a fix chain to show (default: ``RUN/fix/fix.json`` when there is one); ``workers``:
    processes drawing the plots (default: one per core; 1 draws them in this process).
    """
    path = Path(path)
    data = load_report_input(path, findings, repairs)
    target = Path(out) if out else (path / REPORT if path.is_dir() else path.with_suffix(".report.html"))
    atomic.write_text(target, render_html(data, workers))
    return target
