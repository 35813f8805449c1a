import pytest

from tests.helpers import run_cli
from trainwise.config import Config, load_config, parse_override
from trainwise.errors import UserError


def test_defaults_are_valid_and_frozen():
    cfg = Config()
    assert cfg.data.name == "digits" and cfg.model.name == "mlp"
    with pytest.raises(Exception):
        cfg.optim.lr = 1.0  # frozen


def test_overrides_are_parsed_as_toml():
    assert parse_override("model.hidden=[32, 16]") == ("model.hidden", [32, 16])
    assert parse_override("train.precision=bf16") == ("train.precision", "bf16")
    cfg = load_config(None, ["optim.lr=0.05", "optim.name=sgd", "optim.nesterov=true"])
    assert (cfg.optim.lr, cfg.optim.name, cfg.optim.nesterov) == (0.05, "sgd", True)


def test_unknown_key_lists_valid_names():
    with pytest.raises(UserError) as e:
        load_config(None, ["optim.learning_rate=0.1"])
    msg = str(e.value)
    assert "unknown key 'optim.learning_rate'" in msg and "lr" in msg and "\n" not in msg


@pytest.mark.parametrize("override, fragment", [
    ("optim.lr=-1", "greater than 0"),
    ("optim.lr=fast", "valid number"),
    ("optim.name=adamx", "'sgd'"),
    ("model.dropout=1.5", "dropout rates must be in [0, 1)"),
    ("train.epochs=0", "greater than 0"),
])
def test_bad_values_give_one_line(override, fragment):
    with pytest.raises(UserError) as e:
        load_config(None, [override])
    assert fragment in str(e.value) and "\n" not in str(e.value) and "Fix:" in str(e.value)


def test_yaml_and_toml_files(tmp_path):
    (tmp_path / "a.yaml").write_text("optim:\n  lr: 0.01\ntrain:\n  epochs: 2\n")
    (tmp_path / "a.toml").write_text("[optim]\nlr = 0.01\n[train]\nepochs = 2\n")
    assert load_config(tmp_path / "a.yaml") == load_config(tmp_path / "a.toml")


def test_malformed_toml(tmp_path):
    (tmp_path / "bad.toml").write_text("[optim\nlr = 1\n")
    with pytest.raises(UserError, match="malformed config"):
        load_config(tmp_path / "bad.toml")


@pytest.mark.parametrize("content, fragment", [
    ("[optim]\nlr = 'x'\n", "invalid value for 'optim.lr'"),
    ("[optimizer]\nlr = 1\n", "unknown key 'optimizer'"),
    ("[optim\n", "malformed config"),
])
def test_cli_bad_config_exits_2_without_traceback(tmp_path, content, fragment):
    path = tmp_path / "c.toml"
    path.write_text(content)
    proc = run_cli("train", str(path), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert fragment in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # validated before anything is written


def test_cli_missing_config_file(tmp_path):
    proc = run_cli("train", str(tmp_path / "nope.toml"))
    assert proc.returncode == 2 and "not found" in proc.stderr and "Traceback" not in proc.stderr


def test_config_reference_is_current():
    from tests.helpers import ROOT
    from trainwise.docs_gen import config_reference_markdown

    assert (ROOT / "docs" / "config.md").read_text() == config_reference_markdown(), "run: trainwise config-reference --out docs/config.md"
