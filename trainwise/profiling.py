"""Where a run's wall-clock time goes: named phases, recorded only when asked (``train --profile-startup``).

Off by default, and then free: ``phase(...)`` is a context manager that does nothing. When on, every
phase boundary waits for the device, so a phase holds its own GPU work and not the previous one's; the
figures are honest, and the run is a little slower than an unprofiled one for it.

Phases that happen many times (an epoch's validation, a checkpoint) add up under one name, with a count.
The process's own start (interpreter, ``import trainwise``, the command line) is read from the kernel's
record of when the process began (Linux ``/proc``), so it needs no timer started before Python runs.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Any

_phases: dict[str, list[float]] | None = None  # name -> [seconds, count]; None: profiling is off
_device: Any = None


def enable(device: Any = None) -> None:
    global _phases, _device
    _phases, _device = {}, device


def set_device(device: Any) -> None:
    global _device
    _device = device


def enabled() -> bool:
    return _phases is not None


def _sync() -> None:
    if _device is not None and getattr(_device, "type", None) == "cuda":
        import torch

        torch.cuda.synchronize(_device)


def add(name: str, seconds: float) -> None:
    if _phases is None:
        return
    entry = _phases.setdefault(name, [0.0, 0])
    entry[0] += seconds
    entry[1] += 1


@contextmanager
def phase(name: str):
    """Time the block under ``name`` (waits for the device at both ends when profiling is on)."""
    if _phases is None:
        yield
        return
    _sync()
    start = time.perf_counter()
    try:
        yield
    finally:
        _sync()
        add(name, time.perf_counter() - start)


_lap_start: float | None = None


def lap(name: str) -> None:
    """Add the time since the previous ``lap`` (or ``lap_start``) under ``name``: one line between steps of a sequence."""
    global _lap_start
    if _phases is None:
        return
    _sync()
    now = time.perf_counter()
    if _lap_start is not None:
        add(name, now - _lap_start)
    _lap_start = now


def lap_start() -> None:
    """Start a sequence of laps here (what came before belongs to no lap)."""
    global _lap_start
    if _phases is None:
        return
    _sync()
    _lap_start = time.perf_counter()


def process_age() -> float | None:
    """Seconds since this process started, from /proc (None where there is no /proc)."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of stat(5): starttime, in clock ticks after boot
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def report(total_s: float | None = None) -> dict[str, Any]:
    """The phases so far as {"phases": [{name, seconds, count}], "accounted_s", "total_s"}."""
    rows = [{"name": k, "seconds": round(v[0], 4), "count": v[1]} for k, v in (_phases or {}).items()]
    accounted = sum(r["seconds"] for r in rows)
    out: dict[str, Any] = {"phases": rows, "accounted_s": round(accounted, 4)}
    if total_s is not None:
        out["total_s"] = round(total_s, 4)
        out["other_s"] = round(total_s - accounted, 4)
    return out


def table(result: dict[str, Any]) -> str:
    lines = [f"{'phase':<34} {'seconds':>8} {'count':>6}"]
    for r in result["phases"]:
        lines.append(f"{r['name']:<34} {r['seconds']:>8.3f} {r['count']:>6}")
    if "total_s" in result:
        lines.append(f"{'(not in a phase)':<34} {result['other_s']:>8.3f}")
        lines.append(f"{'wall clock since the process began':<34} {result['total_s']:>8.3f}")
    return "\n".join(lines)


def initialize_device(device: Any) -> None:
    """When profiling: remember the device, create CUDA's context now and count it as its own phase."""
    if _phases is None:
        return
    set_device(device)
    if getattr(device, "type", None) == "cuda":
        import torch

        torch.empty(1, device=device)  # CUDA's context is created lazily, at the first allocation
    lap("device initialization")
