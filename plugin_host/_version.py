"""The package version, read by the build backend and by plugin_info()."""

from __future__ import annotations

import re

__version__ = "0.1.0.dev0"

# PEP 440's version grammar (https://peps.python.org/pep-0440/#appendix-b-parsing-version-strings-with-regular-
# expressions), with its spelling variants, so any valid version maps, not only the normalized form.
_PEP440 = re.compile(
    r"""
    v?
    (?:(?P<epoch>[0-9]+)!)?
    (?P<release>[0-9]+(?:\.[0-9]+)*)
    (?:[-_.]?(?P<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_.]?(?P<pre_n>[0-9]+)?)?
    (?:-(?P<post_n1>[0-9]+)|[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>[0-9]+)?)?
    (?:[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>[0-9]+)?)?
    (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?
    """,
    # ASCII: with IGNORECASE alone, [a-z] also matches U+017F and U+212A, which go-version refuses.
    re.VERBOSE | re.IGNORECASE | re.ASCII,
)
_PRE_LABELS = {"alpha": "a", "a": "a", "beta": "b", "b": "b", "c": "rc", "rc": "rc", "pre": "rc", "preview": "rc"}
_INT64_MAX = (1 << 63) - 1


def go_version(pep440: str) -> str:
    """``pep440`` spelled the way HashiCorp go-version parses it (Nomad's ``version.NewVersion``, which refuses
    ``0.1.0.dev0``).

    The release gets at least three segments; pre-release and dev segments become the go-version pre-release
    (``0.1.0.dev0`` -> ``0.1.0-dev0``, ``1.2.3rc1.dev2`` -> ``1.2.3-rc1.dev2``). A post-release follows its release,
    but a go-version pre-release precedes it, so post and local segments become build metadata, which go-version
    keeps and ignores when comparing (``1.2.3.post1+abc`` -> ``1.2.3+post1.abc``). go-version has no epochs and
    int64 release segments: either is refused with :class:`~plugin_host.errors.InvalidPluginError`.
    """
    from plugin_host.errors import InvalidPluginError

    shown = pep440 if len(pep440) <= 64 else pep440[:64] + "..."
    m = _PEP440.fullmatch(pep440.strip())
    if m is None:
        raise InvalidPluginError(f"plugin_version {shown!r} is not a PEP 440 version (like 1.2.3 or 0.1.0.dev0)")
    if m["epoch"] is not None and int(m["epoch"]) != 0:
        raise InvalidPluginError(f"plugin_version {shown!r}: an epoch has no go-version equivalent (expected none)")
    release = [int(part) for part in m["release"].split(".")]
    if any(part > _INT64_MAX for part in release):
        raise InvalidPluginError(
            f"plugin_version {shown!r}: go-version release segments are int64 (at most {_INT64_MAX})"
        )
    release += [0] * (3 - len(release))
    pre: list[str] = []
    if m["pre_l"] is not None:
        pre.append(f"{_PRE_LABELS[m['pre_l'].lower()]}{int(m['pre_n'] or 0)}")
    if m["dev_l"] is not None:
        pre.append(f"dev{int(m['dev_n'] or 0)}")
    meta: list[str] = []
    if m["post_n1"] is not None or m["post_l"] is not None:
        meta.append(f"post{int(m['post_n1'] or m['post_n2'] or 0)}")
    if m["local"] is not None:
        meta.extend(re.split(r"[-_.]", m["local"].lower()))
    text = ".".join(str(part) for part in release)
    if pre:
        text += "-" + ".".join(pre)
    if meta:
        text += "+" + ".".join(meta)
    return text
