"""truncated() echoes any value in at most about ``limit`` characters, with its total length; shape() names a
value's type and size only; errors built from peer or config values use them."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugin_host._text import shape, truncated
from plugin_host.csi._registration import RegistrationRejected, judge
from plugin_host.errors import ConfigError
from plugin_host.host_config import HostConfig


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


def test_a_csi_registration_with_a_huge_name_is_refused_in_a_short_message() -> None:
    """A plugin announcing a 300 KB name and a relative endpoint is refused with both cut short, lengths given."""
    with pytest.raises(RegistrationRejected) as caught:
        judge("CSIPlugin", "n" * 300_000, "relative/" + "e" * 300_000, ["1.0.0"])
    message = str(caught.value)
    assert "…' (300000 chars)" in message
    assert "…' (300009 chars)" in message
    assert len(message) < 700


def test_a_host_config_with_a_huge_unknown_key_is_refused_in_a_short_message(short_tmp: Path) -> None:
    """An HCL host config with a 200 KB unknown top-level key names it cut short, with its length."""
    config = short_tmp / "host.hcl"
    config.write_text(f"{'k' * 200_000} = 1\n")  # under the 256 KiB a config file may hold
    with pytest.raises(ConfigError) as caught:
        HostConfig.from_hcl_file(config)
    message = str(caught.value)
    assert "…' (200000 chars)" in message
    assert len(message) < 1000
