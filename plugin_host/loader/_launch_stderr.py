"""Forward a plugin's stderr to logging, as go-plugin's ``Client.logStderr`` does (hclog JSON or plain lines)."""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from plugin_host._json_limits import loads_bounded

__all__ = ["StderrForwarder", "plugin_logger"]

_HCLOG_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_MAX_DEPTH = 16
_PREFIXES = (
    ("[TRACE]", logging.DEBUG),
    ("[DEBUG]", logging.DEBUG),
    ("[INFO]", logging.INFO),
    ("[WARN]", logging.WARNING),
    ("[ERROR]", logging.ERROR),
)


def plugin_logger(name: str) -> logging.Logger:
    """The logger a plugin's output goes to: ``plugin_host.plugins.<name>``."""
    return logging.getLogger(f"plugin_host.plugins.{name}")


def _hclog(line: str) -> tuple[int, str] | None:
    """(level, message) of an hclog JSON line, or None when the line is not one."""
    if not line.startswith("{"):
        return None
    try:
        # hclog writes flat objects; anything nested deeper is not one (and must not recurse into a RecursionError).
        entry: Any = loads_bounded(line, max_depth=_MAX_DEPTH)
    except ValueError:
        return None
    if not isinstance(entry, dict) or "@message" not in entry:
        return None
    level = _HCLOG_LEVELS.get(str(entry.get("@level", "")).lower())
    if level is None:
        return None
    extra = {k: v for k, v in entry.items() if not k.startswith("@")}
    message = str(entry["@message"])
    if extra:
        message += " " + " ".join(f"{k}={v}" for k, v in extra.items())
    return level, message


class StderrForwarder:
    """Logs each line it is fed and keeps the last ``tail`` lines for error messages."""

    def __init__(self, name: str, *, tail: int = 20) -> None:
        self._logger = plugin_logger(name)
        self._tail: deque[str] = deque(maxlen=tail)
        self._in_panic = False

    def feed(self, raw: bytes) -> None:
        """Log one line (without its newline)."""
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if not line.strip():
            return
        self._tail.append(line)
        parsed = _hclog(line)
        if parsed is not None:
            self._logger.log(parsed[0], "%s", parsed[1])
            return
        level = logging.INFO
        for prefix, prefix_level in _PREFIXES:
            if line.startswith(prefix):
                level = prefix_level
                break
        else:
            if line.startswith(("panic: ", "fatal error: ", "Traceback (most recent call last)")):
                self._in_panic = True
            if self._in_panic:
                level = logging.ERROR
        self._logger.log(level, "%s", line)

    def tail(self) -> str:
        """The last lines seen, joined (``<none>`` when the plugin wrote nothing)."""
        return " | ".join(self._tail) if self._tail else "<none>"
