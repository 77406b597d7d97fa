"""Shared fixtures: the anyio backend pinned to asyncio, short temporary directories for Unix sockets, and one
virtual environment per session with the project installed the way a new user installs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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


@dataclass(frozen=True)
class InstalledVenv:
    """A virtual environment holding ``pip install <repo>`` (no extras) and nothing else."""

    path: Path
    env: dict[str, str]
    """The environment to run its programs in: no PYTHONPATH, so they import the installed package, not the tree."""

    def bin(self, name: str) -> Path:
        """A program of the environment, such as ``python`` or a console script."""
        return self.path / "bin" / name


def clean_environ() -> dict[str, str]:
    """os.environ without what would make a Python program import anything but its own environment's packages."""
    return {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")
    }


@pytest.fixture(scope="session")
def installed_venv() -> Iterator[InstalledVenv]:
    """A fresh venv with the working tree installed by plain ``pip install`` (built once per session, ~30 s)."""
    root = Path(tempfile.mkdtemp(prefix="ph-venv-"))
    env = clean_environ()
    try:
        # The base interpreter, not this venv's packages: `python -m venv` copies nothing of the current venv.
        subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, env=env, timeout=120)
        venv = InstalledVenv(path=root / "venv", env=env)
        subprocess.run(
            [str(venv.bin("python")), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(ROOT)],
            check=True,
            env=env,
            cwd=root,
            timeout=600,
        )
        yield venv
    finally:
        shutil.rmtree(root, ignore_errors=True)
