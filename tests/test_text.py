"""truncated() echoes any value in at most about ``limit`` characters, with its total length; shape() names a
value's type and size only."""

from __future__ import annotations

import pytest

from plugin_host._text import shape, truncated


def test_short_values_are_their_repr() -> None:
    """A value whose repr fits is shown exactly as repr shows it."""
    assert truncated("name") == "'name'"
    assert truncated(["a", 1]) == "['a', 1]"
    assert truncated(None) == "None"


@pytest.mark.parametrize(
    ("value", "end"),
    [
        ("a" * 300_000, "…' (300000 chars)"),
        (b"\xff" * 1_000, "…' (1000 bytes)"),
        ("\x00" * 300, "…' (300 chars)"),
        (["x" * 300_000], "… (300004 chars)"),
    ],
    ids=["str", "bytes", "escapes", "list"],
)
def test_long_values_are_cut_with_their_length(value: object, end: str) -> None:
    """A long value shows its start (an escape never cut in half), an ellipsis and its total length."""
    shown = truncated(value)
    assert shown.endswith(end)
    assert len(shown) <= 200 + len(end) + 2
    assert shown[:2] in {"'a", "b'", "'\\", "['"}


def test_values_repr_cannot_show_are_described() -> None:
    """An int past Python's digit limit and a structure nested past the recursion limit are described, not raised."""
    assert truncated(10**5000) == "<int of 16610 bits>"
    nested: list[object] = []
    inner = nested
    for _ in range(100_000):
        inner.append([])
        inner = inner[0]  # type: ignore[assignment]
    assert truncated(nested) == "<list nested too deeply to show>"


def test_shape_shows_no_content() -> None:
    """shape gives the type and size, never the content."""
    assert shape("hunter2") == "a str of 7 chars"
    assert shape(["hunter2"]) == "a list of 1 item"
    assert shape({"a": 1, "b": 2}) == "a dict of 2 items"
    assert shape(7) == "an int"
    assert shape(b"xy") == "a bytes of 2 bytes"
