"""JSON from peers we do not trust (admin clients, a host's answer, a plugin's stderr), with bounded nesting.

``json.loads`` recurses once per nesting level and raises :class:`RecursionError` (not a ``ValueError``) on a line
of a thousand ``[``; that must never escape a reader. The depth is checked before parsing, on the brackets that are
left once the strings are taken out, so the check costs one regex pass and one loop over the brackets only.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["TooDeepError", "exceeds_depth", "loads_bounded"]

# A JSON string: quote, then runs of plain characters or backslash escapes, then quote or the end of the text (an
# unterminated string is invalid JSON anyway). Possessive quantifiers never backtrack: one pass over the text, where
# a backtracking pattern took seconds on a line of escaped quotes (quadratic: a retry at every quote).
_STRING = re.compile(rb'"(?:[^"\\]++|\\.?)*+(?:"|\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = frozenset(b"[{")


class TooDeepError(ValueError):
    """The JSON text nests deeper than allowed."""


def exceeds_depth(data: bytes, limit: int) -> bool:
    """Whether the JSON text ``data`` nests arrays/objects more than ``limit`` levels deep."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    depth = 0
    for byte in brackets:
        if byte in _OPEN:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def loads_bounded(data: bytes | str, *, max_depth: int) -> Any:
    """``json.loads(data)``, refusing text nested deeper than ``max_depth`` with :class:`TooDeepError`.

    Other bad input raises ``ValueError`` as ``json.loads`` does (invalid JSON or UTF-8).
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if exceeds_depth(raw, max_depth):
        raise TooDeepError(f"nests deeper than {max_depth} levels")
    try:
        return json.loads(raw)
    except RecursionError:  # not reachable below the limit, but a reader must never see it
        raise TooDeepError(f"nests deeper than {max_depth} levels") from None
