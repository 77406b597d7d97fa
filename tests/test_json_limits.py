"""Bounded JSON from untrusted peers: the depth check is one linear pass, whatever the peer puts in its strings."""

from __future__ import annotations

import pytest

from plugin_host._json_limits import TooDeepError, exceeds_depth, loads_bounded


@pytest.mark.parametrize(
    "line",
    [
        b"[" * 65 + b'"' + b'\\"' * 500_000,  # an unterminated string of escaped quotes
        b"{" + b"[" * 17 + b'"' + b'\\"' * 500_000,  # the stderr line that froze the loader
        b'["' + b"\\" * 1_000_001,  # a string ending in a lone backslash
    ],
    ids=["deep-then-escapes", "stderr-line", "lone-backslash"],
)
def test_a_megabyte_of_escaped_quotes_is_checked_in_one_pass(line: bytes) -> None:
    """A 1 MB line of escaped quotes is checked at once (the old pattern retried at every quote: ~40 minutes)."""
    expected = line.startswith(b"[" * 65)
    assert exceeds_depth(line, 64) is expected


def test_brackets_inside_strings_do_not_count() -> None:
    """Only brackets outside strings (escaped quotes included) count towards the depth."""
    text = b'["a\\"[[[[", [[[]]]]'
    assert exceeds_depth(text, 4) is False
    assert exceeds_depth(text, 3) is True


def test_loads_bounded_refuses_deep_text_and_parses_the_rest() -> None:
    """Deeper than the limit is a TooDeepError naming it; within it, the value json.loads gives."""
    with pytest.raises(TooDeepError, match="nests deeper than 3 levels"):
        loads_bounded(b"[[[[1]]]]", max_depth=3)
    assert loads_bounded(b'{"a": ["x\\"y", {"b": 1}]}', max_depth=3) == {"a": ['x"y', {"b": 1}]}
