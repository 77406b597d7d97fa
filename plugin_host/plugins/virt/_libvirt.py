"""One libvirt connection that heals: opened on first use, reopened when libvirtd went away and came back.

Blocking libvirt calls run in worker threads. Domain lifecycle events and the connection's close reach the
driver on the event loop through :mod:`._events`. After a reopen the driver is told (``on_reconnect``) so it can
read back the state of its domains: events sent while the connection was down are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import libvirt

from plugin_host.errors import DriverError
from plugin_host.plugins.virt._config import EmulatorConfig
from plugin_host.plugins.virt._events import bind_event_loop, settle

__all__ = ["LibvirtConnection", "LifecycleCallback"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
LifecycleCallback = Callable[[str, int, int], None]
"""Called on the event loop with (domain name, lifecycle event, detail)."""


class LibvirtConnection:
    """A self-healing connection to the libvirt of ``emulator.uri``."""

    def __init__(
        self,
        emulator: EmulatorConfig,
        *,
        on_lifecycle: LifecycleCallback,
        on_reconnect: Callable[[], Awaitable[None]],
    ) -> None:
        self._emulator = emulator
        self._on_lifecycle = on_lifecycle
        self._on_reconnect = on_reconnect
        self._conn: libvirt.virConnect | None = None
        self._callback_id: int | None = None
        self._lost = False
        self._ever_opened = False
        self._open_lock = anyio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._changed = anyio.Event()
        self.last_error: str | None = None
        """Why the last attempt to reach libvirt failed; None while connected."""

    @property
    def uri(self) -> str:
        """The libvirt URI."""
        return self._emulator.uri

    async def wait_changed(self) -> None:
        """Return when the connection was lost or (re)opened after this call began."""
        await self._changed.wait()

    def _notify_changed(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def _on_loop(self, fn: Callable[[], None]) -> None:
        # libvirt may call back on a worker thread (the one that noticed the close).
        if self._loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            fn()
        else:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(fn)

    # --- callbacks from libvirt -------------------------------------------------------------------------------

    def _lifecycle(self, _conn: Any, dom: Any, event: int, detail: int, _opaque: Any) -> None:
        name = dom.name()
        self._on_loop(lambda: self._on_lifecycle(name, event, detail))

    def _closed(self, conn: Any, reason: int, _opaque: Any) -> None:
        def mark() -> None:
            if conn is self._conn:
                logger.warning("virt: connection to libvirt at %s closed (reason %d)", self.uri, reason)
                self._lost = True
                self._notify_changed()

        self._on_loop(mark)

    # --- opening and closing ----------------------------------------------------------------------------------

    def _open_blocking(self) -> libvirt.virConnect:
        user = self._emulator.user
        password = self._emulator.password
        if user is None and password is None:
            conn = libvirt.open(self.uri)
        else:

            def credentials(creds: list[list[Any]], _opaque: Any) -> int:
                for cred in creds:
                    if cred[0] == libvirt.VIR_CRED_AUTHNAME:
                        cred[4] = user or ""
                    elif cred[0] == libvirt.VIR_CRED_PASSPHRASE:
                        cred[4] = password.get_secret_value() if password is not None else ""
                return 0

            auth = [[libvirt.VIR_CRED_AUTHNAME, libvirt.VIR_CRED_PASSPHRASE], credentials, None]
            conn = libvirt.openAuth(self.uri, auth, 0)
        try:
            self._callback_id = conn.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._lifecycle, None
            )
        except libvirt.libvirtError:
            conn.close()
            raise
        optional_steps: list[Callable[[], object]] = [
            lambda: conn.registerCloseCallback(self._closed, None),
            lambda: conn.setKeepAlive(5, 3),
        ]
        for optional in optional_steps:
            # Only remote connections (qemu:///system goes through libvirtd) have a close callback and keepalive;
            # keepalive notices a dead daemon even while no call is running.
            try:
                optional()
            except libvirt.libvirtError as exc:
                logger.debug("virt: %s: %s", self.uri, exc.get_error_message())
        return conn

    @staticmethod
    def _close_blocking(conn: libvirt.virConnect, callback_id: int | None) -> None:
        for step in (
            lambda: conn.domainEventDeregisterAny(callback_id) if callback_id is not None else None,
            conn.unregisterCloseCallback,
            conn.close,
        ):
            try:
                step()
            except libvirt.libvirtError as exc:
                logger.debug("virt: closing libvirt connection: %s", exc)

    async def connection(self) -> libvirt.virConnect:
        """The open connection; opened (or reopened after a loss) here. Unreachable libvirt: :class:`DriverError`."""
        conn = self._conn
        if conn is not None and not self._lost:
            return conn
        reopened = False
        async with self._open_lock:
            if self._conn is None or self._lost:
                await self._reopen()
                reopened = self._ever_opened
                self._ever_opened = True
            conn = self._conn
        assert conn is not None
        if reopened:
            await self._on_reconnect()
        return conn

    async def _reopen(self) -> None:
        bind_event_loop()
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        old, old_id = self._conn, self._callback_id
        self._conn, self._callback_id = None, None
        if old is not None:
            await anyio.to_thread.run_sync(self._close_blocking, old, old_id)
        try:
            self._conn = await anyio.to_thread.run_sync(self._open_blocking)
        except libvirt.libvirtError as exc:
            self.last_error = f"cannot connect to libvirt at {self.uri}: {exc.get_error_message() or exc}"
            raise DriverError(f"virt: {self.last_error}", recoverable=True) from exc
        self._lost = False
        if self.last_error is not None or old is not None:
            logger.info("virt: connected to libvirt at %s", self.uri)
        self.last_error = None
        self._notify_changed()

    async def run(self, fn: Callable[[libvirt.virConnect], T], *, retry: bool = True) -> T:
        """Run ``fn(connection)`` in a worker thread. When it fails because libvirt went away, reconnect and (with
        ``retry``) run it once more."""
        conn = await self.connection()
        try:
            return await anyio.to_thread.run_sync(fn, conn)
        except libvirt.libvirtError:
            if await anyio.to_thread.run_sync(_alive, conn):
                raise
            logger.warning("virt: libvirt connection to %s lost during a call; reconnecting", self.uri)
            if conn is self._conn:
                self._lost = True
                self._notify_changed()
            conn = await self.connection()
            if not retry:
                raise
            return await anyio.to_thread.run_sync(fn, conn)

    async def aclose(self) -> None:
        """Close the connection (if open) and let libvirt's event bookkeeping settle."""
        conn, callback_id = self._conn, self._callback_id
        self._conn, self._callback_id = None, None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._close_blocking, conn, callback_id)
                await settle()


def _alive(conn: libvirt.virConnect) -> bool:
    try:
        return bool(conn.isAlive())
    except libvirt.libvirtError:
        return False
