"""Every registered technique, checked the same way: its example config is valid and turns it on, it has a
docs section, a short run with it trains, and a run interrupted after epoch 2 resumes to the same weights,
History and test scores as an uninterrupted one (small CNN on digits)."""

import pkgutil
from pathlib import Path

import pytest

import trainwise
import trainwise.techniques
from tests.helpers import interrupted_then_resumed, same_weights, without_times
from trainwise.config import Config
from trainwise.techniques import registry

DOCS = (Path(__file__).resolve().parents[2] / "docs" / "techniques.md").read_text()
TECHNIQUES = registry.all_techniques()


def test_every_technique_file_registers_one_technique():
    modules = {m.name for m in pkgutil.iter_modules(trainwise.techniques.__path__)} - {"registry"}
    assert sorted(t.module.rsplit(".", 1)[-1] for t in TECHNIQUES) == sorted(modules)


@pytest.mark.parametrize("technique", TECHNIQUES, ids=lambda t: t.name)
def test_example_config_is_valid_and_turns_the_technique_on(technique):
    cfg = Config().replace(technique.example)
    assert technique.enabled(cfg) and not technique.enabled(Config())
    assert technique in registry.active(cfg)


@pytest.mark.parametrize("technique", TECHNIQUES, ids=lambda t: t.name)
def test_technique_has_a_docs_section_naming_its_config(technique):
    assert f"\n## {technique.docs}\n" in DOCS
    section = DOCS.split(f"\n## {technique.docs}\n", 1)[1].split("\n## ", 1)[0]
    for key in technique.example:
        group, name = key.split(".", 1)
        assert name in section or key in section, f"docs section {technique.docs!r} does not mention {key}"


@pytest.mark.parametrize("technique", TECHNIQUES, ids=lambda t: t.name)
@pytest.mark.filterwarnings("ignore:progressive phase")
def test_technique_trains_and_resumes_exactly(cnn_config, tmp_path, technique):
    cfg = cnn_config(**{"train.epochs": 3, "model.batch_norm": True, **technique.example})
    straight = trainwise.fit(cfg, out=tmp_path / "a")
    assert straight.summary["epochs_run"] == 3 and straight.summary["test"]["acc"] > 0.2  # 10 classes: chance is 0.1
    resumed = interrupted_then_resumed(cfg, tmp_path / "b", epoch=2)
    assert same_weights(straight.model.state_dict(), resumed.model.state_dict())
    assert without_times(straight.history.records) == without_times(resumed.history.records)
    assert straight.summary["test"] == resumed.summary["test"]
