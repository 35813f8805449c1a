"""MLflow: the config as params, every numeric epoch value as a metric, the run's files as artifacts.

Enabled with ``logging.mlflow = true``. The tracking URI is ``logging.mlflow_tracking_uri``, else
``$MLFLOW_TRACKING_URI``, else MLflow's own default (a local store in the working directory). One MLflow
run per trainwise run, in the experiment ``logging.mlflow_experiment`` (created when missing):

- params: every config key, dotted (``optim.lr``, ``data.batch_size`` ...);
- metrics: each numeric key of the epoch record (``train_loss``, ``val_acc``, ``lr``, monitor values such
  as ``grad_norm/<layer>``) with step = epoch;
- artifacts at the end: ``config.toml``, ``preprocess.json``, ``history.jsonl``, ``report.html`` and
  ``findings.json`` when they exist, and ``checkpoints/best.safetensors``;
- status FINISHED, or FAILED (KILLED on Ctrl-C) when training raised.

The MLflow run id is part of the callback's checkpointed state, so ``trainwise resume`` keeps logging
into the same MLflow run.
"""

from __future__ import annotations

import os
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

from trainwise.callbacks.loggers import numeric_items
from trainwise.config import LoggingConfig
from trainwise.core import ORDER, Callback, State
from trainwise.config import flatten_dotted
from trainwise.errors import UserError
from trainwise.optional import require
from trainwise.rundir import CONFIG, FINDINGS, HISTORY, PREPROCESS, REPORT, WEIGHT_FILES

ARTIFACTS = (CONFIG, PREPROCESS, HISTORY, REPORT, FINDINGS, WEIGHT_FILES["best"])
BATCH = 100  # MLflow accepts at most 100 params per log_batch call


def flatten(config: dict[str, Any]) -> dict[str, str]:
    """``{"optim": {"lr": 0.1}}`` -> ``{"optim.lr": "0.1"}`` (MLflow params are strings of at most 6000 characters)."""
    return {key: str(value)[:6000] for key, value in flatten_dotted(config).items()}


def metric_name(key: str) -> str:
    # MLflow names allow letters, digits, _ - . / : and spaces; anything else (say, brackets) becomes _.
    return re.sub(r"[^\w\-./: ]", "_", key)


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, not after MLflow's minutes of retries, when an HTTP tracking server is down."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s).close()
    except Exception as err:  # noqa: BLE001 - any failure to connect means the same thing here
        raise UserError(f"cannot reach the MLflow tracking server at {uri}", received=str(err)[:200],
                        fix="start it (mlflow server --backend-store-uri sqlite:///mlflow.db) or set logging.mlflow_tracking_uri") from None


class MlflowLogger(Callback):
    order = ORDER["loggers"]

    def __init__(self, cfg: LoggingConfig, run_dir: Path | None):
        self.cfg = cfg
        self.run_dir = run_dir
        self.tracking_uri = cfg.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        self.run_id: str | None = None
        self.client = None

    def state_dict(self) -> dict:
        return {"run_id": self.run_id} if self.run_id else {}

    def load_state_dict(self, state: dict) -> None:
        self.run_id = state.get("run_id")

    def on_fit_start(self, state: State) -> None:
        require("mlflow", "logging.mlflow")
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        if self.tracking_uri:
            check_reachable(self.tracking_uri)
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        if self.run_id is not None:  # resumed: continue the same MLflow run
            self.client.update_run(self.run_id, status="RUNNING")
            return
        experiment = self.client.get_experiment_by_name(self.cfg.mlflow_experiment)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(self.cfg.mlflow_experiment)
        tags = {"trainwise.run_dir": str(self.run_dir.resolve())} if self.run_dir else {}
        run = self.client.create_run(experiment_id, run_name=self.run_dir.name if self.run_dir else None, tags=tags)
        self.run_id = run.info.run_id
        params = [Param(k, v) for k, v in flatten(state.config.to_dict()).items()]
        for i in range(0, len(params), BATCH):
            self.client.log_batch(self.run_id, params=params[i : i + BATCH])

    def on_epoch_end(self, state: State) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(metric_name(k), v, now, state.epoch) for k, v in numeric_items(state.record).items()]
        for i in range(0, len(metrics), BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + BATCH])

    def on_run_end(self, state: State) -> None:
        from mlflow.entities import Metric

        # After the final test, summary, findings and report exist (Event.RUN_END).
        test = state.extras.get("final_summary", {}).get("test", {})
        scalars = {f"test_{k}": v for k, v in test.items() if isinstance(v, float)}
        if scalars:
            self.client.log_batch(self.run_id, metrics=[Metric(k, v, int(time.time() * 1000), state.epoch) for k, v in scalars.items()])
        if self.run_dir is not None:
            for name in ARTIFACTS:
                path = self.run_dir / name
                if path.is_file():
                    self.client.log_artifact(self.run_id, str(path), artifact_path=str(Path(name).parent) if "/" in name else None)
        self.client.set_terminated(self.run_id, "FINISHED")

    def on_exception(self, state: State) -> None:
        if self.client is None or self.run_id is None:
            return
        status = "KILLED" if isinstance(state.error, KeyboardInterrupt) else "FAILED"
        try:
            self.client.set_terminated(self.run_id, status)
        except Exception:  # noqa: BLE001 - the training error being raised matters more than this one
            pass
