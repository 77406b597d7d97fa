"""go_version(): the PEP 440 package version spelled so that HashiCorp go-version, which Nomad parses every
plugin's ``plugin_version`` with, accepts it."""

from __future__ import annotations

import re

import pytest
from helpers.goversion import INT64_MAX, NEW_VERSION, go_accepts
from hypothesis import given
from hypothesis import strategies as st

from plugin_host import __version__
from plugin_host._version import go_version
from plugin_host.errors import InvalidPluginError


def test_the_regexp_copy_rejects_what_nomad_rejected() -> None:
    """The encoded grammar refuses the PEP 440 spelling Nomad refused ("Malformed version") and takes semver."""
    assert not go_accepts("0.1.0.dev0")
    assert not go_accepts("1.2.3.post1")
    assert go_accepts("0.1.0-dev0")
    assert go_accepts("1.2.3+post1.abc")


@pytest.mark.parametrize(
    ("pep440", "expected"),
    [
        ("0.1.0.dev0", "0.1.0-dev0"),
        ("1.2.3", "1.2.3"),
        ("1.2", "1.2.0"),
        ("1", "1.0.0"),
        ("1.2.3.4", "1.2.3.4"),
        ("1.2.3rc1", "1.2.3-rc1"),
        ("1.2.3a1", "1.2.3-a1"),
        ("1.2.3b2", "1.2.3-b2"),
        ("1.2.3rc1.dev4", "1.2.3-rc1.dev4"),
        ("1.2.3.post1", "1.2.3+post1"),
        ("1.2.3.post1.dev2", "1.2.3-dev2+post1"),
        ("1.2.3+abc", "1.2.3+abc"),
        ("1.2.3+ubuntu-1_2", "1.2.3+ubuntu.1.2"),
        ("1.2.3.post1+abc.5", "1.2.3+post1.abc.5"),
        ("0!1.2.3", "1.2.3"),
        # Spellings PEP 440 normalizes.
        ("v1.0", "1.0.0"),
        ("1.0-alpha", "1.0.0-a0"),
        ("1.0.preview2", "1.0.0-rc2"),
        ("1.0c1", "1.0.0-rc1"),
        ("1.0-1", "1.0.0+post1"),
        ("1.0.rev", "1.0.0+post0"),
        ("1.0-DEV", "1.0.0-dev0"),
        ("01.002.0003", "1.2.3"),
    ],
)
def test_table_of_mappings_each_accepted_by_go_version(pep440: str, expected: str) -> None:
    """Each PEP 440 version maps as the table says, and go-version's grammar accepts the result."""
    assert go_version(pep440) == expected
    assert go_accepts(expected)


def test_the_package_version_maps_to_an_accepted_one() -> None:
    """The version every go-plugin plugin reports is accepted by go-version."""
    assert go_accepts(go_version(__version__))


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("1!2.0", "an epoch has no go-version equivalent"),
        ("banana", "not a PEP 440 version"),
        ("", "not a PEP 440 version"),
        ("1.0+", "not a PEP 440 version"),
        ("9" * 20, "release segments are int64"),
        ("1." + "x" * 500, "not a PEP 440 version"),
        ("1.0+\u017f", "not a PEP 440 version"),  # U+017F matches [a-z] under IGNORECASE without ASCII
    ],
)
def test_unmappable_versions_are_refused_naming_the_field(bad: str, expected: str) -> None:
    """An epoch, a non-PEP 440 string or an over-int64 segment is an InvalidPluginError naming plugin_version."""
    with pytest.raises(InvalidPluginError, match=expected) as caught:
        go_version(bad)
    assert "plugin_version" in str(caught.value)
    assert len(str(caught.value)) < 200


_numbers = st.integers(min_value=0, max_value=INT64_MAX)
_local_part = st.text(alphabet="abcdefxyz0123789", min_size=1, max_size=8)


@st.composite
def pep440_versions(draw: st.DrawFn) -> str:
    """Normalized PEP 440 versions: release, then optional pre, post, dev and local segments."""
    text = ".".join(str(n) for n in draw(st.lists(_numbers, min_size=1, max_size=5)))
    if draw(st.booleans()):
        text += draw(st.sampled_from(["a", "b", "rc"])) + str(draw(_numbers))
    if draw(st.booleans()):
        text += f".post{draw(_numbers)}"
    if draw(st.booleans()):
        text += f".dev{draw(_numbers)}"
    if draw(st.booleans()):
        text += "+" + ".".join(draw(st.lists(_local_part, min_size=1, max_size=4)))
    return text


@given(pep440_versions())
def test_every_pep440_version_maps_to_one_go_version_accepts(version: str) -> None:
    """Any normalized PEP 440 version maps to one go-version accepts, with the same release segments (at least 3)
    and a go-version pre-release exactly when PEP 440 says pre-release or dev release."""
    mapped = go_version(version)
    assert go_accepts(mapped), mapped
    match = NEW_VERSION.match(mapped)
    assert match is not None
    release = [
        int(p) for p in version.split("+")[0].split("a")[0].split("b")[0].split("rc")[0].split(".") if p.isdigit()
    ]
    release += [0] * (3 - len(release))
    assert [int(p) for p in match.group(1).split(".")] == release
    public = version.split("+")[0]
    assert (match.group(3) is not None and match.group(3).startswith("-")) == bool(
        re.search(r"(a|b|rc|dev)[0-9]", public)
    )
