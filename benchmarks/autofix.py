"""Does applying the fix repair the run? Four repair strategies on the doctor zoo's broken runs.

Every faulty case of both doctor zoos (benchmarks/doctor_zoo/cases.py, screening's dropped cases left
out, and zoo v2, benchmarks/doctor_zoo/v2.py, both halves; ``--zoo`` picks one)
is trained with its planted fault and beside it its healthy twin, on seeds the zoo and this benchmark's
development never used. A case counts when its fault manifests on that seed (the zoo's manifestation
checks, manifest.py, which never ask the doctor). Then each strategy repairs the broken run through
the same chain as ``trainwise fix`` (trainwise.autofix.chain: one change per re-run, same seed and
data, kept only when validation accuracy improves by more than the noise), with the same number of
re-runs; only the choice of the change differs:

* (a) ``trainwise``: ``trainwise fix`` as a user gets it: the doctor's fixes in its order, an LR fix's
  value from an LR range test on the run's model and data, a kept change that leaves the run healthy
  followed a step further while it helps (docs/autofix.md);
* (b) ``random``: a random applicable change from the same vocabulary (every fix the doctor's fix
  functions can write for this config, trainwise.doctor.fixes), seeded per case and seed;
* (c) ``lr/10``: always lower the LR 10x;
* (d) ``autotrainer``: AUTOTRAINER's repairs for the problems its rules detect (the zoo's port,
  autotrainer.py), in the order of its published strategy list (REFERENCES.md): activation swaps
  (SELU, ReLU, LeakyReLU, tanh), BatchNorm, clipping, re-initialisation, optimizer -> Adam, LR
  changes, ReduceLROnPlateau, batch size, momentum; each problem takes the entries that address it.

"Config-reachable" marks the cases whose twin differs from the broken run by config values only (no
planted bug, or the same one): a config change can reach the twin there. Elsewhere (shuffled or noisy
labels, a planted init) only a change that undoes the bug's effect can.

A broken run already within 2 points of its twin on validation (the fault showed, but cost nothing
there) has nothing to repair and is counted apart. Scores per strategy: the share of the other
manifesting faults whose final (kept) run ends within 2 points of the
healthy twin's validation accuracy; the share repaired within 2 extra runs; mean and median extra runs
and epochs; and, on the healthy twins, the share the strategy made worse (final test accuracy more
than 1 point below the twin's own; only changes kept on validation reach the test split).

Planted data faults are applied to the data *before* trainwise's normalization (raw pixel values are
raw, whatever the config), so a ``data.normalize=true`` fix acts on them as it would on a real data set.
Model faults are planted on the freshly built network before the Trainer's ``init.scheme``, so a
re-initialisation fix replaces a bad init as it would in real code.

    python benchmarks/autofix.py --seeds 50 --case lr_x100_adam --case dead_relu     # development
    python benchmarks/autofix.py --seeds 100 101 --out /tmp/autofix.md              # the final seeds, once
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE / "doctor_zoo"))

import torch  # noqa: E402

import autotrainer  # noqa: E402
from cases import CASES, Bug, Case  # noqa: E402
from manifest import Outcome  # noqa: E402
from trainwise.autofix.applicable import Sources  # noqa: E402
from trainwise.autofix.attempt import Attempt  # noqa: E402
from trainwise.autofix.chain import doctor_fixes, fix  # noqa: E402
from trainwise.config import Config, build_config, merge_overrides  # noqa: E402
from trainwise.data import DataSplits, split_and_normalize  # noqa: E402
from trainwise.data.sources import load_raw  # noqa: E402
from trainwise.doctor import fixes as fx  # noqa: E402
from trainwise.doctor import _config_dict  # noqa: E402
from trainwise.doctor.context import Context  # noqa: E402
from trainwise.interrupt import TrainingInterrupted  # noqa: E402
from trainwise.models import build_model  # noqa: E402
from trainwise.trainer import Trainer  # noqa: E402

BASE = {"train.progress": "none", "train.threads": 1, "train.report": False, "monitors.every_n_steps": 5, "doctor.live": False}
ROUNDS = 3  # re-runs per strategy (the goal: a repair within 2 extra runs on average)
STRATEGIES = ("trainwise", "random", "lr/10", "autotrainer")
DEV_SEEDS = (50, 51)  # used while building this benchmark; the final table uses others
SCORED_SEEDS = (100, 200, 300)  # each scored once (docs/benchmarks.md), development data since: a new score needs a seed beside these


# ----------------------------------------------------------------------------- planting the faults
def sources_for(bug: Bug, seed: int) -> Sources:
    def data(cfg: Config) -> DataSplits:
        splits = split_and_normalize(load_raw(cfg.data), cfg.data.model_copy(update={"normalize": False}))
        if bug.data:
            bug.data(splits, seed)
        if cfg.data.normalize:
            _standardize(splits)
        return splits

    def model(cfg: Config, splits: DataSplits) -> torch.nn.Module:
        torch.manual_seed(cfg.train.seed)
        out_dim = 1 if splits.task == "binary" else splits.num_classes
        net = build_model(cfg.model, splits.input_shape, splits.feature_dim, out_dim)
        bug.model(net)
        return net

    return Sources(model=model if bug.model else None, data=data, callbacks=bug.callbacks)


def _standardize(splits: DataSplits) -> None:
    """trainwise's normalization (training statistics; per feature for vectors, one for images), after the fault."""
    x = splits.train.inputs[0].double()
    dims = 0 if x.ndim == 2 else tuple(range(x.ndim))
    mean, std = x.mean(dims), x.std(dims, unbiased=False).clamp_min(1e-8)
    for split in (splits.train, splits.val, splits.test):
        if split is not None:
            split.inputs = (((split.inputs[0].double() - mean) / std).float(), *split.inputs[1:])


def train_full(cfg: Config, sources: Sources, run_dir: Path) -> Trainer:
    """A normal run (test split included) into ``run_dir``."""
    data = sources.build_data(cfg)
    trainer = Trainer(cfg, model=sources.build_model(cfg, data), data=data,
                      callbacks=sources.callbacks() if sources.callbacks else [], run_dir=run_dir)
    trainer.run = trainer.fit()
    return trainer


# ----------------------------------------------------------------------------- the strategies
def vocabulary(current: Attempt) -> list[str]:
    """Every fix the doctor's fix functions write for this run's config: the doctor's own vocabulary."""
    ctx = Context(records=current.records, config=_config_dict(current.config))
    out = [fx.lower_lr(ctx, 0.1), fx.lower_lr(ctx, 0.3), fx.higher_lr(ctx, 10.0), fx.higher_lr(ctx, 3.0), fx.clip(),
           fx.more_weight_decay(ctx), fx.less_weight_decay(ctx), fx.more_dropout(ctx), "model.dropout=0.1", fx.mixup(ctx),
           fx.early_stopping(ctx), fx.more_epochs(ctx), fx.more_data(ctx), fx.wider_model(ctx), fx.normalize(ctx) or "data.normalize=true",
           fx.decay_schedule(ctx), "schedule.name=plateau", "schedule.name=onecycle", "schedule.warmup_epochs=1",
           "model.activation=relu", "model.activation=leaky_relu", "model.batch_norm=true", "regularization.label_smoothing=0.1",
           "optim.name=adam"]
    return fx.keep(*dict.fromkeys(out))  # duplicates and Nones out; one value per key


def random_fixes(seed: int):
    def propose(current: Attempt):
        rng = random.Random(f"{seed}-{len(current.records)}-{current.config.model_dump_json()}")
        options = vocabulary(current)
        rng.shuffle(options)
        return ((None, f) for f in options)

    return propose


def lower_lr_10x(current: Attempt):
    lr = float(current.config.optim.lr)
    yield None, f"optim.lr={fx.fmt(lr / 10)}"


def autotrainer_fixes(current: Attempt):
    """AUTOTRAINER's problems (its rules, ported) -> its repairs, in its published list's order."""
    lr = float(current.config.optim.lr)
    lower, higher = f"optim.lr={fx.fmt(lr / 10)}", f"optim.lr={fx.fmt(lr * 10)}"
    batch = f"data.batch_size={current.config.data.batch_size * 2}"
    repairs = {  # the published order: activations, BatchNorm, clipping, re-init, Adam, LR, plateau, batch, momentum
        "vanishing_gradients": ["model.activation=selu", "model.activation=relu", "model.batch_norm=true", "init.scheme=he_normal",
                                "optim.name=adam", higher],
        "exploding_gradients": ["model.activation=relu", "model.batch_norm=true", "train.grad_clip_norm=1.0", "init.scheme=he_normal",
                                lower],
        "dead_units": ["model.activation=selu", "model.activation=leaky_relu", "model.batch_norm=true", "init.scheme=he_normal", lower],
        "unstable_training": ["model.batch_norm=true", "optim.name=adam", lower, "schedule.name=plateau", batch],
        "plateau": ["model.batch_norm=true", "optim.name=adam", higher, "schedule.name=plateau", "optim.momentum=0.9"],
        "underfitting": ["model.activation=relu", "model.batch_norm=true", "optim.name=adam", higher, batch],
    }
    found = autotrainer.detect(current.records, current.config.train.epochs)
    order = ("exploding_gradients", "vanishing_gradients", "dead_units", "unstable_training", "plateau", "underfitting")
    for problem in (p for p in order if p in found):
        for change in repairs[problem]:
            yield None, change


def proposer(strategy: str, seed: int):
    return {"trainwise": doctor_fixes, "random": random_fixes(seed), "lr/10": lower_lr_10x, "autotrainer": autotrainer_fixes}[strategy]


# ----------------------------------------------------------------------------- one case
@dataclass
class Repair:
    strategy: str
    final_val: float
    repaired: bool
    runs: int
    epochs: int
    runs_to_repair: int | None  # extra runs until the first kept run within 2 points (None: never)
    changes: list[str] = field(default_factory=list)
    tried: list[str] = field(default_factory=list)  # every change, "+" kept, "-" rejected


@dataclass
class CaseResult:
    case: str
    seed: int
    shown: bool
    evidence: str
    broken_val: float
    twin_val: float
    twin_test: float
    repairs: dict[str, Repair] = field(default_factory=dict)
    harm: dict[str, tuple[bool, float, list[str]]] = field(default_factory=dict)  # healthy twin: worse?, final test, changes
    reachable: bool = True  # the twin differs from the broken run by config values only (the planted bug, if any, is the same)


def within(val: float, twin: float) -> bool:
    return math.isfinite(val) and val >= twin - 0.02


def run_case(case: Case, seed: int, root: Path, strategies: tuple[str, ...], verbose: bool) -> CaseResult:
    started = time.perf_counter()
    broken_cfg = build_config(merge_overrides({}, {**case.overrides, **BASE, "train.seed": seed}))
    twin_cfg = build_config(merge_overrides({}, {**case.overrides, **case.twin, **BASE, "train.seed": seed}))
    broken_src, twin_src = sources_for(case.bug, seed), sources_for(case.twin_bug, seed)
    broken, twin = train_full(broken_cfg, broken_src, root / "broken"), train_full(twin_cfg, twin_src, root / "twin")
    outcome = lambda t: Outcome(t.run.history.records, t.run.summary.get("test") or {}, t.num_classes)  # noqa: E731
    shown, evidence = case.manifested(outcome(broken), outcome(twin))
    b_att = Attempt(broken.run.config, broken.run.history.records, broken.run.summary, [])
    t_att = Attempt(twin.run.config, twin.run.history.records, twin.run.summary, [])
    result = CaseResult(case.name, seed, shown, evidence, b_att.score("val_acc"), t_att.score("val_acc"),
                        twin.run.summary["test"]["acc"], reachable=case.bug == case.twin_bug)
    if shown and not within(result.broken_val, result.twin_val):  # a fault that costs nothing on validation has nothing to repair
        for s in strategies:
            chain = fix(root / "broken", rounds=ROUNDS, out=root / f"fix-{s.replace('/', '')}", model=broken_src.model, data=broken_src.data,
                        callbacks=broken_src.callbacks, propose=proposer(s, seed), only_if_findings=s == "trainwise")
            if verbose:
                print(f"{case.name} seed {seed}, {s}:\n{chain.to_text()}", file=sys.stderr)
            first = next((r["round"] for r in chain.rounds if r["kept"] and within(r["after"], result.twin_val)), None)
            final = chain.final["val"] if isinstance(chain.final["val"], float) else -math.inf
            result.repairs[s] = Repair(s, final, within(final, result.twin_val), chain.extra_runs, chain.extra_epochs,
                                       first,
                                       chain.changes, [("+" if r["kept"] else "-") + r["change"] for r in chain.rounds])
    for s in strategies:  # the healthy twin: does the strategy leave it as good as it was?
        chain = fix(root / "twin", rounds=ROUNDS, out=root / f"twin-fix-{s.replace('/', '')}", model=twin_src.model, data=twin_src.data,
                    callbacks=twin_src.callbacks, propose=proposer(s, seed), only_if_findings=s == "trainwise")
        final_test = (chain.final.get("test") or {}).get("acc", result.twin_test)
        result.harm[s] = (final_test < result.twin_test - 0.01, final_test, chain.changes)
        if verbose and chain.rounds:
            print(f"{case.name} seed {seed}, {s} on the healthy twin (test {result.twin_test:.4f} -> {final_test:.4f}):\n{chain.to_text()}",
                  file=sys.stderr)
    line = " ".join(f"{s}={'ok' if r.repaired else 'no'}({r.final_val:.2f}: {' '.join(r.tried) or '-'})" for s, r in result.repairs.items())
    print(f"{case.name:24s} seed {seed}: {'shown' if shown else 'NOT shown'} ({evidence}); val {result.broken_val:.3f} "
          f"twin {result.twin_val:.3f}; {line}; harm {[s for s, h in result.harm.items() if h[0]]} ({time.perf_counter() - started:.0f}s)",
          file=sys.stderr)
    return result


# ----------------------------------------------------------------------------- tables
def _share(k: int, n: int) -> str:
    return f"{k}/{n} ({k / max(n, 1):.0%})"


def summary_table(results: list[CaseResult], strategies: tuple[str, ...]) -> str:
    shown = [r for r in results if r.repairs]
    lines = ["| strategy | repaired (within 2 points of the twin) | repaired within 2 extra runs | of them config-reachable: repaired | "
             "extra runs: mean / median | extra epochs: median | healthy twins made worse | healthy twins changed |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in strategies:
        reps = [r.repairs[s] for r in shown if s in r.repairs]
        reach = [r.repairs[s] for r in shown if s in r.repairs and r.reachable]
        ok = sum(x.repaired for x in reps)
        fast = sum(x.runs_to_repair is not None and x.runs_to_repair <= 2 for x in reps)
        runs = [x.runs for x in reps] or [0]
        epochs = [x.epochs for x in reps] or [0]
        harmed = [r.harm[s] for r in results if s in r.harm]
        worse = sum(h[0] for h in harmed)
        changed = sum(bool(h[2]) for h in harmed)
        lines.append(f"| {s} | {_share(ok, len(reps))} | {_share(fast, len(reps))} | {_share(sum(x.repaired for x in reach), len(reach))} | "
                     f"{statistics.mean(runs):.2f} / "
                     f"{statistics.median(runs):g} | {statistics.median(epochs):g} | {worse}/{len(harmed)} | {changed}/{len(harmed)} |")
    return "\n".join(lines)


def case_table(results: list[CaseResult], strategies: tuple[str, ...]) -> str:
    head = "| case | seed | fault shown | config-reachable | broken val | twin val | " + " | ".join(strategies) + " |"
    lines = [head, "| " + " | ".join(["---"] * (6 + len(strategies))) + " |"]
    for r in results:
        cells = []
        for s in strategies:
            rep = r.repairs.get(s)
            cells.append("-" if rep is None else f"{'**ok**' if rep.repaired else 'no'} {rep.final_val:.3f} ({' '.join(rep.tried) or 'no change'})")
        lines.append(f"| {r.case} | {r.seed} | {'yes' if r.shown else 'no'} | {'yes' if r.reachable else 'no'} | {r.broken_val:.3f} | "
                     f"{r.twin_val:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", required=True, help=f"development: {' '.join(map(str, DEV_SEEDS))}; already scored: "
                        f"{' '.join(map(str, SCORED_SEEDS))}; a new score: others")
    parser.add_argument("--zoo", choices=("v1", "v2", "both"), default="both", help="the first zoo (cases.py), zoo v2 (v2.py, both halves), or both")
    parser.add_argument("--case", action="append", help="only these cases (repeatable)")
    parser.add_argument("--from-case", help="start at this case (the zoo's order)")
    parser.add_argument("--strategy", action="append", choices=STRATEGIES, help="only these strategies (repeatable)")
    parser.add_argument("--out", type=Path, help="also write the tables (markdown) here")
    parser.add_argument("--verbose", action="store_true", help="print each repair chain (trainwise fix's text) as it ends")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    strategies = tuple(args.strategy or STRATEGIES)
    pool = list(CASES) if args.zoo != "v2" else []
    if args.zoo != "v1":
        import v2

        pool += [*v2.DEV, *v2.HELD_OUT]
    cases = [c for c in pool if not c.dropped and (not args.case or c.name in args.case)]
    if args.from_case:
        cases = cases[[c.name for c in cases].index(args.from_case):]
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="autofix-bench-") as tmp:
        for case in cases:
            for seed in args.seeds:
                try:
                    if case.name.startswith("v2_"):  # zoo v2: the fine-tunes' pretrained run, per seed
                        import v2

                        case = v2.resolve(case, seed, Path(tmp))
                    results.append(run_case(case, seed, Path(tmp) / f"{case.name}-{seed}", strategies, args.verbose))
                except TrainingInterrupted:  # Ctrl-C or SIGTERM: stop, not the next case
                    raise
                except Exception as err:  # one broken case must not lose the others' results
                    print(f"{case.name} seed {seed}: FAILED {type(err).__name__}: {err}", file=sys.stderr)
    shown = sum(r.shown for r in results)
    scored = sum(bool(r.repairs) for r in results)
    header = (f"Auto-repair benchmark, {date.today().isoformat()}, {platform.machine()} ({torch.get_num_threads()} torch thread), "
              f"torch {torch.__version__}, seeds {args.seeds}, {len(cases)} cases, {shown} of {len(results)} broken runs with the fault "
              f"shown, {scored} of them more than 2 points below the twin on validation (scored), {ROUNDS} re-runs per strategy, {time.perf_counter() - started:.0f} s.\n"
              f"Command: python benchmarks/autofix.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    text = header + "\n\n" + summary_table(results, strategies) + "\n\n" + case_table(results, strategies)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
