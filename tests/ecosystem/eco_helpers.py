"""Helpers shared by the ecosystem tests."""

from __future__ import annotations

import socket

QUIET = {"train__progress": "none", "train__threads": 1}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def invoke(*args: str, **env: str):
    """Run a CLI command in this process (faster than a subprocess: no second torch import)."""
    from typer.testing import CliRunner

    from trainwise.cli import app

    return CliRunner().invoke(app, list(args), env=env or None, prog_name="trainwise")
