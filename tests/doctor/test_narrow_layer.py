"""A layer narrower than K caps the network whatever else is wrong: widening it is the first fix, also when
the run is stuck at chance because that one unit died."""

import trainwise

QUIET = {"train__progress": "none", "train__threads": 1, "train__report": False}


def test_a_dead_one_unit_layer_is_stuck_at_chance_and_widening_comes_first(tmp_path):
    # digits through [64, 1, 64]: on this seed the single ReLU dies early and the whole net answers one class
    run = trainwise.fit(out=tmp_path / "pinched", data__name="digits", data__val_fraction=0.2, model__hidden=[64, 1, 64],
                        train__seed=700, train__epochs=20, **QUIET)
    assert run.history.records[-1]["train_acc"] < 0.2  # the fault shows: chance on its own training set
    stuck = run.findings[0]
    assert stuck.code == "stuck_at_chance", [str(f) for f in run.findings]
    assert stuck.fixes[0] == "model.hidden=[64, 64, 64]", stuck.fixes
    assert "has 1 units, fewer than the 10 classes" in stuck.message
    # the dead units still have their own fix, after the width
    assert any(f.startswith("init.scheme=") or f.startswith("model.activation=") for f in stuck.fixes[1:]), stuck.fixes
