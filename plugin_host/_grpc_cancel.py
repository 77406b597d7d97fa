"""Undo the native ``Task.cancel()`` grpclib uses to wake a call whose connection was lost.

grpclib's ``utils.Wrapper.cancel`` (called from ``H2Protocol.connection_lost``, that is, whenever a plugin process
dies mid-call) calls ``task.cancel()`` on the task waiting for the reply and turns the resulting CancelledError into
a ``StreamTerminatedError``, but never calls ``task.uncancel()``. The task's ``cancelling()`` count stays raised,
and every anyio cancel scope entered before then no longer recognises its own cancellation (anyio #1214): it lets
the CancelledError escape. In a DeviceManager runner that escape cancels the manager's whole task group (and the
code running inside it) the next time the plugin is removed, and the exception that was in flight is lost.

Every gRPC client of the host wraps its calls (and each step of a stream) in :func:`native_cancels_undone`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from contextlib import contextmanager

import anyio

__all__ = ["native_cancels_undone"]


@contextmanager
def native_cancels_undone() -> Iterator[None]:
    """Around one grpclib call: when it fails with anything but a cancellation, withdraw the cancel requests that
    landed on this task during the call, unless anyio really is cancelling the task (anyio counts its own)."""
    task = asyncio.current_task()
    before = task.cancelling() if task is not None else 0
    try:
        yield
    except asyncio.CancelledError:
        raise
    except BaseException:
        if task is not None and anyio.current_effective_deadline() != -math.inf:
            while task.cancelling() > before:
                task.uncancel()
        raise
