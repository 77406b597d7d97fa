"""The plugin process's lifecycle under go-plugin: ``GRPCController.Shutdown``, and the long-lived streams
(``GRPCStdio.StreamStdio``, ``GRPCBroker.StartStream``) that must end cleanly before the server closes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
from grpclib.const import Cardinality, Handler
from grpclib.server import Stream

from plugin_host._proto import plugin as wire

__all__ = ["CONTROLLER_SERVICE", "ControllerService", "Lifecycle"]

logger = logging.getLogger(__name__)

CONTROLLER_SERVICE = "/plugin.GRPCController"


class Lifecycle:
    """When the plugin stops serving, and which long-lived streams are still open.

    ``stop()`` sets ``stopping``; streams held with ``hold()`` end themselves on it, and ``drained()`` waits for them
    so their clients see a clean end of stream rather than a reset.
    """

    def __init__(self) -> None:
        self.stopping = anyio.Event()
        self._open = 0
        self._idle = anyio.Event()
        self._idle.set()

    def stop(self) -> None:
        """Ask the plugin to stop serving (idempotent)."""
        self.stopping.set()

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Count a long-lived stream as open for the duration of the block."""
        if self._open == 0:
            self._idle = anyio.Event()
        self._open += 1
        try:
            yield
        finally:
            self._open -= 1
            if self._open == 0:
                self._idle.set()

    async def drained(self, within: float) -> bool:
        """Wait up to ``within`` seconds for every held stream to end; whether they all did."""
        with anyio.move_on_after(within):
            await self._idle.wait()
            # Let the handlers that just returned write their trailers before the server closes connections.
            await anyio.lowlevel.checkpoint()
            return True
        return False


class ControllerService:
    """``plugin.GRPCController``: ``Shutdown`` answers, then stops the plugin."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self._lifecycle = lifecycle

    def __mapping__(self) -> dict[str, Handler]:
        return {
            f"{CONTROLLER_SERVICE}/Shutdown": Handler(self._shutdown, Cardinality.UNARY_UNARY, wire.Empty, wire.Empty),
        }

    async def _shutdown(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        logger.info("shutdown requested by the plugin client")
        await stream.send_message(wire.Empty())
        # Trailers first: the server closes connections as soon as the plugin stops.
        await stream.send_trailing_metadata()
        self._lifecycle.stop()
