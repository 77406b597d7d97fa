"""Configuration helpers shared across plugin_host: HCL loading, Go-style durations, config validation.

The bottom of the configuration: nothing here imports a plugin. The host's own configuration, which validates the
built-in plugins' ``config {}`` blocks, is :mod:`plugin_host.host_config`.
"""

from __future__ import annotations

from plugin_host.config.durations import Duration as Duration
from plugin_host.config.durations import PositiveDuration as PositiveDuration
from plugin_host.config.durations import format_duration as format_duration
from plugin_host.config.durations import format_duration_ns as format_duration_ns
from plugin_host.config.durations import parse_duration as parse_duration
from plugin_host.config.durations import parse_duration_ns as parse_duration_ns
from plugin_host.config.hcl import HclSyntaxError as HclSyntaxError
from plugin_host.config.hcl import labeled_blocks as labeled_blocks
from plugin_host.config.hcl import load_hcl_file as load_hcl_file
from plugin_host.config.hcl import loads_hcl as loads_hcl
from plugin_host.config.hcl import normalize as normalize
from plugin_host.config.hcl import single_block as single_block
from plugin_host.config.validation import ConfigModel as ConfigModel
from plugin_host.config.validation import allowed_keys as allowed_keys
from plugin_host.config.validation import config_error_from_validation as config_error_from_validation

__all__ = [
    "ConfigModel",
    "Duration",
    "HclSyntaxError",
    "PositiveDuration",
    "allowed_keys",
    "config_error_from_validation",
    "format_duration",
    "format_duration_ns",
    "labeled_blocks",
    "load_hcl_file",
    "loads_hcl",
    "normalize",
    "parse_duration",
    "parse_duration_ns",
    "single_block",
]
