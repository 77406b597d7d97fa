"""Go-style durations: parsing as time.ParseDuration, formatting as Duration.String, the pydantic types."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from plugin_host.config import (
    ConfigModel,
    Duration,
    PositiveDuration,
    format_duration,
    format_duration_ns,
    parse_duration,
    parse_duration_ns,
)
from plugin_host.errors import ConfigError

NS = 1
US = 1_000
MS = 1_000_000
S = 1_000_000_000
M = 60 * S
H = 60 * M


# Cases from Go's time_test.go (parseDurationTests), plus the ones the issue names.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("5s", 5 * S),
        ("30s", 30 * S),
        ("1478s", 1478 * S),
        ("-5s", -5 * S),
        ("+5s", 5 * S),
        ("-0", 0),
        ("+0", 0),
        ("5.0s", 5 * S),
        ("5.6s", 5 * S + 600 * MS),
        ("5.s", 5 * S),
        (".5s", 500 * MS),
        ("1.0s", 1 * S),
        ("1.00s", 1 * S),
        ("1.004s", 1 * S + 4 * MS),
        ("1.0040s", 1 * S + 4 * MS),
        ("100.00100s", 100 * S + 1 * MS),
        ("10ns", 10 * NS),
        ("11us", 11 * US),
        ("12\u00b5s", 12 * US),
        ("12\u03bcs", 12 * US),
        ("13ms", 13 * MS),
        ("14s", 14 * S),
        ("15m", 15 * M),
        ("16h", 16 * H),
        ("3h30m", 3 * H + 30 * M),
        ("10.5s4m", 4 * M + 10 * S + 500 * MS),
        ("-2m3.4s", -(2 * M + 3 * S + 400 * MS)),
        ("1h2m3s4ms5us6ns", 1 * H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS),
        ("39h9m14.425s", 39 * H + 9 * M + 14 * S + 425 * MS),
        ("52763797000ns", 52763797000 * NS),
        ("0.3333333333333333333h", 20 * M),
        ("9007199254740993ns", (1 << 53) + 1),
        ("9223372036854775807ns", (1 << 63) - 1),
        ("9223372036854775.807us", (1 << 63) - 1),
        ("9223372036s854ms775us807ns", (1 << 63) - 1),
        ("-9223372036854775808ns", -(1 << 63)),
        ("-9223372036854775.808us", -(1 << 63)),
        ("-2562047h47m16.854775808s", -(1 << 63)),
        ("0.100000000000000000000h", 6 * M),
        ("0.830103483285477580700h", 49 * M + 48 * S + 372539827 * NS),
        ("500ms", 500 * MS),
        ("1m30s", 90 * S),
        ("1.5h", 90 * M),
        ("300us", 300 * US),
        ("2h45m", 2 * H + 45 * M),
    ],
)
def test_parse_duration_matches_go(text: str, expected: int) -> None:
    """Every string Go's time.ParseDuration accepts parses to the same nanoseconds."""
    assert parse_duration_ns(text) == expected
    assert parse_duration(text) == expected / S


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", 'invalid duration ""'),
        ("3", "missing unit"),
        ("-", 'invalid duration "-"'),
        ("s", 'invalid duration "s"'),
        (".", 'invalid duration "."'),
        ("-.", 'invalid duration "-."'),
        (".s", 'invalid duration ".s"'),
        ("+.s", 'invalid duration "+.s"'),
        ("1d", 'unknown unit "d"'),
        ("1.1.1s", "missing unit"),
        ("5 seconds", 'unknown unit " seconds"'),
        ("1h 30m", 'unknown unit "h "'),
        ("9223372036854775808ns", "out of range"),
        ("9223372036854775.808us", "out of range"),
        ("9223372036854ms775us808ns", "out of range"),
        ("-9223372036854775809ns", "out of range"),
    ],
)
def test_parse_duration_rejects_what_go_rejects(text: str, why: str) -> None:
    """Strings Go rejects raise ConfigError quoting the value, saying why, and showing valid examples."""
    with pytest.raises(ConfigError) as info:
        parse_duration(text)
    message = str(info.value)
    assert why in message
    assert '"500ms"' in message
    assert '"1m30s"' in message


# Cases from Go's time_test.go (durationTests).
@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1 * NS, "1ns"),
        (1100 * NS, "1.1\u00b5s"),
        (2200 * US, "2.2ms"),
        (3300 * MS, "3.3s"),
        (4 * M + 5 * S, "4m5s"),
        (4 * M + 5001 * MS, "4m5.001s"),
        (5 * H + 6 * M + 7001 * MS, "5h6m7.001s"),
        (8 * M + 1 * NS, "8m0.000000001s"),
        ((1 << 63) - 1, "2562047h47m16.854775807s"),
        (-(1 << 63), "-2562047h47m16.854775808s"),
        (-1500 * MS, "-1.5s"),
    ],
)
def test_format_duration_matches_go(ns: int, text: str) -> None:
    """format_duration_ns prints exactly what Go's Duration.String prints."""
    assert format_duration_ns(ns) == text


def test_format_duration_from_seconds_and_timedelta() -> None:
    """format_duration takes float seconds or a timedelta."""
    assert format_duration(90.0) == "1m30s"
    assert format_duration(0.05) == "50ms"
    assert format_duration(timedelta(hours=1, minutes=30)) == "1h30m0s"


@given(st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1))
def test_format_then_parse_round_trips(ns: int) -> None:
    """Any int64 duration formatted the Go way parses back to itself."""
    assert parse_duration_ns(format_duration_ns(ns)) == ns


class _Model(BaseModel):
    period: PositiveDuration = 5.0
    offset: Duration = 0.0


class _Config(ConfigModel):
    list_period: PositiveDuration = 5.0


def test_positive_duration_accepts_go_strings_and_timedelta() -> None:
    """PositiveDuration stores float seconds and dumps back to the Go string."""
    model = _Model(period="1m30s", offset="-1s")
    assert model.period == 90.0
    assert model.offset == -1.0
    assert _Model(period=timedelta(milliseconds=250)).period == 0.25
    assert model.model_dump() == {"period": "1m30s", "offset": "-1s"}
    assert model.model_dump_json() == '{"period":"1m30s","offset":"-1s"}'


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("5 seconds", 'invalid duration "5 seconds"'),
        ("-1s", 'duration "-1s" must be greater than zero'),
        ("0s", 'duration "0s" must be greater than zero'),
        ("0", 'duration "0" must be greater than zero'),
        (5, "got int 5"),
        (1.5, "got float 1.5"),
        (None, "got NoneType None"),
    ],
)
def test_positive_duration_rejects_bad_values_naming_field(value: object, why: str) -> None:
    """Zero, negative, malformed and bare-number durations are a ConfigError naming the field and the value."""
    with pytest.raises(ConfigError) as info:
        _Config.from_mapping({"list_period": value})
    message = str(info.value)
    assert message.startswith("_Config: list_period: ")
    assert why in message
    assert '"500ms", "5s", "1m30s", "1.5h"' in message


def test_positive_duration_in_plain_model_raises_validation_error_carrying_config_error() -> None:
    """In a plain pydantic model the failure is a ValidationError whose message is the ConfigError's."""
    with pytest.raises(ValidationError) as info:
        _Model(period="0s")
    assert 'period: duration "0s" must be greater than zero' in str(info.value)


def test_duration_allows_zero_and_negative() -> None:
    """Duration (unlike PositiveDuration) accepts zero and negative values."""
    assert _Model(offset="0s").offset == 0.0
    assert _Model(offset="-2h").offset == -7200.0
