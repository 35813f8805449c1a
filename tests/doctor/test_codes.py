"""The codes registry: every code is declared once, documented, and has a case that must fire and one that must not.

The cases are small hand-written histories (real runs for each code are in test_doctor_real_runs.py and the
zoos); what this file guarantees is coverage: a new code cannot land without a row in docs/doctor.md and
both cases here, and no rule can read a config key that Config does not have.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from curves import decaying, records
from seed_histories import SEED000_SLOW_START, SEED004, SEED004_CONFIG

from trainwise.config import Config
from trainwise.doctor import CODES, diagnose
from trainwise.doctor.engine import PRIORITY, SUBSUMES
from trainwise.doctor.rules import MODULES, REGISTRY

ROOT = Path(__file__).resolve().parents[2]
DIGITS = {"data": {"name": "digits"}}


def clean(n: int = 15) -> list[dict]:
    return records(train_loss=decaying(2.0, 0.1, n), val_loss=decaying(1.9, 0.2, n),
                   train_acc=decaying(0.4, 0.99, n), val_acc=decaying(0.45, 0.96, n))


def stalled(n: int = 15) -> list[dict]:
    return records(train_loss=decaying(2.3, 1.3, n, 6), val_loss=decaying(2.3, 1.25, n, 6),
                   train_acc=decaying(0.1, 0.62, n, 6), val_acc=decaying(0.1, 0.64, n, 6))


OSCILLATING = [2.0, 1.2, 1.5, 0.9, 1.3, 0.8, 1.2, 0.7, 1.1, 0.75, 1.05, 0.7]
SHUFFLED = records(  # labels that do not follow from the inputs: training memorises, validation stays at chance
    train_loss=decaying(2.3, 0.35, 15), val_loss=list(np.linspace(2.3, 3.9, 15)),
    train_acc=decaying(0.11, 0.90, 15), val_acc=[0.1 + 0.01 * (i % 3) for i in range(15)])


def grads(loss: list[float], first: list[float], last: list[float]) -> list[dict]:
    total = [float(np.hypot(a, b)) for a, b in zip(first, last)]
    return records(train_loss=loss, val_loss=[v + 0.05 for v in loss], grad_norm=total, **{"grad_norm/net.0": first, "grad_norm/net.4": last})


FLAT = [2.30 + 0.003 * (i % 2) for i in range(10)]
PLATEAU = records(train_loss=decaying(2.0, 0.9, 8, 8) + [0.9 + 0.002 * (i % 2) for i in range(12)],
                  val_loss=decaying(1.9, 0.95, 8, 8) + [0.95 + 0.003 * (i % 2) for i in range(12)],
                  train_acc=[0.85] * 20, val_acc=[0.83] * 20, lr=[1e-3] * 20)
DIP = records(train_loss=decaying(1.9, 0.3, 13), val_loss=[1.6, 1.1, 0.8, 0.62, 0.55, 0.95, 0.52, 0.48, 0.45, 0.42, 0.40, 0.38, 0.37])
SUSTAINED = records(train_loss=decaying(1.9, 0.05, 13), val_loss=[1.6, 1.1, 0.8, 0.62, 0.55, 0.57, 0.63, 0.70, 0.76, 0.83, 0.90, 0.96, 1.02])


def _above(gap: float, config: dict) -> tuple[list[dict], dict]:
    rec = [dict(r, train_acc=0.8, val_acc=0.8 + gap) for r in records(train_loss=decaying(2.0, 0.5, 12), val_loss=decaying(1.8, 0.4, 12))]
    return rec, {"config": config}


# code -> (must fire: (records, kwargs), must not fire: (records, kwargs))
CASES: dict[str, tuple[tuple[list[dict], dict], tuple[list[dict], dict]]] = {
    "healthy": ((clean(), {"config": DIGITS}), (records(train_loss=FLAT, val_loss=FLAT, val_acc=[0.1] * 10), {"config": DIGITS})),
    "too_short": ((clean(15)[:2], {"config": DIGITS}), (clean(15)[:4], {"config": DIGITS})),
    "diverged": ((records(train_loss=[2.0, 1.4, 1.1, 3.5, 40.0, float("nan")], val_loss=[1.9, 1.3, 1.2, 4.0, 60.0, "nan"]), {"config": DIGITS}),
                 (records(train_loss=[60.0, 0.9, 0.6, 0.45, 0.4, 0.35], val_loss=[0.9, 0.7, 0.5, 0.45, 0.4, 0.38]), {"classes": 10})),
    "lr_too_high": ((records(train_loss=OSCILLATING, val_loss=[t + 0.1 for t in OSCILLATING]), {"config": DIGITS | {"optim": {"lr": 0.1}}}),
                    (records(train_loss=OSCILLATING, val_loss=[t + 0.1 for t in OSCILLATING]), {"classes": 10})),
    "unstable_training": ((records(train_loss=OSCILLATING, val_loss=[t + 0.1 for t in OSCILLATING]), {"classes": 10}),
                          (clean(12), {"classes": 10})),
    "stuck_at_chance": ((records(train_loss=FLAT, val_loss=FLAT, val_acc=[0.1] * 10), {"config": DIGITS}),
                        (SEED000_SLOW_START[:4], {"classes": 2, "config": {"train": {"epochs": 10}}})),
    "lr_too_low": ((records(train_loss=list(np.linspace(2.3, 1.9, 15)), val_loss=list(np.linspace(2.29, 1.91, 15)),
                            train_acc=list(np.linspace(0.1, 0.45, 15)), val_acc=list(np.linspace(0.1, 0.44, 15))),
                    {"config": DIGITS | {"optim": {"lr": 1e-5}}}),
                   (records(train_loss=list(np.linspace(2.3, 1.9, 15)), val_loss=list(np.linspace(2.29, 1.91, 15)),
                            train_acc=list(np.linspace(0.1, 0.45, 15)), val_acc=list(np.linspace(0.1, 0.44, 15))),
                    {"config": DIGITS | {"optim": {"lr": 1e-3}}})),
    "over_regularized": ((stalled(), {"config": DIGITS | {"model": {"dropout": 0.6}, "optim": {"weight_decay": 1.0}}}),
                         (stalled(), {"config": DIGITS})),
    "underfitting": ((stalled(), {"config": DIGITS}),
                     # a 1000-class run at 64 % (seed 004 without its last phase) is not underfitting
                     ([{k: v for k, v in r.items() if k != "phase"} for r in SEED004[:50]], {"classes": 1000})),
    "plateau": ((PLATEAU, {"config": DIGITS}), ([dict(r, train_acc=0.99, val_acc=0.97, train_loss=0.05) for r in PLATEAU], {"config": DIGITS})),
    "overfitting": ((SHUFFLED, {"config": DIGITS}), (clean(), {"config": DIGITS})),
    "val_above_train": (_above(0.1, DIGITS), _above(0.0, DIGITS)),
    "transient_dip": ((DIP, {"config": DIGITS}), (SUSTAINED, {"config": DIGITS})),
    "phase_regression": ((SEED004, {"config": SEED004_CONFIG, "classes": 1000}),
                         (records(train_loss=decaying(1.8, 0.3, 13), val_loss=[1.5, 1.0, 0.7, 0.55, 0.5, 0.48, 0.47, 0.60, 0.47, 0.45, 0.44, 0.43, 0.42],
                                  phase=["frozen"] * 7 + ["unfrozen"] * 6), {"config": DIGITS})),
    "exploding_gradients": ((grads([2.0, 1.5, 1.8, 1.2, 1.9, 1.3, 2.2, 1.4, 2.5, 1.6], [0.5 * 2.0**i for i in range(10)],
                                   [0.5 * 2.0**i for i in range(10)]), {"classes": 10}),
                            (grads(decaying(2.3, 0.1, 10), [0.5 * 2.0**i for i in range(10)], [0.5 * 2.0**i for i in range(10)]), {"classes": 10})),
    "vanishing_gradients": ((grads(FLAT, [1e-7] * 10, [0.3] * 10), {"config": DIGITS}),
                            (grads(decaying(2.3, 0.1, 10), [1e-7] * 10, [0.3] * 10), {"config": DIGITS})),
    "dead_units": ((records(train_loss=FLAT, val_loss=FLAT, **{"dead_frac/net.0": [0.8] * 10}), {"config": DIGITS}),
                   (records(train_loss=decaying(2.3, 0.1, 10), val_loss=decaying(2.2, 0.15, 10), **{"dead_frac/net.0": [0.8] * 10}), {"config": DIGITS})),
    "saturated_units": ((records(train_loss=FLAT, val_loss=FLAT, **{"saturated_frac/net.0": [0.8] * 10}), {"config": DIGITS}),
                        (records(train_loss=decaying(2.3, 0.1, 10), val_loss=decaying(2.2, 0.15, 10), **{"saturated_frac/net.0": [0.8] * 10}),
                         {"config": DIGITS})),
    "prediction_collapse": ((records(train_loss=decaying(1.0, 0.3, 8), val_loss=decaying(1.0, 0.35, 8), val_acc=[0.8] * 8),
                             {"predictions": [[5, 95, 0], [0, 100, 0], [1, 99, 0]]}),
                            (records(train_loss=decaying(1.0, 0.3, 8), val_loss=decaying(1.0, 0.35, 8), val_acc=[0.8] * 8),
                             {"predictions": [[80, 20], [15, 85]]})),
}


def test_every_code_is_declared_once_and_ranked():
    assert set(CODES) == set(REGISTRY) and len(CODES) == len(set(CODES))
    assert PRIORITY[0] == "healthy" and list(PRIORITY) == sorted(CODES, key=lambda c: REGISTRY[c].priority)
    declared = [c.name for m in MODULES.values() for c in m.CODES]
    assert sorted(declared) == sorted(set(CODES) - {"healthy", "too_short"})  # the verdicts without a finding
    for code, (_, explained) in SUBSUMES.items():
        assert {e.split(":")[0] for e in explained} <= set(CODES), code


def test_every_code_has_a_row_in_the_docs_codes_table():
    docs = (ROOT / "docs" / "doctor.md").read_text()
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", docs, flags=re.MULTILINE))
    assert set(CODES) <= rows, sorted(set(CODES) - rows)


def test_every_code_has_a_must_fire_and_a_must_not_fire_case():
    assert set(CASES) == set(CODES)


@pytest.mark.parametrize("code", sorted(CASES))
def test_must_fire(code):
    (rec, kwargs), _ = CASES[code]
    found = diagnose(rec, **kwargs)
    assert code in found.codes, [str(f) for f in found]


@pytest.mark.parametrize("code", sorted(CASES))
def test_must_not_fire(code):
    _, (rec, kwargs) = CASES[code]
    found = diagnose(rec, **kwargs)
    assert code not in found.codes, [str(f) for f in found]


def _config_paths(model: type = Config, prefix: str = "") -> set[str]:
    out = set()
    for key, field in model.model_fields.items():
        out.add(prefix + key)
        annotation = field.annotation
        if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
            out |= _config_paths(annotation, prefix + key + ".")
    return out


def test_every_config_key_the_doctor_reads_or_sets_exists_in_config():
    """ctx.cfg("a.b") and "a.b=value" fixes: a renamed Config key must fail here, not silently read None."""
    valid = _config_paths()
    sections = "|".join(Config.model_fields)
    pattern = re.compile(rf'"((?:{sections})\.[a-z_]+)(?:=|")')
    seen = set()
    for path in (ROOT / "trainwise" / "doctor").rglob("*.py"):
        text = path.read_text()
        assert 'cfg(f"' not in text, f"{path.name}: read config keys as literals, so this test can check them"
        seen |= {(path.name, key) for key in pattern.findall(text)}
    assert len(seen) > 40
    unknown = sorted((name, key) for name, key in seen if key not in valid)
    assert unknown == [], unknown
