"""Hover readouts for the report's plots: move the pointer over a plot and the values under it show.

Each plot's data (x and y of every line, the axes' box in SVG units, its limits and y scale) goes into
its ``<figure data-hover>`` as JSON, and one small inline script (``HOVER_JS``, no library, nothing
fetched) maps the pointer to the nearest x and lists every line's value there, the line nearest the
pointer first and marked with a dot -- the readout TensorBoard and W&B give. ``twReadout`` is the pure
part (tests run it under node against the drawn SVG path); the rest only draws. Without scripts the
epoch markers keep their SVG ``<title>`` elements.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

MAX_POINTS = 4000  # per line; a longer step curve is read out at every k-th step (the drawn curve keeps all)


def hover_data(fig, ax, xlabel: str, series: Sequence[tuple[str, Sequence[float], Sequence[float]]]) -> dict:
    """What the script needs for ``ax`` of ``fig`` (call after the layout is final)."""
    width, height = (v * 72 for v in fig.get_size_inches())  # matplotlib's SVG user units are points
    pos = ax.get_position()
    ylog = ax.get_yscale() == "log"
    lines = []
    for name, xs, ys in series:
        pts = [(x, y) for x, y in zip(xs, ys) if math.isfinite(y) and (y > 0 or not ylog)]
        stride = max(1, math.ceil(len(pts) / MAX_POINTS))
        pts = pts[::stride] + (pts[-1:] if (len(pts) - 1) % stride else [])
        if pts:
            lines.append({"name": name, "x": [p[0] for p in pts], "y": [float(f"{p[1]:.6g}") for p in pts]})
    return {"box": [round(pos.x0 * width, 3), round((1 - pos.y1) * height, 3), round(pos.width * width, 3), round(pos.height * height, 3)],
            "xlim": list(ax.get_xlim()), "ylim": list(ax.get_ylim()), "ylog": ylog, "xlabel": xlabel, "series": lines}


def wrap(svg: str, data: dict | None) -> str:
    if not data or not data["series"]:
        return svg
    text = json.dumps(data, separators=(",", ":")).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#x27;")
    return f"<figure class='tw-plot' data-hover='{text}'>{svg}</figure>"  # an attribute in single quotes: JSON's " stay


CSS = """
.tw-plot{margin:0;position:relative}
.tw-tip{position:fixed;pointer-events:none;background:rgba(255,255,255,.95);border:1px solid #bbb;border-radius:4px;
padding:.25rem .45rem;font-size:.78rem;line-height:1.3;box-shadow:0 1px 4px rgba(0,0,0,.15);display:none;z-index:9;white-space:nowrap}
.tw-tip b{font-weight:600}
"""

# Plain ES2015, no library. twReadout(d, ux, uy): the readout at SVG user coordinates (ux, uy), or null.
HOVER_JS = r"""
function twNearest(xs, v) {
  let lo = 0, hi = xs.length - 1;
  if (hi < 0) return -1;
  while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (xs[mid] <= v) lo = mid; else hi = mid; }
  return Math.abs(xs[hi] - v) < Math.abs(xs[lo] - v) ? hi : lo;
}
function twScale(d) {
  const [bx, by, bw, bh] = d.box, f = v => d.ylog ? Math.log10(v) : v;
  return {
    X: x => bx + (x - d.xlim[0]) / (d.xlim[1] - d.xlim[0]) * bw,
    Y: y => by + bh - (f(y) - f(d.ylim[0])) / (f(d.ylim[1]) - f(d.ylim[0])) * bh,
    inside: (ux, uy) => ux >= bx && ux <= bx + bw && uy >= by && uy <= by + bh,
    xAt: ux => d.xlim[0] + (ux - bx) / bw * (d.xlim[1] - d.xlim[0]),
  };
}
function twReadout(d, ux, uy) {
  const s = twScale(d);
  if (!s.inside(ux, uy)) return null;
  const want = s.xAt(ux);
  let x = null, gap = Infinity;
  for (const line of d.series) {  // the x nearest the pointer over all lines
    const i = twNearest(line.x, want);
    if (i >= 0 && Math.abs(line.x[i] - want) < gap) { gap = Math.abs(line.x[i] - want); x = line.x[i]; }
  }
  if (x === null) return null;
  const rows = [];
  for (const line of d.series) {
    const i = twNearest(line.x, x);
    if (i >= 0 && line.x[i] === x) rows.push({name: line.name, x: x, y: line.y[i], px: s.X(x), py: s.Y(line.y[i])});
  }
  rows.sort((a, b) => Math.abs(a.py - uy) - Math.abs(b.py - uy));  // the line under the pointer first
  return {x: x, label: d.xlabel + " " + x, rows: rows};
}
function twFormat(v) { return Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : +v.toPrecision(4) + ""; }
function twAttach(doc) {
  const NS = "http://www.w3.org/2000/svg", tip = doc.createElement("div");
  tip.className = "tw-tip";
  doc.body.appendChild(tip);
  doc.querySelectorAll(".tw-plot").forEach(fig => {
    const d = JSON.parse(fig.dataset.hover), svg = fig.querySelector("svg");
    const guide = doc.createElementNS(NS, "line"), dot = doc.createElementNS(NS, "circle");
    guide.setAttribute("stroke", "#888"); guide.setAttribute("stroke-dasharray", "2,2");
    dot.setAttribute("r", "3.5"); dot.setAttribute("fill", "none"); dot.setAttribute("stroke", "#d62728"); dot.setAttribute("stroke-width", "1.5");
    const hide = () => { tip.style.display = "none"; guide.remove(); dot.remove(); };
    svg.addEventListener("mouseleave", hide);
    svg.addEventListener("mousemove", e => {
      const p = svg.createSVGPoint(); p.x = e.clientX; p.y = e.clientY;
      const u = p.matrixTransform(svg.getScreenCTM().inverse()), r = twReadout(d, u.x, u.y);
      if (!r || !r.rows.length) { hide(); return; }
      const top = r.rows[0], shown = r.rows.slice(0, 12);
      guide.setAttribute("x1", top.px); guide.setAttribute("x2", top.px);
      guide.setAttribute("y1", d.box[1]); guide.setAttribute("y2", d.box[1] + d.box[3]);
      dot.setAttribute("cx", top.px); dot.setAttribute("cy", top.py);
      svg.appendChild(guide); svg.appendChild(dot);
      tip.textContent = "";
      const head = doc.createElement("div"); head.textContent = r.label; tip.appendChild(head);
      shown.forEach((row, k) => {
        const line = doc.createElement(k ? "div" : "b"); line.textContent = row.name + " = " + twFormat(row.y);
        if (!k) line.style.display = "block";
        tip.appendChild(line);
      });
      if (r.rows.length > shown.length) { const more = doc.createElement("div"); more.textContent = "... " + (r.rows.length - shown.length) + " more"; tip.appendChild(more); }
      tip.style.display = "block"; tip.style.left = (e.clientX + 14) + "px"; tip.style.top = (e.clientY + 14) + "px";
    });
  });
}
if (typeof document !== "undefined") twAttach(document);
"""
