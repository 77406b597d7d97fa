"""Backoff: the retry delays every plugin type waits between attempts, and the check of its settings."""

from __future__ import annotations

import pytest

from plugin_host._backoff import Backoff, check_backoff
from plugin_host.errors import ConfigError


def test_backoff_sequence_and_reset() -> None:
    """Backoff hands out initial * 2**attempt capped at the maximum, and reset starts over."""
    backoff = Backoff(0.5, 3.0)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff.attempt == 5
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.next() == 0.5


def test_backoff_after_many_failures_stays_at_the_maximum() -> None:
    """Thousands of failed attempts neither overflow nor leave the maximum."""
    backoff = Backoff(0.1, 30.0)
    for _ in range(5000):
        delay = backoff.next()
    assert delay == 30.0


@pytest.mark.parametrize(
    ("initial", "maximum", "message"),
    [
        (0, 1.0, "backoff_initial must be a positive number of seconds, got 0"),
        (-1.0, 1.0, "backoff_initial must be a positive number of seconds, got -1.0"),
        (2.0, 1.0, "backoff_max must be at least backoff_initial (2.0 s), got 1.0"),
    ],
)
def test_check_backoff_rejects_bad_settings(initial: float, maximum: float, message: str) -> None:
    """A non-positive initial delay or a maximum below it is a ConfigError naming the setting and value."""
    with pytest.raises(ConfigError) as caught:
        check_backoff(initial, maximum)
    assert str(caught.value) == message
    with pytest.raises(ConfigError):
        Backoff(initial, maximum)


def test_backoff_rejects_a_shrinking_factor() -> None:
    """A factor below 1 would shrink the delays: ConfigError naming the value."""
    with pytest.raises(ConfigError, match=r"^backoff factor must be at least 1, got 0\.5$"):
        Backoff(1.0, 2.0, factor=0.5)
