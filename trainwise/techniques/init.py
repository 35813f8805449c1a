"""Weight initialization of any model by layer type.

Linear and convolution weights get the chosen scheme, their biases zero; normalization layers keep
weight 1 and bias 0; other layers are left alone. Schemes (``fan_in``/``fan_out`` as torch defines them):

- ``xavier_normal`` / ``xavier_uniform`` (Glorot & Bengio 2010): Var(w) = 2 / (fan_in + fan_out).
- ``he_normal`` / ``he_uniform`` (He et al. 2015): Var(w) = gain^2 / fan, with the gain of the
  nonlinearity (2 for ReLU, 2 / (1 + 0.01^2) for leaky ReLU ...) and ``fan`` = fan_in (keeps forward
  activations' scale) or fan_out (keeps backward gradients' scale).
- ``zeros``: every linear and convolution weight and bias zero. All units of a layer then stay identical forever (symmetry is
  never broken); useful only to show why initialization must be random.
- ``default``: leave the model as built (PyTorch's own per-layer defaults).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from trainwise.errors import unknown_name
from trainwise.techniques.registry import Technique, register

if TYPE_CHECKING:
    from trainwise.config import Config

SCHEMES = ("default", "xavier_normal", "xavier_uniform", "he_normal", "he_uniform", "zeros")
WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)

# The gain torch.nn.init knows for each of trainwise's activations; smooth ReLU-like ones use ReLU's.
GAIN_OF = {"relu": "relu", "leaky_relu": "leaky_relu", "tanh": "tanh", "sigmoid": "sigmoid", "selu": "selu",
           "gelu": "relu", "silu": "relu", "elu": "relu", "linear": "linear"}


def init_weights(model: nn.Module, scheme: str, nonlinearity: str = "relu", mode: str = "fan_in") -> nn.Module:
    """Re-initialize ``model`` in place (using torch's global generator) and return it."""
    if scheme not in SCHEMES:
        raise unknown_name("init scheme", scheme, SCHEMES, key="init.scheme")
    if nonlinearity not in GAIN_OF:
        raise unknown_name("nonlinearity", nonlinearity, GAIN_OF, key="init.nonlinearity")
    if scheme == "default":
        return model
    gain_name = GAIN_OF[nonlinearity]
    for module in model.modules():
        if isinstance(module, WEIGHTED):
            w = module.weight
            if scheme == "xavier_normal":
                nn.init.xavier_normal_(w)
            elif scheme == "xavier_uniform":
                nn.init.xavier_uniform_(w)
            elif scheme == "he_normal":
                nn.init.kaiming_normal_(w, a=0.01, mode=mode, nonlinearity=gain_name)
            elif scheme == "he_uniform":
                nn.init.kaiming_uniform_(w, a=0.01, mode=mode, nonlinearity=gain_name)
            else:
                nn.init.zeros_(w)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, NORMS) and getattr(module, "weight", None) is not None:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model


def apply_init(model: nn.Module, cfg: Config) -> None:
    """``init.scheme`` on any model (config-built or the user's); ``default`` leaves it as built."""
    nonlinearity = cfg.model.activation if cfg.init.nonlinearity == "auto" else cfg.init.nonlinearity
    init_weights(model, cfg.init.scheme, nonlinearity, cfg.init.mode)


register(Technique(
    "init", enabled=lambda cfg: cfg.init.scheme != "default", setup_model=apply_init,
    example={"init.scheme": "he_normal"}, docs="Weight initialization"))
