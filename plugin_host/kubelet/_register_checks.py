"""The checks kubelet applies to a ``Register`` call, with kubelet's own error texts.

Kubelet (``pkg/kubelet/cm/devicemanager/plugin/v1beta1/server.go``) accepts a registration when the version is one it
supports and the resource name is an extended resource name (the rules live in :mod:`plugin_host.kubelet._names`,
shared with the framework and its tests). Kubelet joins the endpoint to its socket directory without looking at it;
we also refuse an endpoint that would leave the directory, is empty, or makes a socket path too long to dial, all
before anything is dialled.
"""

from __future__ import annotations

import os

from plugin_host.kubelet._names import endpoint_problem, invalid_resource_name_message, resource_name_problem
from plugin_host.registry.models import UNIX_SOCKET_PATH_MAX

__all__ = ["KUBELET_API_VERSION", "SUPPORTED_VERSIONS", "endpoint_error", "resource_name_error", "version_error"]

KUBELET_API_VERSION = "v1beta1"
SUPPORTED_VERSIONS = (KUBELET_API_VERSION,)


def _go_quote(value: str) -> str:
    """A double-quoted string as Go's ``%q`` writes printable text."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def version_error(version: str) -> str | None:
    """Kubelet's message for an API version it does not speak, or None when ``version`` is supported."""
    if version in SUPPORTED_VERSIONS:
        return None
    # Kubelet formats its SupportedVersions array with %q: ["v1beta1"].
    supported = "[" + " ".join(_go_quote(v) for v in SUPPORTED_VERSIONS) + "]"
    return f"requested API version {_go_quote(version)} is not supported by kubelet. Supported version is {supported}"


def resource_name_error(name: str) -> str | None:
    """Kubelet's message for a resource name that is not an extended resource name, or None when it is one."""
    if resource_name_problem(name) is None:
        return None
    return invalid_resource_name_message(name)


def endpoint_error(endpoint: str, plugin_dir: str) -> str | None:
    """Why ``endpoint`` cannot name a plugin socket inside ``plugin_dir``, or None when it can."""
    problem = endpoint_problem(endpoint)
    if problem is not None:
        return f"the endpoint {_go_quote(endpoint)} is invalid: {problem}"
    size = len(os.fsencode(os.path.join(plugin_dir, endpoint)))
    if size > UNIX_SOCKET_PATH_MAX:
        return (
            f"the endpoint {_go_quote(endpoint)} is invalid: the socket path {os.path.join(plugin_dir, endpoint)!r}"
            f" is {size} bytes, the Unix socket limit is {UNIX_SOCKET_PATH_MAX}"
        )
    return None
