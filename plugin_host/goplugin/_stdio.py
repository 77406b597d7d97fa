"""The plugin process's standard streams under go-plugin: ``GRPCStdio.StreamStdio``, and log lines on stderr in
the hclog JSON shape go-plugin's client parses (``@level``, ``@message``, ``@timestamp``, other keys as pairs)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from betterproto.lib.google.protobuf import Empty
from grpclib.const import Cardinality, Handler
from grpclib.server import Stream

from plugin_host._proto import plugin as wire
from plugin_host.goplugin._controller import Lifecycle

__all__ = ["STDIO_SERVICE", "HclogJsonFormatter", "StdioService"]

STDIO_SERVICE = "/plugin.GRPCStdio"

# go-plugin parses "@timestamp" with Go's layout 2006-01-02T15:04:05.000000Z07:00 and drops lines that do not match.
_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def _hclog_level(levelno: int) -> str:
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    if levelno >= logging.INFO:
        return "info"
    if levelno >= logging.DEBUG:
        return "debug"
    return "trace"


class HclogJsonFormatter(logging.Formatter):
    """Format a record as one hclog JSON line, which go-plugin's client relays into the agent's log at its level."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON object on one line."""
        entry: dict[str, Any] = {
            "@level": _hclog_level(record.levelno),
            "@message": record.getMessage(),
            "@module": record.name,
            "@timestamp": datetime.fromtimestamp(record.created, UTC).strftime(_TIMESTAMP_FORMAT),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


class StdioService:
    """``plugin.GRPCStdio``: the stream stays open and sends nothing (our output goes to stderr), until shutdown."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self._lifecycle = lifecycle

    def __mapping__(self) -> dict[str, Handler]:
        return {
            f"{STDIO_SERVICE}/StreamStdio": Handler(
                self._stream_stdio, Cardinality.UNARY_STREAM, Empty, wire.StdioData
            ),
        }

    async def _stream_stdio(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        async with self._lifecycle.hold():
            await self._lifecycle.stopping.wait()
