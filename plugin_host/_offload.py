"""Pure CPU work that may be too long for the event loop: small jobs inline, large ones in a worker thread.

A Kubernetes device plugin may list 100,000 devices in one message; decoding and converting them takes hundreds of
milliseconds of pure Python, during which no other plugin, admin request or signal would be served. The work is
moved to a worker thread rather than cut into chunks: it is one function call with no await points to yield at,
and a thread holding the GIL still lets the loop run every switch interval (``sys.getswitchinterval()``, 5 ms),
so the loop is never blocked for longer than that. Small jobs stay inline: a thread hop costs more than they do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, TypeVarTuple, Unpack

import anyio

__all__ = ["INLINE_ITEMS", "cpu_bound"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

INLINE_ITEMS = 2_000
"""Jobs over fewer items than this (devices, mostly: a few ms of work) run inline."""


async def cpu_bound(items: int, func: Callable[[Unpack[Ts]], T], *args: *Ts) -> T:
    """``func(*args)``: inline when ``items`` is below :data:`INLINE_ITEMS`, else in a worker thread.

    ``func`` must be pure (touch nothing the loop changes meanwhile): on cancellation its result is abandoned.
    """
    if items < INLINE_ITEMS:
        return func(*args)
    return await anyio.to_thread.run_sync(func, *args, abandon_on_cancel=True)
