"""Shared value types of Nomad's plugin API (``plugins/shared/structs``): attributes and statistics."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Attribute(BaseModel):
    """A typed attribute value with an optional unit; exactly one of the value fields is set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    float_val: float | None = None
    int_val: int | None = None
    string_val: str | None = None
    bool_val: bool | None = None
    unit: str = ""


class StatValue(BaseModel):
    """One statistic: a ratio of numerators/denominators, a string or a bool, with unit and description."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    float_numerator_val: float | None = None
    float_denominator_val: float | None = None
    int_numerator_val: int | None = None
    int_denominator_val: int | None = None
    string_val: str | None = None
    bool_val: bool | None = None
    unit: str = ""
    desc: str = ""


class StatObject(BaseModel):
    """A tree of statistics: nested objects and attributes, both keyed by name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # default_factory: pydantic deep-copies a mutable default for every instance (a stats stream makes thousands).
    nested: dict[str, StatObject] = Field(default_factory=dict)
    attributes: dict[str, StatValue] = Field(default_factory=dict)
