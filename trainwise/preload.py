"""Create CUDA's context in a background thread while the main thread imports TorchDynamo.

Every torch optimizer imports ``torch._dynamo`` (the torch.compile front end) the first time it is built
and again in ``Optimizer.step``: ``add_param_group`` and ``step`` are wrapped by ``torch._disable_dynamo``
and ``_use_grad_for_differentiable`` (torch/optim/optimizer.py), which import it at their first call. In
a cold process that import is 0.8-1.4 s on the GPU host, all of it before the first step. Creating CUDA's
context is another few hundred milliseconds, most of it in driver calls that release the interpreter
lock. The two are independent, so a GPU run does them side by side: a thread makes the first CUDA
allocation while the main thread imports TorchDynamo, and the main thread waits for the thread before it
goes on. Nothing else runs beside the thread.

Why not the other way round (import in the thread, set up in the main thread): TorchDynamo and
TorchInductor import each other, and calls that a run makes while it sets up enter that cycle from the
other side (``torch.use_deterministic_algorithms`` imports ``torch._inductor.config``). Two threads inside
one import cycle can see each other's modules half-initialised, an ``ImportError`` that depends on timing.
Imports therefore stay in the main thread; the thread only calls into CUDA, whose lazy initialisation is
guarded by its own lock (``torch.cuda._lazy_init``).
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable

import torch

MODULE = "torch._dynamo"


def cuda_context_beside_dynamo_import(device: torch.device) -> bool:
    """Import TorchDynamo while CUDA's context for ``device`` is created in a thread; True when they overlapped.

    Does nothing (False) when ``device`` is not CUDA, CUDA is already initialised or TorchDynamo already
    imported. A CUDA error in the thread is raised here, in the main thread, where it would have come anyway.
    """
    if device.type != "cuda" or torch.cuda.is_initialized() or MODULE in sys.modules:
        return False
    # CUDA's context is created lazily, at the first allocation
    import_beside(lambda: torch.empty(1, device=device), MODULE)
    return True


def import_beside(work: Callable[[], object], module: str) -> None:
    """Run ``work`` in a thread while this thread imports ``module``; return when both are done.

    An exception from ``work`` is raised here, after the import; one from the import is raised after the
    thread has finished, so that no thread outlives the call either way.
    """
    failure: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as e:  # re-raised in the calling thread below
            failure.append(e)

    thread = threading.Thread(target=run, name="trainwise-beside-import", daemon=True)
    thread.start()
    try:
        importlib.import_module(module)
    finally:
        thread.join()
    if failure:
        raise failure[0]
