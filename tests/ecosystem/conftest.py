"""Fixtures for the ecosystem tests: a trained digits run, and a real MLflow server on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import trainwise
from tests.ecosystem.eco_helpers import QUIET, free_port


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """An MLP trained on digits for a few epochs, written to a run directory (shared by the tests, read-only)."""
    out = tmp_path_factory.mktemp("runs") / "digits"
    trainwise.fit(train__epochs=6, model__hidden=[64], out=out, **QUIET)
    return out


def _mlflow_command() -> list[str]:
    beside = Path(sys.executable).parent / "mlflow"
    return [str(beside)] if beside.exists() else [shutil.which("mlflow") or "mlflow"]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """``mlflow server`` with a SQLite backend, started for the session and stopped at its end; yields its URL."""
    pytest.importorskip("mlflow", reason="mlflow is not installed (pip install mlflow)")
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(root / "server.log", "wb")
    cmd = [*_mlflow_command(), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
           "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    # Its own session, so that stopping it also stops the web server's worker process. The job runner
    # (background tasks for MLflow's GenAI features) is not needed and would add processes.
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    try:
        deadline = time.monotonic() + 90  # ~7 s on an idle machine; much more when the cores are busy
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
