"""The report's plots drawn by a process that got ready while the run trained.

A `trainwise train` ends with its report, on the user's wall clock, and most of the report's cost comes
before the first plot: importing matplotlib and filling its first-use caches (fonts, tick locators, the SVG
writer), 0.5-0.7 s on a GPU host. Where cores are to spare (``MIN_CORES``; with fewer the import would
compete with the training itself), the Trainer forks a plot server when fit starts: it pays those costs
while the model trains, then waits. At the end the report hands it the plot jobs (plain lists and dicts);
it draws them with :func:`trainwise.report.draw_plots` (forking its own workers from a warm process) and
sends the SVGs back. The process gone, an error, or no answer within ``POOL_TIMEOUT_S``: the plots are
drawn in the training process as without a server, and the page is the same byte for byte either way
(tests/test_report_parallel.py).

One server per process at a time (module state: the Trainer starts it, the report takes it, and the
Trainer stops whatever is left when fit ends). The server never touches torch or the GPU; it ends when
its jobs are done, when its pipe closes, or when its parent is gone.
"""

from __future__ import annotations

import atexit
import os
import sys
import warnings

MIN_CORES = 4
POLL_S = 1.0  # how often a waiting server checks that its parent is alive

_current: PlotServer | None = None


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def start() -> PlotServer | None:
    """Start this process's plot server where it pays (Linux, at least MIN_CORES cores); None otherwise."""
    global _current
    stop()
    if not sys.platform.startswith("linux") or cores() < MIN_CORES:
        return None
    try:
        _current = PlotServer()
    except OSError:  # no process to be had: the report draws its plots itself
        _current = None
    return _current


def take() -> PlotServer | None:
    """The started server, now the caller's (it serves one report)."""
    global _current
    server, _current = _current, None
    return server


def stop() -> None:
    """End a server that no report took (a run that failed, or one without a report)."""
    server = take()
    if server is not None:
        server.close()


class PlotServer:
    def __init__(self):
        import multiprocessing

        ctx = multiprocessing.get_context("fork")  # the server starts in milliseconds, with what is imported
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, self._conn, os.getpid()), name="trainwise-plots")
        with warnings.catch_warnings():  # Python 3.12 warns that fork in a threaded process may deadlock:
            warnings.simplefilter("ignore", DeprecationWarning)  # the timeout in draw() answers that
            self._proc.start()
        child.close()
        atexit.register(self.close)  # before multiprocessing's own exit hook joins the process (LIFO)

    def draw(self, jobs: list[tuple], workers: int | None) -> list[str | None] | None:
        """The SVGs of ``jobs`` (see draw_plots), or None when the server could not draw them."""
        from trainwise.report import POOL_TIMEOUT_S

        try:
            self._conn.send((jobs, workers))
            if self._conn.poll(POOL_TIMEOUT_S):
                answer = self._conn.recv()
                return answer if isinstance(answer, list) and len(answer) == len(jobs) else None
        except Exception:  # the server died, or a job would not pickle: draw here
            pass
        finally:
            self.close()
        return None

    def close(self) -> None:
        atexit.unregister(self.close)
        self._conn.close()  # a waiting server reads the end of its pipe and exits
        self._proc.join(timeout=1.0)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()


def _serve(conn, parent_end, parent: int) -> None:
    import signal

    parent_end.close()  # the parent's end, inherited by the fork: with it closed, the parent's exit ends the pipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the training process's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the training loop's catcher, which carries on
    try:
        from trainwise.report import draw_plots, warm_up

        warm_up()
        while not conn.poll(POLL_S):
            if os.getppid() != parent:
                return
        jobs, workers = conn.recv()
        conn.send(draw_plots(jobs, workers, server=False))
    except (EOFError, OSError):  # the parent closed the pipe or is gone
        return
    except Exception:
        try:
            conn.send(None)
        except OSError:
            pass
