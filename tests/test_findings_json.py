"""Every rule's findings serialise to strict JSON (diagnose --json), whatever NumPy types the rule computed with.

The hand-written histories of tests/doctor/test_doctor_shapes.py make every finding code at least once;
each Finding built while they run (before the engine drops subsumed ones) is captured and serialised.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
from pathlib import Path

import numpy as np

from trainwise.doctor import CODES, Finding
from trainwise.doctor import finding as finding_module

SHAPES = Path(__file__).parent / "doctor" / "test_doctor_shapes.py"


def _every_rule_finding(monkeypatch) -> dict[str, Finding]:
    seen: dict[str, Finding] = {}
    built = finding_module.Finding.__post_init__

    def capture(self) -> None:
        built(self)
        seen.setdefault(self.code, self)

    monkeypatch.setattr(finding_module.Finding, "__post_init__", capture)
    monkeypatch.syspath_prepend(str(SHAPES.parent))  # its helpers (curves.py) live beside it
    spec = importlib.util.spec_from_file_location("doctor_shapes", SHAPES)
    shapes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shapes)
    for name, test in vars(shapes).items():
        if not name.startswith("test_") or not callable(test):
            continue
        marks = [m for m in getattr(test, "pytestmark", []) if m.name == "parametrize"]
        if marks:
            argnames = [a.strip() for a in (marks[0].args[0] if isinstance(marks[0].args[0], str) else ",".join(marks[0].args[0])).split(",")]
            for values in marks[0].args[1]:
                test(**dict(zip(argnames, values if len(argnames) > 1 else [values])))
        elif not inspect.signature(test).parameters:
            test()
    return seen


def test_a_finding_of_every_code_serialises_to_strict_json(monkeypatch):
    seen = _every_rule_finding(monkeypatch)
    assert set(seen) == set(CODES), f"no history made {sorted(set(CODES) - set(seen))}"
    for code, found in seen.items():
        text = json.dumps(found.to_dict(), allow_nan=False)
        back = Finding.from_dict(json.loads(text))
        assert back.code == code and back.evidence.keys() == found.evidence.keys()
        assert all(type(v) in (int, float, str, bool, list, dict, type(None)) for v in found.evidence.values()), (code, found.evidence)


def test_numpy_evidence_becomes_plain_python():
    f = Finding("overfitting", "warning", (np.int64(3), np.int64(9)),
                {"epochs_without_val_gain": np.int64(7), "gap": np.float32(0.25), "curve": np.array([1.0, np.nan]),
                 "flag": np.bool_(True)}, "memorised", [])
    d = f.to_dict()
    assert d["evidence"] == {"epochs_without_val_gain": 7, "gap": 0.25, "curve": [1.0, "nan"], "flag": True}
    assert type(d["evidence"]["epochs_without_val_gain"]) is int and d["epochs"] == [3, 9]
    json.dumps(d, allow_nan=False)


def test_diagnose_json_on_a_memorised_training_set_through_the_cli(tmp_path):
    from helpers import run_cli

    spec = importlib.util.spec_from_file_location("doctor_shapes", SHAPES)
    shapes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shapes)
    history = tmp_path / "history.jsonl"
    history.write_text("".join(json.dumps(r) + "\n" for r in shapes.records(**shapes.MEMORISED)))
    done = run_cli("diagnose", str(history), "--json")
    assert done.returncode == 0, done.stderr
    findings = json.loads(done.stdout)["findings"]
    assert findings[0]["code"] == "overfitting"
    assert findings[0]["evidence"] == shapes.diagnose(shapes.records(**shapes.MEMORISED)).to_dict()["findings"][0]["evidence"]
