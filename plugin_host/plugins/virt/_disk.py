"""Disk images through ``qemu-img``: read an image's format and size, make a thin copy (a qcow2 overlay) of it."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import anyio

from plugin_host._text import truncated
from plugin_host.errors import DriverError, TaskConfigError

__all__ = ["ImageInfo", "check_image_files", "create_overlay", "image_info", "remove_files"]

logger = logging.getLogger(__name__)

QEMU_IMG = "qemu-img"
MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What ``qemu-img info`` says about an image."""

    format: str
    virtual_size: int
    """Bytes."""
    backing: str | None = None
    """The backing file as qemu reads it (``full-backing-filename``), if the image has one."""
    data_file: str | None = None
    """A qcow2 image's external data file, if it has one."""


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
        specific = data.get("format-specific", {}).get("data", {})
        backing = data.get("full-backing-filename") or data.get("backing-filename")
        return ImageInfo(
            format=str(data["format"]),
            virtual_size=int(data["virtual-size"]),
            backing=str(backing) if backing else None,
            data_file=str(specific["data-file"]) if specific.get("data-file") else None,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise DriverError(
            f"virt: `{QEMU_IMG} info` on {path!r} printed no format and virtual size: {out[:200]!r}"
        ) from exc


_MAX_CHAIN = 16
_PROTOCOL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _local_file(reference: str, image: str) -> str | None:
    """The real path of a file an image refers to; None when it is no plain local file (``json:``, ``nbd:``...)."""
    if not reference.startswith(os.sep) and _PROTOCOL.match(reference):
        return None
    return os.path.realpath(os.path.join(os.path.dirname(image), reference))


async def check_image_files(image: str, info: ImageInfo, allowed: Sequence[str], *, task_id: str) -> None:
    """Refuse an image that reads through a file outside ``allowed`` (real paths of directories): its backing
    chain and qcow2 external data files, followed without opening any file that is not allowed. Otherwise an image
    under an allowed path could hand the VM any file of the host, the allow-list notwithstanding."""
    current, current_info = image, info
    for _ in range(_MAX_CHAIN):
        for kind, reference in (("data file", current_info.data_file), ("backing file", current_info.backing)):
            if reference is None:
                continue
            path = _local_file(reference, current)
            if path is None or not any(_is_under(path, root) for root in allowed):
                shown = repr(path) if path is not None else f"{truncated(reference)} (not a local file)"
                raise TaskConfigError(
                    f"virt task {truncated(task_id)}: image: {truncated(image)} reads through the {kind} "
                    f"{shown} of {truncated(current)},"
                    f" which is outside the allowed image paths {list(allowed)}"
                )
        if current_info.backing is None:
            return
        current = _local_file(current_info.backing, current) or current_info.backing
        current_info = await image_info(current)
    raise TaskConfigError(
        f"virt task {truncated(task_id)}: image: {truncated(image)} has a backing chain deeper than {_MAX_CHAIN}"
    )


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
