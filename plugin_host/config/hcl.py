"""Load HCL files (python-hcl2 8.x) into plain Python data, with errors as :class:`ConfigError`.

python-hcl2 8.x keeps the source form of strings (``'"text"'`` with its escapes), wraps every block in a list of
bodies marked ``__is_block__``, keeps block labels quoted and renders expressions as ``"${...}"``. A static config
file has no variables, so :func:`normalize` turns literals into plain values and refuses expressions and
interpolations with a message naming the key. Blocks stay lists of bodies (a block may legitimately repeat);
:func:`single_block` and :func:`labeled_blocks` pick them apart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plugin_host._text import truncated
from plugin_host.errors import ConfigError, HclSyntaxError

if TYPE_CHECKING:
    from lark.exceptions import UnexpectedInput

# python-hcl2 and lark load only when a config is parsed: a plugin process that never reads HCL skips ~70 modules.

__all__ = ["HclBlock", "HclSyntaxError", "labeled_blocks", "load_hcl_file", "loads_hcl", "normalize", "single_block"]
# Keys python-hcl2 adds for its own round-tripping, never written by a user.
_MARKERS = frozenset({"__is_block__", "__comments__", "__inline_comments__", "__start_line__", "__end_line__"})
_PUNCTUATION = {
    "LBRACE": "{",
    "RBRACE": "}",
    "LSQB": "[",
    "RSQB": "]",
    "LPAR": "(",
    "RPAR": ")",
    "EQ": "=",
    "COMMA": ",",
    "DBLQUOTE": '"',
    "NAME": "a name",
    "NL_OR_COMMENT": "a new line",
    "$END": "end of file",
}


MAX_CONFIG_BYTES = 256 * 1024
"""The largest config file read. Host configs are a few KiB; python-hcl2 parses at roughly 25 µs a byte, so this
bounds a mistaken or hostile file (or ``--config /dev/zero``) to seconds of parsing instead of minutes or memory."""

MAX_NESTING = 100
"""The deepest nesting of ``{ }``, ``[ ]`` and ``( )`` parsed. python-hcl2's transformer recurses once per level and
hits Python's recursion limit somewhere past 150 levels depending on the construct; real configs nest under 10."""


class HclBlock(dict[str, Any]):
    """The body of a block: a plain dict that remembers it was written as ``name { ... }``.

    It lets :func:`labeled_blocks` tell ``plugin "x" { ... }`` from an unlabelled ``plugin { x = ... }``.
    """


def _describe_token(exc: UnexpectedInput) -> str:
    from lark.exceptions import UnexpectedCharacters, UnexpectedToken

    if isinstance(exc, UnexpectedToken):
        if exc.token.type == "$END":
            return "unexpected end of file"
        text = str(exc.token).strip()
        return f"unexpected {text.splitlines()[0][:40]!r}" if text else "unexpected new line"
    if isinstance(exc, UnexpectedCharacters):
        return f"unexpected character {exc.char!r}"
    return "unexpected end of file"


def _expected(exc: UnexpectedInput) -> str:
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

    names: set[str] = set()
    if isinstance(exc, UnexpectedToken):
        names = set(exc.expected)
    elif isinstance(exc, UnexpectedCharacters | UnexpectedEOF):
        names = set(exc.allowed if isinstance(exc, UnexpectedCharacters) else exc.expected)
    shown = sorted({_PUNCTUATION.get(n, n.lower()) for n in names})
    if not shown:
        return ""
    more = f" (and {len(shown) - 8} more)" if len(shown) > 8 else ""
    return "; expected one of " + ", ".join(shown[:8]) + more


def _syntax_error(exc: UnexpectedInput, text: str, source: str) -> HclSyntaxError:
    lines = text.splitlines() or [""]
    line = exc.line if isinstance(exc.line, int) and exc.line > 0 else len(lines)
    column = exc.column if isinstance(exc.column, int) and exc.column > 0 else len(lines[-1]) + 1
    context = lines[line - 1] if line <= len(lines) else ""
    caret = " " * (column - 1) + "^"
    message = (
        f"{source}:{line}:{column}: HCL syntax error: {_describe_token(exc)}{_expected(exc)}\n  {context}\n  {caret}"
    )
    return HclSyntaxError(message, file=source, line=line, column=column)


def _unquote(value: str, where: str, source: str) -> str:
    from hcl2.utils import process_escape_sequences

    body = process_escape_sequences(value[1:-1])
    out: list[str] = []
    i = 0
    while i < len(body):
        # "$${" and "%%{" are HCL's escapes for a literal "${" / "%{"; an unescaped one is a template.
        if body.startswith(("$${", "%%{"), i):
            out.append(body[i + 1 : i + 3])
            i += 3
        elif body.startswith(("${", "%{"), i):
            raise ConfigError(
                f"{source}: {where}: string templates are not supported in config files; got {value}"
                ' (write "$${" for a literal "${")'
            )
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


def _value(value: Any, where: str, source: str) -> Any:
    if isinstance(value, str):
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            return _unquote(value, where, source)
        raise ConfigError(
            f"{source}: {where}: expressions are not supported in config files; got {truncated(value)}; "
            'write a literal value such as "text", 5 or true'
        )
    if isinstance(value, list):
        return [_value(item, f"{where}[{i}]", source) for i, item in enumerate(value)]
    if isinstance(value, dict):
        body = normalize(value, source=source, _where=where)
        return HclBlock(body) if value.get("__is_block__") else body
    return value


def _key(key: str) -> str:
    if len(key) >= 2 and key[0] == '"' and key[-1] == '"':
        from hcl2.utils import process_escape_sequences

        return process_escape_sequences(key[1:-1])
    return key


def normalize(data: Mapping[str, Any], *, source: str = "<config>", _where: str = "") -> dict[str, Any]:
    """Turn python-hcl2 8.x output into plain values: unquoted strings, no block markers or comment keys.

    Blocks stay lists of bodies and labelled blocks stay ``{label: body}`` nesting; ``source`` prefixes errors.
    """
    out: dict[str, Any] = {}
    for raw_key, raw in data.items():
        if raw_key in _MARKERS:
            continue
        key = _key(raw_key)
        where = f"{_where}.{key}" if _where else key
        out[key] = _value(raw, where, source)
    return out


def _check_nesting(text: str, source: str) -> None:
    """Refuse text nested deeper than :data:`MAX_NESTING` before the parser recurses into it.

    Brackets inside strings and comments are skipped; heredoc bodies are not told apart, which can only overcount,
    and only a body holding about MAX_NESTING unclosed brackets could be refused because of it.
    """
    depth = 0
    line, line_start = 1, 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line, line_start = line + 1, i + 1
        elif ch == '"':
            i += 1
            while i < n and text[i] not in '"\n':
                i += 2 if text[i] == "\\" else 1
            if i < n and text[i] == '"':
                i += 1
            continue
        elif ch == "#" or text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end == -1 else end + 2
            line += text.count("\n", i, end)
            last = text.rfind("\n", i, end)
            line_start = last + 1 if last != -1 else line_start
            i = end
            continue
        elif ch in "{[(":
            depth += 1
            if depth > MAX_NESTING:
                column = i - line_start + 1
                raise HclSyntaxError(
                    f"{source}:{line}:{column}: HCL nested more than {MAX_NESTING} levels deep (blocks, lists,"
                    " objects and parentheses together); config files need far fewer",
                    file=source,
                    line=line,
                    column=column,
                )
        elif ch in "}])":
            depth = max(0, depth - 1)
        i += 1


def loads_hcl(text: str, *, source: str = "<string>") -> dict[str, Any]:
    """Parse HCL text into normalised data; syntax errors are :class:`HclSyntaxError` with line and column.

    Text over :data:`MAX_CONFIG_BYTES` or nested deeper than :data:`MAX_NESTING` is refused before parsing.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{source}: config is {size} bytes; the most a config file may hold is {MAX_CONFIG_BYTES} bytes"
            f" ({MAX_CONFIG_BYTES // 1024} KiB)"
        )
    _check_nesting(text, source)
    import hcl2
    from lark.exceptions import LarkError, UnexpectedInput

    options = hcl2.SerializationOptions(with_comments=False, preserve_heredocs=False, explicit_blocks=True)
    try:
        raw = hcl2.loads(text, serialization_options=options)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text, source) from exc
    except (LarkError, ValueError, RuntimeError) as exc:
        # Transformer failures (bad heredocs, escapes) carry no position; still name the file.
        raise ConfigError(f"{source}: HCL error: {exc}") from exc
    return normalize(raw, source=source)


def load_hcl_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and parse an HCL file; every failure (missing, unreadable, not UTF-8, bad syntax) is a ConfigError."""
    source = os.fspath(path)
    try:
        with Path(path).open("rb") as file:
            # One byte more than allowed tells a file at the limit from a larger one without reading all of it.
            data = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config file: {exc.strerror or exc}") from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{source}: config file is larger than {MAX_CONFIG_BYTES} bytes ({MAX_CONFIG_BYTES // 1024} KiB), the most"
            " a config file may hold"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: config file is not UTF-8 text (byte {exc.start})") from exc
    return loads_hcl(text, source=source)


def _bodies(data: Mapping[str, Any], name: str) -> list[Any]:
    value = data.get(name)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def single_block(data: Mapping[str, Any], name: str, *, source: str = "<config>") -> dict[str, Any] | None:
    """The body of block ``name`` that may appear at most once, or None when absent.

    A repeated block, or an attribute where a block was expected, is a :class:`ConfigError` naming it.
    """
    bodies = _bodies(data, name)
    if not bodies:
        return None
    if len(bodies) > 1:
        raise ConfigError(f"{source}: block {name!r} may appear once; found {len(bodies)}")
    body = bodies[0]
    if not isinstance(body, dict):
        raise ConfigError(f"{source}: {name!r} must be a block ({name} {{ ... }}); got {truncated(body)}")
    return body


def labeled_blocks(data: Mapping[str, Any], name: str, *, source: str = "<config>") -> dict[str, dict[str, Any]]:
    """Bodies of ``name "label" { ... }`` blocks keyed by label, in file order.

    A block without exactly one label, or a label used twice, is a :class:`ConfigError` naming it.
    """
    out: dict[str, dict[str, Any]] = {}
    for entry in _bodies(data, name):
        # A labelled block is {label: body}; an unlabelled one is the body itself.
        if isinstance(entry, HclBlock) or not isinstance(entry, dict) or len(entry) != 1:
            raise ConfigError(f'{source}: block {name!r} needs exactly one label, as in {name} "name" {{ ... }}')
        ((label, body),) = entry.items()
        if not isinstance(body, HclBlock):
            raise ConfigError(f'{source}: block {name} "{label}" has more than one label; expected one')
        if label in out:
            raise ConfigError(f'{source}: block {name} "{label}" is defined twice; each label may appear once')
        out[label] = body
    return out
