"""Benchmark: each training technique's effect on Fashion-MNIST test accuracy and on the train/validation gap.

Every technique is one run per seed that differs from the baseline in that technique alone (the
combination rows combine several); the table reports test accuracy, validation accuracy, the accuracy
on the clean training set (eval mode, no augmentation) and the gap train - val, each against the
baseline with the same seed. A second table fine-tunes a network pretrained by trainwise on classes 0-4
on a small set of classes 5-9, against training from scratch and against fine-tuning everything at a
high learning rate. The last rows ensemble the baseline's seeds.

    python benchmarks/techniques.py                 # CPU-sized: 4k training images, small CNN (20 minutes on a busy 2-core CPU)
    python benchmarks/techniques.py --gpu           # GPU-sized: all 57k training images, wider CNN, more epochs
    python benchmarks/techniques.py --only baseline,mixup --seeds 0   # a subset

Needs Fashion-MNIST (apt-get install dataset-fashion-mnist, or --data-path).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainwise.config import Config  # noqa: E402
from trainwise.data import prepare_data  # noqa: E402
from trainwise.data.loader import make_loader  # noqa: E402
from trainwise.tools.ensemble import evaluate_ensemble  # noqa: E402
from trainwise.trainer import Trainer  # noqa: E402

AUG = [{"op": "hflip", "p": 0.5}, {"op": "translate", "pad": 2}]

# name -> overrides on top of the baseline (one technique each, then combinations).
VARIANTS: dict[str, dict] = {
    "baseline": {},
    "label_smoothing": {"regularization.label_smoothing": 0.1},
    "ema": {"ema.enabled": True, "ema.decay": "EMA_DECAY"},
    "mixup": {"mixup.mixup_alpha": 0.2},
    "cutmix": {"mixup.cutmix_alpha": 1.0},
    "augment": {"augment.train": AUG},
    "erase": {"augment.train": [{"op": "erase", "p": 0.5, "holes": 2, "size": [0.1, 0.3]}]},
    "dropout": {"model.dropout": [0.0, 0.1, 0.3]},
    "weight_decay": {"optim.weight_decay": 0.05},
    "l1_penalty": {"regularization.l1": 1e-5},
    "l2_penalty": {"regularization.l2": 1e-4},
    "no_batch_norm": {"model.batch_norm": False},
    "he_init": {"init.scheme": "he_normal"},
    "ls+ema+mixup": {"regularization.label_smoothing": 0.1, "ema.enabled": True, "ema.decay": "EMA_DECAY", "mixup.mixup_alpha": 0.2},
    "augment+ls+ema": {"augment.train": AUG, "regularization.label_smoothing": 0.1, "ema.enabled": True, "ema.decay": "EMA_DECAY"},
    # Progressive resizing: both train at 16 then 22 px with augmentation; the last phase at 28 px either keeps
    # augmentation or drops it (FixRes-style). Dropping it should widen the gap.
    "progressive_aug": {"augment.train": AUG, "progressive.phases": "PROGRESSIVE_AUG"},
    "progressive_fixres": {"augment.train": AUG, "progressive.phases": "PROGRESSIVE_FIXRES"},
    # Large batches: 4x the batch size with the LR scaled linearly (and warmed up) vs left as tuned.
    "batch4x": {"data.batch_size": "4X"},
    "batch4x_linear_warmup": {"data.batch_size": "4X", "optim.scale_lr": "linear", "schedule.warmup_epochs": 1},
    # EMA against a constant learning rate, where the last weights are noisy (a cosine decay to zero
    # already averages the end of training away).
    "constant_lr": {"schedule.name": "none"},
    "constant_lr+ema": {"schedule.name": "none", "ema.enabled": True, "ema.decay": "EMA_DECAY"},
}
# Rows compared with another row than the baseline.
REFERENCE = {"constant_lr+ema": "constant_lr", "augment+tta_flip": "augment"}


def phases(epochs: int, final_augment: bool) -> list[dict]:
    third = max(1, epochs // 3)
    return [{"epoch": 1, "resolution": 16}, {"epoch": 1 + third, "resolution": 22},
            {"epoch": 1 + 2 * third, "resolution": 28, "augment": final_augment}]


def sizes(gpu: bool) -> dict:
    if gpu:
        return {"train_subset": None, "epochs": 15, "channels": [64, 128, 256], "batch": 256, "lr": 3e-3,
                "val_fraction": 0.05, "ema_decay": 0.998, "ft_subset": 1000, "ft_epochs": 15, "ft_batch": 64,
                "precision": "bf16", "channels_last": True}
    # EMA decay: an averaging horizon 1 / (1 - decay) of one to two epochs of optimizer steps.
    return {"train_subset": 4000, "epochs": 10, "channels": [16, 32, 64], "batch": 128, "lr": 3e-3,
            "val_fraction": 0.03, "ema_decay": 0.98, "ft_subset": 500, "ft_epochs": 10, "ft_batch": 32,
            "precision": "fp32", "channels_last": False}


def base_config(size: dict, seed: int, data_path: str | None, device: str) -> Config:
    return Config().replace({
        "data.name": "fashion_mnist", "data.path": data_path, "data.train_subset": size["train_subset"],
        "data.val_fraction": size["val_fraction"], "data.batch_size": size["batch"], "data.eval_batch_size": 256,
        "model.name": "cnn", "model.channels": size["channels"], "model.batch_norm": True,
        "optim.name": "adamw", "optim.lr": size["lr"], "schedule.name": "cosine",
        "train.epochs": size["epochs"], "train.seed": seed, "train.progress": "none", "train.device": device,
        "train.precision": size["precision"], "train.channels_last": size["channels_last"],
        "optim.base_batch_size": size["batch"],
    })


def resolve(overrides: dict, size: dict) -> dict:
    out = {}
    for key, value in overrides.items():
        if value == "PROGRESSIVE_AUG":
            value = phases(size["epochs"], True)
        elif value == "PROGRESSIVE_FIXRES":
            value = phases(size["epochs"], False)
        elif value == "4X":
            value = 4 * size["batch"]
        elif value == "EMA_DECAY":
            value = size["ema_decay"]
        out[key] = value
    return out


def clean_train_acc(trainer: Trainer, limit: int = 2000) -> float:
    """Accuracy on (up to ``limit``) training samples in eval mode, without augmentation: what the model learned."""
    data = trainer.data.train.subset(torch.arange(min(limit, len(trainer.data.train))))
    loader = make_loader(data, trainer.config.data.eval_batch_size, trainer.device, shuffle=False)
    return trainer.evaluate(loader=loader)["acc"]


def scores(trainer: Trainer, test_acc: float | None = None) -> dict:
    """Test, validation and clean-training accuracy of the trainer's current weights (the ones tested)."""
    train_acc, val = clean_train_acc(trainer), trainer.evaluate("val")["acc"]
    test_acc = trainer.evaluate("test")["acc"] if test_acc is None else test_acc
    return {"test_acc": test_acc, "val_acc": val, "train_acc": train_acc, "gap": train_acc - val}


def run_one(cfg: Config, data, out: Path | None = None) -> tuple[dict, Trainer]:
    started = time.perf_counter()
    trainer = Trainer(cfg, data=data, run_dir=out)
    run = trainer.fit()
    result = scores(trainer, run.summary["test"]["acc"]) | {
        "test_weights": run.summary.get("test_weights"), "seconds": time.perf_counter() - started,
        "phases": sorted({r.get("phase") for r in run.history} - {None})}
    return result, trainer


SAVE_TO: list[Path] = []  # --json: rows are written after every run, so a run cut short keeps what it measured
ALL_ROWS: list[dict] = []


def report(rows: list[dict], result: dict) -> None:
    rows.append(result)
    ALL_ROWS.append(result)
    for path in SAVE_TO:
        path.write_text(json.dumps(ALL_ROWS, indent=1))
    print(f"  {result['technique']:24s} seed {result['seed']}: test {result['test_acc']:.4f} gap {fmt(result['gap'], True)} "
          f"({result.get('seconds', 0):.0f}s)", file=sys.stderr, flush=True)


def technique_rows(size, seeds, only, data_path, device, workdir: Path) -> list[dict]:
    data = prepare_data(base_config(size, 0, data_path, device).data)
    rows = []
    for name in only or VARIANTS:  # in the order given
        overrides = VARIANTS[name]
        for seed in seeds:
            cfg = base_config(size, seed, data_path, device).replace(resolve(overrides, size))
            out = workdir / f"{name}-{seed}" if name == "baseline" else None
            result, trainer = run_one(cfg, data, out)
            report(rows, result | {"technique": name, "seed": seed, "table": "techniques"})
            if name in ("baseline", "augment"):  # test-time flip needs no training: these weights, evaluated with it
                trainer.config = trainer.config.replace({"evaluation.tta_flip": True})
                tta = "tta_flip" if name == "baseline" else f"{name}+tta_flip"
                report(rows, scores(trainer) | {"technique": tta, "seed": seed, "table": "techniques"})
    baselines = [workdir / f"baseline-{s}" for s in seeds if (workdir / f"baseline-{s}").is_dir()]
    if len(baselines) >= 2:
        ens = evaluate_ensemble(baselines, split="test")
        report(rows, {"technique": f"ensemble of {len(baselines)} baselines", "seed": "all", "test_acc": ens["acc"],
                      "val_acc": None, "train_acc": None, "gap": None, "table": "techniques"})
    return rows


def finetune_rows(size, seeds, data_path, device, workdir: Path) -> list[dict]:
    """Pretrain on classes 0-4 (the technique table's training budget), fine-tune on a small set of classes 5-9."""
    rows = []
    source = {"data.classes": [0, 1, 2, 3, 4]}
    target = {"data.classes": [5, 6, 7, 8, 9], "data.train_subset": size["ft_subset"], "train.epochs": size["ft_epochs"],
              "data.batch_size": size["ft_batch"], "optim.base_batch_size": size["ft_batch"]}
    target_data = prepare_data(base_config(size, 0, data_path, device).replace(target).data)
    source_data = prepare_data(base_config(size, 0, data_path, device).replace(source).data)
    half = max(1, size["ft_epochs"] // 4)
    for seed in seeds:
        pre = workdir / f"pretrained-{seed}"
        run_one(base_config(size, seed, data_path, device).replace(source), source_data, pre)
        variants = {
            "scratch": {},
            "finetune: head first, then all at lr/3, head x3, layer decay 0.7": {
                "finetune.init_from": str(pre), "finetune.freeze": ["*"], "finetune.unfreeze_epoch": 1 + half,
                "optim.lr": size["lr"] / 3, "finetune.head_lr_mult": 3.0, "finetune.layer_decay": 0.7},
            "finetune: everything at once, lr x3": {"finetune.init_from": str(pre), "optim.lr": size["lr"] * 3},
        }
        for name, overrides in variants.items():
            cfg = base_config(size, seed, data_path, device).replace(target | overrides)
            result, _ = run_one(cfg, target_data)
            report(rows, result | {"technique": name, "seed": seed, "table": "finetune"})
    return rows


def fmt(v, signed=False) -> str:
    if v is None:
        return "-"
    return f"{v:+.4f}" if signed else f"{v:.4f}"


def table(rows: list[dict], reference: str) -> str:
    """One line per technique: per-seed test accuracies, means, and differences from ``reference`` with the same seeds."""
    by_name: dict[str, list[dict]] = {}
    for r in rows:
        by_name.setdefault(r["technique"], []).append(r)
    refs = {name: {r["seed"]: r for r in rs} for name, rs in by_name.items()}
    lines = ["| technique | test acc per seed | test acc | vs " + reference + " | train - val gap | gap vs " + reference + " | notes |",
             "|---|---|---|---|---|---|---|"]
    for name, rs in by_name.items():
        ref = refs.get(REFERENCE.get(name, reference), {})
        mean = lambda k, rs=rs: statistics.mean(r[k] for r in rs) if all(r.get(k) is not None for r in rs) else None  # noqa: E731
        paired = [r for r in rs if r["seed"] in ref and r.get("gap") is not None]
        d_acc = statistics.mean(r["test_acc"] - ref[r["seed"]]["test_acc"] for r in paired) if paired else None
        d_gap = statistics.mean(r["gap"] - ref[r["seed"]]["gap"] for r in paired) if paired else None
        per_seed = " / ".join(fmt(r["test_acc"]) for r in rs)
        notes = [f"vs {REFERENCE[name]}"] if name in REFERENCE else []
        if any(r.get("test_weights") for r in rs):
            notes.append("tested weights: " + " / ".join(r["test_weights"] for r in rs))
        notes = "; ".join(notes)
        lines.append(f"| {name} | {per_seed} | {fmt(mean('test_acc'))} | {fmt(d_acc, True) if name != reference else '-'} | "
                     f"{fmt(mean('gap'), True)} | {fmt(d_gap, True) if name != reference else '-'} | {notes} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="GPU-sized variant")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--only", default="", help="comma-separated technique names (and/or 'finetune')")
    parser.add_argument("--data-path", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, default=None, help="also write every row as JSON here (after every run)")
    parser.add_argument("--tables-from", type=Path, nargs="+", default=None, help="only print the tables of earlier --json files")
    parser.add_argument("--epochs", type=int, default=None, help="override the variant's epochs (quick checks)")
    parser.add_argument("--train-subset", type=int, default=None, help="override the variant's training samples")
    args = parser.parse_args(argv)
    if args.tables_from:
        merged: dict[tuple, dict] = {}
        for path in args.tables_from:
            for r in json.loads(path.read_text()):
                merged.setdefault((r["technique"], r["seed"]), r)  # a row measured twice: the earlier file's
        order = [n for name in VARIANTS for n in (name, "tta_flip" if name == "baseline" else f"{name}+tta_flip")]
        rows = sorted(merged.values(), key=lambda r: order.index(r["technique"]) if r["technique"] in order else len(order))
        for name, reference in (("techniques", "baseline"), ("finetune", "scratch")):
            if any(r["table"] == name for r in rows):
                print(table([r for r in rows if r["table"] == name], reference) + "\n")
        return
    if args.json:
        SAVE_TO.append(args.json)
    size = sizes(args.gpu)
    if args.epochs:
        size |= {"epochs": args.epochs, "ft_epochs": args.epochs}
    if args.train_subset:
        size |= {"train_subset": args.train_subset}
    seeds = [int(s) for s in args.seeds.split(",")]
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(VARIANTS) - {"finetune"}
    if unknown:
        parser.error(f"unknown technique(s) {', '.join(sorted(unknown))}; choose from {', '.join(VARIANTS)}, finetune")
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        techniques = [n for n in only if n != "finetune"]
        rows = technique_rows(size, seeds, techniques, args.data_path, args.device, Path(tmp)) if techniques or not only else []
        ft = finetune_rows(size, seeds, args.data_path, args.device, Path(tmp)) if not only or "finetune" in only else []
    print(f"Fashion-MNIST, {'GPU' if args.gpu else 'CPU'}-sized: {size}; seeds {seeds}; {time.time() - started:.0f} s in all\n")
    if rows:
        print(table(rows, "baseline") + "\n")
    if ft:
        print(table(ft, "scratch"))


if __name__ == "__main__":
    main()
