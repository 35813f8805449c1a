"""The worked one-step backpropagation example."""

from __future__ import annotations

import pytest
import torch

from trainwise.scratch.example import main, worked_example

# sigmoid(1.08) = 0.746494 in exact arithmetic.  Printed versions of this
# example that start from y_hat = 0.7466 carry that rounding into the fourth
# decimal of later figures (for example dW2 = -0.2787 instead of -0.2789);
# the numbers here are the exact ones, rounded once.
EXPECTED = {
    "z1": 1.1,
    "a1": 1.1,
    "z2": 1.08,
    "y_hat": 0.7465,
    "loss": 0.2924,
    "delta2": -0.2535,
    "dW2": -0.2789,
    "db2": -0.2535,
    "dL_da1": -0.2028,
    "delta1": -0.2028,
    "dW1": -0.4056,
    "db1": -0.2028,
    "W2": 0.8279,
    "b2": 0.2254,
    "W1": 0.5406,
    "b1": 0.1203,
}


def test_values_to_four_decimals() -> None:
    values = worked_example()
    assert {k: round(values[k], 4) for k in EXPECTED} == EXPECTED


def test_values_match_torch_autograd_and_sgd() -> None:
    x, y = torch.tensor(2.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    w1, b1, w2, b2 = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (0.5, 0.1, 0.8, 0.2))
    y_hat = torch.sigmoid(w2 * torch.relu(w1 * x + b1) + b2)
    loss = torch.nn.functional.binary_cross_entropy(y_hat, y)
    loss.backward()
    grads = {"dW1": w1.grad, "db1": b1.grad, "dW2": w2.grad, "db2": b2.grad}
    torch.optim.SGD([w1, b1, w2, b2], lr=0.1).step()

    values = worked_example()
    assert values["y_hat"] == pytest.approx(y_hat.item(), abs=1e-15)
    assert values["loss"] == pytest.approx(loss.item(), abs=1e-15)
    for name, grad in grads.items():
        assert values[name] == pytest.approx(grad.item(), abs=1e-15)
    for name, param in {"W1": w1, "b1": b1, "W2": w2, "b2": b2}.items():
        assert values[name] == pytest.approx(param.item(), abs=1e-15)


def test_delta_rule_identities() -> None:
    v = worked_example()
    assert v["delta2"] == pytest.approx(v["dL_dyhat"] * v["dyhat_dz2"], rel=1e-14)
    assert v["delta2"] == pytest.approx(v["y_hat"] - 1.0, rel=1e-14)
    assert v["dW2"] == pytest.approx(v["delta2"] * v["a1"], rel=1e-14)
    assert v["delta1"] == pytest.approx(v["delta2"] * 0.8 * v["da1_dz1"], rel=1e-14)
    assert v["dW1"] == pytest.approx(v["delta1"] * 2.0, rel=1e-14)


def test_main_prints_every_labelled_step(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    for line in [
        "z1         = W1*x + b1 = 0.5*2 + 0.1 = 1.1000",
        "y_hat      = sigmoid(z2)",
        "= 0.7465",
        "loss       = -[y*ln(y_hat) + (1-y)*ln(1-y_hat)] = -ln(0.7465) = 0.2924",
        "delta2     = dL/dz2 = dL/dy_hat * dy_hat/dz2 = y_hat - y = 0.7465 - 1 = -0.2535",
        "dW2        = delta2 * a1 = -0.2535*1.1000 = -0.2789",
        "dW1        = delta1 * x = -0.2028*2 = -0.4056",
        "W2         = W2 - lr*dW2 = 0.8 - 0.1*(-0.2789) = 0.8279",
        "b1         = b1 - lr*db1 = 0.1 - 0.1*(-0.2028) = 0.1203",
    ]:
        assert line in out
    assert out.count("\n  ") >= 20  # 19 numbered steps plus the setup line


def test_main_ignores_the_host_command_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CLI that dispatches ``trainwise scratch-example`` calls ``main()`` with sys.argv still set."""
    monkeypatch.setattr("sys.argv", ["trainwise", "scratch-example"])
    assert main() == 0
    assert "0.8279" in capsys.readouterr().out
