"""Run CLI commands in-process (no interpreter start-up per call)."""

from typer.testing import CliRunner

from trainwise.cli import app


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))
