"""Start-up stays cheap: ``import plugin_host`` and a plugin process load only what they use (issue 12)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAZY_PACKAGES = sorted(
    path for path in (ROOT / "plugin_host").rglob("__init__.py") if "lazy_exports(" in path.read_text()
)


def _loaded_after(statement: str) -> list[str]:
    """The plugin_host modules a fresh interpreter has loaded after running ``statement``."""
    listing = "print(json.dumps(sorted(m for m in sys.modules if m.startswith('plugin_host'))))"
    code = f"{statement}\nimport sys, json\n{listing}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded: list[str] = json.loads(result.stdout)
    return loaded


def _under(modules: list[str], *packages: str) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in packages)]


def test_importing_plugin_host_loads_no_subsystem() -> None:
    """``import plugin_host`` loads neither the host nor the registry, state, CSI, kubelet, drivers or plugins."""
    loaded = _loaded_after("import plugin_host")
    assert sorted(loaded) == ["plugin_host", "plugin_host._lazy", "plugin_host._version", "plugin_host._wire_logs"]


def test_fs_device_plugin_process_imports_no_csi_kubelet_or_drivers() -> None:
    """The fs-device plugin process (``plugin-host-fs-device``) imports no CSI, kubelet, driver, host or state code."""
    loaded = _loaded_after("import plugin_host.plugins.fsdevice.__main__")
    forbidden = (
        "plugin_host.csi",
        "plugin_host.kubelet",
        "plugin_host.driver",
        "plugin_host.plugins.rawexec",
        "plugin_host.plugins.virt",
        "plugin_host.host",
        "plugin_host.state",
        "plugin_host.loader",
    )
    assert _under(loaded, *forbidden) == []
    assert "plugin_host.device.client" not in loaded  # a plugin serves; it never dials


def test_cli_version_imports_no_subsystem() -> None:
    """Parsing ``plugin-host --version`` needs only the CLI module itself."""
    loaded = _loaded_after("import plugin_host.cli")
    assert _under(loaded, "plugin_host.host", "plugin_host.admin", "plugin_host.state", "plugin_host.device") == []


def _type_checking_imports(tree: ast.Module) -> dict[str, str]:
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom)
                assert statement.module is not None
                names.update({alias.name: statement.module for alias in statement.names})
    return names


def _lazy_table(tree: ast.Module) -> dict[str, str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets):
            table = ast.literal_eval(node.value)
            assert isinstance(table, dict)
            return table
    raise AssertionError("no _LAZY table")


@pytest.mark.parametrize("path", LAZY_PACKAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_lazy_table_matches_what_type_checkers_see(path: Path) -> None:
    """A package's lazy table names exactly the modules its TYPE_CHECKING imports name, for the same names."""
    tree = ast.parse(path.read_text())
    assert _lazy_table(tree) == _type_checking_imports(tree)
