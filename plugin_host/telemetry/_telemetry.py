"""The :class:`Telemetry` object: a private Prometheus registry, the sink, the snapshot collector, the endpoint."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Self

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from plugin_host.config.listen import parse_listen_address
from plugin_host.errors import ConfigError, PluginHostError
from plugin_host.telemetry._collector import SnapshotCollector
from plugin_host.telemetry._http import METRICS_PATH, MetricsServer
from plugin_host.telemetry._sink import PrometheusMetrics

if TYPE_CHECKING:
    from plugin_host._metrics import Metrics
    from plugin_host.csi.manager import CsiManager
    from plugin_host.device.manager import DeviceManager
    from plugin_host.registry import Registry

__all__ = ["Telemetry"]


class Telemetry:
    """Metrics of one host; ``async with Telemetry("127.0.0.1:9464") as telemetry:`` serves them at ``/metrics``.

    Nothing is bound or started before ``async with``; leaving it closes the listener. Without an address the
    object only collects (:meth:`render` gives the exposition, for an application that serves it itself). Pass
    :attr:`metrics` to the components (``Registry(metrics=...)``, ``CsiClients(metrics=...)``, the kubelet
    ``Manager(metrics=...)``) and :meth:`watch` the managers whose snapshots become gauges.

    The endpoint has no authentication and binds only where it is told; an address other than loopback exposes
    plugin, device-group and RPC names to whoever can reach it. A tuple address may use port 0 (a free port, see
    :attr:`addresses`).
    """

    def __init__(self, listen: str | tuple[str, int] | None = None) -> None:
        if isinstance(listen, str):
            try:
                listen = parse_listen_address(listen)
            except ValueError as exc:
                raise ConfigError(f"telemetry listen address: {exc}") from None
        self._listen = listen
        self.registry = CollectorRegistry(auto_describe=False)
        """The Prometheus registry every metric of this object is registered on."""
        self._sink = PrometheusMetrics(self.registry)
        self._collector = SnapshotCollector()
        self.registry.register(self._collector)
        self._server: MetricsServer | None = None
        self._status = "new"

    @property
    def metrics(self) -> Metrics:
        """The sink to hand to components as their ``metrics=`` argument."""
        return self._sink

    def watch(
        self,
        *,
        registry: Registry | None = None,
        devices: DeviceManager | None = None,
        csi: CsiManager | None = None,
    ) -> None:
        """Read these components' snapshots on every scrape (each given one replaces the one watched before)."""
        if registry is not None:
            self._collector.registry = registry
        if devices is not None:
            self._collector.devices = devices
        if csi is not None:
            self._collector.csi = csi

    def unwatch(self) -> None:
        """Stop reading every watched component (they are shutting down)."""
        self._collector.registry = self._collector.devices = self._collector.csi = None

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition now and its content type; OpenMetrics when ``accept`` (an Accept header) asks for it."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        """The (host, port) pairs the endpoint listens on; empty when it is not serving."""
        return self._server.addresses if self._server is not None else ()

    @property
    def urls(self) -> tuple[str, ...]:
        """The endpoint's URLs (``http://127.0.0.1:9464/metrics``); empty when it is not serving."""
        return tuple(f"http://{f'[{h}]' if ':' in h else h}:{p}{METRICS_PATH}" for h, p in self.addresses)

    async def __aenter__(self) -> Self:
        if self._status != "new":
            raise PluginHostError(f"this Telemetry was already {self._status}; create a new one")
        self._status = "running"
        if self._listen is not None:
            host, port = self._listen
            server = MetricsServer(host, port, self.render)
            try:
                await server.__aenter__()
            except OSError as exc:
                self._status = "stopped"
                where = f"{f'[{host}]' if ':' in host else host}:{port}"
                raise ConfigError(f"telemetry: cannot listen on {where}: {exc.strerror or exc}") from exc
            self._server = server
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._status = "stopped"
        server, self._server = self._server, None
        try:
            if server is not None:
                await server.__aexit__(exc_type, exc, tb)
        finally:
            self.unwatch()
