"""The Prometheus-backed metrics sink: counters and histograms observed directly on the hot paths."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram

from plugin_host._metrics import CommittedEvent, Metrics

__all__ = ["PrometheusMetrics"]

# A commit is one SQLite transaction: sub-millisecond in WAL mode, up to seconds on a stalled disk.
_COMMIT_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# Local Unix-socket RPCs: a kubelet Allocate takes about a millisecond; CSI calls may take the whole deadline.
_RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SERVICES = ("csi", "kubelet")


class PrometheusMetrics(Metrics):
    """Records every observation into metric objects registered on ``registry`` (never the global one)."""

    __slots__ = (
        "_batch",
        "_commit",
        "_commit_failures",
        "_dropped",
        "_events",
        "_rpc_seconds",
        "_rpcs",
    )

    enabled = True

    def __init__(self, registry: CollectorRegistry) -> None:
        self._events = Counter(
            "plugin_host_registry_events",
            "Registry changes committed, by plugin type and event type.",
            ("type", "event_type"),
            registry=registry,
        )
        self._commit = Histogram(
            "plugin_host_registry_commit_seconds",
            "Time to commit one group-commit batch to the state store (one transaction).",
            registry=registry,
            buckets=_COMMIT_BUCKETS,
        )
        self._batch = Histogram(
            "plugin_host_registry_commit_batch_size",
            "Mutations (register and deregister calls) committed together in one batch.",
            registry=registry,
            buckets=_BATCH_BUCKETS,
        )
        self._commit_failures = Counter(
            "plugin_host_registry_commit_failures",
            "Group-commit batches whose commit failed (each caller in the batch got the error).",
            registry=registry,
        )
        self._dropped = Counter(
            "plugin_host_registry_subscribers_dropped",
            "Registry subscribers dropped because they fell behind their buffer, by plugin type.",
            ("type",),
            registry=registry,
        )
        self._rpc_seconds = {
            service: Histogram(
                f"plugin_host_{service}_rpc_seconds",
                f"Latency of unary {service} gRPC calls, by RPC.",
                ("rpc",),
                registry=registry,
                buckets=_RPC_BUCKETS,
            )
            for service in _SERVICES
        }
        self._rpcs = {
            service: Counter(
                f"plugin_host_{service}_rpcs",
                f"Finished {service} gRPC calls (streams included), by RPC and status code.",
                ("rpc", "code"),
                registry=registry,
            )
            for service in _SERVICES
        }

    def registry_commit(self, events: Sequence[CommittedEvent], *, seconds: float, batch: int) -> None:
        self._commit.observe(seconds)
        self._batch.observe(batch)
        for event in events:
            self._events.labels(event.info.type, str(event.event_type)).inc()

    def registry_commit_failed(self, *, batch: int) -> None:
        self._commit_failures.inc()
        self._batch.observe(batch)

    def subscriber_dropped(self, ptype: str) -> None:
        self._dropped.labels(ptype).inc()

    def rpc(self, service: str, rpc: str, code: str, seconds: float | None) -> None:
        counter = self._rpcs.get(service)
        if counter is None:
            return
        counter.labels(rpc, code).inc()
        if seconds is not None:
            self._rpc_seconds[service].labels(rpc).observe(seconds)
