"""Import TorchDynamo in a background thread while a run sets itself up.

Every torch optimizer imports ``torch._dynamo`` (the torch.compile front end) the first time it is built
and again in ``Optimizer.step``: ``add_param_group`` and ``step`` are wrapped by ``torch._disable_dynamo``
and ``_use_grad_for_differentiable`` (torch/optim/optimizer.py), which import it at their first call. In
a cold process that import is 0.8-1.4 s on the GPU host and about 1.2 s on a 2-core CPU, all of it
before the first step. Started when torch itself is imported, the import runs while the main thread
reads the config, creates the CUDA context, reads the data and builds the model; the parts of those that
release the interpreter lock (file writes and fsyncs, CUDA's initialisation, the first kernels) let the
thread progress, so the optimizer's construction later finds the module (partly) imported.

Python's import lock makes this safe: when the main thread reaches its own ``import torch._dynamo``, it
waits for the thread's import to finish rather than starting a second one. Nothing else changes: the
same module is imported either way, and an error in the background import is raised again, in the main
thread, by that second import.
"""

from __future__ import annotations

import importlib
import sys
import threading

MODULE = "torch._dynamo"
_thread: threading.Thread | None = None


def _import() -> None:
    try:
        importlib.import_module(MODULE)
    except BaseException:  # the main thread's own import raises it again, where a user sees it
        pass


def start() -> threading.Thread | None:
    """Start the background import once per process; None when the module is already imported."""
    global _thread
    if MODULE in sys.modules or _thread is not None:
        return _thread
    _thread = threading.Thread(target=_import, name="trainwise-preload-dynamo", daemon=True)
    _thread.start()
    return _thread
