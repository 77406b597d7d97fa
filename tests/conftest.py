"""Shared fixtures: the anyio backend pinned to asyncio, and short temporary directories for Unix sockets."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """grpclib is asyncio-only, so every async test runs on asyncio."""
    return "asyncio"


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary directory with a short path: Unix socket paths are limited to 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="ph-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
