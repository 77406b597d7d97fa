"""Prometheus metrics for operators: ``telemetry { prometheus_listen = "127.0.0.1:9464" }`` in the host config.

A :class:`Telemetry` owns its own ``prometheus_client.CollectorRegistry`` (never the library's global one, so two
hosts in one process, or an application that embeds the host and has metrics of its own, never clash), the sink the
hot paths report to (:attr:`Telemetry.metrics`), a collector that reads the managers' snapshots at scrape time, and,
when given an address, an HTTP endpoint serving ``/metrics`` for the lifetime of an ``async with`` block.

Importing this package imports ``prometheus_client``; the host imports it only when the block is configured.
"""

from __future__ import annotations

from plugin_host.telemetry._telemetry import Telemetry as Telemetry

__all__ = ["Telemetry"]
