"""The checks kubelet applies to a ``Register`` call, with kubelet's own error texts.

Kubelet (``pkg/kubelet/cm/devicemanager/plugin/v1beta1/server.go``) accepts a registration when the version is one it
supports and the resource name is an extended resource name (the rules live in :mod:`plugin_host.kubelet._names`,
shared with the framework and its tests). Kubelet joins the endpoint to its socket directory without looking at it;
we also refuse an endpoint that would leave the directory, is empty, or makes a socket path too long to dial, all
before anything is dialled.

Kubelet puts no bound on the fields; we refuse any over :data:`MAX_FIELD_BYTES` first, naming the field and its
length only: a 300 KB resource name echoed into ``grpc-message`` takes hpack's (quadratic) Huffman encoder seconds.
Shorter values are echoed truncated (:func:`plugin_host._text.truncated`) into kubelet's texts.
"""

from __future__ import annotations

import os

from plugin_host._sockets import UNIX_SOCKET_PATH_MAX, socket_path_excess
from plugin_host._text import clipped
from plugin_host.kubelet._names import endpoint_problem, invalid_resource_name_message, resource_name_problem
from plugin_host.kubelet.api import API_VERSION

__all__ = [
    "KUBELET_API_VERSION",
    "MAX_FIELD_BYTES",
    "SUPPORTED_VERSIONS",
    "endpoint_error",
    "oversized_field_error",
    "resource_name_error",
    "version_error",
]

KUBELET_API_VERSION = API_VERSION
SUPPORTED_VERSIONS = (KUBELET_API_VERSION,)
MAX_FIELD_BYTES = 4096
"""The longest ``version``, ``endpoint`` or ``resource_name`` accepted (UTF-8 bytes); real ones are a few dozen."""


def oversized_field_error(**fields: str) -> str | None:
    """Which field is longer than :data:`MAX_FIELD_BYTES` (first found), with its length, not its value; or None."""
    for name, value in fields.items():
        size = len(value.encode(errors="surrogatepass"))
        if size > MAX_FIELD_BYTES:
            return f"{name} is {size} bytes, longer than the {MAX_FIELD_BYTES} allowed"
    return None


def _go_quote(value: str) -> str:
    """A double-quoted string as Go's ``%q`` writes printable text."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def version_error(version: str) -> str | None:
    """Kubelet's message for an API version it does not speak, or None when ``version`` is supported."""
    if version in SUPPORTED_VERSIONS:
        return None
    # Kubelet formats its SupportedVersions array with %q: ["v1beta1"].
    supported = "[" + " ".join(_go_quote(v) for v in SUPPORTED_VERSIONS) + "]"
    return (
        f"requested API version {_go_quote(clipped(version))} is not supported by kubelet."
        f" Supported version is {supported}"
    )


def resource_name_error(name: str) -> str | None:
    """Kubelet's message for a resource name that is not an extended resource name, or None when it is one."""
    if resource_name_problem(name) is None:
        return None
    return invalid_resource_name_message(clipped(name))


def endpoint_error(endpoint: str, plugin_dir: str) -> str | None:
    """Why ``endpoint`` cannot name a plugin socket inside ``plugin_dir``, or None when it can."""
    problem = endpoint_problem(endpoint)
    if problem is not None:
        return f"the endpoint {_go_quote(clipped(endpoint))} is invalid: {clipped(problem)}"
    size = socket_path_excess(os.path.join(plugin_dir, endpoint))
    if size is not None:
        return (
            f"the endpoint {_go_quote(clipped(endpoint))} is invalid: the socket path"
            f" {clipped(os.path.join(plugin_dir, endpoint))!r}"
            f" is {size} bytes, the Unix socket limit is {UNIX_SOCKET_PATH_MAX}"
        )
    return None
