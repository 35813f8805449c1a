"""The report's plots drawn in worker processes give the same page, byte for byte (hover data included),
as drawn in the training process; a pool that fails falls back to drawing them here."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time

import matplotlib
import pytest

import trainwise
from trainwise import report
from trainwise.config import Config

SETTINGS = {"train.epochs": 4, "model.hidden": [32, 16], "train.progress": "none", "train.threads": 1,
            "monitors.every_n_steps": 5, "train.report": False}


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the workers are forked on Linux only")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("parallel") / "run"
    trainwise.fit(Config().replace(SETTINGS), out=out)  # digits
    return report.load_report_input(out)


def test_workers_draw_the_same_page_as_one_process(data):
    # matplotlib salts the SVG ids with a random value per render; fixed here, the pages can be compared
    with matplotlib.rc_context({"svg.hashsalt": "compare"}):
        sequential = report.render_html(data, workers=1)
        parallel = report.render_html(data, workers=2)
    assert parallel == sequential
    assert sequential.count("<svg") >= 10 and sequential.count("data-hover=") >= 9  # curves, steps, layers, confusion


def test_a_failing_pool_still_gives_the_report(data, monkeypatch):
    calls = []

    def broken_pool(self, *args, **kwargs):
        calls.append(args)
        raise OSError("no processes left")

    monkeypatch.setattr(type(multiprocessing.get_context("fork")), "Pool", broken_pool)
    with matplotlib.rc_context({"svg.hashsalt": "compare"}):
        fallback = report.render_html(data, workers=2)
        sequential = report.render_html(data, workers=1)
    assert calls and fallback == sequential



def _hangs_in_a_worker(parent: int, text: str) -> str:
    if os.getpid() != parent:
        time.sleep(3600)
    return text


def test_a_hung_worker_is_ended_and_the_plots_drawn_here(monkeypatch):
    # under the training loop's SignalCatcher, which records SIGTERM and carries on: the pool's
    # terminate() (SIGTERM, then a wait) must still end a worker stuck in its plot
    from trainwise.interrupt import SignalCatcher

    monkeypatch.setattr(report, "POOL_TIMEOUT_S", 2)
    jobs = [(_hangs_in_a_worker, (os.getpid(), text)) for text in ("a", "b", "c")]
    catcher = SignalCatcher().install()
    try:
        assert report.draw_plots(jobs, workers=2) == ["a", "b", "c"]
    finally:
        catcher.restore()
    assert catcher.received is None


def test_a_plot_server_started_before_training_draws_the_same_page(data, monkeypatch):
    """The server forked when fit starts (warm by the end of training) draws what this process would."""
    from trainwise import report_server

    monkeypatch.setattr(report_server, "MIN_CORES", 1)
    with matplotlib.rc_context({"svg.hashsalt": "compare"}):  # (before the fork: the server copies the settings)
        server = report_server.start()
        assert server is not None and server._proc.is_alive()
        served = report.render_html(data)  # takes the server: its answer, not a pool of this process
        assert report_server.take() is None and not server._proc.is_alive()
        sequential = report.render_html(data, workers=1)
    assert served == sequential


def test_a_dead_plot_server_leaves_the_report_to_this_process(data, monkeypatch):
    from trainwise import report_server

    monkeypatch.setattr(report_server, "MIN_CORES", 1)
    server = report_server.start()
    server._proc.kill()
    server._proc.join()
    with matplotlib.rc_context({"svg.hashsalt": "compare"}):
        assert report.render_html(data) == report.render_html(data, workers=1)


def test_fit_stops_a_plot_server_that_no_report_took(tmp_path, monkeypatch):
    from trainwise import report_server

    monkeypatch.setattr(report_server, "MIN_CORES", 1)
    before = set(multiprocessing.active_children())
    run = trainwise.fit(Config().replace({**SETTINGS, "train.epochs": 1, "train.report": True}), out=tmp_path / "run")
    assert (tmp_path / "run" / "report.html").is_file() and run.summary["report"]
    assert report_server.take() is None and not set(multiprocessing.active_children()) - before
    with pytest.raises(Exception):
        trainwise.fit(Config().replace({**SETTINGS, "train.epochs": 1, "train.report": True, "data.name": "nothere"}), out=tmp_path / "bad")
    assert report_server.take() is None and not set(multiprocessing.active_children()) - before
