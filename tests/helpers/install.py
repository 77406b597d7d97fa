"""What pyproject.toml installs."""

from __future__ import annotations

import tomllib

from conftest import ROOT


def console_scripts() -> dict[str, str]:
    """pyproject.toml's console scripts: name -> "module:function"."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        scripts: dict[str, str] = tomllib.load(f)["project"]["scripts"]
    return scripts
