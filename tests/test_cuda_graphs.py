"""train.cuda_graphs: refused clearly where it cannot work; on a GPU, the same training as the eager step."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import run_cli
from trainwise.config import Config
from trainwise.core import Callback, Event


def test_cuda_graphs_on_cpu_is_a_one_line_error(tmp_path):
    # A fresh directory each time: a fixed path left by an earlier run would be refused as "holds a run" first.
    done = run_cli("train", "configs/digits.toml", "--set", "train.device=cpu", "--set", "train.cuda_graphs=true",
                   "--set", "train.epochs=1", "--out", str(tmp_path / "run"))
    assert done.returncode == 2
    assert "train.cuda_graphs needs a CUDA device" in done.stderr
    assert "Traceback" not in done.stderr


def _in_step(cb: Callback) -> bool:
    return type(cb).on_event is not Callback.on_event or any(
        getattr(cb, f"on_{e.value}", None) is not None for e in (Event.AFTER_LOSS, Event.AFTER_BACKWARD))


def test_every_built_in_callback_acting_inside_the_step_says_how():
    """A graph replays the step without calling handlers: each in-step callback must declare what it does there."""
    from trainwise.callbacks.monitors import make_monitors
    from trainwise.techniques import registry

    cfg = Config().replace({"regularization.l2": 1e-4, "regularization.l1": 1e-5, "monitors.nan_policy": "stop"})
    cbs = make_monitors(cfg) + registry.callbacks(cfg)
    in_step = [cb for cb in cbs if _in_step(cb)]
    assert in_step, "the monitors and penalties act inside the step"
    assert all(cb.step_work in ("same", "sampled") for cb in in_step), [type(cb).__name__ for cb in in_step]
    rollback = make_monitors(Config().replace({"monitors.nan_policy": "rollback"}))
    assert any(_in_step(cb) and cb.step_work is None for cb in rollback), "rollback decides on the host every step"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU (run benchmarks/speed/graph_parity.py there)")
def test_graphed_steps_train_like_eager_steps_on_digits():
    from trainwise.trainer import Trainer

    base = {"data.name": "digits", "train.device": "cuda", "train.epochs": 3, "data.batch_size": 64, "data.drop_last": True,
            "optim.name": "sgd", "optim.fused": True, "optim.lr": 0.05, "optim.momentum": 0.9, "train.progress": "none",
            "train.report": False, "doctor.live": False, "monitors.every_n_steps": 5, "schedule.name": "cosine"}
    eager = Trainer(Config().replace({**base, "train.cuda_graphs": False})).fit()
    trainer = Trainer(Config().replace({**base, "train.cuda_graphs": True}))
    graphed = trainer.fit()
    assert trainer.graphed.replays > 0
    for k, v in eager.model.state_dict().items():
        assert torch.allclose(v.float(), graphed.model.state_dict()[k].float(), atol=1e-5, rtol=1e-4), k
    assert [r["lr"] for r in eager.history] == pytest.approx([r["lr"] for r in graphed.history], rel=1e-6)
    assert all("grad_norm" in r for r in graphed.history)  # sampled steps still ran the monitors
