"""The metrics sink the hot paths report to: a no-op unless a :class:`~plugin_host.telemetry.Telemetry` is given.

Components (the registry, the CSI client, the kubelet export server) take a ``metrics=`` argument defaulting to
:data:`NO_METRICS`, whose methods do nothing: with telemetry off an observation costs one method call and
``prometheus_client`` is never imported. :class:`~plugin_host.telemetry.Telemetry` supplies a subclass that
records into its own Prometheus registry. Only direct observations live here (counters and latencies); gauges such
as device counts are read from the managers' snapshots at scrape time and never touch these paths.

This module sits at the bottom of the package (it imports only :mod:`plugin_host.errors`), so every layer may report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from plugin_host.errors import InvalidRequestError, PluginProtocolError, PluginTimeoutError, PluginUnavailableError

__all__ = ["NO_METRICS", "CommittedEvent", "Metrics", "error_code"]


class _Typed(Protocol):
    @property
    def type(self) -> str: ...


class CommittedEvent(Protocol):
    """What the sink reads of a committed registry event (a :class:`~plugin_host.registry.PluginUpdateEvent`)."""

    @property
    def event_type(self) -> str: ...

    @property
    def info(self) -> _Typed: ...


class Metrics:
    """The sink: every method is a no-op here; :class:`~plugin_host.telemetry.Telemetry` overrides them."""

    __slots__ = ()

    enabled = False
    """Whether observations are recorded (lets a caller skip preparing arguments that only the sink reads)."""

    def registry_commit(self, events: Sequence[CommittedEvent], *, seconds: float, batch: int) -> None:
        """A group commit of ``batch`` queued mutations wrote ``events`` to the state store in ``seconds``."""

    def registry_commit_failed(self, *, batch: int) -> None:
        """A group commit of ``batch`` mutations failed (every caller in it got the error)."""

    def subscriber_dropped(self, ptype: str) -> None:
        """A registry subscriber to ``ptype`` events fell behind its buffer and was dropped."""

    def rpc(self, service: str, rpc: str, code: str, seconds: float | None) -> None:
        """One gRPC call of ``service`` (``"csi"``, ``"kubelet"``) ended with status ``code`` (``"OK"``, a status
        name) after ``seconds``; None for a stream, whose duration is its lifetime rather than a latency."""


NO_METRICS = Metrics()
"""The shared no-op sink."""


def error_code(exc: BaseException) -> str:
    """The gRPC status name a failed call is counted under: the plugin's own code when it sent one."""
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code:
        return code
    status = getattr(exc, "status", None)  # grpclib's GRPCError, raised by server handlers
    name = getattr(status, "name", None)
    if isinstance(name, str):
        return name
    if isinstance(exc, PluginTimeoutError):
        return "DEADLINE_EXCEEDED"
    if isinstance(exc, PluginUnavailableError):
        return "UNAVAILABLE"
    if isinstance(exc, InvalidRequestError):
        return "INVALID_ARGUMENT"
    if isinstance(exc, PluginProtocolError):
        return "INTERNAL"
    return "UNKNOWN"
