"""FsDeviceConfig: defaults, HCL file, mapping and msgpack constructors, and every bad input as a ConfigError."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest

from plugin_host.base import hclspec
from plugin_host.config import HclSyntaxError
from plugin_host.errors import ConfigError
from plugin_host.plugins.fsdevice import FsDevice, FsDeviceConfig

ALLOWED = "allowed keys: dir, list_period, unhealthy_perm"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fsdevice.hcl"
    path.write_text(text)
    return path


def test_defaults_match_upstream() -> None:
    """With no keys the config is upstream's default: dir ".", list_period 5s, unhealthy_perm -rwxrwxrwx."""
    config = FsDeviceConfig()
    assert (config.dir, config.list_period, config.unhealthy_perm) == (".", 5.0, "-rwxrwxrwx")
    assert config.model_dump() == {"dir": ".", "list_period": "5s", "unhealthy_perm": "-rwxrwxrwx"}


def test_config_is_frozen() -> None:
    """The config is immutable once built."""
    config = FsDeviceConfig()
    with pytest.raises(ValueError, match="frozen"):
        config.dir = "/x"  # type: ignore[misc]


def test_from_hcl_file_reads_the_config_block(tmp_path: Path) -> None:
    """from_hcl_file reads dir, list_period and unhealthy_perm from the top-level config block."""
    path = _write(
        tmp_path, 'config {\n  dir = "/srv/devices"\n  list_period = "1s"\n  unhealthy_perm = "-rw-rw-rw-"\n}\n'
    )
    config = FsDeviceConfig.from_hcl_file(path)
    assert config == FsDeviceConfig(dir="/srv/devices", list_period="1s", unhealthy_perm="-rw-rw-rw-")
    assert config.list_period == 1.0


def test_from_hcl_file_missing_keys_take_defaults(tmp_path: Path) -> None:
    """Keys left out of the config block (or the whole block) take their defaults."""
    assert FsDeviceConfig.from_hcl_file(_write(tmp_path, 'config {\n  list_period = "250ms"\n}\n')) == FsDeviceConfig(
        list_period="250ms"
    )
    assert FsDeviceConfig.from_hcl_file(_write(tmp_path, "")) == FsDeviceConfig()


def test_example_config_file_loads() -> None:
    """examples/fsdevice.hcl is a valid fs-device config pointing at examples/devices."""
    path = Path(__file__).resolve().parents[3] / "examples" / "fsdevice.hcl"
    config = FsDeviceConfig.from_hcl_file(path)
    assert config.dir == "examples/devices"
    assert config.list_period == 1.0


def test_hcl_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    """A config file that does not parse is a ConfigError with the file, line and column."""
    path = _write(tmp_path, 'config {\n  dir = "x"\n  list_period = = "1s"\n}\n')
    with pytest.raises(ConfigError) as info:
        FsDeviceConfig.from_hcl_file(path)
    assert isinstance(info.value, HclSyntaxError)
    assert (info.value.file, info.value.line, info.value.column) == (str(path), 3, 17)
    assert str(info.value).startswith(f"{path}:3:17: HCL syntax error: unexpected '='")


def test_unknown_key_in_hcl_names_key_and_allowed_keys(tmp_path: Path) -> None:
    """An unknown key in the config block is a ConfigError naming the file, the key and the allowed keys."""
    path = _write(tmp_path, 'config {\n  directory = "/x"\n}\n')
    with pytest.raises(ConfigError) as info:
        FsDeviceConfig.from_hcl_file(path)
    assert str(info.value) == f"{path}: unknown key 'directory'; {ALLOWED}"


def test_unknown_top_level_key_in_hcl(tmp_path: Path) -> None:
    """Anything but the config block at top level is a ConfigError naming it."""
    path = _write(tmp_path, 'dir = "/x"\n')
    with pytest.raises(ConfigError, match=r"unknown top-level key 'dir'; allowed: config"):
        FsDeviceConfig.from_hcl_file(path)


def test_repeated_config_block_in_hcl(tmp_path: Path) -> None:
    """Two config blocks are a ConfigError naming the block."""
    path = _write(tmp_path, "config {}\nconfig {}\n")
    with pytest.raises(ConfigError, match=r"block 'config' may appear once; found 2"):
        FsDeviceConfig.from_hcl_file(path)


def test_unknown_key_in_mapping() -> None:
    """An unknown key in a mapping is a ConfigError naming the key and the allowed keys."""
    with pytest.raises(ConfigError) as info:
        FsDeviceConfig.from_mapping({"dir": "/x", "period": "1s"})
    assert str(info.value) == f"fs-device config: unknown key 'period'; {ALLOWED}"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("5 seconds", 'invalid duration "5 seconds": unknown unit " seconds"'),
        ("-1s", 'duration "-1s" must be greater than zero'),
        ("0s", 'duration "0s" must be greater than zero'),
    ],
)
def test_bad_list_period(tmp_path: Path, value: str, why: str) -> None:
    """A list_period that is malformed, negative or zero is a ConfigError naming the field, value and examples."""
    builds: list[Callable[[], FsDeviceConfig]] = [
        lambda: FsDeviceConfig.from_mapping({"list_period": value}),
        lambda: FsDeviceConfig(list_period=value),
        lambda: FsDeviceConfig.from_hcl_file(_write(tmp_path, f'config {{\n  list_period = "{value}"\n}}\n')),
        lambda: FsDeviceConfig.from_msgpack(msgpack.packb({"list_period": value})),
    ]
    for build in builds:
        with pytest.raises(ConfigError) as info:
            build()
        message = str(info.value)
        assert f"list_period: {why}" in message
        assert '"500ms", "5s", "1m30s", "1.5h"' in message


@pytest.mark.parametrize("value", ["rwx", "-rwxrwxrwx-", "-rwxrwxrwz", "xrwxrwxrwx", ""])
def test_bad_unhealthy_perm(value: str) -> None:
    """An unhealthy_perm that is not a 10-character ls -l mode string is a ConfigError naming the field."""
    with pytest.raises(ConfigError) as info:
        FsDeviceConfig.from_mapping({"unhealthy_perm": value})
    message = str(info.value)
    assert message.startswith(f"fs-device config: unhealthy_perm: {value!r} is not a permission string")
    assert '"-rwxrwxrwx"' in message


@pytest.mark.parametrize("value", ["-rw-rw-rw-", "-rwsr-xr-x", "drwxrwxrwt", "-r--r-----", "lrwxrwxrwx"])
def test_good_unhealthy_perm(value: str) -> None:
    """Any mode string ls -l can print (with setuid, sticky, file type) is accepted."""
    assert FsDeviceConfig(unhealthy_perm=value).unhealthy_perm == value


def test_msgpack_round_trip() -> None:
    """to_msgpack gives the map Nomad sends, and from_msgpack reads it back to an equal config."""
    config = FsDeviceConfig(dir="/srv/devices", list_period="1m30s", unhealthy_perm="-rw-rw-rw-")
    payload = config.to_msgpack()
    assert msgpack.unpackb(payload) == {"dir": "/srv/devices", "list_period": "1m30s", "unhealthy_perm": "-rw-rw-rw-"}
    assert FsDeviceConfig.from_msgpack(payload) == config


def test_msgpack_missing_keys_take_defaults() -> None:
    """Keys missing from the msgpack map (or an empty/nil payload) take their defaults."""
    assert FsDeviceConfig.from_msgpack(msgpack.packb({"dir": "/x"})) == FsDeviceConfig(dir="/x")
    assert FsDeviceConfig.from_msgpack(msgpack.packb({})) == FsDeviceConfig()
    assert FsDeviceConfig.from_msgpack(msgpack.packb(None)) == FsDeviceConfig()
    assert FsDeviceConfig.from_msgpack(b"") == FsDeviceConfig()


def test_msgpack_raw_byte_strings_are_decoded() -> None:
    """Strings written as msgpack bin (as some Go encoders do) are decoded as UTF-8."""
    payload = msgpack.packb({b"dir": b"/x", b"list_period": b"2s"}, use_bin_type=True)
    assert FsDeviceConfig.from_msgpack(payload) == FsDeviceConfig(dir="/x", list_period="2s")


def test_msgpack_unknown_key() -> None:
    """An unknown key in the msgpack map is a ConfigError naming the key and the allowed keys."""
    with pytest.raises(ConfigError) as info:
        FsDeviceConfig.from_msgpack(msgpack.packb({"dri": "/x"}))
    assert str(info.value) == f"fs-device config (msgpack): unknown key 'dri'; {ALLOWED}"


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"\x81\xa3dir", "msgpack payload of 5 bytes does not decode"),
        (b"\xc1", "msgpack payload of 1 bytes does not decode"),
        (msgpack.packb(["/x"]), "msgpack payload must be a map of dir, list_period, unhealthy_perm; got list"),
        (msgpack.packb("/x"), "msgpack payload must be a map of dir, list_period, unhealthy_perm; got str"),
    ],
)
def test_msgpack_garbage(payload: bytes, why: str) -> None:
    """Bytes that are not a msgpack map are a ConfigError saying what was expected."""
    with pytest.raises(ConfigError, match=why):
        FsDeviceConfig.from_msgpack(payload)


@pytest.mark.anyio
async def test_set_config_dir_that_is_a_file(tmp_path: Path) -> None:
    """A dir that exists but is a regular file is a ConfigError at set_config, and the old config stays."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    plugin = FsDevice({"dir": str(tmp_path)})
    with pytest.raises(ConfigError) as info:
        await plugin.set_config({"dir": str(afile)})
    assert str(info.value).startswith(f"fs-device config: dir {str(afile)!r} exists but is a '-' file, not a directory")
    assert plugin.config == FsDeviceConfig(dir=str(tmp_path))


@pytest.mark.anyio
async def test_set_config_dir_below_a_file(tmp_path: Path) -> None:
    """A dir whose parent is a regular file is a ConfigError naming it."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ConfigError, match=r"dir '.*/afile/sub' is not a directory: Not a directory"):
        await FsDevice().set_config({"dir": str(afile / "sub")})


def test_constructor_dir_that_is_a_file(tmp_path: Path) -> None:
    """FsDevice(config) checks the dir the same way set_config does."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ConfigError, match="exists but is a '-' file, not a directory"):
        FsDevice(FsDeviceConfig(dir=str(afile)))


@pytest.mark.anyio
async def test_set_config_accepts_model_mapping_and_msgpack(tmp_path: Path) -> None:
    """set_config takes an FsDeviceConfig, a mapping or msgpack bytes; a missing dir is fine (it may appear)."""
    plugin = FsDevice()
    expected = FsDeviceConfig(dir=str(tmp_path / "later"), list_period="1s")
    for config in (expected, expected.model_dump(), expected.to_msgpack()):
        await plugin.set_config(config)
        assert plugin.config == expected


@pytest.mark.anyio
async def test_set_config_refuses_other_types() -> None:
    """set_config of something that is neither model, mapping nor bytes is a ConfigError naming the type."""
    with pytest.raises(ConfigError, match="expected FsDeviceConfig, a mapping or msgpack bytes; got int"):
        await FsDevice().set_config(5)


@pytest.mark.anyio
async def test_set_config_bad_key_keeps_old_config(tmp_path: Path) -> None:
    """A rejected config leaves the previous one in effect."""
    plugin = FsDevice({"dir": str(tmp_path)})
    with pytest.raises(ConfigError, match="unknown key 'bogus'"):
        await plugin.set_config({"bogus": 1})
    assert plugin.config == FsDeviceConfig(dir=str(tmp_path))


@pytest.mark.anyio
async def test_config_schema_mirrors_upstream() -> None:
    """config_schema is upstream's configSpec: three string attributes with their defaults."""
    spec = await FsDevice().config_schema()
    assert spec == hclspec.obj(
        {
            "dir": hclspec.default(hclspec.attr("dir", "string"), hclspec.literal('"."')),
            "list_period": hclspec.default(hclspec.attr("list_period", "string"), hclspec.literal('"5s"')),
            "unhealthy_perm": hclspec.default(
                hclspec.attr("unhealthy_perm", "string"), hclspec.literal('"-rwxrwxrwx"')
            ),
        }
    )


def test_msgpack_nil_values_take_the_defaults() -> None:
    """Nomad sends nil for every attribute a plugin block leaves unset: those keys take their defaults."""
    payload = msgpack.packb({"dir": None, "list_period": None, "unhealthy_perm": None})
    assert FsDeviceConfig.from_msgpack(payload) == FsDeviceConfig()
    assert FsDeviceConfig.from_msgpack(msgpack.packb({"dir": "/x", "list_period": None})) == FsDeviceConfig(dir="/x")
