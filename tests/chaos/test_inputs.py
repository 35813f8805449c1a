"""Bad inputs and their neighbours: each is one line on stderr, exit code 2, and nothing trained or written."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from tests.chaos.harness import SMALL, copy_run, invoke


def one_line(result, *fragments: str) -> None:
    lines = [line for line in result.err.splitlines() if line.strip() and not line.startswith("warning:")]
    assert result.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (result.code, result.err[-800:])
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


CONFIG_MISTAKES = {
    "betas above 1": (["optim.betas=[1.5, 0.999]"], "'optim.betas.0'", "less than 1"),
    "betas negative": (["optim.betas=[0.9, -0.1]"], "'optim.betas.1'", "greater than or equal to 0"),
    "seed -1": (["train.seed=-1"], "'train.seed'", "greater than or equal to 0"),
    "seed 2**40": ([f"train.seed={2**40}"], "'train.seed'", "less than or equal to 4294967295"),
    "seed 2**32": ([f"train.seed={2**32}"], "'train.seed'", "less than or equal to 4294967295"),
    "split seed -1": (["data.split_seed=-1"], "'data.split_seed'", "greater than or equal to 0"),
    "test seed -1": (["augment.test_seed=-1"], "'augment.test_seed'", "greater than or equal to 0"),
    "erase holes reversed": (['augment.train=[{op = "erase", holes = [3, 1]}]'], "bad holes for augmentation op 'erase'", "1 <= low <= high"),
    "erase holes 0": (['augment.train=[{op = "erase", holes = 0}]'], "bad holes", "a count >= 1"),
    "erase size reversed": (['augment.train=[{op = "erase", size = [0.4, 0.1]}]'], "bad size", "low <= high"),
    "erase size above 1": (['augment.train=[{op = "erase", size = [0.1, 3.0]}]'], "bad size", "high <= 1.0"),
    "blur length a string": (['augment.train=[{op = "motion_blur", length = "5"}]'], "bad length", "an odd number of pixels"),
    "data.path on digits": (['data.path="/tmp"'], "data.path is set but data.name = 'digits' reads no files",),
}


@pytest.mark.parametrize("name", list(CONFIG_MISTAKES))
def test_config_mistakes_are_one_line_before_training(name, tmp_path):
    sets, *fragments = CONFIG_MISTAKES[name]
    out = tmp_path / "run"
    one_line(invoke(["train", *SMALL, *[a for s in sets for a in ("--set", s)], "--out", str(out)]), *fragments)
    assert not (out / "history.jsonl").exists()  # refused before the first epoch


def test_split_seed_message_names_the_seed_not_the_split(tmp_path):
    got = invoke(["train", *SMALL, "--set", "data.split_seed=-1", "--out", str(tmp_path / "run")])
    assert "split_seed" in got.err and "share" not in got.err and "val_fraction" not in got.err, got.err


def test_a_named_fashion_mnist_path_without_the_files_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINWISE_DATA", "/usr/share/datasets/fashion-mnist")  # the fallback that must not be taken
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line(invoke(["train", *SMALL, "--set", "data.name=fashion_mnist", "--set", f"data.path={str(empty)!r}", "--out", str(tmp_path / "run")]),
             "Fashion-MNIST IDX files not found", str(empty), "check data.path")


# ------------------------------------------------------------------------------------------- predict

class RunsCode:
    def __reduce__(self):
        return (print, ("code ran",))


def _code_pt(path):
    with open(path, "wb") as handle:
        pickle.dump({"x": RunsCode()}, handle, protocol=2)


def _torch_code_pt(path):
    torch.save({"x": RunsCode()}, path)


def _damaged_npy(path):
    np.save(path, np.zeros((4, 64), dtype=np.float32))
    data = path.read_bytes()
    path.write_bytes(data[:60])


def _object_npy(path):
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)


def _garbage_npz(path):
    path.write_bytes(b"PK\x03\x04 not really a zip")


def _strings_npy(path):
    np.save(path, np.array(["a", "b"]))


PREDICT_INPUTS = {
    "code-carrying .pt (pickle)": ("x.pt", _code_pt, "refusing to load", "import and call", "print"),
    "code-carrying .pt (torch.save)": ("x.pt", _torch_code_pt, "refusing to load", "import and call"),
    "damaged .npy": ("x.npy", _damaged_npy, "cannot read the input file"),
    "object .npy": ("x.npy", _object_npy, "cannot read the input file", "Python objects"),
    "garbage .npz": ("x.npz", _garbage_npz, "cannot read the input file"),
    "string .npy": ("x.npy", _strings_npy, "cannot read the input file"),
}


@pytest.mark.parametrize("name", list(PREDICT_INPUTS))
def test_predict_on_bad_input_files(name, pristine, tmp_path, capfd):
    filename, make, *fragments = PREDICT_INPUTS[name]
    make(tmp_path / filename)
    one_line(invoke(["predict", str(pristine), str(tmp_path / filename)]), *fragments)
    assert "code ran" not in capfd.readouterr().out


DAMAGED_PREPROCESS = {
    "not JSON": "{ not json",
    "a list": "[1, 2]",
    "input_shape a string": {"input_shape": "1x8x8"},
    "no class names": {"class_names": []},
    "normalization without std": {"normalization": {"input": {"mean": 0.5}}},
    "num_classes null": {"num_classes": None},
}


@pytest.mark.parametrize("name", list(DAMAGED_PREPROCESS))
def test_predict_on_a_damaged_preprocess_json(name, pristine, inputs, tmp_path):
    run = copy_run(pristine, tmp_path / "run")
    (run / "manifest.json").unlink()  # the edits below are by hand: only the structure checks can see them
    path = run / "preprocess.json"
    change = DAMAGED_PREPROCESS[name]
    path.write_text(change if isinstance(change, str) else json.dumps(json.loads(path.read_text()) | change))
    one_line(invoke(["predict", str(run), str(inputs)]), "preprocess.json")


# -------------------------------------------------------------------------------- report and diagnose

@pytest.mark.parametrize("name", ["summary.json", "env.json", "config.toml"])
@pytest.mark.parametrize("command", ["report", "diagnose", "compare"])
@pytest.mark.parametrize("how", ["malformed", "not UTF-8"])
def test_readers_on_damaged_run_files(name, command, how, pristine, twin, tmp_path):
    run = copy_run(pristine, tmp_path / "run")
    (run / "manifest.json").unlink()  # hand-made damage: the readers themselves must cope
    path = run / name
    path.write_bytes(b"{ \"broken" if how == "malformed" else b"\xff\xfe\x00bad" + path.read_bytes())
    args = [command, str(run)] + ([str(twin)] if command == "compare" else [])
    got = invoke(args)
    if command == "diagnose" and name == "env.json":  # diagnose does not read env.json
        assert got.code == 0, got.err
        return
    one_line(got, name)


def test_evaluate_with_an_empty_config(pristine, tmp_path):
    run = copy_run(pristine, tmp_path / "run")
    (run / "config.toml").write_text("")
    for command in (["evaluate", str(run)], ["predict", str(run), str(run / "preprocess.json")], ["resume", str(run)]):
        one_line(invoke(command), "config.toml")
