"""Manager: runs a :class:`~plugin_host.kubelet.export.api.Scanner` and serves each device type it reports to kubelet.

After Intel's ``deviceplugin.Manager``: the scanner's trees go through a diffing notifier; a type that appears gets
its own :class:`~plugin_host.kubelet.export.server.DeviceTypeServer` (socket ``<plugin_dir>/<namespace>-<type>.sock``,
resource ``<namespace>/<type>``), a type whose devices change gets the new list, a type that disappears is stopped.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from plugin_host._metrics import NO_METRICS, Metrics
from plugin_host._service import TaskGroupService
from plugin_host.errors import ConfigError, InvalidPluginError, PluginNotFoundError
from plugin_host.kubelet import _names
from plugin_host.kubelet.api import DEFAULT_PLUGIN_DIR
from plugin_host.kubelet.export._notifier import Devices, DiffNotifier, TreeUpdate
from plugin_host.kubelet.export.api import DEFAULT_CDI_DIR, Scanner
from plugin_host.kubelet.export.server import DeviceTypeServer, check_settings

__all__ = ["Manager"]

logger = logging.getLogger(__name__)

_CLOSE_TIMEOUT = 10.0


class Manager(TaskGroupService):
    """Serve every device type ``scanner`` reports to kubelet, for the lifetime of an ``async with`` block.

    Entering starts ``scanner.scan(notifier)`` in the manager's task group. If the scan returns, the last picture
    stays served; if it raises, or a type's server cannot start (its socket is served by another live process:
    :class:`~plugin_host.errors.SocketInUseError`), the manager stops and the error propagates from the ``async with``
    block. Leaving stops every server (their sockets are removed) and the scan.

    The other keyword arguments are those of :class:`~plugin_host.kubelet.export.server.DeviceTypeServer`.
    """

    def __init__(
        self,
        namespace: str,
        scanner: Scanner,
        *,
        plugin_dir: str | os.PathLike[str] = DEFAULT_PLUGIN_DIR,
        cdi_dir: str | os.PathLike[str] = DEFAULT_CDI_DIR,
        register_timeout: float = 10.0,
        register_backoff_initial: float = 0.1,
        register_backoff_max: float = 5.0,
        watch_interval: float = 0.1,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        problem = _names.namespace_problem(namespace)
        if problem is not None:
            raise ConfigError(f"kubelet namespace {namespace!r} is invalid: {problem}")
        if not callable(getattr(scanner, "scan", None)):
            raise InvalidPluginError(f"scanner must have an async scan(notifier) method, got {type(scanner).__name__}")
        check_settings(register_timeout, register_backoff_initial, register_backoff_max, watch_interval)
        self._namespace = namespace
        self._scanner = scanner
        self._server_options: dict[str, Any] = {
            "plugin_dir": Path(plugin_dir),
            "cdi_dir": Path(cdi_dir),
            "register_timeout": register_timeout,
            "register_backoff_initial": register_backoff_initial,
            "register_backoff_max": register_backoff_max,
            "watch_interval": watch_interval,
            "metrics": metrics,
        }
        self._servers: dict[str, DeviceTypeServer] = {}
        self._changed: anyio.Event | None = None
        self._send: MemoryObjectSendStream[TreeUpdate] | None = None
        super().__init__()

    @property
    def namespace(self) -> str:
        """The domain of every resource name."""
        return self._namespace

    def device_types(self) -> tuple[str, ...]:
        """The device types being served, sorted."""
        return tuple(sorted(self._servers))

    def server(self, dev_type: str) -> DeviceTypeServer:
        """The server of ``dev_type``; :class:`PluginNotFoundError` when that type is not served."""
        try:
            return self._servers[dev_type]
        except KeyError:
            raise PluginNotFoundError(
                f"device type {dev_type!r} is not served by the {self._namespace} manager;"
                f" served: {list(self.device_types())}"
            ) from None

    async def wait_for_device_types(self, predicate: Callable[[tuple[str, ...]], bool]) -> tuple[str, ...]:
        """Return the served types once ``predicate`` holds for them (bound it with ``anyio.fail_after``)."""
        while True:
            types = self.device_types()
            if predicate(types):
                return types
            assert self._changed is not None, "the manager is not running"
            await self._changed.wait()

    # --- lifecycle ------------------------------------------------------------------------------------------------

    def _service_refused(self, lifecycle: str) -> Exception:
        return RuntimeError(f"this kubelet Manager was already {lifecycle}; create a new one")

    async def _service_start(self, tg: TaskGroup) -> None:
        self._changed = anyio.Event()
        send, receive = anyio.create_memory_object_stream[TreeUpdate](math.inf)
        self._send = send
        notifier = DiffNotifier(send.send_nowait)
        tg.start_soon(self._scan, notifier)
        tg.start_soon(self._apply_updates, receive)

    def _service_stop_timeout(self) -> float:
        return _CLOSE_TIMEOUT

    async def _service_stop(self) -> None:
        try:
            for dev_type in list(self._servers):
                await self._stop_type(dev_type)
        finally:
            if self._send is not None:
                self._send.close()

    async def _scan(self, notifier: DiffNotifier) -> None:
        # The update stream stays open when the scan returns: the last picture keeps being served.
        await self._scanner.scan(notifier)
        logger.info("the %s scanner finished; its last devices stay served", self._namespace)

    async def _apply_updates(self, receive: MemoryObjectReceiveStream[TreeUpdate]) -> None:
        async with receive:
            async for update in receive:
                for dev_type in sorted(update.removed):
                    await self._stop_type(dev_type)
                for dev_type, devices in update.updated.items():
                    server = self._servers.get(dev_type)
                    if server is not None:
                        server.update(devices)
                for dev_type, devices in sorted(update.added.items()):
                    await self._start_type(dev_type, devices)
                self._signal_changed()

    async def _start_type(self, dev_type: str, devices: Devices) -> None:
        assert self._tg is not None
        server = DeviceTypeServer(self._namespace, dev_type, hooks=self._scanner, **self._server_options)
        server.update(devices)
        await self._tg.start(self._run_server, server)
        self._servers[dev_type] = server
        logger.info("device type %s/%s appeared with %d devices", self._namespace, dev_type, len(devices))

    async def _run_server(self, server: DeviceTypeServer, *, task_status: TaskStatus[None]) -> None:
        async with server:
            task_status.started()
            await server.wait_stopped()

    async def _stop_type(self, dev_type: str) -> None:
        server = self._servers.pop(dev_type, None)
        if server is not None:
            logger.info("device type %s/%s disappeared", self._namespace, dev_type)
            await server.stop()
            self._signal_changed()

    def _signal_changed(self) -> None:
        assert self._changed is not None
        changed, self._changed = self._changed, anyio.Event()
        changed.set()
