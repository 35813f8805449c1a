"""Search against a real PostgreSQL server: two worker processes on one study, and a second search
directory (another machine) joining the same study by name.

The fixture starts a throw-away server from Debian's postgresql package (installing it with apt-get
when it is missing and this runs as root), in a temporary directory, on 127.0.0.1 and a free port, and
stops it afterwards. It skips, saying why, where any step is impossible.
"""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from trainwise import load_config
from trainwise.tools.search import load_space, search

pytestmark = pytest.mark.postgres


def _pg_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(versions[-1]).parent if versions else None


def _install_postgres() -> str | None:
    """Install Debian's postgresql package; return why not, or None on success."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "PostgreSQL is not installed and this is not root with apt-get to install it"
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"]):
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        except subprocess.TimeoutExpired:
            return f"{' '.join(cmd)} took longer than 300 s"
        if proc.returncode != 0:
            return f"{' '.join(cmd)} failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    pytest.importorskip("psycopg2", reason="no PostgreSQL driver: pip install psycopg2-binary (pinned in requirements.txt)")
    if _pg_bin() is None:
        why = _install_postgres()
        if why or _pg_bin() is None:
            pytest.skip(f"cannot run a PostgreSQL server: {why or 'pg_ctl not found after installing postgresql'}")
    bin_dir = _pg_bin()
    root = Path(tempfile.mkdtemp(prefix="trainwise-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root: run it as the package's postgres user
        try:
            shutil.chown(root, "postgres", "postgres")
        except (LookupError, PermissionError) as err:
            shutil.rmtree(root, ignore_errors=True)
            pytest.skip(f"running as root and there is no usable 'postgres' user: {err}")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()

    def pg(*cmd, timeout=60):
        return subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=timeout)

    steps = [
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "trainwise", "-A", "trust", "--no-sync", "-E", "UTF8"],
        [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "30", "-o",
         f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} -c fsync=off", "start"],
        [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "trainwise", "trainwise_test"],
    ]
    started = False
    try:
        for cmd in steps:
            proc = pg(*cmd)
            if proc.returncode != 0:
                log = (root / "server.log").read_text()[-500:] if (root / "server.log").exists() else ""
                pytest.skip(f"cannot start PostgreSQL: {Path(cmd[0]).name} failed: {(proc.stderr or proc.stdout).strip()[-300:]} {log}")
            started = started or cmd[-1] == "start"
        yield f"postgresql://trainwise:not-a-secret@127.0.0.1:{port}/trainwise_test"
    finally:
        if started:
            pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_and_a_second_machine_share_a_postgres_study(postgres_url, tmp_path):
    space = tmp_path / "space.toml"
    space.write_text("[optim.lr]\nlow = 1e-3\nhigh = 3e-2\nlog = true\n")
    cfg = load_config(None, {"train.threads": 1, "model.hidden": [16], "train.epochs": 2})

    first = search(cfg, load_space(space), 2, tmp_path / "machine-a", sampler="random", pruner="none", storage=postgres_url,
                   workers=2, study_name="shared")
    trials = first.study.get_trials()
    assert len(trials) == 2 and all(t.state.name == "COMPLETE" for t in trials)
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # two processes wrote into one study

    # "Another machine": another search directory, the same storage and study name; it continues to 3.
    second = search(cfg, load_space(space), 3, tmp_path / "machine-b", sampler="random", pruner="none", storage=postgres_url,
                    study_name="shared")
    assert len(second.study.get_trials()) == 3
    assert (tmp_path / "machine-b" / "trials" / "trial-0002").is_dir()
    assert len((tmp_path / "machine-b" / "trials.csv").read_text().splitlines()) == 4  # header + all 3 trials of the study
    assert "not-a-secret" not in (tmp_path / "machine-b" / "search.json").read_text()
    assert "***" in second.summary["storage"]
