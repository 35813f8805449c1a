"""Hyperparameter search on Optuna: a search space in TOML, samplers, pruners, shared storage, workers.

The search space names config keys, one table each::

    [optim.lr]            # log-uniform float
    low = 1e-4
    high = 3e-2
    log = true

    [data.batch_size]     # a choice
    choices = [32, 64, 128]

    [model.dropout]       # a float range (step optional; the grid sampler needs one)
    low = 0.0
    high = 0.5
    step = 0.1

    [model.hidden]        # choices may be lists
    choices = [[64], [128, 64]]

Integer bounds give an integer range. Every trial is an ordinary run directory under
``SEARCH_DIR/trials/``; the objective is ``metric`` (default ``val_loss``, minimized; accuracies and F1
are maximized) of the model the run ends with (the restored epoch when early stopping restored one).
Pruners see ``metric`` after every epoch (``trial.report``) and stop unpromising trials early.

Storage and workers:

- default: SQLite, ``SEARCH_DIR/study.db`` (Optuna's RDBStorage with a 60 s lock timeout, so that the
  processes of ``--workers N`` wait for each other instead of failing on a locked database);
- ``--storage journal``: Optuna's JournalFileBackend, ``SEARCH_DIR/journal.log``, with a file lock; it is
  what Optuna recommends for several processes on one machine (Optuna advises against SQLite for
  heavily parallel searches), and it works on NFS;
- ``--storage postgresql://user:pass@host/db`` (or any SQLAlchemy URL): processes on several machines
  join one study by running the same command with the same ``--study`` name. ``postgresql://`` uses
  psycopg2 (``psycopg2-binary`` in requirements.txt); ``postgresql+psycopg://`` names psycopg 3.

``--workers N`` runs N processes that share the study through the storage: this one and N - 1
spawned ones (each a fresh interpreter with its own torch, stopped when this process dies); the trials
left to run are divided among them, and each uses cpu_count / N torch threads unless ``train.threads``
says otherwise.

``--trials N`` is the size the whole study should reach, however many processes or machines work on
it: finished trials (complete, pruned, failed with an error) count; interrupted ones, trials whose
process died and the rare trial created past the total by a concurrent process (marked ``surplus``)
do not. Before a trial starts, its process counts the study's finished and running trials with a
lower number (Optuna numbers trials in the order the storage created them) and runs it only while
they are fewer than N, so concurrent commands never overshoot. A trial whose process was killed stays
RUNNING in the storage; it is marked failed (not counted) when any search command next starts on this
host and finds its process gone, or, on database storages, when its heartbeat (every
``HEARTBEAT_S`` seconds) has been silent for ``GRACE_S`` seconds. Running an interrupted command again
continues the study where it stopped.

The search directory::

    SEARCH_DIR/
      study.db (or journal.log)   the Optuna study
      trials/trial-0000/ ...       a run directory per trial
      trials.csv                   one row per trial: state (INTERRUPTED: stopped by Ctrl-C, not counted),
                                   value, parameters, pruned epoch, run directory
      best_config.toml             the base config with the best parameters: trainwise train best_config.toml
      best.json                    best trial number, value and parameters
      optimization_history.png, param_importances.png, intermediate_values.png
      search.json                  how the search was set up (storage URL without its password)
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import multiprocessing
import os
import socket
import sys
import time
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainwise import atomic
from trainwise.metrics import resolve_mode
from trainwise.config import Config, build_config, dump_toml
from trainwise.core import Callback, Event, State
from trainwise.errors import UserError, unknown_name

SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("none", "median", "asha")
DONE_STATES = ("COMPLETE", "PRUNED", "FAIL")
HEARTBEAT_S, GRACE_S = 30, 120  # database storages: a trial silent for GRACE_S is failed by the next process that looks


# ------------------------------------------------------------------------------------ search space

@dataclass(frozen=True)
class Param:
    key: str  # dotted config key, also the Optuna parameter name
    kind: str  # "float" | "int" | "choice"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()

    def encoded_choices(self) -> list:
        """Optuna stores only scalars: lists (e.g. hidden sizes) travel as JSON text."""
        return [json.dumps(c) if isinstance(c, (list, dict)) else c for c in self.choices]

    def decode(self, value: Any) -> Any:
        """The config value of an Optuna-stored one: lists back from JSON, 0.30000000000000004 -> 0.3."""
        if self.kind == "choice" and isinstance(value, str) and any(isinstance(c, (list, dict)) for c in self.choices):
            return json.loads(value)
        if self.kind == "float" and self.step is not None:
            return round(value, 12)
        return value

    def suggest(self, trial) -> Any:
        if self.kind == "choice":
            return self.decode(trial.suggest_categorical(self.key, self.encoded_choices()))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return self.decode(trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log))

    def grid(self) -> list:
        if self.kind == "choice":
            return self.encoded_choices()
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is None:
            raise UserError(f"the grid sampler cannot enumerate the float range {self.key}", expected="a step, or choices",
                            fix=f"add step = ... to [{self.key}] or write choices = [...]")
        n = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        return [round(self.low + i * self.step, 12) for i in range(n)]


_LEAF_KEYS = {"low", "high", "log", "step", "choices", "type"}


def parse_space(raw: dict[str, Any], source: str = "search space") -> list[Param]:
    """Tables whose keys are low/high/log/step/choices become parameters; others are sections."""
    params: list[Param] = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        for name, value in node.items():
            key = f"{prefix}{name}"
            if not isinstance(value, dict):
                raise UserError(f"{source}: {key} is not a table", expected="[section.key] with low/high or choices",
                                received=repr(value), fix=f"write [{key}] with low = ..., high = ... or choices = [...]")
            if value.keys() & {"low", "high", "choices"}:
                params.append(_param(key, value, source))
            else:
                walk(value, key + ".")

    walk(raw, "")
    if not params:
        raise UserError(f"{source} has no parameters", expected="tables such as [optim.lr] with low/high/log or choices")
    return params


def _param(key: str, spec: dict[str, Any], source: str) -> Param:
    unknown = set(spec) - _LEAF_KEYS
    if unknown:
        raise UserError(f"{source}: unknown field {sorted(unknown)[0]!r} in [{key}]", expected="low, high, log, step, choices or type")
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise UserError(f"{source}: [{key}] choices must be a non-empty list", received=repr(choices))
        return Param(key, "choice", choices=tuple(choices))
    if "low" not in spec or "high" not in spec:
        raise UserError(f"{source}: [{key}] needs both low and high", received=sorted(spec))
    low, high = spec["low"], spec["high"]
    kind = spec.get("type") or ("int" if isinstance(low, int) and isinstance(high, int) else "float")
    if kind not in ("int", "float") or not low < high:
        raise UserError(f"{source}: bad range [{key}]", expected="low < high, type int or float", received=f"{low} .. {high} ({kind})")
    if spec.get("log") and low <= 0:
        raise UserError(f"{source}: [{key}] log scale needs low > 0", received=low)
    if spec.get("log") and spec.get("step"):
        raise UserError(f"{source}: [{key}] cannot have both log and step", fix="drop one of them")
    return Param(key, kind, low=low, high=high, log=bool(spec.get("log", False)), step=spec.get("step"))


def load_space(path: str | Path) -> list[Param]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"search space {str(path)!r} not found", fix="pass a TOML file such as configs/search_space.toml (see docs/explore.md)")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"{path}: malformed search space", expected="valid TOML", received=str(err)) from None
    return parse_space(raw, str(path))


def apply_params(config: Config, params: list[Param], values: dict[str, Any]) -> Config:
    """The config with the given (Optuna-stored) parameter values."""
    by_key = {p.key: p for p in params}
    return config.replace({k: by_key[k].decode(v) if k in by_key else v for k, v in values.items()})


# -------------------------------------------------------------------------------------- storage

def storage_url(storage: str | None, search_dir: Path) -> str:
    """The storage the command means: the default SQLite file, the journal file, or a database URL."""
    if storage is None:
        return f"sqlite:///{(search_dir / 'study.db').resolve()}"
    if storage == "journal":
        return f"journal:{(search_dir / 'journal.log').resolve()}"
    for bare in ("postgresql://", "postgres://"):
        # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; trainwise pins psycopg2. A URL that
        # names its driver (postgresql+psycopg://) is left as it is.
        if storage.startswith(bare):
            return "postgresql+psycopg2://" + storage.removeprefix(bare)
    return storage


# What the loser of two commands creating one new database sees: a table or the schema's version row
# that the winner has just written.
CREATION_RACE = ("already exists", "alembic_version")  # sqlite: UNIQUE constraint failed; postgres: duplicate key


def open_storage(url: str):
    import optuna

    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage

        path = url.removeprefix("journal:")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        for attempt in range(5):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats are marked experimental
                    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                                                      heartbeat_stale_trial_callback=_report_stale)
            except Exception as err:  # two commands creating one new database race for its tables and version row: the loser retries
                if not any(sign in str(err) for sign in CREATION_RACE) or attempt == 4:
                    raise
                time.sleep(0.5 + attempt)
    except ImportError as err:
        driver = "psycopg2-binary" if url.startswith("postgres") else "the database driver"
        raise UserError(f"no Python driver for the storage {redact(url)}", received=str(err).splitlines()[0],
                        fix=f"pip install {driver}") from None
    except Exception as err:  # sqlalchemy's OperationalError and friends: the server is not there
        raise UserError(f"cannot open the storage {redact(url)}", received=f"{type(err).__name__}: {str(err).splitlines()[0][:200]}",
                        fix="check that the database server runs and the URL (host, port, user, database) is right") from None


def redact(url: str) -> str:
    if "://" not in url or "@" not in url:
        return url
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# -------------------------------------------------------------------------------------- trials

class PruningCallback(Callback):
    """Report ``metric`` to the Optuna trial after every epoch; stop the run when the pruner says so."""

    def __init__(self, trial, metric: str):
        self.trial, self.metric = trial, metric
        self.pruned_at: int | None = None

    def on_epoch_end(self, state: State) -> None:
        value = state.record.get(self.metric)
        if value is None:
            keys = ", ".join(k for k in state.record if k.startswith(("train_", "val_")))
            raise UserError(f"the search metric {self.metric!r} is not in the History", expected=f"one of {keys}",
                            fix="choose --metric among them (validation metrics need data.val_fraction > 0)")
        if math.isfinite(value):
            self.trial.report(float(value), state.epoch)
        if self.trial.should_prune():
            self.pruned_at = state.epoch
            state.request_stop(f"pruned by the search at epoch {state.epoch} ({self.metric} {value:.4g})")


@dataclass
class SearchSpec:
    """Everything a worker process needs (plain values: it crosses a process boundary)."""

    config: dict[str, Any]
    space: list[dict[str, Any]]
    out: str
    storage: str
    study: str
    metric: str
    sampler: str
    pruner: str
    seed: int
    threads: int | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def params(self) -> list[Param]:
        return [Param(**{**p, "choices": tuple(p.get("choices", ()))}) for p in self.space]

    def base_config(self) -> Config:
        return build_config(self.config)

    @property
    def direction(self) -> str:
        return "minimize" if resolve_mode(self.metric, "auto") == "min" else "maximize"


def make_sampler(spec: SearchSpec, worker: int, existing: int):
    import numpy as np
    import optuna

    # A new seed for every (worker, study size): workers do not propose the same points, and a
    # continued study does not replay the random proposals of its first session.
    seed = int(np.random.SeedSequence([spec.seed, worker, existing]).generate_state(1)[0])
    if spec.sampler == "grid":
        return optuna.samplers.GridSampler({p.key: p.grid() for p in spec.params()}, seed=seed)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(name: str):
    import optuna

    if name == "median":
        # Optuna's defaults wait for 5 finished trials; small searches would never prune.
        # Optuna's 5 finished trials before pruning (fewer make the median of a few lucky trials the
        # bar), and not before epoch 2: the first epoch mostly measures the LR warm-up.
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


_DATA_CACHE: dict[str, Any] = {}
_DATA_KEYS_IGNORED = ("batch_size", "eval_batch_size", "loader", "num_workers", "drop_last", "pin_memory", "persistent_workers", "prefetch_factor")


def _trial_data(cfg: Config):
    """Trials that differ only in batching share the prepared data (one load per process)."""
    from trainwise.data import prepare_data

    key = json.dumps({k: v for k, v in cfg.data.model_dump(mode="json").items() if k not in _DATA_KEYS_IGNORED}, sort_keys=True)
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[key] = prepare_data(cfg.data)
    return _DATA_CACHE[key]


def make_objective(spec: SearchSpec, total: int | None = None):
    import optuna

    from trainwise.api import fit
    from trainwise.tools._shared import final_metrics

    params, base = spec.params(), spec.base_config()

    def objective(trial: optuna.Trial) -> float:
        if past_the_total(trial.study, trial.number, total):  # another process took the last place first
            trial.set_user_attr("surplus", True)
            raise optuna.TrialPruned("the study already holds its --trials")
        values = {p.key: p.suggest(trial) for p in params}
        overrides = values | {"train.progress": "none"}
        if spec.threads:
            overrides["train.threads"] = spec.threads
        cfg = base.replace(overrides)
        run_dir = Path(spec.out) / "trials" / f"trial-{trial.number:04d}"
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        pruning = PruningCallback(trial, spec.metric)
        try:
            run = fit(cfg, data=_trial_data(cfg), out=run_dir, callbacks=[pruning])
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)  # not counted as done: a re-run repeats it
            raise
        except Exception as err:  # a failure of the trial itself counts as finished (running it again would fail again)
            trial.set_user_attr("failed_with", f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}")
            raise
        if pruning.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned at epoch {pruning.pruned_at}")
        value = final_metrics({"history": run.history.records, "summary": run.summary}).get(spec.metric)
        if value is None or not math.isfinite(value):
            trial.set_user_attr("failed_with", f"{spec.metric} is {value}")  # Optuna fails a NaN value; it counts as finished
        return float("nan") if value is None else float(value)

    return objective


def counts_as_done(trial) -> bool:
    """Finished for --trials: complete, pruned, or failed with an error; not interrupted, not dead, not surplus."""
    attrs, state = trial.user_attrs, trial.state.name
    if attrs.get("interrupted") or attrs.get("surplus"):
        return False
    return state in ("COMPLETE", "PRUNED") or (state == "FAIL" and "failed_with" in attrs)


def done_trials(study) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False) if counts_as_done(t))


def taken_places(study, below: int | None = None) -> int:
    """Trials that hold a place in the total: done, or running (another process may finish them)."""
    return sum(1 for t in study.get_trials(deepcopy=False)
               if (below is None or t.number < below) and (counts_as_done(t) or t.state.name == "RUNNING"))


def past_the_total(study, number: int, total: int | None) -> bool:
    return total is not None and taken_places(study, below=number) >= total


def fail_dead_trials(study) -> list[int]:
    """Mark failed the RUNNING trials whose process is gone: on this host by process id, elsewhere by heartbeat."""
    import optuna
    from optuna.trial import TrialState

    storage = study._storage
    if isinstance(storage, optuna.storages.RDBStorage):
        optuna.storages.fail_stale_trials(study)
    host, dead = socket.gethostname(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") != host or not isinstance(pid, int) or pid == os.getpid() or _alive(pid):
            continue
        try:
            storage.set_trial_user_attr(t._trial_id, "died", f"process {pid} on {host} is gone")
            storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):  # another process marked it first
            continue
        dead.append(t.number)
    if dead:
        print(f"search: marked {len(dead)} trial(s) failed whose process died: {', '.join(map(str, dead))} (not counted)",
              file=sys.stderr, flush=True)
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process of that number
        return True
    return True


def _report_stale(study, trial) -> None:
    print(f"search: trial {trial.number} stopped sending heartbeats; marked failed (not counted)", file=sys.stderr, flush=True)


def run_worker(spec: SearchSpec, worker: int, n_trials: int, total: int | None = None) -> None:
    """Run up to ``n_trials`` trials of the study in this process, stopping once it holds ``total``
    (also the entry point of spawned workers).

    ``worker`` is 0 for a search in one process, 1..N with ``--workers N`` (it labels the output lines
    and varies the sampler's seed).
    """
    import optuna
    import torch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _quiet_interrupts()
    threads = torch.get_num_threads()
    if spec.threads:
        torch.set_num_threads(spec.threads)
    try:
        storage = open_storage(spec.storage)
        existing = len(optuna.load_study(study_name=spec.study, storage=storage).trials)
        study = optuna.load_study(study_name=spec.study, storage=storage, sampler=make_sampler(spec, worker, existing),
                                  pruner=make_pruner(spec.pruner))
        objective, announce = make_objective(spec, total), _announce(spec, worker)
        for _ in range(n_trials):
            fail_dead_trials(study)
            if total is not None and taken_places(study) >= total:
                break
            study.optimize(objective, n_trials=1, callbacks=[announce])
    finally:
        torch.set_num_threads(threads)


def spawned_worker(spec: SearchSpec, worker: int, n_trials: int, total: int, parent: int) -> None:
    """A ``--workers`` process: dies with the process that started it, then works like any worker."""
    from trainwise.processes import die_with_parent

    die_with_parent(parent)
    run_worker(spec, worker, n_trials, total)


class _InterruptFilter(logging.Filter):
    """Optuna logs a trial stopped by Ctrl-C as a failure with a traceback; the command says it in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        interrupted = record.exc_info is not None and isinstance(record.exc_info[1], KeyboardInterrupt)
        return not interrupted and not record.getMessage().endswith("failed with value None.")


def _quiet_interrupts() -> None:
    for handler in logging.getLogger("optuna").handlers:  # Optuna's own handler (set up on import)
        if not any(isinstance(f, _InterruptFilter) for f in handler.filters):
            handler.addFilter(_InterruptFilter())


def _announce(spec: SearchSpec, worker: int):
    def callback(study, trial) -> None:
        if trial.user_attrs.get("surplus"):
            return
        params = " ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
        if trial.state.name == "COMPLETE":
            what = f"{spec.metric} {trial.value:.4g}"
        elif trial.state.name == "PRUNED":
            what = f"pruned at epoch {max(trial.intermediate_values, default=0)}"
        else:
            what = trial.state.name.lower()
        prefix = f"[worker {worker}] " if worker else ""
        print(f"{prefix}trial {trial.number}: {what} | {params}", file=sys.stderr, flush=True)

    return callback


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# ------------------------------------------------------------------------------------------ search

@dataclass
class SearchResult:
    out: Path
    study: Any  # optuna.Study
    best_config: Config | None
    summary: dict[str, Any]

    def to_text(self, top: int = 10) -> str:
        s = self.summary
        lines = [f"study {s['study']!r} in {s['storage']}: {s['counts']}"]
        rows = sorted((r for r in s["trials"] if r["state"] == "COMPLETE"), key=lambda r: r["value"], reverse=s["direction"] == "maximize")
        if rows:
            from trainwise.tools._shared import text_table

            keys = [p["key"] for p in s["space"]]
            lines.append(f"best {min(top, len(rows))} of {len(rows)} complete trials by {s['metric']} ({s['direction']}):")
            lines.append(text_table(["trial", s["metric"], *keys], [[r["number"], r["value"], *(_short(r["params"].get(k)) for k in keys)]
                                                                      for r in rows[:top]]))
        if s.get("best"):
            lines.append(f"best config: {self.out / 'best_config.toml'}  (train it: trainwise train {self.out / 'best_config.toml'})")
        lines += [f"note: {n}" for n in s.get("notes", [])]
        return "\n".join(lines) + "\n"


def search(config: Config, space: list[Param], trials: int, out: str | Path, *, sampler: str = "tpe", pruner: str = "median",
           storage: str | None = None, workers: int = 1, metric: str = "val_loss", study_name: str | None = None,
           seed: int = 0) -> SearchResult:
    """Run (or continue) a study until it holds ``trials`` finished trials; write the search directory.

    With ``workers > 1`` worker processes are spawned: a script calling this must guard its top level
    with ``if __name__ == "__main__":`` (each spawned interpreter imports the script again).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if sampler not in SAMPLERS:
        raise unknown_name("sampler", sampler, SAMPLERS, key="--sampler")
    if pruner not in PRUNERS:
        raise unknown_name("pruner", pruner, PRUNERS, key="--pruner")
    if metric.startswith("test_"):
        raise UserError(f"cannot search on {metric}", expected="a train_ or val_ metric",
                        fix="choose --metric val_loss or val_acc: choosing on test scores fits the test split")
    if trials < 1 or workers < 1:
        raise UserError("bad trial or worker count", expected="--trials >= 1 and --workers >= 1", received=f"{trials} trials, {workers} workers")
    for p in space:  # an unknown key or an impossible value fails now, not in trial 7
        config.replace({p.key: p.decode(p.encoded_choices()[0]) if p.kind == "choice" else p.low})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    threads = config.train.threads or (max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None)
    spec = SearchSpec(config=config.to_dict(), space=[vars(p) | {"choices": list(p.choices)} for p in space], out=str(out.resolve()),
                      storage=storage_url(storage, out), study=study_name or out.resolve().name, metric=metric, sampler=sampler,
                      pruner=pruner, seed=seed, threads=threads)
    study = _create_or_check_study(spec)
    if sampler == "grid":
        size = math.prod(len(p.grid()) for p in space)
        trials = min(trials, size)
    fail_dead_trials(study)
    remaining = max(0, trials - done_trials(study))
    try:
        if remaining and workers == 1:
            run_worker(spec, 0, remaining, trials)
        elif remaining:
            _run_processes(spec, workers, remaining, trials)
    finally:
        result = write_outputs(spec, space, config)
        result.out = out
    return result


def _create_or_check_study(spec: SearchSpec):
    import optuna

    storage = open_storage(spec.storage)
    study = optuna.create_study(study_name=spec.study, storage=storage, direction=spec.direction, load_if_exists=True)
    identity = {"space": spec.space, "metric": spec.metric, "config": _comparable(spec.config)}
    saved = study.user_attrs.get("trainwise")
    if saved is None:
        study.set_user_attr("trainwise", identity)
    elif saved != json.loads(json.dumps(identity)):
        what = next(k for k in identity if json.loads(json.dumps(identity[k])) != saved.get(k))
        raise UserError(f"the study {spec.study!r} in {redact(spec.storage)} was made with another {what}",
                        fix="run the same config, space and metric to continue it, or start a new one with another --out or --study")
    if study.direction.name.lower() != spec.direction:
        raise UserError(f"the study {spec.study!r} {study.direction.name.lower()}s, but {spec.metric} asks to {spec.direction}")
    return study


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """The config without the keys that do not change results (they may differ between machines)."""
    train = {k: v for k, v in config.get("train", {}).items() if k not in ("progress", "threads", "device")}
    return config | {"train": train}


def _run_processes(spec: SearchSpec, workers: int, remaining: int, total: int) -> None:
    """This process is worker 1; workers 2..N are spawned. Each takes its share of the remaining trials."""
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter per worker: no forked torch threads
    shares = [remaining // workers + (i < remaining % workers) for i in range(workers)]
    procs = [ctx.Process(target=spawned_worker, args=(spec, i + 1, n, total, os.getpid()), name=f"trainwise-search-worker-{i + 1}")
             for i, n in enumerate(shares) if n and i > 0]
    for p in procs:
        p.start()
    try:
        run_worker(spec, 1, shares[0], total)
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:  # they got the same Ctrl-C; give them a moment to mark their trials
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
        raise
    except BaseException:
        for p in procs:  # this process failed: the others finish their trials
            p.join()
        raise
    failed = [p.name for p in procs if p.exitcode != 0]
    if failed:
        raise UserError(f"search workers failed: {', '.join(failed)}", fix="read the messages above; the study keeps the finished trials")


# ------------------------------------------------------------------------------------------ outputs

def write_outputs(spec: SearchSpec, space: list[Param], config: Config) -> SearchResult:
    """trials.csv, best_config.toml, best.json, plots and search.json, from the study in the storage."""
    import optuna

    out = Path(spec.out)
    study = optuna.load_study(study_name=spec.study, storage=open_storage(spec.storage))
    trials = study.get_trials(deepcopy=False)
    keys = [p.key for p in space]
    rows = [{
        "number": t.number, "state": row_state(t), "value": t.value,
        "pruned_epoch": max(t.intermediate_values) if t.state.name == "PRUNED" and t.intermediate_values else None,
        "duration_s": t.duration.total_seconds() if t.duration else None,
        "params": dict(t.params), "run_dir": t.user_attrs.get("run_dir"), "host": t.user_attrs.get("host"),
    } for t in trials]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["number", "state", spec.metric, *keys, "pruned_epoch", "duration_s", "run_dir", "host"])
    for r in rows:
        writer.writerow([r["number"], r["state"], r["value"], *(r["params"].get(k) for k in keys), r["pruned_epoch"], r["duration_s"],
                         r["run_dir"], r["host"]])
    atomic.write_text(out / "trials.csv", buf.getvalue())

    counts = {s: sum(r["state"] == s for r in rows) for s in ("COMPLETE", "PRUNED", "FAIL", "INTERRUPTED", "DIED", "SURPLUS", "RUNNING")
              if any(r["state"] == s for r in rows)}
    summary: dict[str, Any] = {
        "study": spec.study, "storage": redact(spec.storage), "metric": spec.metric, "direction": spec.direction,
        "sampler": spec.sampler, "pruner": spec.pruner, "seed": spec.seed, "space": space_to_dict_list(space),
        "counts": ", ".join(f"{n} {s.lower()}" for s, n in counts.items()) or "no trials", "trials": rows, "notes": [],
    }
    best_config = None
    complete = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None and math.isfinite(t.value)]
    if complete:
        best = min(complete, key=lambda t: t.value) if spec.direction == "minimize" else max(complete, key=lambda t: t.value)
        best_config = apply_params(config, space, best.params)
        atomic.write_text(out / "best_config.toml", f"# best of study {spec.study!r}: trial {best.number}, {spec.metric} = {best.value:.6g}\n"
                          + dump_toml(best_config))
        summary["best"] = {"number": best.number, "value": best.value, "params": {p.key: p.decode(best.params[p.key]) for p in space if p.key in best.params},
                           "run_dir": best.user_attrs.get("run_dir")}
        atomic.write_json(out / "best.json", summary["best"] | {"metric": spec.metric, "direction": spec.direction})
        summary["notes"] += edge_notes(space, best.params)
    summary["notes"] += _plots(study, out, spec.metric)
    atomic.write_json(out / "search.json", {k: v for k, v in summary.items() if k != "trials"})
    return SearchResult(out=out, study=study, best_config=best_config, summary=summary)


def row_state(trial) -> str:
    """The state trials.csv shows: Optuna's, or why a trial does not count (INTERRUPTED, DIED, SURPLUS)."""
    attrs = trial.user_attrs
    if attrs.get("interrupted"):
        return "INTERRUPTED"
    if attrs.get("surplus"):
        return "SURPLUS"
    if trial.state.name == "FAIL" and "failed_with" not in attrs:
        return "DIED"  # its process was killed: marked by the pid check or the heartbeat
    return trial.state.name


def edge_notes(space: list[Param], best: dict[str, Any], margin: float = 0.1) -> list[str]:
    """A note for each range whose best value lies in its outer 10% (in log space for log ranges)."""
    notes = []
    for p in space:
        if p.kind == "choice" or p.key not in best:
            continue
        scale = math.log if p.log else float
        where = (scale(best[p.key]) - scale(p.low)) / (scale(p.high) - scale(p.low))
        if where <= margin or where >= 1 - margin:
            edge = "lower" if where <= margin else "upper"
            notes.append(f"best {p.key} = {_short(best[p.key])} lies at the {edge} edge of its range [{p.low}, {p.high}]: "
                         "the optimum may lie beyond it; widen the range")
    return notes


def space_to_dict_list(space: list[Param]) -> list[dict[str, Any]]:
    return [{k: v for k, v in (vars(p) | {"choices": list(p.choices)}).items() if not (v is None or v is False or v == [])} for p in space]


def _plots(study, out: Path, metric: str) -> list[str]:
    """Optimization history, parameter importance (Optuna's default evaluator) and intermediate values."""
    import functools

    import matplotlib
    import matplotlib.pyplot as plt  # Optuna's plots draw with pyplot; each figure is closed after saving
    import optuna.visualization.matplotlib as ovm

    notes = []
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not complete:
        return ["no complete trials yet: no plots"]
    plots = {"optimization_history.png": functools.partial(ovm.plot_optimization_history, target_name=metric),
             "intermediate_values.png": ovm.plot_intermediate_values}
    if len(complete) >= 2:
        plots["param_importances.png"] = functools.partial(ovm.plot_param_importances, target_name=metric)
    else:
        notes.append("parameter importance needs at least 2 complete trials")
    for name, plot in plots.items():
        # Optuna switches pyplot's style; rc_context gives the caller's settings back afterwards.
        with warnings.catch_warnings(), matplotlib.rc_context():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            try:
                ax = plot(study)
            except Exception as err:  # e.g. importance when every trial drew the same values
                notes.append(f"{name} not drawn: {type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}")
                continue
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.set_size_inches(7, 4.2)
            fig.tight_layout()
            fig.savefig(out / name, dpi=100)
            plt.close(fig)
    return notes
