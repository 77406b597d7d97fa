"""Helpers for the virt driver tests: an allocation directory, task configs, images and a recording qemu-img."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugin_host.driver.api import (
    AllocatedMemoryResources,
    AllocatedTaskResources,
    LinuxResources,
    Resources,
    TaskConfig,
)
from plugin_host.plugins.virt import VirtConfig


@dataclass(frozen=True)
class Layout:
    """A test's directories: allowed images, the plugin's data_dir, an allocation dir and somewhere outside."""

    images: Path
    data_dir: Path
    alloc_dir: Path
    outside: Path

    def plugin_config(self, uri: str = "test:///default") -> VirtConfig:
        """A plugin config allowing ``images`` and writing under ``data_dir``."""
        return VirtConfig(emulator={"uri": uri}, data_dir=str(self.data_dir), image_paths=(str(self.images),))

    def data_files(self) -> list[str]:
        """What the driver left in its data_dir (nothing when it was never created)."""
        return sorted(os.listdir(self.data_dir)) if self.data_dir.exists() else []


def make_layout(root: Path) -> Layout:
    """Create the directories of a :class:`Layout` under ``root`` (data_dir is left for the driver to create)."""
    layout = Layout(
        images=root / "images", data_dir=root / "data", alloc_dir=root / "alloc-1", outside=root / "outside"
    )
    for directory in (layout.images, layout.outside, layout.alloc_dir / "alloc", layout.alloc_dir / "web" / "local"):
        directory.mkdir(parents=True, exist_ok=True)
    return layout


def make_image(path: Path, size: str = "16M", fmt: str = "raw") -> Path:
    """A blank disk image made with the real qemu-img."""
    env = {**os.environ, "QEMU_IMG_UNRECORDED": "1"}
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, str(path), size], check=True, env=env)
    return path


def task_config(
    layout: Layout,
    task_id: str,
    *,
    memory_mb: int = 512,
    cpuset: str = "0",
    env: dict[str, str] | None = None,
    **driver_config: Any,
) -> TaskConfig:
    """A task ``web`` of allocation ``alloc-1`` with the given virt ``config {}`` keys."""
    return TaskConfig(
        id=task_id,
        name="web",
        alloc_id="alloc-1",
        alloc_dir=str(layout.alloc_dir),
        env=env if env is not None else {"GREETING": "hello world"},
        resources=Resources(
            nomad_resources=AllocatedTaskResources(memory=AllocatedMemoryResources(memory_mb=memory_mb)),
            linux_resources=LinuxResources(cpuset_cpus=cpuset),
        ),
        driver_config=driver_config,
    )


def recording_qemu_img(bin_dir: Path, log: Path) -> None:
    """Put a ``qemu-img`` in ``bin_dir`` that appends its arguments to ``log`` and runs the real one (the tests'
    own calls, marked with ``QEMU_IMG_UNRECORDED``, are not recorded)."""
    real = shutil.which("qemu-img")
    assert real is not None, "qemu-img (qemu-utils) must be installed"
    bin_dir.mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / "qemu-img"
    wrapper.write_text(f'#!/bin/sh\n[ -n "$QEMU_IMG_UNRECORDED" ] || echo "$*" >> {log}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)


def qemu_img_calls(log: Path) -> list[str]:
    """The argument lines the recording qemu-img saw."""
    return log.read_text().splitlines() if log.exists() else []
