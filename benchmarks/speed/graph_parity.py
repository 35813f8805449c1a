"""train.cuda_graphs against the eager step on one GPU: same weights, history, resume and monitors.

    python benchmarks/speed/graph_parity.py            # the recipe's network, 2 epochs on a 12k-image subset

Prints, for each check, the largest difference and whether it is within the stated tolerance.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from trainwise import Callback  # noqa: E402
from trainwise.config import load_config  # noqa: E402
from trainwise.trainer import Trainer  # noqa: E402
from trainwise.checkpointing import load_resumable  # noqa: E402

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "fashion_mnist_gpu.toml"
BASE = {"train.epochs": 2, "train.progress": "none", "train.report": False, "doctor.live": False, "data.train_subset": 12000,
        "monitors.every_n_steps": 7, "evaluation.tta_flip": False}


class KeepFirstCheckpoint(Callback):
    """Copies last.pt as it was after epoch 1 (the resume point of the check below)."""

    def on_epoch_start(self, state):
        if state.epoch == 2:
            shutil.copy(state.run_dir / "checkpoints" / "last.pt", state.run_dir / "epoch1.pt")


def run(graphs: bool, out: Path | None = None, epochs: int = 2, resume_from: Path | None = None, callbacks=(), **extra):
    cfg = load_config(RECIPE, {**BASE, "train.cuda_graphs": graphs, "train.epochs": epochs, **extra})
    trainer = Trainer(cfg, run_dir=out, callbacks=list(callbacks))
    if resume_from is not None:
        trainer.load_checkpoint(load_resumable(resume_from))
    result = trainer.fit()
    return result, trainer


def max_diff(a: dict, b: dict) -> float:
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def main() -> int:
    torch.backends.cudnn.benchmark = False
    eager, _ = run(False)
    graphed, trainer = run(True)
    print(f"graphs: {trainer.graphed.describe()}")
    wd = max_diff(eager.model.state_dict(), graphed.model.state_dict())
    print(f"weights after 2 epochs, eager vs graphs: max |diff| {wd:.3e}")
    for key in ("train_loss", "val_loss", "val_acc", "lr", "grad_norm"):
        e, g = [r.get(key) for r in eager.history], [r.get(key) for r in graphed.history]
        print(f"  {key}: eager {e} graphs {g}")
    print(f"test acc: eager {eager.summary['test']['acc']:.4f} graphs {graphed.summary['test']['acc']:.4f}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        full, _ = run(True, out=tmp / "full", callbacks=[KeepFirstCheckpoint()])
        resumed, _ = run(True, out=tmp / "resumed", resume_from=tmp / "full" / "epoch1.pt")
        rd = max_diff(full.model.state_dict(), resumed.model.state_dict())
        print(f"graphs: 2 epochs vs 1 + resume 1: max |diff| {rd:.3e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
