"""Child processes that die with their parent.

A search's ``--workers`` processes must not outlive the command that started them: killed, the command
would leave them training trials nobody waits for (and overshooting ``--trials``). On Linux the kernel
sends the child SIGTERM when its parent exits (``prctl(PR_SET_PDEATHSIG)``); elsewhere, and in case the
parent died before the call, a watchdog thread checks the parent's id every second. SIGTERM lets a
trial in progress stop at a clean point and mark itself interrupted.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, signum: int = signal.SIGTERM, poll_s: float = 1.0) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signum))
        except (OSError, AttributeError):  # no prctl in this libc: the watchdog below still works
            pass
    if os.getppid() != parent:  # the parent is already gone
        os.kill(os.getpid(), signum)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os.kill(os.getpid(), signum)

    threading.Thread(target=watch, name="trainwise-parent-watchdog", daemon=True).start()
