"""The classic one-step backpropagation example, worked through with numbers.

Network: input ``x`` -> one ReLU hidden unit -> one sigmoid output, trained
with binary cross-entropy and one step of gradient descent::

    x = 2, y = 1, W1 = 0.5, b1 = 0.1, W2 = 0.8, b2 = 0.2, learning rate 0.1

Every number is read from the real ``Network``, ``BinaryCrossEntropy`` and
``SGD`` objects of ``trainwise.scratch`` (not recomputed by hand), so the
walk-through doubles as a check of those objects.  Run it with
``python -m trainwise.scratch.example`` or ``trainwise scratch-example``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from trainwise.scratch.layers import Dense, ReLU, Sigmoid
from trainwise.scratch.losses import BinaryCrossEntropy
from trainwise.scratch.network import Network
from trainwise.scratch.optimizers import SGD

X, Y = 2.0, 1.0
W1, B1, W2, B2 = 0.5, 0.1, 0.8, 0.2
LR = 0.1


def _dense(w: float, b: float) -> Dense:
    layer = Dense(1, 1, init="zeros")
    layer.W[...] = w
    layer.b[...] = b
    return layer


def worked_example() -> dict[str, float]:
    """Run forward, backward and one SGD step; return every intermediate value.

    Keys: ``z1 a1 z2 y_hat loss dL_dyhat dyhat_dz2 delta2 dW2 db2 dL_da1
    da1_dz1 delta1 dW1 db1`` and the updated ``W1 b1 W2 b2``.
    """
    hidden, output = _dense(W1, B1), _dense(W2, B2)
    net = Network([hidden, ReLU(), output, Sigmoid()])
    loss_fn = BinaryCrossEntropy()

    x, y = np.array([[X]]), np.array([[Y]])
    loss, grads = net.loss_and_grads(x, y, loss_fn)
    # activations: [x, z1, a1, z2, y_hat]; activation_grads holds dL/d of each.
    _, z1, a1, z2, y_hat = (float(a[0, 0]) for a in net.activations)
    _, delta1, dL_da1, delta2, dL_dyhat = (float(g[0, 0]) for g in net.activation_grads)
    dW1, db1, dW2, db2 = (float(g.ravel()[0]) for g in grads)

    SGD(net.parameters(), lr=LR).step(grads)
    return {
        "z1": z1,
        "a1": a1,
        "z2": z2,
        "y_hat": y_hat,
        "loss": loss,
        "dL_dyhat": dL_dyhat,
        "dyhat_dz2": y_hat * (1.0 - y_hat),
        "delta2": delta2,
        "dW2": dW2,
        "db2": db2,
        "dL_da1": dL_da1,
        "da1_dz1": 1.0 if z1 > 0 else 0.0,
        "delta1": delta1,
        "dW1": dW1,
        "db1": db1,
        "W1": float(hidden.W[0, 0]),
        "b1": float(hidden.b[0]),
        "W2": float(output.W[0, 0]),
        "b2": float(output.b[0]),
    }


def walkthrough(v: dict[str, float]) -> str:
    """Format the values of ``worked_example()`` as a numbered, labelled walk-through."""
    rows: list[tuple[str, str, str]] = [
        ("", "Forward pass", ""),
        ("z1", "W1*x + b1", f"{W1}*{X:g} + {B1}"),
        ("a1", "ReLU(z1) = max(0, z1)", f"max(0, {v['z1']:.4f})"),
        ("z2", "W2*a1 + b2", f"{W2}*{v['a1']:.4f} + {B2}"),
        ("y_hat", "sigmoid(z2) = 1/(1 + exp(-z2))", f"1/(1 + exp(-{v['z2']:.4f}))"),
        ("loss", "-[y*ln(y_hat) + (1-y)*ln(1-y_hat)]", f"-ln({v['y_hat']:.4f})"),
        ("", "Backward pass: chain rule, output layer first", ""),
        ("dL_dyhat", "-y/y_hat + (1-y)/(1-y_hat)", f"-1/{v['y_hat']:.4f}"),
        ("dyhat_dz2", "sigmoid'(z2) = y_hat*(1-y_hat)", f"{v['y_hat']:.4f}*{1 - v['y_hat']:.4f}"),
        ("delta2", "dL/dz2 = dL/dy_hat * dy_hat/dz2 = y_hat - y", f"{v['y_hat']:.4f} - {Y:g}"),
        ("dW2", "delta2 * a1", f"{v['delta2']:.4f}*{v['a1']:.4f}"),
        ("db2", "delta2", ""),
        ("dL_da1", "delta2 * W2", f"{v['delta2']:.4f}*{W2}"),
        ("da1_dz1", "ReLU'(z1) = 1 if z1 > 0 else 0", ""),
        ("delta1", "dL/dz1 = dL/da1 * ReLU'(z1)", f"{v['dL_da1']:.4f}*{v['da1_dz1']:g}"),
        ("dW1", "delta1 * x", f"{v['delta1']:.4f}*{X:g}"),
        ("db1", "delta1", ""),
        ("", f"Update: w <- w - lr * dL/dw, lr = {LR}", ""),
        ("W2", "W2 - lr*dW2", f"{W2} - {LR}*({v['dW2']:.4f})"),
        ("b2", "b2 - lr*db2", f"{B2} - {LR}*({v['db2']:.4f})"),
        ("W1", "W1 - lr*dW1", f"{W1} - {LR}*({v['dW1']:.4f})"),
        ("b1", "b1 - lr*db1", f"{B1} - {LR}*({v['db1']:.4f})"),
    ]
    labels = {"dL_dyhat": "dL/dy_hat", "dyhat_dz2": "dy_hat/dz2", "dL_da1": "dL/da1", "da1_dz1": "da1/dz1"}
    lines = [
        "Backpropagation, one step by hand: x -> ReLU unit -> sigmoid unit, binary cross-entropy",
        f"  x = {X:g}, y = {Y:g}, W1 = {W1}, b1 = {B1}, W2 = {W2}, b2 = {B2}, learning rate = {LR}",
    ]
    step = 0
    for key, formula, substituted in rows:
        if not key:
            lines += ["", formula]
            continue
        step += 1
        middle = f" = {substituted}" if substituted else ""
        name = labels.get(key, key)
        lines.append(f"  {step:2d}. {name:<10} = {formula}{middle} = {v[key]:.4f}")
    lines += ["", "All values are computed in float64 and rounded to 4 decimals only when printed."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the worked example step by step; returns the exit status 0.

    ``argv=None`` means no arguments (not ``sys.argv``), so a host command
    line such as ``trainwise scratch-example`` can simply call ``main()``.
    """
    argparse.ArgumentParser(
        prog="trainwise scratch-example",
        description="Print the one-step backpropagation example with every intermediate number.",
    ).parse_args([] if argv is None else argv)
    print(walkthrough(worked_example()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
