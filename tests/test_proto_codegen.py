"""The generated code in plugin_host/_proto matches what tools/gen_proto.py makes from proto/, and carries Nomad's
gRPC service paths."""

from __future__ import annotations

import ast
import difflib
import subprocess
import sys
from pathlib import Path

import pytest

from plugin_host._proto.hashicorp.nomad.plugins import device as wire_device
from plugin_host._proto.hashicorp.nomad.plugins.base import proto as wire_base
from plugin_host.base import convert as base_convert
from plugin_host.device import _convert as device_convert

REPO = Path(__file__).resolve().parents[1]
GENERATED = REPO / "plugin_host" / "_proto"


def _python_files(root: Path) -> dict[str, str]:
    return {path.relative_to(root).as_posix(): path.read_text(encoding="utf-8") for path in root.rglob("*.py")}


def _same_code(left: str, right: str) -> bool:
    # Compare syntax trees, not text: the generator formats its output with whatever black version is installed,
    # and a formatter upgrade must not read as drift. Docstrings are part of the tree, so comments in .proto count.
    return ast.dump(ast.parse(left)) == ast.dump(ast.parse(right))


@pytest.mark.timeout(120)
def test_generated_code_matches_the_proto_sources(tmp_path: Path) -> None:
    """Regenerating from proto/ reproduces plugin_host/_proto; on drift the failure shows a diff per file."""
    out = tmp_path / "_proto"
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "gen_proto.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"tools/gen_proto.py failed:\n{result.stdout}{result.stderr}"

    fresh, committed = _python_files(out), _python_files(GENERATED)
    problems = [f"missing from plugin_host/_proto: {name}" for name in sorted(fresh.keys() - committed.keys())]
    problems += [f"not generated from proto/ any more: {name}" for name in sorted(committed.keys() - fresh.keys())]
    for name in sorted(fresh.keys() & committed.keys()):
        if not _same_code(committed[name], fresh[name]):
            diff = difflib.unified_diff(
                committed[name].splitlines(keepends=True),
                fresh[name].splitlines(keepends=True),
                fromfile=f"plugin_host/_proto/{name} (committed)",
                tofile=f"plugin_host/_proto/{name} (regenerated)",
            )
            problems.append("".join(diff))
    assert not problems, "generated code drifted; run `python tools/gen_proto.py`\n\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("servable", "paths"),
    [
        (
            wire_base.BasePluginBase,
            [
                "/hashicorp.nomad.plugins.base.proto.BasePlugin/PluginInfo",
                "/hashicorp.nomad.plugins.base.proto.BasePlugin/ConfigSchema",
                "/hashicorp.nomad.plugins.base.proto.BasePlugin/SetConfig",
            ],
        ),
        (
            wire_device.DevicePluginBase,
            [
                "/hashicorp.nomad.plugins.device.DevicePlugin/Fingerprint",
                "/hashicorp.nomad.plugins.device.DevicePlugin/Reserve",
                "/hashicorp.nomad.plugins.device.DevicePlugin/Stats",
            ],
        ),
    ],
)
def test_generated_services_use_nomads_rpc_paths(servable: type, paths: list[str]) -> None:
    """The generated services expose exactly Nomad's gRPC method paths."""
    assert sorted(servable().__mapping__()) == sorted(paths)


def test_adapters_use_the_generated_service_paths() -> None:
    """The service prefixes the adapters dial are the ones the generated code serves."""
    base_paths = wire_base.BasePluginBase().__mapping__()
    device_paths = wire_device.DevicePluginBase().__mapping__()
    assert f"{base_convert.BASE_SERVICE}/PluginInfo" in base_paths
    assert f"{device_convert.DEVICE_SERVICE}/Fingerprint" in device_paths


def test_every_proto_file_has_an_upstream_entry_in_the_readme() -> None:
    """proto/README.md lists every .proto file we keep, so its upstream origin is recorded."""
    readme = (REPO / "proto" / "README.md").read_text(encoding="utf-8")
    protos = sorted(p.relative_to(REPO / "proto").as_posix() for p in (REPO / "proto").rglob("*.proto"))
    assert protos, "no .proto files under proto/"
    missing = [p for p in protos if f"`{p}`" not in readme]
    assert not missing, f"proto/README.md does not mention {missing}"
