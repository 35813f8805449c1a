"""The report's Repairs section: a fix chain (fix.json) and the repairs made while training (--autofix).

Plain HTML from plain dicts; it imports nothing heavy, as the report must not.
"""

from __future__ import annotations

import html
import math
from typing import Any


def _e(x: Any) -> str:
    return html.escape(str(x))


def _n(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) and math.isfinite(v) else _e(v)


def lr_test_text(info: dict[str, Any]) -> str:
    """One line on a round's LR range test (trainwise.autofix.lr_test), for the printed chain and the report."""
    if "valley" not in info:
        return f"LR range test: {info.get('why', '')}; the doctor's {info['doctor_change']} is used"
    said = (f"LR range test ({info['steps']} steps, {info['stop_reason']}): valley {_lr(info['valley'])}, steepest "
            f"{_lr(info['steepest'])}, loss lowest at {_lr(info['loss_min_lr'])}")
    if info["used"]:
        return f"{said}; its suggestion {_lr(info['suggestion'])} is used (the doctor's fix: {info['doctor_change']})"
    return f"{said}; {info.get('why', '')}, so the doctor's {info['doctor_change']} is used"


def _lr(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, (int, float)) else "none"


def _notes(r: dict[str, Any]) -> str:
    notes = (["a step further after the run turned healthy (follow-through)"] if r.get("follow_through") else []) + \
            ([f"a step further along the change that helped: {r.get('finding')} was still there after it"] if r.get("step_further") else []) + \
            ([lr_test_text(r["lr_test"])] if r.get("lr_test") else [])
    return "".join(f"<br><small>{_e(n)}</small>" for n in notes)


def chain_html(chain: dict[str, Any]) -> str:
    """finding -> change -> before/after, one row per round, then the skipped fixes and the outcome."""
    metric = chain.get("metric", "val_acc")
    noise = chain.get("noise", {})
    head = (f"<p><code>trainwise fix</code> on {metric}; noise from the {_e(noise.get('source'))} "
            f"({_n(noise.get('value'))}): {_e(noise.get('how', ''))}. Stopped: {_e(chain.get('stop_reason', ''))}.</p>")
    rows = "".join(
        f"<tr><td>{r['round']}</td><td>{_e(r['finding'])}</td><td><code>{_e(r['change'])}</code>{_notes(r)}</td><td>{_n(r['before'])}</td>"
        f"<td>{_n(r['after'])}</td><td>{_n(r['threshold'])}</td><td>{'kept' if r['kept'] else 'failed: ' + _e(r['failed']) if r.get('failed') else 'rejected'}</td>"
        f"<td>{_e(', '.join(r.get('findings_after', [])))}</td><td>{_e(r['run_dir'])}</td></tr>"
        for r in chain.get("rounds", []))
    table = ("<table><tr><th>round</th><th>finding</th><th>change</th><th>before</th><th>after</th><th>threshold</th>"
             f"<th>verdict</th><th>findings after</th><th>run</th></tr>{rows}</table>") if rows else ""
    skipped = "".join(f"<li>{_e(s['finding'])}: <code>{_e(s['change'])}</code> skipped: {_e(s['reason'])}</li>"
                      for s in chain.get("skipped", []))
    final = chain.get("final", {})
    test, was = final.get("test") or {}, (chain.get("original") or {}).get("test") or {}
    outcome = (f"<p>Final: {_e(', '.join(chain.get('changes', [])) or 'no change')}; {metric} {_n((chain.get('original') or {}).get('val'))} "
               f"&rarr; {_n(final.get('val'))}" + (f"; test accuracy {_n(was.get('acc'))} &rarr; {_n(test.get('acc'))}" if test and was else "")
               + f"; {chain.get('extra_runs', 0)} extra runs, {chain.get('extra_epochs', 0)} extra epochs.</p>")
    return head + table + (f"<ul>{skipped}</ul>" if skipped else "") + outcome


def live_html(repairs: list[dict[str, Any]]) -> str:
    """Repairs made during training: epoch, finding, change, and whether it rolled back or restarted."""
    rows = "".join(
        f"<tr><td>{r['epoch']}</td><td>{_e(r['finding'])}</td><td><code>{_e(r['change'])}</code></td><td>{_e(r['action'])}</td>"
        f"<td>{_e(r.get('resumed_from', ''))}</td></tr>" for r in repairs)
    return ("<p><code>--autofix</code> repairs during training.</p><table><tr><th>found at epoch</th><th>finding</th><th>change</th>"
            f"<th>action</th><th>continued from epoch</th></tr>{rows}</table>")


def repairs_html(chain: dict[str, Any] | None, live: list[dict[str, Any]] | None) -> str:
    parts = ([live_html(live)] if live else []) + ([chain_html(chain)] if chain else [])
    return "".join(parts)
