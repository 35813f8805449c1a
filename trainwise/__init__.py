"""trainwise: train PyTorch networks the way practitioners do, and learn why a run went wrong."""

__version__ = "0.1.0"

from trainwise.api import evaluate, fit, resume  # noqa: E402
from trainwise.config import Config, load_config  # noqa: E402
from trainwise.core import Callback, Event, State  # noqa: E402
from trainwise.errors import UserError  # noqa: E402
from trainwise.history import History  # noqa: E402
from trainwise.tools.export import export  # noqa: E402
from trainwise.tools.predict import predict  # noqa: E402
from trainwise.trainer import Run, Trainer  # noqa: E402

__all__ = ["Callback", "Config", "Event", "History", "Run", "State", "Trainer", "UserError", "__version__",
           "evaluate", "export", "fit", "load_config", "predict", "resume"]
