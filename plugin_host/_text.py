"""Echoing user- and peer-supplied values in error messages and log lines without letting them take over.

A value a config file, a task or a plugin hands us is shown with :func:`truncated`: its repr, cut to a limit, with
its total length, so that a 300 KB name is one readable line rather than 300 KB of log. A value that may be a
secret is never shown at all: :func:`shape` names its type and size only.
"""

from __future__ import annotations

__all__ = ["ECHO_LIMIT", "ELLIPSIS", "clipped", "shape", "truncated"]

ELLIPSIS = "…"

ECHO_LIMIT = 200
"""Characters of a peer's value kept in a message (before the note saying how many were left out)."""


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except RecursionError:
        return f"<{type(value).__name__} nested too deeply to show>"
    except ValueError:
        # int → str refuses more than sys.get_int_max_str_digits() digits.
        if isinstance(value, int):
            return f"<int of {value.bit_length()} bits>"
        return f"<{type(value).__name__} that cannot be shown>"


def _cut_text(value: str | bytes, limit: int) -> str:
    # Cut the value, not its repr, so the result still reads as a literal: escapes are never split.
    count = limit
    shown = repr(value[:count])
    while len(shown) > limit + 2 and count > 0:
        count = count * 3 // 4
        shown = repr(value[:count])
    unit = "chars" if isinstance(value, str) else "bytes"
    return f"{shown[:-1]}{ELLIPSIS}{shown[-1]} ({len(value)} {unit})"


def truncated(value: object, limit: int = 200) -> str:
    """``repr(value)`` when it is at most ``limit`` characters; else its start, ``…`` and the total length.

    ``truncated("a" * 300000)`` is ``'aaaa…' (300000 chars)`` with ``limit`` characters of the value shown.
    """
    if isinstance(value, str | bytes) and len(value) > limit:
        return _cut_text(value, limit)
    shown = _safe_repr(value)
    if len(shown) <= limit:
        return shown
    if isinstance(value, str | bytes):
        # Short, but escapes (non-printable characters) made its repr long.
        return _cut_text(value, max(1, limit // 4))
    return f"{shown[:limit]}{ELLIPSIS} ({len(shown)} chars)"


def shape(value: object) -> str:
    """What ``value`` is without what it holds: ``a str of 12 chars``, ``a list of 3 items``, ``an int``."""
    name = type(value).__name__
    article = "an" if name[:1].lower() in "aeiou" else "a"
    if isinstance(value, str):
        return f"{article} {name} of {len(value)} chars"
    if isinstance(value, bytes | bytearray):
        return f"{article} {name} of {len(value)} bytes"
    try:
        size = len(value)  # type: ignore[arg-type]
    except TypeError:
        return f"{article} {name}"
    return f"{article} {name} of {size} item{'s' if size != 1 else ''}"


def clipped(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` itself (no quotes added) when at most ``limit`` characters, else its start and how many were cut.

    For messages that quote a value their own way (kubelet's Go-quoted texts); elsewhere use :func:`truncated`.
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"
