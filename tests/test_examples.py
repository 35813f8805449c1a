"""Every example's config, and every `trainwise train` command in its README, validates against the schema (no training)."""
import shlex
from pathlib import Path

import pytest

import trainwise

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CONFIGS = sorted(p for p in EXAMPLES.rglob("*.toml") if not p.name.startswith("search_space"))
COMMANDS = sorted((readme, line.strip()) for readme in EXAMPLES.glob("*/README.md")
                  for line in readme.read_text().splitlines() if line.strip().startswith("trainwise train "))


def test_every_example_has_a_readme():
    dirs = [d for d in EXAMPLES.iterdir() if d.is_dir()]
    assert dirs and all((d / "README.md").is_file() for d in dirs)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_config_is_valid(path):
    trainwise.load_config(path)


@pytest.mark.parametrize("readme, command", COMMANDS, ids=lambda v: v if isinstance(v, str) else v.parent.name)
def test_readme_train_command_is_valid(readme, command):
    args = shlex.split(command.split("#")[0])[2:]
    config = EXAMPLES.parent / args[0]
    overrides = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    assert config.is_file(), f"{readme}: {args[0]} does not exist"
    trainwise.load_config(config, overrides)
