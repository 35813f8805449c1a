"""Fuzzing the readers of user input (Hypothesis): the config loader (files, dicts, --set strings) and the History
reader. Whatever they are given, they return a value or raise UserError with a one-line message, nothing else."""

from __future__ import annotations

import json
import tempfile
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainwise.config import Config, build_config, dump_toml, load_config
from trainwise.errors import UserError
from trainwise.history import History

FUZZ = settings(max_examples=150, deadline=None)

SECTIONS = sorted(Config.model_fields)
FIELDS = sorted({f for s in SECTIONS for f in Config.model_fields[s].annotation.model_fields})
names = st.sampled_from(SECTIONS + FIELDS) | st.text(max_size=8)
dotted = st.builds(lambda s, f: f"{s}.{f}", st.sampled_from(SECTIONS), st.sampled_from(FIELDS)) | names
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3), max_leaves=8)
# Right-hand sides of `key = value` lines and of --set: valid TOML, almost-TOML and noise.
value_text = (st.integers().map(str) | st.floats().map(str) | st.text(max_size=12).map(json.dumps) | st.text(max_size=12)
              | st.sampled_from(["true", "[1, 2]", "[64, 0]", "{a = 1}", "inf", "nan", "-1", "1e400", "'x'", "[[1]", "1979-05-27", "[" * 30]))


def one_line_or_value(load):
    """Call ``load``; a UserError is fine when its message is one line. Returns the value or None."""
    try:
        return load()
    except UserError as err:
        assert "\n" not in str(err) and str(err), repr(str(err))
        return None


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


toml_lines = st.lists(
    st.builds(lambda s: f"[{s}]", names) | st.builds(lambda k, v: f"{k} = {v}", dotted, value_text) | st.text(max_size=30), max_size=10)


@FUZZ
@given(lines=toml_lines, suffix=st.sampled_from([".toml", ".yaml", ".yml"]))
def test_config_files(scratch, lines, suffix):
    path = scratch / f"config{suffix}"
    path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    one_line_or_value(lambda: load_config(path))


@FUZZ
@given(data=st.binary(max_size=200))
def test_config_file_bytes(scratch, data):
    path = scratch / "bytes.toml"
    path.write_bytes(data)
    one_line_or_value(lambda: load_config(path))


DEFAULTS = Config().to_dict()
PAIRS = [(s, f) for s in SECTIONS for f in sorted(Config.model_fields[s].annotation.model_fields)]


def near_valid(pair: tuple[str, str]) -> st.SearchStrategy:
    """A value for a real key: its default, anything, or (model.kwargs) a table of anything."""
    section, key = pair
    value = st.just(DEFAULTS[section].get(key)) | values
    if pair == ("model", "kwargs"):
        value = st.dictionaries(names, values, max_size=3)
    return st.tuples(st.just(pair), value)


def nest(items: list) -> dict:
    raw: dict = {}
    for (section, key), value in items:
        raw.setdefault(section, {})[key] = value
    return raw


# Mostly real sections and keys, so that many configs are valid and the round trip below is exercised.
raw_configs = (st.lists(st.sampled_from(PAIRS).flatmap(near_valid), max_size=5).map(nest)
               | st.dictionaries(names, st.dictionaries(names, values, max_size=4) | values, max_size=4))


@FUZZ
@given(raw=raw_configs)
def test_config_dicts_and_saved_configs_reload(raw):
    config = one_line_or_value(lambda: build_config(raw))
    if config is not None:  # what a run directory saves as config.toml reads back as the same config
        assert build_config(tomllib.loads(dump_toml(config))) == config


@FUZZ
@given(sets=st.lists(st.builds(lambda k, v: f"{k}={v}", dotted, value_text) | st.text(max_size=30), max_size=6))
def test_set_overrides(sets):
    one_line_or_value(lambda: load_config(None, sets))


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)
history_lines = st.lists(json_values.map(json.dumps) | st.dictionaries(st.text(max_size=6), json_values, max_size=4).map(json.dumps)
                         | st.text(max_size=40) | st.sampled_from(["[" * 5000, '{"epoch": 1', "NaN", '{"a": NaN}']), max_size=8)


@FUZZ
@given(lines=history_lines)
def test_history_lines(scratch, lines):
    path = scratch / "history.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    history = one_line_or_value(lambda: History.load(path))
    if history is not None:
        assert all(isinstance(r, dict) for r in history)


@FUZZ
@given(data=st.binary(max_size=200))
def test_history_bytes(scratch, data):
    path = scratch / "history.jsonl"
    path.write_bytes(data)
    one_line_or_value(lambda: History.load(path))


def test_missing_history_is_a_user_error(scratch):
    with pytest.raises(UserError, match="cannot read history"):
        History.load(scratch / "absent.jsonl")
