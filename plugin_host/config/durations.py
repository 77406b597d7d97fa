"""Go-style durations (``"500ms"``, ``"1m30s"``, ``"1.5h"``), parsed exactly as Go's ``time.ParseDuration``.

Values are float seconds in Python. :data:`Duration` and :data:`PositiveDuration` are pydantic-ready annotated
types that accept a Go duration string or a :class:`datetime.timedelta` and serialise back to the Go string, so a
dumped config loads again unchanged.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, ValidationInfo

from plugin_host._text import truncated
from plugin_host.errors import ConfigError

__all__ = [
    "DURATION_EXAMPLES",
    "Duration",
    "PositiveDuration",
    "at_least",
    "format_duration",
    "format_duration_ns",
    "parse_duration",
    "parse_duration_ns",
]

NANOSECOND = 1
MICROSECOND = 1_000 * NANOSECOND
MILLISECOND = 1_000 * MICROSECOND
SECOND = 1_000 * MILLISECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

# Go accepts both the micro sign (U+00B5) and the Greek mu (U+03BC).
_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "\u00b5s": MICROSECOND,
    "\u03bcs": MICROSECOND,
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}
_MAX_NS = (1 << 63) - 1
_DIGITS = frozenset("0123456789")

DURATION_EXAMPLES = ('"500ms"', '"5s"', '"1m30s"', '"1.5h"')
"""Examples shown in error messages, as they would be written in a config file."""


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _invalid(orig: str, why: str = "") -> ConfigError:
    detail = f": {why}" if why else ""
    return ConfigError(
        f"invalid duration {_quote(orig)}{detail}; expected a Go duration such as {', '.join(DURATION_EXAMPLES)}"
        " (units ns, us, ms, s, m, h)"
    )


def _leading_digits(s: str) -> tuple[str, str]:
    i = 0
    while i < len(s) and s[i] in _DIGITS:
        i += 1
    return s[:i], s[i:]


def parse_duration_ns(text: str) -> int:
    """Parse a Go duration string into integer nanoseconds, with Go's exact grammar, rounding and range.

    Raises :class:`~plugin_host.errors.ConfigError` naming the value when Go would reject it.
    """
    orig = text
    s = text
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise _invalid(orig)
    total = 0
    while s:
        if not (s[0] == "." or s[0] in _DIGITS):
            raise _invalid(orig)
        int_part, s = _leading_digits(s)
        frac_part = ""
        has_dot = bool(s) and s[0] == "."
        if has_dot:
            frac_part, s = _leading_digits(s[1:])
        if not int_part and not frac_part:
            raise _invalid(orig)
        i = 0
        while i < len(s) and not (s[i] == "." or s[i] in _DIGITS):
            i += 1
        if i == 0:
            raise _invalid(orig, "missing unit")
        unit_name, s = s[:i], s[i:]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise _invalid(orig, f"unknown unit {_quote(unit_name)}")
        value = int(int_part) if int_part else 0
        if value > (1 << 63) // unit:
            raise _invalid(orig, "out of range")
        value *= unit
        if frac_part:
            # Go accumulates at most the digits that fit in 63 bits and scales in float64; mirror it so the
            # nanosecond result is identical for every input Go accepts.
            f = 0
            scale = 1.0
            for ch in frac_part:
                if f > ((1 << 63) - 1) // 10:
                    break
                nxt = f * 10 + int(ch)
                if nxt > 1 << 63:
                    break
                f = nxt
                scale *= 10
            value += int(float(f) * (float(unit) / scale))
            if value > 1 << 63:
                raise _invalid(orig, "out of range")
        total += value
        if total > 1 << 63:
            raise _invalid(orig, "out of range")
    if neg:
        return -total
    if total > _MAX_NS:
        raise _invalid(orig, "out of range")
    return total


def parse_duration(text: str) -> float:
    """Parse a Go duration string (``"1m30s"``) into float seconds; :class:`ConfigError` when Go would reject it."""
    return parse_duration_ns(text) / SECOND


def _frac(v: int, prec: int) -> tuple[str, int]:
    digits = ""
    printed = False
    for _ in range(prec):
        digit = v % 10
        printed = printed or digit != 0
        if printed:
            digits = str(digit) + digits
        v //= 10
    return ("." + digits if printed else ""), v


def format_duration_ns(ns: int) -> str:
    """Format integer nanoseconds as Go's ``Duration.String`` does (``"1h30m0s"``, ``"1.5s"``, ``"500ms"``)."""
    neg = ns < 0
    u = -ns if neg else ns
    if u < SECOND:
        if u == 0:
            return "0s"
        if u < MICROSECOND:
            prec, unit = 0, "ns"
        elif u < MILLISECOND:
            prec, unit = 3, "\u00b5s"
        else:
            prec, unit = 6, "ms"
        frac, u = _frac(u, prec)
        out = f"{u}{frac}{unit}"
    else:
        frac, u = _frac(u, 9)
        out = f"{u % 60}{frac}s"
        u //= 60
        if u > 0:
            out = f"{u % 60}m{out}"
            u //= 60
            if u > 0:
                out = f"{u}h{out}"
    return "-" + out if neg else out


def format_duration(seconds: float | timedelta) -> str:
    """Format seconds (or a timedelta) the way Go prints a ``time.Duration``: ``90.0`` → ``"1m30s"``."""
    if isinstance(seconds, timedelta):
        return format_duration_ns((seconds // timedelta(microseconds=1)) * MICROSECOND)
    return format_duration_ns(round(seconds * SECOND))


def _coerce(value: Any, field: str, *, positive: bool) -> float:
    what = "a positive Go duration" if positive else "a Go duration"
    examples = ", ".join(DURATION_EXAMPLES)
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except ConfigError as exc:
            raise ConfigError(f"{field}: {exc}") from exc
    else:
        # A bare number is ambiguous (Go reads it as nanoseconds, people mean seconds), so it is refused.
        raise ConfigError(
            f"{field}: expected {what} string such as {examples}; got {type(value).__name__} {truncated(value)}"
        )
    if positive and seconds <= 0:
        shown = _quote(value) if isinstance(value, str) else repr(value)
        raise ConfigError(f"{field}: duration {shown} must be greater than zero; expected {what} such as {examples}")
    return seconds


def _field_name(info: ValidationInfo) -> str:
    return info.field_name or "duration"


def _validate_any(value: Any, info: ValidationInfo) -> float:
    return _coerce(value, _field_name(info), positive=False)


def _validate_positive(value: Any, info: ValidationInfo) -> float:
    return _coerce(value, _field_name(info), positive=True)


_SERIALIZER = PlainSerializer(format_duration, return_type=str)

Duration = Annotated[float, PlainValidator(_validate_any, json_schema_input_type=str), _SERIALIZER]
"""Seconds, written as a Go duration string (``"1m30s"``); zero and negative values are allowed."""

PositiveDuration = Annotated[float, PlainValidator(_validate_positive, json_schema_input_type=str), _SERIALIZER]
"""Seconds greater than zero, written as a Go duration string; ``"0s"``, ``"-1s"`` and ``"5 seconds"`` are refused."""


def at_least(minimum: float) -> PlainValidator:
    """A validator to put after :data:`PositiveDuration` in an ``Annotated``: also refuse durations under
    ``minimum`` seconds, with a :class:`ConfigError` naming the key, the value as written and the minimum."""

    def validate(value: Any, info: ValidationInfo) -> float:
        seconds = _validate_positive(value, info)
        if seconds < minimum:
            shown = _quote(value) if isinstance(value, str) else _quote(format_duration(seconds))
            raise ConfigError(
                f"{_field_name(info)}: duration {shown} is shorter than the minimum {_quote(format_duration(minimum))}"
            )
        return seconds

    return PlainValidator(validate, json_schema_input_type=str)
