"""Doctor zoo v2: faults on data, models and techniques the first zoo does not use, with a held-out half.

Every run is a real ``trainwise.fit``: a small CNN on a 600-image Fashion-MNIST subset (Debian's IDX
files), a 1-D CNN on MNIST-1D, a frozen-backbone fine-tune of a CNN pretrained on the other five
Fashion-MNIST classes, MixUp / CutMix, label smoothing, progressive resizing with and without training
augmentation in the final phase, shuffled and noisy labels. Each broken run has a healthy twin, several of
them hard negatives for technique awareness (MixUp and CutMix lower training accuracy, label smoothing puts
a floor under the loss, a frozen backbone has zero gradients, a FixRes phase *with* augmentation).

The zoo has two halves. **dev**: the ``DEV`` cases on seeds 0 and 1, on which the rules may be tuned.
**held-out**: seeds 7 and 8 of every case, including the ``HELD_OUT`` cases, which are written here but
were not run while the rules were tuned; it is scored once, at the end.

    python benchmarks/doctor_zoo/v2.py --half dev          # tune on this
    python benchmarks/doctor_zoo/v2.py --half held-out     # score once
    python benchmarks/doctor_zoo/v2.py --case v2_mixup_stack --seeds 0 --verbose
    python benchmarks/doctor_zoo/v2.py --half held-out --seeds 11 12   # every case on fresh seeds, for a re-score

``--seeds`` replaces the half's seeds; with ``--half held-out`` it scores every case (``DEV + HELD_OUT``) on
them, so seeds never used before give a fresh held-out score once the original seeds 7 and 8 have been seen.

Scoring, the AUTOTRAINER baseline and the manifestation checks are the first zoo's (run.py, manifest.py);
the goals on the held-out half: false alarms on healthy twins <= 5 %, ``healthy`` on a broken run <= 2 %,
recall >= 0.90 for every expected code.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import run as zoo  # noqa: E402
from cases import Bug, Case, noisy_train_labels, shuffle_train_labels  # noqa: E402
from manifest import Outcome  # noqa: E402
from trainwise import fit  # noqa: E402
from trainwise.config import build_config, merge_overrides  # noqa: E402

DEV_SEEDS, HELD_OUT_SEEDS = [0, 1], [7, 8]
PRETRAINED = "{pretrained}"  # replaced by the run directory of the pretraining run for the seed

FASHION = {"data.name": "fashion_mnist", "data.val_fraction": 0.005, "data.train_subset": 600, "data.batch_size": 32,
           "model.name": "cnn", "model.channels": [8, 16, 32], "model.batch_norm": True, "optim.lr": 3e-3, "train.epochs": 10}
MNIST1D = {"data.name": "mnist1d", "data.val_fraction": 0.2, "model.name": "cases:conv1d", "optim.lr": 3e-3, "train.epochs": 15}
AUGMENT = [{"op": "translate", "pad": 3}, {"op": "erase", "p": 0.5}]
# Pretrained on classes 0-4, fine-tuned on 5-9 with every layer but the head frozen.
FINETUNE = {**FASHION, "data.classes": [5, 6, 7, 8, 9], "finetune.init_from": PRETRAINED, "finetune.freeze": ["*"], "train.epochs": 8}
# Healthy twins train to the end of a cosine schedule: at 10 epochs of constant LR the 600-image CNN was still
# improving at its last epoch on some seeds (read `underfitting`, still learning, and it was: 15 cosine epochs
# reach 0.74-0.77 test accuracy where 10 constant ones reach 0.66-0.74; development seeds 0-6, 10).
CONVERGED = {"schedule.name": "cosine", "train.epochs": 15}


def _phases(final_augment: bool) -> list[dict]:
    return [{"epoch": 1, "resolution": 28, "augment": True}, {"epoch": 9, "resolution": 28, "augment": final_augment}]


def gap_jump(bug: Outcome, twin: Outcome) -> tuple[bool, str]:
    """The last phase let training pull away: training accuracy up >= 5 points over the phase before,
    validation up less than a third as much, more than on the twin."""
    def jump(o: Outcome) -> tuple[float, float]:
        t, v = o.series("train_acc"), o.series("val_acc")
        return float(np.nanmedian(t[-4:]) - np.nanmedian(t[5:8])), float(np.nanmedian(v[-4:]) - np.nanmedian(v[5:8]))
    (bt, bv), (tt, tv) = jump(bug), jump(twin)
    shown = bt >= 0.05 and bv < bt / 3 and bt - bv > tt - tv
    return shown, f"train +{bt:.3f}, val {bv:+.3f} in the last phase (twin: train +{tt:.3f}, val {tv:+.3f})"


DEV: list[Case] = [
    # Ten epochs do not memorise 600 shuffled labels: training stays near chance too (stuck, not yet overfitting).
    Case("v2_fashion_shuffled", FASHION, "stuck_at_chance", CONVERGED, Bug("shuffled labels", data=shuffle_train_labels),
         fault="shuffled labels (Fashion-MNIST CNN)", also=frozenset({"overfitting", "prediction_collapse", "underfitting", "plateau"})),
    Case("v2_fashion_lr_low", {**FASHION, "optim.lr": 1e-6}, "lr_too_low", {"optim.lr": 3e-3, **CONVERGED}, fault="AdamW at 1e-6 (Fashion-MNIST CNN)",
         also=frozenset({"stuck_at_chance", "underfitting", "plateau", "prediction_collapse"})),
    # Twin: MixUp 0.2 alone (training accuracy on blended batches below validation: healthy).
    Case("v2_mixup_stack", {**FASHION, "mixup.mixup_alpha": 1.0, "model.dropout": 0.5, "regularization.label_smoothing": 0.3},
         "over_regularized", {"mixup.mixup_alpha": 0.2, "model.dropout": 0.0, "regularization.label_smoothing": 0.0},
         fault="MixUp 1.0 + dropout 0.5 + label smoothing 0.3", also=frozenset({"underfitting", "plateau", "val_above_train"})),
    Case("v2_mnist1d_cnn_tiny", {**MNIST1D, "data.train_subset": 150, "train.epochs": 40}, "overfitting", {"data.train_subset": None,
         "train.epochs": 15}, fault="150 training samples, 1-D CNN, 40 epochs"),
    # Twin: the same FixRes-style last phase with the training augmentation kept on (seed 004's fix).
    # Not a fault that costs validation here: on every development seed (0-18) the last phase without
    # augmentation ends at a lower validation loss than the twin (last three epochs 0.72-0.84 against
    # 0.81-1.00) and 1-9 points higher validation accuracy, the under-fitted CNN gaining from clean batches;
    # the check sees a widening gap on 7 of 19 seeds. A longer variant (40 cosine epochs, the last 15 without
    # augmentation, a 16-32-64 CNN) showed the gap on 7 of 8 seeds and still ended lower (0.51-0.54 against
    # 0.55-0.59, 1-4 points higher accuracy), so the case was left as it is:
    # strengthened, it would reward a fix that makes these runs worse (docs/benchmarks.md, zoo v2 phases).
    Case("v2_fixres_noaug", {**FASHION, "augment.train": AUGMENT, "mixup.mixup_alpha": 0.4, "train.epochs": 14,
                             "progressive.phases": _phases(False)},
         "phase_regression", {"progressive.phases": _phases(True)}, fault="final phase without training augmentation",
         check=gap_jump, also=frozenset({"overfitting"})),
]

HELD_OUT: list[Case] = [
    # Twin: clean labels, 10 cosine epochs. Trained like the broken run (25 epochs, constant LR) the clean CNN
    # memorised its 600 images (training accuracy >= 0.99 against 0.76-0.81 validation on every development seed):
    # overfitting, which the twin must not have. 10 cosine epochs test at 0.77-0.78 (25: 0.76-0.80).
    Case("v2_fashion_noisy_labels", {**FASHION, "train.epochs": 25, "model.channels": [16, 32, 64]}, "overfitting",
         {"schedule.name": "cosine", "train.epochs": 10},
         Bug("50 % of training labels redrawn", data=noisy_train_labels(0.5)), fault="50 % label noise (Fashion-MNIST CNN)",
         also=frozenset({"val_above_train"})),
    # Twin: the frozen backbone throughout (zero gradients on the frozen layers; healthy), the head trained to
    # convergence (LR 0.03, cosine, 15 epochs). At LR 3e-3 for 8 epochs the head was still learning at its last
    # epoch on every seed (test accuracy 0.68-0.76; converged: 0.79-0.87).
    Case("v2_finetune_unfreeze_hot", {**FINETUNE, "finetune.unfreeze_epoch": 4, "optim.lr": 0.05}, "phase_regression",
         {"finetune.unfreeze_epoch": None, "optim.lr": 0.03, **CONVERGED}, fault="unfreezing a pretrained backbone at LR 0.05",
         also=frozenset({"lr_too_high", "unstable_training", "overfitting", "dead_units", "diverged"})),
    Case("v2_mnist1d_cnn_sgd_hot", {**MNIST1D, "optim.name": "sgd", "optim.lr": 3.0}, "diverged", {"optim.lr": 0.05},
         fault="SGD at 3.0 (1-D CNN)", also=frozenset({"stuck_at_chance", "lr_too_high", "unstable_training", "dead_units",
                                                        "prediction_collapse", "exploding_gradients", "underfitting", "plateau"})),
    # Twin: CutMix 1.0 on the working CNN (a hard negative: training accuracy well below validation).
    Case("v2_fashion_bottleneck", {**FASHION, "model.channels": [2, 2, 2]}, "underfitting",
         {"model.channels": [8, 16, 32], "mixup.cutmix_alpha": 1.0}, fault="a 2-channel CNN",
         also=frozenset({"plateau", "dead_units"})),
    # Twin: label smoothing 0.3 (a loss floor of 1.3 nats at 10 classes; healthy).
    Case("v2_mnist1d_cnn_lr_tiny", {**MNIST1D, "optim.lr": 1e-7}, "lr_too_low",
         {"optim.lr": 3e-3, "regularization.label_smoothing": 0.3}, fault="AdamW at 1e-7 (1-D CNN)",
         also=frozenset({"stuck_at_chance", "underfitting", "plateau", "prediction_collapse"})),
]


def pretrained(seed: int, root: Path) -> str:
    """A CNN trained on Fashion-MNIST classes 0-4 for ``seed`` (once per seed and machine): the fine-tunes' start."""
    out = root / f"pretrained-{seed}"
    if not (out / "checkpoints" / "final.safetensors").is_file():
        cfg = build_config(merge_overrides({}, {**FASHION, **zoo.BASE, "data.classes": [0, 1, 2, 3, 4], "train.seed": seed}))
        fit(cfg, out=out)
    return str(out)


def resolve(case: Case, seed: int, root: Path) -> Case:
    """The case with the pretrained run's directory in place of ``PRETRAINED``."""
    if PRETRAINED not in case.overrides.values():
        return case
    path = pretrained(seed, root)
    return replace(case, overrides={k: (path if v == PRETRAINED else v) for k, v in case.overrides.items()})


def run_case(case: Case, seed: int, root: Path, verbose: bool = False) -> tuple[zoo.Result, zoo.Result]:
    return zoo.run_pair(resolve(case, seed, root), seed, verbose)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half", choices=("dev", "held-out"), default="dev")
    parser.add_argument("--seeds", type=int, nargs="+", help="instead of the half's seeds")
    parser.add_argument("--case", action="append", help="only these cases (repeatable)")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--out", type=Path, help="also write the tables (markdown) here")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "trainwise-zoo-v2")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cases = DEV if args.half == "dev" else DEV + HELD_OUT
    if args.case:
        cases = [c for c in DEV + HELD_OUT if c.name in args.case]
    seeds = args.seeds or (DEV_SEEDS if args.half == "dev" else HELD_OUT_SEEDS)
    args.workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = [r for case in cases for seed in seeds for r in run_case(case, seed, args.workdir, args.verbose)]
    tables = [zoo.report(results)]
    if args.half == "held-out" and not args.case:
        unseen = {c.name for c in HELD_OUT}
        tables += ["", "Cases never run while the rules were tuned (HELD_OUT) only:", "",
                   zoo.report([r for r in results if r.case in unseen])]
    healthy_on_broken = sum(1 for r in results if not r.clean and not r.ours)
    broken = sum(not r.clean for r in results)
    tables.append(f"\n`healthy` (no warning or error) on a broken run: {healthy_on_broken} of {broken} "
                  f"({healthy_on_broken / max(broken, 1):.0%}).")
    header = (f"Doctor zoo v2 ({args.half}), {date.today().isoformat()}, {platform.machine()} ({torch.get_num_threads()} torch thread), "
              f"torch {torch.__version__}, seeds {seeds}, {len(cases)} cases, {time.perf_counter() - started:.0f} s.\n"
              f"Command: python benchmarks/doctor_zoo/v2.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    text = header + "\n\n" + "\n".join(tables)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
