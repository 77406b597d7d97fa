"""HCL loading: python-hcl2 8.x output normalised to plain values, syntax errors with file, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from plugin_host.config import (
    ConfigModel,
    HclSyntaxError,
    config_error_from_validation,
    labeled_blocks,
    load_hcl_file,
    loads_hcl,
    single_block,
)
from plugin_host.errors import ConfigError


def test_literals_become_plain_python_values() -> None:
    """Strings lose their quotes and escapes are resolved; numbers, bools, null, lists and objects are native."""
    data = loads_hcl(
        "\n".join(
            [
                's = "text"',
                'esc = "a \\"quoted\\" word\\n\\tand caf\\u00e9"',
                'dollar = "$${not_a_template} %%{nor_this}"',
                "n = 5",
                "neg = -3",
                "f = 1.5",
                "yes = true",
                "nothing = null",
                'l = [1, "two", false]',
                'm = { a = 1, "b-c" = "x", nested = { deep = "v" } }',
                "h = <<EOT",
                "heredoc text",
                "EOT",
                "# a comment",
                "// another comment",
            ]
        )
    )
    assert data == {
        "s": "text",
        "esc": 'a "quoted" word\n\tand café',
        "dollar": "${not_a_template} %{nor_this}",
        "n": 5,
        "neg": -3,
        "f": 1.5,
        "yes": True,
        "nothing": None,
        "l": [1, "two", False],
        "m": {"a": 1, "b-c": "x", "nested": {"deep": "v"}},
        "h": "heredoc text",
    }


def test_blocks_are_lists_of_bodies_without_markers() -> None:
    """A block is a list of bodies (it may repeat), a labelled block a list of {label: body}; no __is_block__."""
    data = loads_hcl('kubelet {\n  namespace = "x"\n}\nplugin "fs-device" {\n  config {}\n}\n')
    assert data == {"kubelet": [{"namespace": "x"}], "plugin": [{"fs-device": {"config": [{}]}}]}


def test_single_block_returns_the_body_or_none() -> None:
    """single_block unwraps a block that appears once and returns None when it is absent."""
    data = loads_hcl('kubelet {\n  namespace = "x"\n}\n')
    assert single_block(data, "kubelet") == {"namespace": "x"}
    assert single_block(data, "missing") is None


def test_single_block_refuses_a_repeated_block() -> None:
    """A block that may appear once but appears twice is a ConfigError naming it and the count."""
    data = loads_hcl("kubelet {}\nkubelet {}\n")
    with pytest.raises(ConfigError, match=r"host\.hcl: block 'kubelet' may appear once; found 2"):
        single_block(data, "kubelet", source="host.hcl")


def test_single_block_refuses_an_attribute() -> None:
    """An attribute where a block is expected is a ConfigError showing the block syntax."""
    data = loads_hcl('kubelet = "x"\n')
    with pytest.raises(ConfigError, match=r"'kubelet' must be a block \(kubelet \{ \.\.\. \}\); got 'x'"):
        single_block(data, "kubelet")


def test_labeled_blocks_keyed_by_label_in_file_order() -> None:
    """labeled_blocks turns plugin "name" { ... } blocks into {name: body}, in file order."""
    data = loads_hcl('plugin "b" {\n  x = 1\n}\nplugin "a" {}\n')
    assert list(labeled_blocks(data, "plugin").items()) == [("b", {"x": 1}), ("a", {})]
    assert labeled_blocks(data, "absent") == {}


def test_labeled_blocks_refuses_a_duplicate_label() -> None:
    """The same label twice is a ConfigError naming the block and the label."""
    data = loads_hcl('plugin "a" {}\nplugin "a" {}\n')
    with pytest.raises(ConfigError, match=r'block plugin "a" is defined twice'):
        labeled_blocks(data, "plugin")


@pytest.mark.parametrize("text", ["plugin {\n  x = 1\n}\n", "plugin {\n  inner = { a = 1 }\n}\n", "plugin {}\n"])
def test_labeled_blocks_refuses_a_block_without_label(text: str) -> None:
    """A labelled block written without a label is a ConfigError showing the expected syntax."""
    with pytest.raises(ConfigError, match=r'block \'plugin\' needs exactly one label, as in plugin "name"'):
        labeled_blocks(loads_hcl(text), "plugin")


def test_labeled_blocks_refuses_two_labels() -> None:
    """A block with two labels where one is expected is a ConfigError naming the first label."""
    with pytest.raises(ConfigError, match=r'block plugin "a" has more than one label; expected one'):
        labeled_blocks(loads_hcl('plugin "a" "b" {}\n'), "plugin")


def test_expression_is_refused_naming_the_key() -> None:
    """A bare expression (a variable reference) is a ConfigError naming the key path and the expression."""
    with pytest.raises(ConfigError) as info:
        loads_hcl("outer {\n  dir = var.root\n}\n", source="host.hcl")
    message = str(info.value)
    assert message.startswith("host.hcl: outer[0].dir: expressions are not supported")
    assert "var.root" in message


def test_interpolation_is_refused_naming_the_key() -> None:
    """A string template with ${...} is a ConfigError naming the key and showing the $${ escape."""
    with pytest.raises(ConfigError) as info:
        loads_hcl('dir = "/data/${env}"\n', source="host.hcl")
    message = str(info.value)
    assert message.startswith("host.hcl: dir: string templates are not supported")
    assert '"/data/${env}"' in message
    assert "$${" in message


@pytest.mark.parametrize(
    ("text", "line", "column", "what"),
    [
        ('a = "x"\nb = \n', 2, 5, "unexpected"),
        ('config {\n  dir = "x"\n', 3, 1, "unexpected end of file"),
        ('config {\n  dir == "x"\n}\n', 2, 7, "unexpected '=='"),
        ("x = 1\n@\n", 2, 1, "unexpected '@'"),
    ],
)
def test_syntax_error_names_file_line_and_column(tmp_path: Path, text: str, line: int, column: int, what: str) -> None:
    """A file that does not parse raises HclSyntaxError (a ConfigError) with file, line and column."""
    path = tmp_path / "bad.hcl"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_hcl_file(path)
    error = info.value
    assert isinstance(error, HclSyntaxError)
    assert (error.file, error.line, error.column) == (str(path), line, column)
    message = str(error)
    assert message.startswith(f"{path}:{line}:{column}: HCL syntax error: ")
    assert what in message


def test_syntax_error_message_shows_the_line_and_what_was_expected(tmp_path: Path) -> None:
    """The message quotes the offending line with a caret and lists what the parser expected."""
    path = tmp_path / "bad.hcl"
    path.write_text('config {\n  dir = "x"\n}\n}\n')
    with pytest.raises(HclSyntaxError) as info:
        load_hcl_file(path)
    message = str(info.value)
    assert f"{path}:4:1:" in message
    assert "expected one of end of file" in message
    assert message.endswith("\n  }\n  ^")


def test_missing_file_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    """A config file that does not exist is a ConfigError naming the path and the reason."""
    path = tmp_path / "absent.hcl"
    with pytest.raises(ConfigError, match=rf"{path}: cannot read config file: No such file or directory"):
        load_hcl_file(path)


def test_non_utf8_file_is_a_config_error(tmp_path: Path) -> None:
    """A config file that is not UTF-8 is a ConfigError naming the path and the byte offset."""
    path = tmp_path / "latin1.hcl"
    path.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=rf"{path}: config file is not UTF-8 text \(byte 11\)"):
        load_hcl_file(path)


class _Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    namespace: str = ""
    plugin_dir: str = ""


class _Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state_dir: str = "state"
    kubelet: _Inner = _Inner()


def test_validation_error_unknown_key_lists_allowed_keys() -> None:
    """An unknown key becomes a ConfigError naming it and listing the keys allowed at that level."""
    with pytest.raises(ValidationError) as info:
        _Outer.model_validate({"stat_dir": "x"})
    error = config_error_from_validation(info.value, _Outer, source="host.hcl")
    assert isinstance(error, ConfigError)
    assert str(error) == "host.hcl: unknown key 'stat_dir'; allowed keys: kubelet, state_dir"


def test_validation_error_nested_unknown_key_lists_nested_allowed_keys() -> None:
    """An unknown key in a nested block names its path and lists that block's allowed keys."""
    with pytest.raises(ValidationError) as info:
        _Outer.model_validate({"kubelet": {"namespase": "x"}})
    error = config_error_from_validation(info.value, _Outer, source="host.hcl")
    assert str(error) == "host.hcl: unknown key 'kubelet.namespase'; allowed keys: namespace, plugin_dir"


def test_validation_error_wrong_type_names_key_and_value() -> None:
    """A wrong type names the key, pydantic's reason and the value given; several problems are listed."""
    with pytest.raises(ValidationError) as info:
        _Outer.model_validate({"state_dir": 5, "kubelet": {"namespace": ["x"]}})
    message = str(config_error_from_validation(info.value, _Outer))
    assert message.startswith("2 problems:\n")
    assert "state_dir: Input should be a valid string; got 5" in message
    assert "kubelet.namespace: Input should be a valid string; got ['x']" in message


class _Cfg(ConfigModel):
    name: str = "x"


def test_config_model_raises_config_error_on_construction() -> None:
    """A ConfigModel raises ConfigError (not ValidationError) both when built directly and from a mapping."""
    with pytest.raises(ConfigError, match=r"^_Cfg: unknown key 'nmae'; allowed keys: name$"):
        _Cfg(nmae="y")  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match=r"^my\.hcl: unknown key 'nmae'; allowed keys: name$"):
        _Cfg.from_mapping({"nmae": "y"}, source="my.hcl")


def test_config_model_from_mapping_refuses_non_mapping() -> None:
    """from_mapping of something that is not a mapping is a ConfigError naming the type given."""
    with pytest.raises(ConfigError, match=r"_Cfg: expected a mapping of config keys; got list"):
        _Cfg.from_mapping(["name"])  # type: ignore[arg-type]
