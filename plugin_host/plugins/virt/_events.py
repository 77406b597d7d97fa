"""libvirt's event loop on asyncio: libvirtaio, registered once per process and bound to the running loop.

libvirt accepts one event implementation per process and calls it from whichever thread talks to libvirt; the
driver makes its blocking libvirt calls in worker threads. libvirtaio drives the asyncio loop directly, which is only
safe from the loop's own thread. So a small bridge is registered with libvirt once: it hands out watch and timer
ids at once, on any thread, and applies each operation to a libvirtaio implementation on the loop, in order, with
``call_soon_threadsafe``. A new loop (a new ``asyncio.run``) gets its own libvirtaio implementation and takes over
the watches and timers still registered (libvirt objects can outlive the loop they were made on); the loop is never
created here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

import libvirt
import libvirtaio

from plugin_host.errors import DriverError

__all__ = ["bind_event_loop", "settle"]

logger = logging.getLogger(__name__)


class _Target:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.impl = libvirtaio.virEventAsyncIOImpl(loop=loop)
        # bridge id -> libvirtaio id
        self.ids: dict[int, int] = {}


class _Bridge:
    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._target: _Target | None = None
        # Every live watch and timer, so a new loop can take them over: libvirt objects (a connection leaked by its
        # owner, the test driver's shared event state) outlive the loop they were registered on.
        self._handles: dict[int, list[Any]] = {}  # id -> [fd, event, cb, opaque]
        self._timers: dict[int, list[Any]] = {}  # id -> [timeout, cb, opaque]
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            target = self._target
            if target is not None and target.loop is loop:
                return
            if target is not None and not target.loop.is_closed() and target.loop.is_running():
                raise DriverError("virt: libvirt events already run on another event loop that is still running")
            self._target = _Target(loop)
            for wid, (fd, event, cb, opaque) in self._handles.items():
                self._submit(self._add_handle_op(wid, fd, event, cb, opaque))
            for tid, (timeout, cb, opaque) in self._timers.items():
                self._submit(self._add_timeout_op(tid, timeout, cb, opaque))

    def _submit(self, op: Callable[[_Target], Any]) -> None:
        # Called with self._lock held, so operations reach the loop in the order libvirt made them.
        target = self._target
        if target is None or target.loop.is_closed():
            return

        def apply() -> None:
            if self._target is target:
                try:
                    op(target)
                except Exception:
                    logger.exception("virt: libvirt event operation failed")

        # RuntimeError: the loop closed between the check and the call.
        with contextlib.suppress(RuntimeError):
            target.loop.call_soon_threadsafe(apply)

    @staticmethod
    def _add_handle_op(wid: int, fd: int, event: int, cb: Any, opaque: Any) -> Callable[[_Target], None]:
        return lambda t: t.ids.__setitem__(wid, t.impl._add_handle(fd, event, cb, opaque))

    @staticmethod
    def _add_timeout_op(tid: int, timeout: int, cb: Any, opaque: Any) -> Callable[[_Target], None]:
        return lambda t: t.ids.__setitem__(tid, t.impl._add_timeout(timeout, cb, opaque))

    def add_handle(self, fd: int, event: int, cb: Any, opaque: Any) -> int:
        with self._lock:
            wid = next(self._ids)
            self._handles[wid] = [fd, event, cb, opaque]
            self._submit(self._add_handle_op(wid, fd, event, cb, opaque))
        return wid

    def update_handle(self, wid: int, event: int) -> None:
        def op(t: _Target) -> None:
            if wid in t.ids:
                t.impl._update_handle(t.ids[wid], event)

        with self._lock:
            if wid in self._handles:
                self._handles[wid][1] = event
            self._submit(op)

    def remove_handle(self, wid: int) -> int:
        def op(t: _Target) -> None:
            if wid in t.ids:
                t.impl._remove_handle(t.ids.pop(wid))

        with self._lock:
            self._handles.pop(wid, None)
            self._submit(op)
        return 0

    def add_timeout(self, timeout: int, cb: Any, opaque: Any) -> int:
        with self._lock:
            tid = next(self._ids)
            self._timers[tid] = [timeout, cb, opaque]
            self._submit(self._add_timeout_op(tid, timeout, cb, opaque))
        return tid

    def update_timeout(self, tid: int, timeout: int) -> None:
        def op(t: _Target) -> None:
            if tid in t.ids:
                t.impl._update_timeout(t.ids[tid], timeout)

        with self._lock:
            if tid in self._timers:
                self._timers[tid][0] = timeout
            self._submit(op)

    def remove_timeout(self, tid: int) -> int:
        def op(t: _Target) -> None:
            if tid in t.ids:
                t.impl._remove_timeout(t.ids.pop(tid))

        with self._lock:
            self._timers.pop(tid, None)
            self._submit(op)
        return 0


_bridge: _Bridge | None = None
_lock = threading.Lock()


def _quiet_errors(_ctx: object, error: tuple[Any, ...]) -> None:
    # libvirt prints every error to stderr unless a handler is set; errors reach callers as exceptions anyway.
    logger.debug("virt: libvirt error: %s", error[2] if len(error) > 2 else error)


def bind_event_loop() -> None:
    """Have libvirt dispatch its events (domain lifecycle, keepalive, connection close) on the running loop.

    Call it from a coroutine before opening a connection. Registers with libvirt on the first call of the
    process; later calls on the same loop do nothing.
    """
    global _bridge
    loop = asyncio.get_running_loop()
    with _lock:
        if _bridge is None:
            bridge = _Bridge()
            try:
                libvirt.virEventRegisterImpl(
                    bridge.add_handle,
                    bridge.update_handle,
                    bridge.remove_handle,
                    bridge.add_timeout,
                    bridge.update_timeout,
                    bridge.remove_timeout,
                )
            except RuntimeError as exc:
                raise DriverError(
                    "virt: another libvirt event loop implementation is registered in this process;"
                    f" the virt driver needs its own: {exc}"
                ) from exc
            libvirt.registerErrorHandler(_quiet_errors, None)
            _bridge = bridge
        _bridge.bind(loop)


async def settle() -> None:
    """Wait until the event operations queued so far (e.g. by closing a connection) were applied on this loop."""
    loop = asyncio.get_running_loop()
    for _ in range(2):
        done: asyncio.Future[None] = loop.create_future()

        def resolve(future: asyncio.Future[None] = done) -> None:
            if not future.done():
                future.set_result(None)

        loop.call_soon_threadsafe(resolve)
        await done
