"""CSI secrets: the table of csi_secret fields matches proto/csi.proto, and secret values never reach a log line, a
repr or an error message, while still reaching the plugin."""

from __future__ import annotations

import ast
import json
import logging
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.metadata import decode_grpc_message, encode_grpc_message
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import BaseModel

from plugin_host._proto.csi import v1 as wire
from plugin_host.csi import CsiClient, CsiPlugin, CsiPluginServer, GetPluginInfoResponse, Secrets
from plugin_host.csi import api as csi_api
from plugin_host.csi._rpcs import RPCS
from plugin_host.csi._secrets import SECRET_FIELDS, scrub, scrub_exception
from plugin_host.csi.server import rpc_method_name
from plugin_host.errors import InvalidRequestError, PluginHostError, PluginRPCError

REPO = Path(__file__).resolve().parents[2]
SECRET = "hunter2-Sup3rS3cret"
CAPABILITY = {"mount": {}, "access_mode": {"mode": "SINGLE_NODE_WRITER"}}

# Just enough arguments for each RPC with a secrets field to pass the client's checks.
ARGUMENTS: dict[str, dict[str, Any]] = {
    "CreateVolume": {"name": "v", "volume_capabilities": [CAPABILITY]},
    "DeleteVolume": {"volume_id": "v"},
    "ControllerPublishVolume": {"volume_id": "v", "node_id": "n", "volume_capability": CAPABILITY},
    "ControllerUnpublishVolume": {"volume_id": "v"},
    "ValidateVolumeCapabilities": {"volume_id": "v", "volume_capabilities": [CAPABILITY]},
    "ControllerModifyVolume": {"volume_id": "v", "mutable_parameters": {"iops": "1"}},
    "CreateSnapshot": {"source_volume_id": "v", "name": "s"},
    "DeleteSnapshot": {"snapshot_id": "s"},
    "ListSnapshots": {},
    "GetSnapshot": {"snapshot_id": "s"},
    "ControllerExpandVolume": {"volume_id": "v", "capacity_range": {"required_bytes": 1}},
    "NodeStageVolume": {"volume_id": "v", "staging_target_path": "/stage", "volume_capability": CAPABILITY},
    "NodePublishVolume": {"volume_id": "v", "target_path": "/target", "volume_capability": CAPABILITY},
    "NodeExpandVolume": {"volume_id": "v", "volume_path": "/target"},
    "CreateVolumeGroupSnapshot": {"name": "g", "source_volume_ids": ["v"]},
    "DeleteVolumeGroupSnapshot": {"group_snapshot_id": "g", "snapshot_ids": ["s"]},
    "GetVolumeGroupSnapshot": {"group_snapshot_id": "g", "snapshot_ids": ["s"]},
    "GetMetadataAllocated": {"snapshot_id": "s"},
    "GetMetadataDelta": {"base_snapshot_id": "a", "target_snapshot_id": "b"},
}

_OPTIONS_SCRIPT = textwrap.dedent(
    """
    import json, subprocess, sys, tempfile
    from pathlib import Path
    import grpc_tools
    out = tempfile.mkdtemp()
    include = Path(grpc_tools.__file__).parent / "_proto"
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I.", f"-I{include}", f"--python_out={out}",
                    "csi.proto"], check=True, cwd=sys.argv[1])
    sys.path.insert(0, out)
    import csi_pb2

    def walk(message):
        yield message
        for nested in message.nested_types:
            yield from walk(nested)

    found = {}
    for top in csi_pb2.DESCRIPTOR.message_types_by_name.values():
        for message in walk(top):
            for field in message.fields:
                if field.GetOptions().Extensions[csi_pb2.csi_secret]:
                    found.setdefault(message.name, []).append(field.name)
    print(json.dumps(found))
    """
)


def test_secret_table_matches_the_csi_secret_options_in_the_proto() -> None:
    """SECRET_FIELDS lists exactly the fields proto/csi.proto marks [(csi_secret) = true] (compiled by protoc)."""
    result = subprocess.run(
        [sys.executable, "-c", _OPTIONS_SCRIPT, str(REPO / "proto")], capture_output=True, text=True, check=True
    )
    marked = {name: frozenset(fields) for name, fields in json.loads(result.stdout).items()}
    assert len(marked) == 19
    assert marked == dict(SECRET_FIELDS)


def test_request_models_type_exactly_the_secret_fields_as_secrets() -> None:
    """Every csi_secret field is a Secrets in its request model, and no other field is."""
    typed = {}
    for rpc in RPCS.values():
        fields = frozenset(name for name, info in rpc.request.model_fields.items() if info.annotation is Secrets)
        if fields:
            typed[rpc.request.__name__] = fields
    assert typed == dict(SECRET_FIELDS)


def test_secrets_show_keys_but_never_values() -> None:
    """repr, str, JSON and model reprs show '***' for every value; reading a value explicitly still works."""
    secrets = Secrets({"password": SECRET, "user": "admin"})
    model = RPCS["DeleteVolume"].request.model_validate({"volume_id": "v", "secrets": {"password": SECRET}})
    shown = [repr(secrets), str(secrets), repr(model), str(model), model.model_dump_json(), f"{model!r}"]
    assert all(SECRET not in text for text in shown)
    assert repr(secrets) == "{'password': '***', 'user': '***'}"
    assert json.loads(model.model_dump_json())["secrets"] == {"password": "***"}
    assert secrets["password"] == SECRET
    assert dict(secrets) == {"password": SECRET, "user": "admin"}
    assert secrets == {"password": SECRET, "user": "admin"}


def test_scrub_replaces_every_occurrence_longest_first() -> None:
    """scrub hides each secret value, also one that contains another."""
    assert scrub("a=abc b=ab", ["ab", "abc", ""]) == "a=*** b=***"


# How a text carrying a secret gets echoed, each with the decoder that turns the echo back into the text.
RENDERINGS: dict[str, tuple[Callable[[str], str], Callable[[str], str]]] = {
    "raw": (lambda text: text, lambda shown: shown),
    "repr": (repr, ast.literal_eval),
    "ascii": (ascii, ast.literal_eval),
    "dict repr": (lambda text: repr({"token": text}), lambda shown: ast.literal_eval(shown)["token"]),
    "json": (json.dumps, json.loads),
    "json, not ASCII": (lambda text: json.dumps(text, ensure_ascii=False), json.loads),
    # grpc-message travels percent-encoded (grpclib/metadata.py encode_grpc_message, grpc-go's encodeGrpcMessage).
    "grpc-message": (encode_grpc_message, decode_grpc_message),
    "unicode_escape": (
        lambda text: text.encode("unicode_escape").decode("ascii"),
        lambda shown: shown.encode("latin-1").decode("unicode_escape"),
    ),
    # How hpack logs a header value: the repr of its bytes.
    "repr of UTF-8 bytes": (
        lambda text: repr(text.encode()),
        lambda shown: ast.literal_eval(shown).decode("utf-8", "replace"),
    ),
}


def _decoded(rendering: str, shown: str) -> str:
    decode = RENDERINGS[rendering][1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a scrubbed escape may read as an invalid one
        try:
            return str(decode(shown))
        except (ValueError, SyntaxError, UnicodeError, TypeError, KeyError, MemoryError):
            return shown  # no longer decodes: the text itself must then be clean


@pytest.mark.parametrize("rendering", list(RENDERINGS))
@given(
    secret=st.text(min_size=1, max_size=24).filter(lambda value: value.strip("*")),
    before=st.text(max_size=8),
    after=st.text(max_size=8),
)
@example(secret="pa'ss\"w\\o\nrd\u00e9\u20ac", before="token=", after="!")
@example(secret="hunter2 'x'", before="{'a': \"", after="'")
def test_scrub_hides_every_escaped_form_of_a_secret(rendering: str, secret: str, before: str, after: str) -> None:
    """However a message quoting a secret is echoed (repr, ascii, JSON, percent-encoded, unicode_escape, repr of its
    bytes), the scrubbed echo neither shows the secret nor decodes back to a text containing it."""
    render = RENDERINGS[rendering][0]
    scrubbed = scrub(render(before + secret + after), [secret])
    assert secret not in scrubbed
    assert secret not in _decoded(rendering, scrubbed)


def test_scrub_exception_hides_a_secret_echoed_in_repr_form() -> None:
    """A secret with a quote and a newline, echoed by repr (escaped quote, \\n), is hidden in an exception's args."""
    secret = 'it\'s\n"secret"'
    error = RuntimeError(f"bad credentials {secret!r} and {[secret]}")
    scrub_exception(error, [secret])
    assert str(error) == "bad credentials '***' and ['***']"


class EchoingPlugin:
    """Answers every RPC by rejecting the credentials, quoting them in its error status (as careless plugins do)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str]]] = []

    def __getattr__(self, name: str) -> Callable[[BaseModel], Awaitable[BaseModel]]:
        if name.startswith("_"):
            raise AttributeError(name)

        async def reject(request: BaseModel) -> BaseModel:
            secrets = dict(getattr(request, "secrets", {}))
            self.received.append((name, secrets))
            raise GRPCError(Status.PERMISSION_DENIED, f"{name}: credentials {secrets} rejected")

        return reject


async def _call(method: Callable[..., Any], streaming: bool, **arguments: Any) -> None:
    if streaming:
        async for _ in method(**arguments):
            pass
    else:
        await method(**arguments)


def _texts_of(exc: BaseException) -> list[str]:
    texts = []
    current: BaseException | None = exc
    while current is not None:
        texts += [str(current), repr(current), *(str(arg) for arg in current.args)]
        texts += [str(getattr(current, attr, "")) for attr in ("rpc_message", "message")]
        current = current.__cause__ or current.__context__
    return texts


@pytest.mark.anyio
async def test_secrets_never_reach_logs_reprs_or_errors(short_tmp: Path, caplog: pytest.LogCaptureFixture) -> None:
    """With every request logged at DEBUG, each RPC that carries secrets sends them to the plugin, yet no log line,
    repr or error (nor the gRPC error it came from) contains a value, even when the plugin echoes them back."""
    caplog.set_level(logging.DEBUG)
    plugin = EchoingPlugin()
    errors: list[PluginHostError] = []
    # Its __getattr__ answers every RPC, the Identity service's too, which the type checker cannot see.
    served = cast(CsiPlugin, plugin)
    async with CsiPluginServer(served, short_tmp / "csi.sock"), CsiClient(short_tmp / "csi.sock", timeout=10) as client:
        for rpc_name, arguments in ARGUMENTS.items():
            method = getattr(client, rpc_method_name(rpc_name))
            with pytest.raises(PluginRPCError) as caught:
                await _call(method, RPCS[rpc_name].streaming, secrets={"token": SECRET}, **arguments)
            errors.append(caught.value)
        with pytest.raises(InvalidRequestError) as bad:
            await client.delete_volume(volume_id="v", secrets={"token": [SECRET]})  # type: ignore[dict-item]
        errors.append(bad.value)

    unary = [name for name in ARGUMENTS if not RPCS[name].streaming]
    assert plugin.received == [(rpc_method_name(name), {"token": SECRET}) for name in unary]
    assert sorted(SECRET_FIELDS) == sorted(f"{name}Request" for name in ARGUMENTS)
    assert "'token': '***'" in caplog.text
    # CsiPluginServer scrubs the status the plugin fills with the secrets before it goes on the wire, and hpack's
    # DEBUG records (header values) are dropped: no record of any logger shows them.
    assert [record.name for record in caplog.records if SECRET in record.getMessage()] == []
    for error in errors:
        assert all(SECRET not in text for text in _texts_of(error)), error
    assert "PERMISSION_DENIED" in str(errors[0])
    assert "'token': '***'" in str(errors[0])


class IdentityOnly:
    """The Identity service every CSI plugin implements, for the doubles below."""

    async def get_plugin_info(self, request: Any) -> GetPluginInfoResponse:
        return GetPluginInfoResponse(name="secrets.example.com", vendor_version="1.0.0")

    async def get_plugin_capabilities(self, request: Any) -> csi_api.GetPluginCapabilitiesResponse:
        return csi_api.GetPluginCapabilitiesResponse()

    async def probe(self, request: Any) -> csi_api.ProbeResponse:
        return csi_api.ProbeResponse(ready=True)


def _noted(token: str) -> Exception:
    error = RuntimeError("mount failed")
    error.add_note(f"while mounting with {token}")
    return error


class RaisingPlugin(IdentityOnly):
    """A plugin whose DeleteVolume fails with a plain exception quoting the credentials (a careless plugin bug)."""

    def __init__(self, error: Callable[[str], Exception]) -> None:
        self._error = error

    async def delete_volume(self, request: Any) -> BaseModel:
        raise self._error(request.secrets["token"])


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("error", "sent"),
    [
        (lambda token: RuntimeError(f"vault refused the token {token}"), "RuntimeError: vault refused the token ***"),
        (lambda token: FileNotFoundError(2, "No such file", f"/keys/{token}"), "No such file: '/keys/***'"),
        (
            lambda token: subprocess.CalledProcessError(32, ["mount", "-o", f"password={token}", "/dev/x", "/mnt"]),
            "returned non-zero exit status 32.",
        ),
        (lambda token: ExceptionGroup("mount failed", [ValueError(f"bad {token}")]), "(1 sub-exception)"),
        (lambda token: _noted(token), "RuntimeError: mount failed"),
    ],
    ids=["message", "oserror-filename", "command-line", "exception-group", "notes"],
)
async def test_plugin_exception_quoting_a_secret_is_scrubbed_by_the_server(
    short_tmp: Path, caplog: pytest.LogCaptureFixture, error: Callable[[str], Exception], sent: str
) -> None:
    """CsiPluginServer hides the request's secret values in the INTERNAL status it sends and in its log record
    (traceback included) when a plugin method raises an exception that quotes them."""
    caplog.set_level(logging.DEBUG)
    async with CsiPluginServer(RaisingPlugin(error), short_tmp / "csi.sock"):
        channel = Channel(path=str(short_tmp / "csi.sock"))
        request = wire.DeleteVolumeRequest(volume_id="v", secrets={"token": SECRET})
        try:
            with pytest.raises(GRPCError) as caught:
                await wire.ControllerStub(channel).delete_volume(request, timeout=10)
        finally:
            channel.close()
    assert caught.value.status is Status.INTERNAL
    assert caught.value.message is not None
    assert caught.value.message.startswith("DeleteVolume: ")
    assert caught.value.message.endswith(sent)
    [record] = [r for r in caplog.records if r.name == "plugin_host.csi.server" and r.levelno == logging.WARNING]
    assert "Traceback (most recent call last)" in record.getMessage()
    assert sent in caplog.text
    assert SECRET not in caplog.text


class StatusQuotingPlugin(IdentityOnly):
    """A plugin whose DeleteVolume rejects the request with a gRPC status that quotes the credentials."""

    async def delete_volume(self, request: Any) -> BaseModel:
        raise GRPCError(Status.PERMISSION_DENIED, f"token {request.secrets['token']!r} rejected")


@pytest.mark.anyio
async def test_a_status_quoting_a_secret_is_scrubbed_before_it_goes_on_the_wire(short_tmp: Path) -> None:
    """CsiPluginServer keeps the plugin's status code but hides the secret in the grpc-message it sends."""
    async with CsiPluginServer(StatusQuotingPlugin(), short_tmp / "csi.sock"):
        channel = Channel(path=str(short_tmp / "csi.sock"))
        request = wire.DeleteVolumeRequest(volume_id="v", secrets={"token": SECRET})
        try:
            with pytest.raises(GRPCError) as caught:
                await wire.ControllerStub(channel).delete_volume(request, timeout=10)
        finally:
            channel.close()
    assert caught.value.status is Status.PERMISSION_DENIED
    assert caught.value.message == "token '***' rejected"
