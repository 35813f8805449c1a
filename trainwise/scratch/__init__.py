"""A plain-NumPy neural network with hand-written backpropagation.

``trainwise.scratch`` rebuilds the core of a training loop without autograd:
dense layers and activations with explicit ``forward``/``backward`` methods,
cross-entropy losses, a sequential network that stores its activations and
applies the chain rule layer by layer, the usual optimizers and learning-rate
schedules, weight initializations, gradient clipping and a finite-difference
gradient check.  Every optimizer and schedule is written to follow the update
rule documented by ``torch.optim`` so that the two can be compared number for
number in the tests.
"""

from trainwise.scratch.layers import (
    Dense,
    Layer,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from trainwise.scratch.losses import BinaryCrossEntropy, CrossEntropy, Loss
from trainwise.scratch.network import Network
from trainwise.scratch.optimizers import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    Optimizer,
    RMSprop,
)

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "BinaryCrossEntropy",
    "CrossEntropy",
    "Dense",
    "Layer",
    "LeakyReLU",
    "Loss",
    "Network",
    "Optimizer",
    "RMSprop",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
]
