"""Fashion-MNIST time-to-accuracy on one GPU: trainwise against a hand-written loop and PyTorch Lightning.

All rows train the same network (benchmarks' reference model: a 64-channel conv stem, three
(conv-BN-GELU) x2 + max-pool blocks of 128, 256, 256 channels, global max pool, linear head) with the
same hyperparameters (Nesterov SGD, warm-up then linear decay, label smoothing 0.1, flip + 2-pixel
translate, bf16 autocast, channels_last), in one process, one after the other. Test accuracy is measured
after every epoch, outside the timed training time (the device is synchronized before each clock read).

    python benchmarks/speed/bench.py                      # all rows, 10 epochs, on the GPU
    python benchmarks/speed/bench.py --rows hand,trainwise --epochs 3
    python benchmarks/speed/bench.py --smoke              # a tiny CPU run that checks the code paths

Prints a table and writes it as JSON (--json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from trainwise.config import Config, ModelConfig  # noqa: E402
from trainwise.data.sources import FASHION_FILES, fashion_mnist_dir, read_idx  # noqa: E402
from trainwise.models.convnet import build_convnet  # noqa: E402

MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST pixel statistics (training split)


@dataclass
class Settings:
    epochs: int = 10
    batch_size: int = 512
    lr: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup_epochs: float = 1.0
    channels: tuple[int, ...] = (64, 128, 256, 256)
    train_subset: int | None = None
    device: str = "cuda"
    precision: str = "bf16"


@dataclass
class Result:
    name: str
    epoch_times: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    setup_s: float = 0.0
    note: str = ""

    def time_to(self, target: float) -> tuple[float, int] | None:
        total = 0.0
        for i, (t, a) in enumerate(zip(self.epoch_times, self.test_acc)):
            total += t
            if a >= target:
                return total, i + 1
        return None


# ------------------------------------------------------------------------------------------ data

def load_fashion(settings: Settings):
    base = fashion_mnist_dir(None)
    arrays = {}
    for key, stem in FASHION_FILES.items():
        path = base / (stem + ".gz") if (base / (stem + ".gz")).exists() else base / stem
        arrays[key] = read_idx(path)
    norm = lambda a: ((torch.from_numpy(a).float() / 255.0 - MEAN) / STD).unsqueeze(1)  # noqa: E731
    x, y = norm(arrays["x"]), torch.from_numpy(arrays["y"]).long()
    xt, yt = norm(arrays["x_test"]), torch.from_numpy(arrays["y_test"]).long()
    if settings.train_subset:
        x, y = x[: settings.train_subset], y[: settings.train_subset]
        xt, yt = xt[: settings.train_subset // 5], yt[: settings.train_subset // 5]
    return x, y, xt, yt


def flip_translate(x: torch.Tensor, pad: int = 2) -> torch.Tensor:
    """Random horizontal flip and a random translation of up to ``pad`` pixels (edge padding, as trainwise's translate), batched."""
    n, c, h, w = x.shape
    flip = torch.rand(n, device=x.device) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (n, h, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (n, 1, w)
    out = padded[torch.arange(n, device=x.device)[:, None, None], :, rows, cols]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2)


def lr_factor(step: int, steps_per_epoch: int, settings: Settings) -> float:
    """Linear warm-up from 0.01, then linear decay to 0 (trainwise's schedule.name = "linear")."""
    warmup = round(settings.warmup_epochs * steps_per_epoch)
    total = steps_per_epoch * settings.epochs
    if step < warmup:
        return 0.01 + 0.99 * step / warmup
    return 1 - min(step - warmup, total - warmup) / max(total - warmup, 1)


def make_model(settings: Settings) -> torch.nn.Module:
    cfg = ModelConfig(name="convnet", channels=list(settings.channels), activation="gelu")
    return build_convnet(cfg, input_shape=(1, 28, 28), out_dim=10).to(settings.device, memory_format=torch.channels_last)


def make_optimizer(model, settings: Settings):
    return torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum, nesterov=True,
                           weight_decay=settings.weight_decay)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@torch.no_grad()
def test_accuracy(model, xt, yt, settings: Settings) -> float:
    model.eval()
    correct = torch.zeros((), device=settings.device, dtype=torch.long)
    for i in range(0, len(yt), 2000):
        with torch.autocast(settings.device.split(":")[0], dtype=torch.bfloat16, enabled=settings.precision == "bf16"):
            correct += (model(xt[i : i + 2000]).argmax(1) == yt[i : i + 2000]).sum()
    model.train()
    return correct.item() / len(yt)


# ------------------------------------------------------------------------------------------ rows

def hand_loop(settings: Settings, data, dataloader: bool = False) -> Result:
    """The reference: a plain loop a practitioner would write, data resident on the device (or a DataLoader)."""
    x, y, xt, yt = data
    dev = settings.device
    result = Result("hand-written loop, DataLoader (4 workers, pinned)" if dataloader else "hand-written loop, data on the GPU")
    torch.manual_seed(0)
    model = make_model(settings)
    opt = make_optimizer(model, settings)
    xt_d, yt_d = xt.to(dev), yt.to(dev)
    if dataloader:
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=settings.batch_size, shuffle=True,
                                             num_workers=4, pin_memory=True, persistent_workers=True)
        steps_per_epoch = len(loader)
    else:
        xd, yd = x.to(dev), y.to(dev)
        steps_per_epoch = -(-len(y) // settings.batch_size)
    step = 0
    for epoch in range(settings.epochs):
        sync(dev)
        start = time.perf_counter()
        if dataloader:
            batches = ((xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)) for xb, yb in loader)
        else:
            order = torch.randperm(len(yd), device=dev)
            batches = ((xd[order[i : i + settings.batch_size]], yd[order[i : i + settings.batch_size]])
                       for i in range(0, len(yd), settings.batch_size))
        for xb, yb in batches:
            for group in opt.param_groups:
                group["lr"] = settings.lr * lr_factor(step, steps_per_epoch, settings)
            with torch.autocast(dev.split(":")[0], dtype=torch.bfloat16, enabled=settings.precision == "bf16"):
                loss = F.cross_entropy(model(flip_translate(xb)), yb, label_smoothing=settings.label_smoothing)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
        sync(dev)
        result.epoch_times.append(time.perf_counter() - start)
        result.test_acc.append(test_accuracy(model, xt_d, yt_d, settings))
    return result


def trainwise_run(settings: Settings, data, name: str, overrides: dict | None = None, monitors: bool = False,
                  callbacks: list | None = None) -> Result:
    """trainwise's Trainer with the same model, data, schedule and hyperparameters."""
    cfg = Config().replace({
        "data.name": "fashion_mnist", "data.val_fraction": 0.0, "data.batch_size": settings.batch_size, "data.eval_batch_size": 2000,
        "model.name": "convnet", "model.channels": list(settings.channels), "model.activation": "gelu",
        "optim.name": "sgd", "optim.lr": settings.lr, "optim.momentum": settings.momentum, "optim.nesterov": True,
        "optim.weight_decay": settings.weight_decay, "optim.no_decay_bias_norm": False,
        "schedule.name": "linear", "schedule.warmup_epochs": settings.warmup_epochs, "schedule.warmup_start_factor": 0.01,
        "regularization.label_smoothing": settings.label_smoothing,
        "train.epochs": settings.epochs, "train.device": settings.device, "train.precision": settings.precision,
        "train.channels_last": True, "train.progress": "none", "train.report": False,
        "monitors.enabled": monitors, "doctor.live": False,
        "augment.train": [{"op": "hflip", "p": 0.5}, {"op": "translate", "pad": 2}], **(overrides or {}),
    })
    return timed_fit(cfg, data, name, callbacks)


def recipe_run(data, name: str, config_path: Path, overrides: dict) -> Result:
    """trainwise's own recipe (a config file), trained on all 60k training images like the other rows."""
    from trainwise.config import load_config

    cfg = load_config(config_path, {"data.val_fraction": 0.0, "train.progress": "none", "train.report": False,
                                    "doctor.live": False, **overrides})
    return timed_fit(cfg, data, name)


def timed_fit(cfg, data, name: str, callbacks: list | None = None) -> Result:
    """Train with trainwise's Trainer on all 60k training images, testing after every epoch (untimed)."""
    from trainwise import Callback, Trainer
    from trainwise.data import DataSplits, TensorData

    x, y, xt, yt = data
    splits = DataSplits(train=TensorData((x,), y), val=None, test=TensorData((xt,), yt), num_classes=10, task="multiclass",
                        input_shape=(1, 28, 28))
    result = Result(name)

    class TestEveryEpoch(Callback):
        def on_epoch_end(self, state):
            result.epoch_times.append(state.record["time_s"])
            result.test_acc.append(trainer.evaluate("test")["acc"])

    torch.manual_seed(0)
    start = time.perf_counter()
    trainer = Trainer(cfg, data=splits, callbacks=[TestEveryEpoch(), *(callbacks or [])])
    result.setup_s = time.perf_counter() - start
    trainer.fit()
    return result


def lightning_run(settings: Settings, data, lean: bool) -> Result:
    import lightning as L

    x, y, xt, yt = data
    dev = settings.device
    result = Result("PyTorch Lightning, lean settings" if lean else "PyTorch Lightning, defaults")
    xt_d, yt_d = xt.to(dev), yt.to(dev)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=settings.batch_size, shuffle=True,
                                         num_workers=4, pin_memory=True, persistent_workers=True)
    steps_per_epoch = len(loader)

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = make_model(settings)

        def training_step(self, batch, _):
            xb, yb = batch
            loss = F.cross_entropy(self.net(flip_translate(xb)), yb, label_smoothing=settings.label_smoothing)
            if not lean:
                self.log("train_loss", loss, prog_bar=True)
            return loss

        def configure_optimizers(self):
            opt = make_optimizer(self.net, settings)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps_per_epoch, settings))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    class Timer(L.Callback):
        def on_train_epoch_start(self, trainer, module):
            sync(dev)
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):
            sync(dev)
            result.epoch_times.append(time.perf_counter() - self.start)
            result.test_acc.append(test_accuracy(module.net, xt_d, yt_d, settings))

    torch.manual_seed(0)
    module = Module()
    kwargs = dict(max_epochs=settings.epochs, accelerator="gpu", devices=1, precision="bf16-mixed", callbacks=[Timer()])
    if lean:
        kwargs |= dict(enable_progress_bar=False, logger=False, enable_checkpointing=False, enable_model_summary=False)
    else:
        kwargs |= dict(default_root_dir="/tmp/lightning_default")
    L.Trainer(**kwargs).fit(module, loader)
    return result


def scaling_table(data, recipe: Path, base: dict) -> str:
    """s/epoch (the second of two epochs) as batch size, model width and dataset size grow, one at a time."""
    x, y, xt, yt = data
    widths = {"x0.5": [32, 64, 128, 128], "x1": [64, 128, 256, 256], "x2": [128, 256, 512, 512]}
    cases = [(f"batch {b}", {"data.batch_size": b, "optim.lr": 0.2 * b / 512}, data) for b in (256, 512, 1024, 2048)]
    cases += [(f"width {k}", {"model.channels": w}, data) for k, w in widths.items()]
    cases += [(f"train size {n}", {}, (x[:n], y[:n], xt, yt)) for n in (15000, 30000, 60000)]
    lines = ["| change (from the recipe: batch 512, width x1, 60000 images) | s/epoch | images/s |", "|---|---|---|"]
    for name, overrides, d in cases:
        r = recipe_run(d, name, recipe, {**base, "train.epochs": 2, **overrides})
        lines.append(f"| {name} | {r.epoch_times[-1]:.3f} | {len(d[1]) / r.epoch_times[-1]:,.0f} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ table

def table(results: list[Result], reference: str | None) -> str:
    ref = next((r for r in results if r.name == reference), None)
    ref_epoch = statistics.median(ref.epoch_times[1:] or ref.epoch_times) if ref else None
    lines = ["| setup | training time | s/epoch (median, epochs 2+) | vs hand loop | test acc (last) | time to 93% | time to 94% |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        per_epoch = statistics.median(r.epoch_times[1:] or r.epoch_times)
        ratio = f"{per_epoch / ref_epoch:.3f}x" if ref_epoch else "-"
        t93, t94 = r.time_to(0.93), r.time_to(0.94)
        fmt = lambda t: f"{t[0]:.2f} s (epoch {t[1]})" if t else "-"  # noqa: E731
        lines.append(f"| {r.name}{' ' + r.note if r.note else ''} | {sum(r.epoch_times):.2f} s | {per_epoch:.3f} | {ratio} | "
                     f"{r.test_acc[-1]:.4f} | {fmt(t93)} | {fmt(t94)} |")
    return "\n".join(lines)


ROWS = ("hand", "hand-dataloader", "trainwise", "trainwise-monitors", "trainwise-compile", "lightning-lean", "lightning", "recipe",
        "recipe-graphs", "cold-cli")


def cold_cli_row(recipe: Path, overrides: list[str], label: str, cache: Path) -> str:
    """``trainwise train RECIPE --profile-startup`` in a fresh process: the outside wall clock and the phases inside."""
    import os
    import subprocess
    import tempfile

    out = Path(tempfile.mkdtemp(prefix="cold-cli-"))
    cmd = [sys.executable, "-m", "trainwise", "train", str(recipe), "--out", str(out / "run"), "--profile-startup",
           "--set", "train.progress=none", *[a for o in overrides for a in ("--set", o)]]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1", "TRAINWISE_CACHE": str(cache)})
    wall = time.perf_counter() - start
    if done.returncode != 0:
        return f"cold CLI ({label}) failed: {done.stderr.strip()[-400:]}"
    prof = json.loads((out / "run" / "startup_profile.json").read_text())
    phases = {p["name"]: p["seconds"] for p in prof["phases"]}
    training = sum(v for k, v in phases.items() if k.startswith("training"))
    lines = [f"cold CLI ({label}): wall {wall:.2f} s, training {training:.2f} s, wall - training {wall - training:.2f} s, "
             f"in-process {prof['total_s']:.2f} s, process exit {wall - prof['total_s']:.2f} s",
             "| phase | seconds | count |", "|---|---|---|"]
    lines += [f"| {p['name']} | {p['seconds']:.3f} | {p['count']} |" for p in prof["phases"]]
    lines.append(f"| process exit (outside clock) | {wall - prof['total_s']:.3f} | 1 |")
    return "\n".join(lines + ["", done.stdout.strip().splitlines()[0] if done.stdout.strip() else ""])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {', '.join(ROWS)}")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=0.2)
    p.add_argument("--smoke", action="store_true", help="tiny CPU run to check the code paths")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--recipe", type=Path, default=Path(__file__).resolve().parents[2] / "configs" / "fashion_mnist_gpu.toml")
    p.add_argument("--variants", type=Path, help='JSON list of {"name": ..., "overrides": {...}} recipe variants (row "variants")')
    args = p.parse_args(argv)
    settings = Settings(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
    if args.smoke:
        settings = Settings(epochs=2, batch_size=128, channels=(8, 16, 16, 16), train_subset=2000, device="cpu", precision="fp32")
        args.recipe_overrides = {"train.device": "cpu", "train.precision": "fp32", "model.channels": [8, 16, 16, 16], "train.epochs": 2}
    rows = args.rows.split(",")
    base = getattr(args, "recipe_overrides", {})
    data = load_fashion(settings)
    if settings.device == "cuda":
        print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
        torch.backends.cudnn.benchmark = True
    results = []
    for row in rows:
        print(f"running {row} ...", flush=True)
        if row == "hand":
            results.append(hand_loop(settings, data))
        elif row == "hand-dataloader":
            results.append(hand_loop(settings, data, dataloader=True))
        elif row == "trainwise":
            results.append(trainwise_run(settings, data, "trainwise, same settings"))
        elif row == "trainwise-monitors":
            results.append(trainwise_run(settings, data, "trainwise, same settings + default monitors", monitors=True))
        elif row == "recipe":
            results.append(recipe_run(data, f"trainwise recipe ({args.recipe.name})", args.recipe, base))
        elif row == "variants":
            for v in json.loads(args.variants.read_text()):
                results.append(recipe_run(data, f"recipe + {v['name']}", args.recipe, {**base, **v["overrides"]}))
                print(f"  {v['name']}: epochs {[round(t, 3) for t in results[-1].epoch_times]} acc {[round(a, 4) for a in results[-1].test_acc]}", flush=True)
            continue
        elif row == "recipe-graphs":
            results.append(recipe_run(data, f"trainwise recipe + train.cuda_graphs ({args.recipe.name})", args.recipe,
                                      {**base, "train.cuda_graphs": True, "monitors.enabled": True}))
        elif row == "cold-cli":
            import tempfile

            cache = Path(tempfile.mkdtemp(prefix="tw-cache-"))  # empty: the first run prepares the data, the others read it
            for label, extra in (("recipe, data cache empty", []), ("recipe", []), ("recipe + cuda_graphs", ["train.cuda_graphs=true"])):
                print(cold_cli_row(args.recipe, [f"{k}={json.dumps(v)}" for k, v in base.items()] + extra, label, cache), flush=True)
            continue
        elif row == "scaling":
            print(scaling_table(data, args.recipe, base), flush=True)
            continue
        elif row == "trainwise-compile":
            results.append(trainwise_run(settings, data, "trainwise, same settings + torch.compile", {"train.compile": True}))
        elif row in ("lightning", "lightning-lean"):
            if settings.device != "cuda":
                continue
            results.append(lightning_run(settings, data, lean=row == "lightning-lean"))
        print(f"  epochs: {[round(t, 3) for t in results[-1].epoch_times]} acc: {[round(a, 4) for a in results[-1].test_acc]}", flush=True)
    print()
    print(table(results, "hand-written loop, data on the GPU"))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
