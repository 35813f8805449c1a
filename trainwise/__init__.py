"""trainwise: train PyTorch networks the way practitioners do, and learn why a run went wrong."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# The public names, loaded on first use (PEP 562): ``import trainwise`` and the command line's --help,
# --version and shell completion do not pay for importing torch; ``from trainwise import fit`` does.
_EXPORTS = {
    "evaluate": "trainwise.api", "fit": "trainwise.api", "fix": "trainwise.autofix", "resume": "trainwise.api",
    "Config": "trainwise.config", "load_config": "trainwise.config",
    "Callback": "trainwise.core", "Event": "trainwise.core", "State": "trainwise.core",
    "UserError": "trainwise.errors", "History": "trainwise.history", "diagnose": "trainwise.doctor",
    "export": "trainwise.tools.export", "predict": "trainwise.tools.predict",
    "Run": "trainwise.trainer", "Trainer": "trainwise.trainer",
}

__all__ = ["Callback", "Config", "Event", "History", "Run", "State", "Trainer", "UserError", "__version__",
           "diagnose", "evaluate", "export", "fit", "fix", "load_config", "predict", "resume"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'trainwise' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # for type checkers and IDEs
    from trainwise.api import evaluate, fit, resume
    from trainwise.autofix import fix
    from trainwise.config import Config, load_config
    from trainwise.core import Callback, Event, State
    from trainwise.doctor import diagnose
    from trainwise.errors import UserError
    from trainwise.history import History
    from trainwise.tools.export import export
    from trainwise.tools.predict import predict
    from trainwise.trainer import Run, Trainer
