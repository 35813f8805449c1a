"""Small experiments that show why initialization and clipping matter.

Each demonstration is a function that returns its numbers (so tests can
check them) and a ``print_*`` function that renders them as a table:

* ``symmetry``: zero initialization leaves all hidden units identical forever.
* ``init_variance``: activation variance through 10 layers for each init.
* ``vanishing_gradients``: per-layer gradient norms of a deep sigmoid stack
  versus ReLU with He initialization.
* ``clipping``: an exploding gradient clipped by norm and by value.

Run them all with ``python -m trainwise.scratch.demos`` (or one, e.g.
``python -m trainwise.scratch.demos vanishing``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from trainwise.scratch import init as initializers
from trainwise.scratch.clipping import clip_grad_norm, clip_grad_value, global_norm
from trainwise.scratch.layers import Layer, ReLU, Sigmoid, Softmax, Tanh
from trainwise.scratch.losses import BinaryCrossEntropy, CrossEntropy
from trainwise.scratch.network import mlp
from trainwise.scratch.optimizers import SGD

ACTIVATIONS: dict[str, type[Layer]] = {"tanh": Tanh, "relu": ReLU, "sigmoid": Sigmoid}


def _row(label: str, values: Sequence[float], width: int = 9) -> str:
    return f"  {label:<18}" + "".join(f"{v:>{width}.2e}" for v in values)


def _print_table(
    title: str,
    row_header: str,
    columns: Sequence[tuple[str, str, int, str]],
    results: dict[str, dict[str, float]],
    note: str,
) -> None:
    """Print ``results`` (``{row label: {key: value}}``) with ``(key, header, width, format)`` columns."""
    label_width = max(18, *(len(label) + 2 for label in results))
    print(title)
    print(f"  {row_header:<{label_width}}" + "".join(f"{header:>{width}}" for _, header, width, _ in columns))
    for label, r in results.items():
        print(f"  {label:<{label_width}}" + "".join(f"{r[key]:>{width}{fmt}}" for key, _, width, fmt in columns))
    print(f"  {note}")


# -- symmetry ------------------------------------------------------------------


def symmetry(init: str = "zeros", steps: int = 200, seed: int = 0) -> dict[str, float]:
    """Train a 4-8-1 sigmoid network and measure how different its hidden units became.

    Returns ``unit_spread`` (largest difference between any hidden unit's
    incoming weights and bias and those of unit 0), ``weight_norm`` (norm of
    the first layer's weights: non-zero shows the weights did learn), the
    final training ``loss`` and ``accuracy``.  The target is the XOR of the
    signs of two inputs, which no single unit can represent.  With ``init="zeros"`` every unit receives exactly the same
    gradient at every step, so the spread stays 0: eight units are no better
    than one.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, 4))
    y = (x[:, 0] * x[:, 1] > 0).astype(float)[:, None]  # XOR of two signs: needs hidden units
    net = mlp([4, 8, 1], Sigmoid, Sigmoid, init=init, rng=rng)
    opt, loss = SGD(net.parameters(), lr=2.0, momentum=0.9), BinaryCrossEntropy()
    for _ in range(steps):
        value, grads = net.loss_and_grads(x, y, loss)
        opt.step(grads)
    hidden = net.dense_layers[0]
    units = np.vstack([hidden.W, hidden.b[None, :]])  # one column per hidden unit
    return {
        "unit_spread": float(np.max(np.abs(units - units[:, :1]))),
        "weight_norm": float(np.linalg.norm(hidden.W)),
        "loss": value,
        "accuracy": float(np.mean(net.predict(x) == y[:, 0])),
    }


def print_symmetry(results: dict[str, dict[str, float]]) -> None:
    """Print ``{init: symmetry(init)}`` as a table."""
    _print_table(
        "Symmetry: 4-8-1 sigmoid network on an XOR target, 200 steps of SGD with momentum",
        "init",
        [("unit_spread", "max |unit_j - unit_0|", 24, ".3e"), ("weight_norm", "||W1||", 10, ".4f"),
         ("loss", "loss", 9, ".4f"), ("accuracy", "accuracy", 10, ".3f")],
        results,
        "With zeros all 8 hidden units get the same gradient, stay identical and act as one.",
    )  # fmt: skip


# -- activation variance across depth -------------------------------------------


def init_variance(
    depth: int = 10, width: int = 256, batch: int = 1000, seed: int = 0
) -> dict[str, dict[str, list[float]]]:
    """Variance of the activations after each of ``depth`` layers, per activation and init.

    Feeds standard-normal inputs through ``depth`` dense layers of ``width``
    units (biases zero).  Returns ``{activation: {init: [var_layer1, ...]}}``
    for tanh and ReLU and for every scheme in ``init.INITIALIZERS``.  He keeps
    ReLU stacks at a steady variance (Xavier halves it per layer), Xavier
    lets tanh stacks decay only slowly, and the naive 0.01 scale shrinks the
    signal by orders of magnitude per layer.
    """
    out: dict[str, dict[str, list[float]]] = {}
    for act_name in ("tanh", "relu"):
        out[act_name] = {}
        for init_name, init_fn in initializers.INITIALIZERS.items():
            rng = np.random.default_rng(seed)
            a = rng.normal(size=(batch, width))
            act = ACTIVATIONS[act_name]()
            variances = []
            for _ in range(depth):
                a = act.forward(a @ init_fn(width, width, rng))
                variances.append(float(a.var()))
            out[act_name][init_name] = variances
    return out


def print_init_variance(results: dict[str, dict[str, list[float]]]) -> None:
    """Print the tables of ``init_variance``."""
    for act_name, by_init in results.items():
        depth = len(next(iter(by_init.values())))
        print(f"Activation variance per layer, {act_name} (input variance 1)")
        print(f"  {'init':<18}" + "".join(f"{'L' + str(i + 1):>9}" for i in range(depth)))
        for init_name, variances in by_init.items():
            print(_row(init_name, variances))
    print("  Naive 0.01 shrinks the variance 40x or more per layer; zeros kill it at once.")
    print("  He holds ReLU stacks steady, where Xavier halves the variance every layer;")
    print("  with tanh, Xavier decays only slowly (tanh squashes) and He stays near 0.3.")


# -- vanishing gradients -------------------------------------------------------


def vanishing_gradients(
    depth: int = 10, width: int = 64, batch: int = 256, seed: int = 0
) -> dict[str, list[float]]:
    """Norm of ``dL/dW`` for each dense layer (input side first) of two deep classifiers.

    ``"sigmoid + xavier"``: ``depth`` sigmoid layers.  The sigmoid derivative
    is at most 0.25, so every layer the gradient passes through shrinks it
    and the layers near the input barely learn.
    ``"relu + he"``: the same depth with ReLU and He initialization, whose
    derivative is 1 on the active half; the gradient keeps its size.
    """
    out: dict[str, list[float]] = {}
    for label, hidden, init in (("sigmoid + xavier", Sigmoid, "xavier"), ("relu + he", ReLU, "he")):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(batch, width))
        y = rng.integers(0, 10, size=batch)
        net = mlp([width] * (depth + 1) + [10], hidden, Softmax, init=init, rng=rng)
        net.loss_and_grads(x, y, CrossEntropy())
        out[label] = [float(np.linalg.norm(layer.dW)) for layer in net.dense_layers]
    return out


def print_vanishing_gradients(results: dict[str, list[float]]) -> None:
    """Print per-layer gradient norms and the input/output ratio."""
    depth = len(next(iter(results.values())))
    print("Gradient norm ||dL/dW|| per dense layer (L1 = next to the input)")
    print(f"  {'network':<18}" + "".join(f"{'L' + str(i + 1):>9}" for i in range(depth)) + f"{'L1/L' + str(depth):>10}")
    for label, norms in results.items():
        print(_row(label, norms) + f"{norms[0] / norms[-1]:>10.1e}")
    print("  The sigmoid stack's first layers get a vanishing share of the gradient.")


# -- clipping ------------------------------------------------------------------


def clipping(
    max_norm: float = 1.0, clip_value: float = 0.01, depth: int = 8, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Clip an exploding gradient by global norm and by value.

    The gradient is that of a fixed random linear readout of a ``depth``-layer
    ReLU network whose weights start at twice the He scale, so the backward
    signal doubles at every layer.  For the raw, norm-clipped and
    value-clipped gradient returns the global ``norm``, the largest entry
    ``max_abs`` and ``cosine``, the cosine similarity with the raw gradient
    (1.0: the direction is unchanged).
    """
    rng = np.random.default_rng(seed)
    net = mlp([16] * (depth + 1) + [4], ReLU, None, init="he", rng=rng)
    for layer in net.dense_layers:
        layer.W *= 2.0
    out = net.forward(rng.normal(size=(32, 16)))
    # L = mean over the batch of r . output for a fixed random vector r.
    grads = net.backward(np.tile(rng.normal(size=out.shape[1]), (len(out), 1)) / len(out))
    raw = np.concatenate([g.ravel() for g in grads])

    by_norm = [g.copy() for g in grads]
    clip_grad_norm(by_norm, max_norm)
    by_value = [g.copy() for g in grads]
    clip_grad_value(by_value, clip_value)

    def summary(gs: list[np.ndarray]) -> dict[str, float]:
        flat = np.concatenate([g.ravel() for g in gs])
        cosine = float(flat @ raw / (np.linalg.norm(flat) * np.linalg.norm(raw)))
        return {"norm": global_norm(gs), "max_abs": float(np.max(np.abs(flat))), "cosine": cosine}

    return {
        "raw": summary(grads),
        f"by norm (max_norm={max_norm:g})": summary(by_norm),
        f"by value (clip={clip_value:g})": summary(by_value),
    }


def print_clipping(results: dict[str, dict[str, float]]) -> None:
    """Print the norm, largest entry and direction of each gradient version."""
    _print_table(
        "Gradient clipping of an exploding gradient (8-layer ReLU net, weights 2x He)",
        "gradient",
        [("norm", "global norm", 12, ".4f"), ("max_abs", "max |g|", 12, ".4f"), ("cosine", "cos(raw)", 10, ".4f")],
        results,
        "Clipping by norm keeps the direction (cosine 1); clipping by value bends it.",
    )


# -- command line ----------------------------------------------------------------


def _run_symmetry() -> None:
    print_symmetry({name: symmetry(name) for name in ("zeros", "xavier")})


DEMOS = {
    "symmetry": _run_symmetry,
    "init": lambda: print_init_variance(init_variance()),
    "vanishing": lambda: print_vanishing_gradients(vanishing_gradients()),
    "clipping": lambda: print_clipping(clipping()),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the named demonstrations (default: all) and print their tables; returns 0.

    ``argv`` lists demo names (``symmetry``, ``init``, ``vanishing``,
    ``clipping`` or ``all``); ``None`` means no arguments, not ``sys.argv``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m trainwise.scratch.demos",
        description="Initialization, vanishing-gradient and clipping demonstrations.",
    )
    parser.add_argument("demo", nargs="*", choices=[*DEMOS, "all"], default="all", help="which to run")
    names = parser.parse_args([] if argv is None else argv).demo
    names = list(DEMOS) if "all" in names else names
    for i, name in enumerate(names):
        if i:
            print()
        DEMOS[name]()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
