"""One rank of a data-parallel test run (started by torch.distributed.run from test_ddp.py).

    python -m torch.distributed.run --nproc-per-node 2 ... tests/distributed/worker.py OVERRIDES_JSON OUT STOP_STEP

Trains with ``trainwise.fit`` and saves what this rank ended with (weights, buffers, summary, History) to
OUT/rank<r>.pt, so the test can compare ranks with each other and with a single process. With STOP_STEP > 0,
rank 1 alone asks to stop after that optimizer step.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

import trainwise
from trainwise.config import Config


class StopAtStep(trainwise.Callback):
    """Requests a stop after optimizer step ``step``, on one rank only."""

    def __init__(self, step: int, rank: int):
        self.step, self.rank = step, rank

    def on_step_end(self, state) -> None:
        if state.step == self.step and int(os.environ.get("RANK", "0")) == self.rank:
            state.request_stop(f"test stop at step {self.step}")


def main() -> None:
    overrides, out, stop_step = json.loads(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    callbacks = [StopAtStep(stop_step, rank=1)] if stop_step else []
    run = trainwise.fit(Config().replace(overrides), out=out / "run", callbacks=callbacks)
    torch.save({"state": run.model.state_dict(), "summary": run.summary, "history": run.history.records},
               out / f"rank{os.environ['RANK']}.pt")


if __name__ == "__main__":
    main()
