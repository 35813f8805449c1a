"""Optional packages (tensorboard, mlflow, onnx, onnxruntime): imported only when a feature needs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from trainwise.errors import UserError


def require(module: str, feature: str, install: str | None = None) -> ModuleType:
    """Import ``module``, or raise a one-line UserError saying what to install for ``feature``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise UserError(f"{feature} needs the {package} package, which is not installed", fix=f"pip install {install or package}") from None
