"""lr-find on real data: it leaves no trace, the same seed gives the same suggestion, optim.lr = "auto"."""

import json
import math

import numpy as np
import pytest
import tomllib

import trainwise
from tests.helpers import same_weights, without_times
from tests.tools.cli import invoke
from trainwise import Trainer, load_config
from trainwise.errors import UserError
from trainwise.tools.lr_find import centered_smooth, lr_find, steepest_lr, valley_lr

SMALL = {"train.progress": "none", "train.threads": 1, "model.hidden": [32], "model.dropout": 0.2, "train.epochs": 2}


def small_config(**extra):
    return load_config(None, SMALL | extra)


def test_fit_after_lr_find_equals_fit_without_it():
    cfg = small_config()
    swept = Trainer(cfg)
    lrs_before = [g["lr"] for g in swept.optimizer.param_groups]
    lr_find(swept, steps=60)
    assert [g["lr"] for g in swept.optimizer.param_groups] == lrs_before
    after, plain = swept.fit(), Trainer(cfg).fit()
    assert without_times(after.history.records) == without_times(plain.history.records)
    assert same_weights(after.model.state_dict(), plain.model.state_dict())


def test_same_seed_same_suggestion_and_stop_on_explosion():
    cfg = small_config()
    a, b = lr_find(Trainer(cfg), steps=120, end_lr=100), lr_find(Trainer(cfg), steps=120, end_lr=100)
    assert a.losses == b.losses and a.suggestion == b.suggestion and a.steepest == b.steepest
    assert a.suggestion is not None and 1e-7 < a.suggestion < 1.0
    # end_lr = 100 is far past what AdamW survives: the sweep must stop before its last step.
    assert len(a.lrs) < 120 and ("exploded" in a.stop_reason or "non-finite" in a.stop_reason)
    c = lr_find(Trainer(cfg), steps=120, end_lr=100, seed=1)
    assert c.losses != a.losses  # the seed drives the dropout masks


def test_rules_on_a_synthetic_curve():
    lrs = list(np.logspace(-6, 0, 120))
    x = np.log10(lrs)
    noise = np.random.default_rng(0).normal(0, 0.01, len(lrs))
    # flat at 2.3, falls around 1e-3 (steepest there), minimum near 1e-1, then blows up
    loss = 2.3 - 1.5 / (1 + np.exp(-(x + 3) * 4)) + np.where(x > -1, (x + 1) ** 2 * 20, 0) + noise
    smoothed = centered_smooth(list(loss), 0.9)
    assert 10**-3.4 < steepest_lr(lrs, smoothed) < 10**-2.6
    valley = valley_lr(lrs, smoothed)
    assert 10**-4 < valley < 10**-1.5
    assert valley_lr(lrs[:2], smoothed[:2]) is None


def test_files_and_bad_range(tmp_path):
    result = lr_find(Trainer(small_config()), steps=40, end_lr=1e-2)
    json_path, png_path = result.save(tmp_path)
    saved = json.loads(json_path.read_text())
    assert saved["suggestion"] == result.suggestion and len(saved["lrs"]) == len(saved["smoothed"]) == 40
    assert png_path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(UserError, match="start_lr < end_lr"):
        lr_find(Trainer(small_config()), start_lr=1.0, end_lr=0.1)


def test_auto_lr_runs_the_finder_and_records_the_number(tmp_path):
    run = trainwise.fit(small_config(**{"optim.lr": "auto"}), out=tmp_path / "run")
    lr = run.config.optim.lr
    assert isinstance(lr, float) and 0 < lr < 1
    saved = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    assert saved["optim"]["lr"] == lr
    assert (tmp_path / "run" / "lr_find.png").is_file()
    suggestion = json.loads((tmp_path / "run" / "lr_find.json").read_text())["suggestion"]
    assert math.isclose(lr, suggestion, rel_tol=5e-3)  # recorded with 3 significant digits
    assert run.history[0]["lr"] == lr


def test_auto_lr_with_linear_scaling_gives_the_suggestion_back():
    cfg = small_config(**{"optim.lr": "auto", "optim.scale_lr": "linear", "optim.base_batch_size": 32})
    from trainwise.tools.lr_find import resolve_auto_lr

    resolved, _ = resolve_auto_lr(cfg, steps=60)
    suggestion = lr_find(Trainer(cfg.replace({"optim.lr": 1e-3})), steps=60).suggestion
    assert math.isclose(resolved.optim.lr * 64 / 32, suggestion, rel_tol=5e-3)


def test_config_accepts_auto_and_still_rejects_words():
    assert load_config(None, ["optim.lr=auto"]).optim.lr == "auto"
    with pytest.raises(UserError, match="invalid value for 'optim.lr'.*valid number"):
        load_config(None, ["optim.lr=fast"])


def test_cli_lr_find(tmp_path):
    result = invoke("lr-find", "--set", "model.hidden=[32]", "--steps", "80", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "suggested lr:" in result.stdout and (tmp_path / "lr_find.png").is_file()
    assert invoke("lr-find", "--start-lr", "1", "--end-lr", "0.1").exit_code == 2
