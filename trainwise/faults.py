"""Test-only fault injection: make a run die (or get a signal) at a named point, for the crash tests.

With ``TRAINWISE_FAULT=POINT[@N][:SIGNAL]`` in the environment, the process sends itself ``SIGNAL``
(``KILL`` by default; ``TERM`` and ``INT`` simulate preemption and Ctrl-C) the ``N``-th time (default 1)
it passes ``POINT``. Points:

- ``step``: after an optimizer step and its mid-epoch checkpoint, if any;
- ``eval``: inside an evaluation (validation or test), after a batch;
- ``write/NAME``: inside an atomic write of ``NAME``, its bytes handed to the temporary file, before the
  rename (``write/.last.pt.ready`` is the resumable checkpoint, ``write/history.jsonl`` the History);
- ``checkpoint-rename``: between ``last.pt -> previous.pt`` and ``.last.pt.ready -> last.pt``.

Without the variable, :func:`point` returns at once. Example: ``TRAINWISE_FAULT=step@13 trainwise train ...``
is killed right after step 13.
"""

from __future__ import annotations

import os
import signal


def _parse(spec: str | None) -> tuple[str, int, int] | None:
    if not spec:
        return None
    where, _, sig = spec.partition(":")
    name, _, count = where.partition("@")
    return name, int(count or 1), int(getattr(signal, "SIG" + (sig or "KILL")))


_FAULT = _parse(os.environ.get("TRAINWISE_FAULT"))
_passed = 0


def point(name: str) -> None:
    """Mark a named point; sends the configured signal when this is the configured pass."""
    global _passed
    if _FAULT is None or name != _FAULT[0]:
        return
    _passed += 1
    if _passed == _FAULT[1]:
        os.kill(os.getpid(), _FAULT[2])
