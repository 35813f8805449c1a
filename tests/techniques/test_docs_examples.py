"""The TOML examples in docs/techniques.md are valid configs."""

import re
import tomllib

import pytest

from tests.helpers import ROOT
from trainwise.config import build_config

BLOCKS = re.findall(r"```toml\n(.*?)```", (ROOT / "docs" / "techniques.md").read_text(), re.S)


@pytest.mark.parametrize("block", BLOCKS, ids=[f"example{i}" for i in range(len(BLOCKS))])
def test_docs_example_is_a_valid_config(block):
    build_config(tomllib.loads(block))


def test_there_are_examples():
    assert len(BLOCKS) >= 6
