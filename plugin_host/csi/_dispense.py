"""One shared CSI client (one gRPC channel) per plugin socket, owned by the host: the registry's CSI dispenser.

A CSI plugin serves many callers at once (the CsiManager's probes, volume operations), and a gRPC channel carries
any number of concurrent calls, so every caller of a socket shares one open :class:`CsiClient`. The clients are
already open when handed out and their lifetime belongs to this cache: callers use them and never enter or close
them. A socket's client is closed when the last supervised plugin on it is deregistered (the CsiManager calls
:meth:`CsiClients.release`) and when the cache is left (the host stops); calls still in flight then fail, and a
caller still holding the client gets :class:`~plugin_host.errors.PluginUnavailableError` from every later call.
"""

from __future__ import annotations

import logging
import os
from types import TracebackType
from typing import Self

from plugin_host._metrics import NO_METRICS, Metrics
from plugin_host._text import truncated
from plugin_host.csi.client import DEFAULT_TIMEOUT, CsiClient
from plugin_host.errors import ConfigError, PluginHostError, PluginNotFoundError
from plugin_host.registry.models import PluginInfo

__all__ = ["CsiClients"]

logger = logging.getLogger(__name__)


class CsiClients:
    """Open :class:`CsiClient` objects by socket path; ``async with CsiClients() as clients:``.

    ``timeout`` is the default deadline of each call made through the clients (each call may pass its own);
    ``metrics`` is handed to each client.
    """

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT, metrics: Metrics = NO_METRICS) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ConfigError(f"CsiClients timeout must be a positive number of seconds, got {truncated(timeout)}")
        self._timeout = float(timeout)
        self._metrics = metrics
        self._clients: dict[str, CsiClient] = {}
        self._status = "new"

    async def __aenter__(self) -> Self:
        if self._status != "new":
            raise PluginHostError(f"these CsiClients were already {self._status}; create new ones")
        self._status = "open"
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._status = "closed"
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()

    def sockets(self) -> list[str]:
        """The sockets with an open client, sorted."""
        return sorted(self._clients)

    async def get(self, socket_path: str | os.PathLike[str]) -> CsiClient:
        """The shared open client of ``socket_path``, opened on first use."""
        if self._status != "open":
            raise PluginHostError("CsiClients are not open: use `async with CsiClients() as clients`")
        key = os.fspath(socket_path)
        client = self._clients.get(key)
        if client is None:
            client = CsiClient(key, timeout=self._timeout, metrics=self._metrics)
            # Entering only creates the channel (grpclib connects on the first call): nothing to wait for.
            await client.__aenter__()
            self._clients[key] = client
            logger.debug("opened a CSI channel to %s", key)
        return client

    async def release(self, socket_path: str | os.PathLike[str]) -> None:
        """Close the client of ``socket_path`` (if any); a later :meth:`get` opens a new one."""
        client = self._clients.pop(os.fspath(socket_path), None)
        if client is not None:
            logger.debug("closing the CSI channel to %s", client.socket_path)
            await client.aclose()

    async def dispense(self, info: PluginInfo) -> CsiClient:
        """The registry dispenser of ``csi-controller`` and ``csi-node``: the shared open client of the plugin.

        Do not enter or close the client: the host owns it.
        """
        if info.connection_info is None:
            raise PluginNotFoundError(
                f"CSI plugin {truncated(info.name)} has no connection info to dispense a client from"
            )
        return await self.get(info.connection_info.socket_path)
