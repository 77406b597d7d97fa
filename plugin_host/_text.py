"""Echoing what a peer sent into error messages, ``grpc-message`` trailers and logs, bounded.

A value a plugin chose (a resource name, an endpoint, a list of ids) may be any length; echoed whole it makes a
300 KB log line or a ``grpc-message`` that hpack's Huffman encoder takes seconds to write. Every echo goes through
:func:`truncated`, which keeps the start and says how much was left out.
"""

from __future__ import annotations

__all__ = ["ECHO_LIMIT", "truncated"]

ECHO_LIMIT = 200
"""Characters of a peer's value kept in a message (before the note saying how many were left out)."""


def truncated(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` itself when at most ``limit`` characters, else its first ``limit`` and how many were cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"
