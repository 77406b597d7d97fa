"""Helpers for the task driver tests: raw-exec task configs and FIFOs that let a test decide when a task exits."""

from __future__ import annotations

import os
from pathlib import Path

import anyio

from plugin_host.driver.api import TaskConfig


def task(task_id: str, script: str, **extra: object) -> TaskConfig:
    """A raw-exec task running ``sh -c script``."""
    return TaskConfig.model_validate(
        {"id": task_id, "name": task_id, "driver_config": {"command": "sh", "args": ["-c", script]}, **extra}
    )


def make_fifo(directory: Path, name: str = "gate") -> Path:
    """A FIFO: a task blocks reading it until the test writes a line."""
    path = directory / name
    os.mkfifo(path)
    return path


def gated(task_id: str, fifo: Path, code: int) -> TaskConfig:
    """A task that waits for a line on ``fifo``, then exits with ``code``."""
    return task(task_id, f"read line < {fifo}; exit {code}")


async def release(fifo: Path) -> None:
    """Let a gated task go (opening the FIFO for writing waits until the task reads it)."""
    await anyio.to_thread.run_sync(lambda: fifo.write_text("go\n"))


async def read_line(fifo: Path) -> str:
    """Wait for a task to write a line to ``fifo``."""
    return await anyio.to_thread.run_sync(fifo.read_text)
