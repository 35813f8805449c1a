"""Hovering the report's plots shows values: every plot (epoch curves, the per-step loss and LR, the
per-layer monitors) carries its data and one small inline script reads out the values nearest the
pointer; epoch markers also have SVG <title>s. The readout is checked against what matplotlib drew (the
SVG path's vertices and markers) by running the script's pure part under node, and in headless Chromium
the page renders and a pointer moved over each plot shows the recorded values."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import pytest

import trainwise
from tests.helpers import report_figures as figures
from trainwise.config import Config
from trainwise.report_hover import HOVER_JS

SETTINGS = {"train.epochs": 3, "model.hidden": [32, 16], "schedule.name": "cosine", "schedule.warmup_epochs": 1,
            "train.progress": "none", "train.threads": 1, "monitors.every_n_steps": 5}
NODE = shutil.which("node")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("hover") / "run"
    run = trainwise.fit(Config().replace(SETTINGS), out=out)
    return out / "report.html", run


def readouts(cases: list[tuple[dict, float, float]], tmp_path) -> list[dict | None]:
    script = tmp_path / "readout.js"
    script.write_text(HOVER_JS + "\nconst cases = " + json.dumps([{"d": d, "x": x, "y": y} for d, x, y in cases]) + ";\n"
                      "console.log(JSON.stringify(cases.map(c => twReadout(c.d, c.x, c.y))));\n")
    proc = subprocess.run([NODE, str(script)], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(proc.stdout)


def test_epoch_points_carry_their_values(report):
    path, run = report
    titles = re.findall(r"<title>([^<]*)</title>", path.read_text())
    val = run.history.records[1]["val_loss"]
    assert f"epoch 2: val_loss = {val:.4g}" in titles
    assert sum(t.startswith("epoch ") and ": train_acc = " in t for t in titles) == 3  # one per epoch, per line
    grad = run.history.records[2]["grad_norm/hidden2.linear"]
    assert f"epoch 3: hidden2.linear = {grad:.4g}" in titles  # the per-layer plots too, by module path


def test_every_plot_has_a_readout_and_the_page_stays_offline(report):
    page = report[0].read_text()
    plots = figures(page)
    assert {"Loss", "Accuracy", "Loss per step", "Learning rate per step", "Time per epoch", "Gradient norm per layer",
            "Update-to-weight ratio per layer", "Dead units per layer"} <= set(plots)
    assert [s["name"] for s in plots["Gradient norm per layer"][0]["series"]] == ["hidden1.linear", "hidden2.linear", "head"]
    assert len(re.findall(r"<script", page)) == 1 and "<script>" in page  # one inline script
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", page)  # nothing fetched


@pytest.mark.skipif(NODE is None, reason="node is not installed (it runs the report's script in this test)")
def test_step_readout_lands_on_the_drawn_curve(report, tmp_path):
    path, _ = report
    steps = {s["step"]: s for s in map(json.loads, (path.parent / "steps.jsonl").read_text().splitlines())}
    data, svg = figures(path.read_text())["Loss per step"]
    curve = re.search(r'<g id="tw-step">\s*<path d="([^"]*)"', svg).group(1)  # the drawn line, vertex by vertex
    drawn = [tuple(map(float, v)) for v in re.findall(r"[ML] ([\d.]+) ([\d.]+)", curve)]
    assert len(drawn) > 20
    picks = drawn[:: max(1, len(drawn) // 9)]
    for (vx, vy), out in zip(picks, readouts([(data, vx, vy + 3.0) for vx, vy in picks], tmp_path)):
        row = out["rows"][0]
        assert out["label"] == f"step {row['x']}" and row["name"] == "loss"
        assert row["y"] == pytest.approx(steps[row["x"]]["loss"], rel=1e-5)  # the value of that step
        assert abs(row["px"] - vx) < 0.01 and abs(row["py"] - vy) < 0.01  # at the vertex matplotlib drew
    assert readouts([(data, 1.0, 1.0)], tmp_path) == [None]  # outside the axes: no readout


@pytest.mark.skipif(NODE is None, reason="node is not installed (it runs the report's script in this test)")
def test_layer_readout_lists_every_layer_at_the_epoch(report, tmp_path):
    path, run = report
    data, svg = figures(path.read_text())["Gradient norm per layer"]
    group = svg[svg.index('<g id="tw-1">'):svg.index('<g id="tw-2">')]  # hidden2.linear's markers
    x, y = map(float, re.findall(r'<use [^>]*x="([\d.]+)" y="([\d.]+)"', group)[1])  # its epoch 2
    out, = readouts([(data, x + 2.0, y)], tmp_path)
    record = run.history.records[1]
    assert out["label"] == "epoch 2" and out["rows"][0]["name"] == "hidden2.linear"  # the line under the pointer first
    assert {r["name"]: r["y"] for r in out["rows"]} == pytest.approx({k: record[f"grad_norm/{k}"] for k in ("hidden1.linear", "hidden2.linear", "head")}, rel=1e-5)


# A DOM just big enough for the script's event wiring: elements record children, attributes and listeners.
STUB_DOM = r"""
function el(tag) { return {tag, style: {}, children: [], attrs: {}, textContent: "", listeners: {},
  appendChild(c) { this.children.push(c); return c; }, setAttribute(k, v) { this.attrs[k] = v; }, remove() {},
  addEventListener(t, f) { this.listeners[t] = f; }}; }
const body = el("body"), svg = el("svg");
svg.createSVGPoint = () => ({x: 0, y: 0, matrixTransform() { return {x: this.x, y: this.y}; }});  // client = SVG units
svg.getScreenCTM = () => ({inverse() { return null; }});
const fig = {dataset: {hover: HOVER}, querySelector: () => svg};
var document = {body, createElement: el, createElementNS: (ns, t) => el(t), querySelectorAll: () => [fig]};
"""


@pytest.mark.skipif(NODE is None, reason="node is not installed (it runs the report's script in this test)")
def test_the_script_fills_the_tooltip_on_mousemove(report, tmp_path):
    path, run = report
    data, _ = figures(path.read_text())["Learning rate per step"]
    box = data["box"]
    script = tmp_path / "dom.js"
    script.write_text(STUB_DOM.replace("HOVER", json.dumps(json.dumps(data))) + HOVER_JS + f"""
svg.listeners.mousemove({{clientX: {box[0] + box[2] / 2}, clientY: {box[1] + box[3] / 2}}});
const tip = body.children[0];
console.log(JSON.stringify({{display: tip.style.display, lines: tip.children.map(c => c.textContent), guide: svg.children.length}}));
svg.listeners.mouseleave();
console.log(tip.style.display);
""")
    out, after = subprocess.run([NODE, str(script)], capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    shown = json.loads(out)
    steps = {s["step"]: s for s in map(json.loads, (path.parent / "steps.jsonl").read_text().splitlines())}
    step = int(shown["lines"][0].removeprefix("step "))
    assert shown["display"] == "block" and shown["guide"] == 2 and after == "none"
    assert abs(step - (1 + run.summary["steps"]) / 2) <= 1  # the middle of the axes: the middle step
    name, value = shown["lines"][1].split(" = ")
    assert name == "lr" and float(value) == pytest.approx(steps[step]["lr"], rel=1e-3)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    path, _ = report
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}", "--window-size=1200,2400",
                    path.as_uri()], capture_output=True, timeout=120, check=True)
    from PIL import Image

    with Image.open(shot) as im:
        colors = im.convert("RGB").resize((60, 120)).getcolors(maxcolors=10_000)
    assert im.size == (1200, 2400) and colors is not None and len(colors) > 20  # drawn: curves and text, not a blank page


# Run after the report's own script: move the pointer (a real MouseEvent, through the browser's layout and
# the SVG's screen transform) to the middle of every plot and write what the tooltip then shows into the page.
PROBE_JS = r"""
const shown = [];
document.querySelectorAll(".tw-plot").forEach(fig => {
  const svg = fig.querySelector("svg"), d = JSON.parse(fig.dataset.hover), p = svg.createSVGPoint();
  p.x = d.box[0] + d.box[2] / 2; p.y = d.box[1] + d.box[3] / 2;
  const c = p.matrixTransform(svg.getScreenCTM());
  svg.dispatchEvent(new MouseEvent("mousemove", {clientX: c.x, clientY: c.y, bubbles: true}));
  const tip = document.querySelector(".tw-tip");
  shown.push({title: fig.previousElementSibling.textContent, display: tip.style.display, lines: [...tip.children].map(e => e.textContent)});
});
const out = document.createElement("pre"); out.id = "tw-probe"; out.textContent = JSON.stringify(shown); document.body.appendChild(out);
"""
LAYER_PLOTS = {"Gradient norm per layer": "grad_norm/", "Update-to-weight ratio per layer": "update_ratio/",
               "Dead units per layer": "dead_frac/", "Saturated units per layer": "saturated_frac/"}


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_hover_in_headless_chromium_reads_out_the_step_and_layer_plots(report, tmp_path):
    path, run = report
    page = path.read_text()
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", f"<script>{PROBE_JS}</script></body>"))
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,2400", "--dump-dom",
                          probed.as_uri()], capture_output=True, text=True, timeout=120, check=True).stdout
    shown = {s["title"]: s for s in json.loads(html.unescape(re.search(r'<pre id="tw-probe">(.*?)</pre>', dom, re.S).group(1)))}
    assert set(shown) == set(figures(page)) and all(s["display"] == "block" for s in shown.values())  # every plot answers

    def values(lines):  # "name = value" rows of the tooltip, after its "step N" / "epoch N" head
        return {name: float(v) for name, v in (line.split(" = ") for line in lines[1:] if " = " in line)}

    steps = {s["step"]: s for s in map(json.loads, (path.parent / "steps.jsonl").read_text().splitlines())}
    for title, key in (("Loss per step", "loss"), ("Learning rate per step", "lr")):
        head, *_ = shown[title]["lines"]
        step = int(head.removeprefix("step "))
        assert abs(step - (1 + run.summary["steps"]) / 2) <= 1, title  # the middle of the axes: the middle step
        assert values(shown[title]["lines"]) == pytest.approx({key: steps[step][key]}, rel=1e-3)  # shown to 4 digits
    layer_plots = [t for t in LAYER_PLOTS if t in shown]
    assert len(layer_plots) >= 3
    for title in layer_plots:
        lines = shown[title]["lines"]
        assert lines[0] == "epoch 2", title  # 3 epochs: the middle one
        record, prefix = run.history.records[1], LAYER_PLOTS[title]
        expected = {k[len(prefix):]: v for k, v in record.items() if k.startswith(prefix)}
        assert set(values(lines)) == {"hidden1.linear", "hidden2.linear"} | ({"head"} & set(expected))  # layers by module path
        assert values(lines) == pytest.approx({k: expected[k] for k in values(lines)}, rel=1e-3, abs=1e-12)
