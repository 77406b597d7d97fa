"""Crash safety: a process killed at any instant leaves a state file that opens and holds every acknowledged change."""

from __future__ import annotations

import contextlib
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.registry import RegistryModel, apply_ops, churn_ops, task_ops

from plugin_host import Registry, SqliteStateStore

pytestmark = pytest.mark.anyio

CHILD = Path(__file__).resolve().parents[1] / "helpers" / "churn_child.py"
TESTS = CHILD.parents[1]  # the child imports helpers.registry from here
OPS = 5_000


def _churn_and_kill(args: list[str], acks_before_kill: int) -> list[str]:
    """Run the churn child with ``args``, SIGKILL it after that many acknowledgement lines; every line it printed."""
    proc = subprocess.Popen([sys.executable, str(CHILD), *args], stdout=subprocess.PIPE, text=True, cwd=TESTS)
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "ready"
        seen = [proc.stdout.readline() for _ in range(acks_before_kill)]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = "".join(seen).splitlines() + proc.stdout.read().splitlines()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return lines


@pytest.mark.parametrize("seed", range(20))
async def test_sigkill_at_a_random_moment_loses_no_acknowledged_change(tmp_path: Path, seed: int) -> None:
    """SIGKILL the churning child after a random number of acks: the file is intact and holds every ack."""
    path = tmp_path / "state.db"
    rng = random.Random(seed)
    acked_lines = _churn_and_kill([str(path), str(seed), str(OPS)], rng.randrange(1, 80))
    # Every index printed (read before or after the kill) is acknowledged.
    acked = int(acked_lines[-1]) + 1
    assert [int(line) for line in acked_lines] == list(range(acked))
    assert acked < OPS, "the child finished before it was killed; raise OPS"

    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()

    ops = churn_ops(seed, OPS)
    # The operation in flight at the kill may or may not have committed; nothing acknowledged may be missing.
    candidates = [apply_ops(RegistryModel(), ops[:acked]), apply_ops(RegistryModel(), ops[: acked + 1])]
    async with SqliteStateStore(path) as store, Registry(state=store) as registry:
        listing = await registry.list_plugins("csi-node")
        last_seq = registry.last_seq
        registrations = {}
        for name, alloc_id in {(info.name, info.alloc_id) for _, info in ops}:
            with contextlib.suppress(LookupError):
                registrations[(name, alloc_id)] = await registry.plugin_for_alloc("csi-node", name, alloc_id)
    matches = [
        model
        for model in candidates
        if model.listing("csi-node") == listing
        and model.seq == last_seq
        and {(k[1], k[2]): v[1] for k, v in model.regs.items()} == registrations
    ]
    assert matches, f"state after kill matches neither {acked} nor {acked + 1} acknowledged operations"


TASKS = 8


@pytest.mark.parametrize("seed", range(6))
async def test_sigkill_during_group_commits_loses_no_acknowledged_change(tmp_path: Path, seed: int) -> None:
    """SIGKILL a child whose 8 tasks churn at once (batched commits): every task's acknowledged changes survive."""
    path = tmp_path / "state.db"
    rng = random.Random(seed)
    lines = _churn_and_kill([str(path), str(seed), str(OPS), str(TASKS)], rng.randrange(20, 400))
    acked = dict.fromkeys(range(TASKS), 0)
    for line in lines:
        task, index = map(int, line.split())
        assert index == acked[task], f"task {task} acknowledged {index} out of order"
        acked[task] = index + 1
    assert sum(acked.values()) > 0

    async with SqliteStateStore(path) as store, Registry(state=store) as registry:
        listing = await registry.list_plugins("csi-node")
        last_seq = registry.last_seq
    seqs = 0
    for task in range(TASKS):
        ops = task_ops(seed, task, OPS)
        assert acked[task] < OPS, "a task finished before the kill; raise OPS"
        mine = [info for info in listing if info.name.startswith(f"t{task}p")]
        # The operation of each task in flight at the kill may or may not have committed.
        candidates = [apply_ops(RegistryModel(), ops[: acked[task] + extra]) for extra in (0, 1)]
        matching = [m for m in candidates if m.listing("csi-node") == mine]
        assert matching, f"task {task}: state matches neither {acked[task]} nor {acked[task] + 1} acknowledged ops"
        seqs += min(m.seq for m in matching)
    # Every acknowledged change has its event; at most one unacknowledged in-flight change per task on top.
    assert seqs <= last_seq <= seqs + TASKS
