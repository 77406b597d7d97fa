"""``plugin.GRPCBroker``: go-plugin's client opens the broker stream on connect; we hold it open and broker no
connections, since Nomad's device plugins need none."""

from __future__ import annotations

import logging
from typing import Any

import anyio
from grpclib.const import Cardinality, Handler
from grpclib.server import Stream

from plugin_host._proto import plugin as wire
from plugin_host.goplugin._controller import Lifecycle

__all__ = ["BROKER_SERVICE", "BrokerService"]

logger = logging.getLogger(__name__)

BROKER_SERVICE = "/plugin.GRPCBroker"


class BrokerService:
    """Accept ``StartStream`` and read what the client announces (logged, not used) until it or we stop."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self._lifecycle = lifecycle

    def __mapping__(self) -> dict[str, Handler]:
        return {
            f"{BROKER_SERVICE}/StartStream": Handler(
                self._start_stream, Cardinality.STREAM_STREAM, wire.ConnInfo, wire.ConnInfo
            ),
        }

    async def _start_stream(self, stream: Stream[Any, Any]) -> None:
        async with self._lifecycle.hold(), anyio.create_task_group() as tg:
            tg.start_soon(self._read, stream, tg.cancel_scope)
            await self._lifecycle.stopping.wait()
            tg.cancel_scope.cancel()

    @staticmethod
    async def _read(stream: Stream[Any, Any], scope: anyio.CancelScope) -> None:
        async for info in stream:
            logger.debug("ignoring brokered service %d at %s %s", info.service_id, info.network, info.address)
        scope.cancel()
