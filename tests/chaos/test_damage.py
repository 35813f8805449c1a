"""Byte damage to the files of a run directory, then the commands that read them.

Each case overwrites 32 bytes inside one file of a finished run and runs one command: it must give the
undamaged run's result (the damage did not matter, or a fallback such as previous.pt took over) or
refuse in one line; never a traceback, never a different result with exit 0, and a read command never
writes into the run. benchmarks/chaos.py runs every file against every command with several damages.
"""

from __future__ import annotations

import zlib

import pytest

from tests.chaos.harness import READ_COMMANDS, READS, copy_run, damage, fill, invoke, judge, normalized, same_end, snapshot

CASES = [(command, name) for command, names in READS.items() for name in names]
_expected: dict[str, object] = {}


def expected(command, pristine, twin, inputs, tmp_path_factory):
    """The command's output on an undamaged copy (at the same path as the damaged ones)."""
    if command not in _expected:
        run = copy_run(pristine, tmp_path_factory.getbasetemp() / "expected" / "run")
        _expected[command] = run_command(command, run, twin, inputs)
    return _expected[command]


def run_command(command, run, twin, inputs):
    args = READ_COMMANDS.get(command) or ["resume", "{run}"]
    result = invoke(fill(args, run=run, other=twin, x=inputs))
    result.out = normalized(result.out, run, twin)
    result.files = snapshot(run)
    return result


@pytest.mark.parametrize(("command", "name"), CASES, ids=[f"{c}:{n}" for c, n in CASES])
def test_damaged_file_then_command(command, name, pristine, twin, inputs, tmp_path_factory):
    want = expected(command, pristine, twin, inputs, tmp_path_factory)
    run = copy_run(pristine, tmp_path_factory.getbasetemp() / "expected" / "run")
    where = damage(run / name, seed=zlib.crc32(f"{command}:{name}".encode()))
    before = snapshot(run)
    got = run_command(command, run, twin, inputs)
    if command == "resume" and got.code == 0 and got.out != want.out:  # it recovered (e.g. from previous.pt) and trained to the end
        got.out = want.out if same_end(run, pristine) else got.out
    outcome = judge(got, want, read_only=command != "resume", before=before, allowed_writes=("report.html",))
    assert outcome == "ok", f"{outcome}: {command} after damaging {name} ({where}): exit {got.code}\n{got.err[-600:]}\n{got.out[-300:]}"


def test_a_damaged_final_weights_file_is_named(pristine, twin, inputs, tmp_path):
    run = copy_run(pristine, tmp_path / "run")
    damage(run / "checkpoints" / "final.safetensors", seed=1)
    for args in (["evaluate", str(run)], ["predict", str(run), str(inputs)]):
        got = invoke(args)
        assert got.code == 2 and f"{run}/checkpoints/final.safetensors is damaged" in got.err, got.err


@pytest.mark.parametrize("where", ["tensor data", "anywhere"])
def test_a_damaged_last_checkpoint_falls_back_to_previous(where, pristine, tmp_path, caplog):
    run = copy_run(pristine, tmp_path / "run")
    last = run / "checkpoints" / "last.pt"
    if where == "tensor data":  # bytes inside a tensor: the file still loads, only the checksum tells
        data = bytearray(last.read_bytes())
        offset = data.find(b"data/0") + 4096
        data[offset:offset + 32] = bytes(range(32))
        last.write_bytes(bytes(data))
    else:
        damage(last, seed=2)
    got = invoke(["resume", str(run)])
    assert got.code == 0, got.err
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("last.pt is corrupt or truncated" in w and "resuming from" in w for w in warnings), warnings
    if where == "tensor data":
        assert any("(ValueError: damaged: its SHA-256 is" in w for w in warnings), warnings
    assert (run / "checkpoints" / "last.pt.corrupt").is_file()
    from tests.helpers import same_weights
    from trainwise.checkpointing import load_weights

    assert same_weights(load_weights(run / "checkpoints" / "final.safetensors"), load_weights(pristine / "checkpoints" / "final.safetensors"))


@pytest.mark.parametrize("command", list(READ_COMMANDS))
def test_read_commands_write_nothing_into_the_run(command, pristine, twin, inputs, tmp_path):
    run = copy_run(pristine, tmp_path / "run")
    before = snapshot(run)
    got = invoke(fill(READ_COMMANDS[command], run=run, other=twin, x=inputs))
    assert got.code == 0, got.err
    after = snapshot(run)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert changed <= ({"report.html"} if command == "report" else set()), changed
