"""Keep the HTTP/2 libraries under grpclib from logging what travels on the wire.

hpack logs every header it encodes or decodes at DEBUG, values included (``hpack/hpack.py``: "Adding %s=%s to the
header table", "Decoded %s", "Decoding %s"; ``hpack/table.py``: "Evicting %s: %s"), and a plugin's error status
(``grpc-message``) can quote the credentials it was sent. h2 logs headers and frames at DEBUG when given a logger
(``h2/stream.py``: "Send headers %s"). An application that turns on DEBUG for everything must not see those.

The library does not configure logging: no level, no handler changes. It adds one :class:`logging.Filter` to those
libraries' own loggers that drops their records below INFO; everything they log at INFO and above still passes.
Remove :data:`WIRE_PAYLOAD_FILTER` from a logger to see its DEBUG records again.
"""

from __future__ import annotations

import logging

__all__ = ["WIRE_LOGGERS", "WIRE_PAYLOAD_FILTER", "WirePayloadFilter", "guard_wire_loggers"]

WIRE_LOGGERS = ("hpack", "hpack.hpack", "hpack.table", "h2", "h2.connection", "h2.stream")
"""The loggers whose DEBUG records carry header values or frame payloads. A filter on a logger only sees the
records logged to that very logger, not those its children propagate, so each module's logger is listed."""


class WirePayloadFilter(logging.Filter):
    """Drops the records below INFO: at DEBUG, hpack and h2 log header values and frames."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep INFO and above."""
        return record.levelno >= logging.INFO


WIRE_PAYLOAD_FILTER = WirePayloadFilter()
"""The one filter instance on every logger of :data:`WIRE_LOGGERS`."""


def guard_wire_loggers() -> None:
    """Add :data:`WIRE_PAYLOAD_FILTER` to each logger of :data:`WIRE_LOGGERS` (once; calling again changes nothing)."""
    for name in WIRE_LOGGERS:
        logging.getLogger(name).addFilter(WIRE_PAYLOAD_FILTER)
