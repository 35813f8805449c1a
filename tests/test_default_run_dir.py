"""The run directory a `trainwise train` without --out gets is its own, even for trainings started together."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from trainwise.api import default_run_dir
from trainwise.config import Config


def test_trainings_started_in_the_same_second_get_directories_of_their_own(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = Config()
    with ThreadPoolExecutor(8) as pool:
        dirs = list(pool.map(lambda _: default_run_dir(cfg), range(8)))
    assert len(set(dirs)) == 8 and all(d.is_dir() and d.parent == (tmp_path / "runs").relative_to(tmp_path) for d in dirs)
    assert all(d.name.startswith("digits-mlp-") for d in dirs)


def test_an_outside_launchers_ranks_agree_on_one_unclaimed_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = default_run_dir(Config(), claim=False)
    assert not name.exists() and name.parent.name == "runs"
