"""HashiCorp go-version's grammar, to check the versions our plugins report."""

from __future__ import annotations

import re

# hashicorp/go-version version.go, VersionRegexpRaw (used by NewVersion, which Nomad's loader calls on
# PluginInfo.plugin_version in plugins/shared/loader/init.go) and SemverRegexpRaw (NewSemver), verbatim; both are
# compiled anchored, "^" + raw + "$". Go's regexp and Python's re agree on whether these match.
VERSION_REGEXP_RAW = (
    r"v?([0-9]+(\.[0-9]+)*?)"
    r"(-([0-9]+[0-9A-Za-z\-~]*(\.[0-9A-Za-z\-~]+)*)|(-?([A-Za-z\-~]+[0-9A-Za-z\-~]*(\.[0-9A-Za-z\-~]+)*)))?"
    r"(\+([0-9A-Za-z\-~]+(\.[0-9A-Za-z\-~]+)*))?"
    r"?"
)


SEMVER_REGEXP_RAW = (
    r"v?([0-9]+(\.[0-9]+)*?)"
    r"(-([0-9]+[0-9A-Za-z\-~]*(\.[0-9A-Za-z\-~]+)*)|(-([A-Za-z\-~]+[0-9A-Za-z\-~]*(\.[0-9A-Za-z\-~]+)*)))?"
    r"(\+([0-9A-Za-z\-~]+(\.[0-9A-Za-z\-~]+)*))?"
    r"?"
)


NEW_VERSION = re.compile("^" + VERSION_REGEXP_RAW + "$")


NEW_SEMVER = re.compile("^" + SEMVER_REGEXP_RAW + "$")


INT64_MAX = (1 << 63) - 1


def go_accepts(text: str) -> bool:
    """What go-version's NewVersion and NewSemver both accept: the regexp, and int64 release segments."""
    match = NEW_VERSION.match(text)
    if match is None or NEW_SEMVER.match(text) is None:
        return False
    return all(int(part) <= INT64_MAX for part in match.group(1).split("."))
