"""Disk images through ``qemu-img``: read an image's format and size, make a thin copy (a qcow2 overlay) of it."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

import anyio

from plugin_host.errors import DriverError

__all__ = ["ImageInfo", "create_overlay", "image_info", "remove_files"]

logger = logging.getLogger(__name__)

QEMU_IMG = "qemu-img"
MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What ``qemu-img info`` says about an image."""

    format: str
    virtual_size: int
    """Bytes."""


async def _qemu_img(*args: str) -> str:
    try:
        result = await anyio.run_process([QEMU_IMG, *args], check=False)
    except OSError as exc:
        raise DriverError(f"virt: cannot run {QEMU_IMG!r}: {exc.strerror or exc}; is qemu-utils installed?") from exc
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace").strip()
        raise DriverError(f"virt: `{QEMU_IMG} {' '.join(args)}` failed (exit {result.returncode}): {stderr}")
    return result.stdout.decode(errors="replace")


async def image_info(path: str) -> ImageInfo:
    """The format and virtual size of the image at ``path`` (``qemu-img info --output=json``)."""
    out = await _qemu_img("info", "--output=json", path)
    try:
        data = json.loads(out)
        return ImageInfo(format=str(data["format"]), virtual_size=int(data["virtual-size"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise DriverError(
            f"virt: `{QEMU_IMG} info` on {path!r} printed no format and virtual size: {out[:200]!r}"
        ) from exc


async def create_overlay(base: str, base_info: ImageInfo, dest: str, size_mb: int | None) -> int:
    """Create ``dest``, a qcow2 overlay backed by ``base``; return its virtual size in bytes.

    The size is the larger of the base's virtual size and ``size_mb``: an overlay smaller than its base would cut
    the guest's filesystem short.
    """
    size = max(base_info.virtual_size, (size_mb or 0) * MB)
    logger.info("virt: thin copy of %s (%s) at %s, %d bytes", base, base_info.format, dest, size)
    try:
        await _qemu_img("create", "-f", "qcow2", "-b", base, "-F", base_info.format, dest, str(size))
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_remove_quietly, dest)
        raise
    os.chmod(dest, 0o600)
    return size


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("virt: cannot remove %s: %s", path, exc)


def remove_files(*paths: str | None) -> None:
    """Remove each path that exists (blocking)."""
    for path in paths:
        if path:
            _remove_quietly(path)
