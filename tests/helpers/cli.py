"""Driving the ``plugin-host`` command in tests: its output lines, and polling ``status``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream


async def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    with anyio.fail_after(20):
        return await anyio.run_process([sys.executable, "-m", "plugin_host", *args], cwd=cwd, check=False)


class Lines:
    """Reads a process's stdout line by line, each read bounded."""

    def __init__(self, process: Process) -> None:
        assert process.stdout is not None
        self._reader = BufferedByteReceiveStream(process.stdout)
        self.seen: list[str] = []

    async def until(self, wanted: str) -> None:
        with anyio.fail_after(15):
            while not any(line.startswith(wanted) for line in self.seen):
                self.seen.append((await self._reader.receive_until(b"\n", 1 << 16)).decode())


async def status_until(cwd: Path, device: str) -> dict[str, Any]:
    # Polling a separate process is the only way to observe the host from outside; bounded by tries.
    for _ in range(50):
        result = await run_cli(cwd, "status", "--json", "--config", "host.hcl")
        assert result.returncode == 0, result.stderr
        status: dict[str, Any] = json.loads(result.stdout)
        ids = {d["id"] for p in status["plugins"] for g in p["groups"] for d in g["devices"]}
        if device in ids:
            return status
    raise AssertionError(f"device {device!r} never appeared in plugin-host status")
