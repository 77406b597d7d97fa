"""Exponential backoff between retries (Nomad's ``helper.Backoff``, stateful), shared by every plugin type.

Used for restarting a device plugin's streams, relaunching go-plugin processes and registering with kubelet.
"""

from __future__ import annotations

from plugin_host.errors import ConfigError

__all__ = ["Backoff", "check_backoff"]


class Backoff:
    """Delays ``initial, 2*initial, 4*initial, ...`` capped at ``maximum``; ``reset()`` starts over."""

    def __init__(self, initial: float, maximum: float, *, factor: float = 2.0) -> None:
        check_backoff(initial, maximum)
        if factor < 1:
            raise ConfigError(f"backoff factor must be at least 1, got {factor!r}")
        self._initial = initial
        self._maximum = maximum
        self._factor = factor
        self._attempt = 0

    @property
    def attempt(self) -> int:
        """How many delays were handed out since the last reset."""
        return self._attempt

    def next(self) -> float:
        """The delay before the next attempt; each call grows it until ``maximum``."""
        # The exponent is capped so a plugin failing for days cannot overflow the float.
        delay = min(self._initial * self._factor ** min(self._attempt, 64), self._maximum)
        self._attempt += 1
        return delay

    def reset(self) -> None:
        """Start again from ``initial`` (after a healthy period)."""
        self._attempt = 0


def check_backoff(initial: float, maximum: float) -> None:
    """Raise :class:`ConfigError` unless ``0 < initial <= maximum``."""
    if not initial > 0:
        raise ConfigError(f"backoff_initial must be a positive number of seconds, got {initial!r}")
    if not maximum >= initial:
        raise ConfigError(f"backoff_max must be at least backoff_initial ({initial!r} s), got {maximum!r}")
