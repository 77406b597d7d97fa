"""Name rules of kubelet and CDI, in one place: each check returns what is wrong (a phrase) or None.

- Resource names follow kubelet's ``IsExtendedResourceName``: ``<domain>/<name>``, not in ``kubernetes.io/``, not
  starting with ``requests.``, and ``requests.<resource name>`` must be a qualified name (a DNS subdomain prefix, a
  name part of at most 63 characters of ``[-A-Za-z0-9_.]`` that is alphanumeric at both ends).
- CDI kinds are ``<vendor>/<class>`` and device names follow ``tags.cncf.io/container-device-interface/pkg/parser``.
"""

from __future__ import annotations

import json
import re

__all__ = [
    "cdi_device_name_problem",
    "cdi_kind_problem",
    "device_type_problem",
    "endpoint_problem",
    "invalid_resource_name_message",
    "namespace_problem",
    "resource_name_problem",
]

_QUALIFIED_NAME = re.compile(r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_QUALIFIED_NAME_MAX = 63
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")
_DNS_SUBDOMAIN_MAX = 253
_REQUESTS_PREFIX = "requests."
_NATIVE_PREFIX = "kubernetes.io/"

_CDI_VENDOR_OR_CLASS = re.compile(r"[A-Za-z](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?")
_CDI_DEVICE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.:-]*[A-Za-z0-9])?")


def _name_part_problem(name: str) -> str | None:
    if not name:
        return "the name part is empty"
    if len(name) > _QUALIFIED_NAME_MAX:
        return f"the name part is {len(name)} characters long, expected at most {_QUALIFIED_NAME_MAX}"
    if _QUALIFIED_NAME.fullmatch(name) is None:
        return "the name part must be letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
    return None


def _subdomain_problem(domain: str) -> str | None:
    if not domain:
        return "the domain is empty"
    if len(domain) > _DNS_SUBDOMAIN_MAX:
        return f"the domain is {len(domain)} characters long, expected at most {_DNS_SUBDOMAIN_MAX}"
    if _DNS_SUBDOMAIN.fullmatch(domain) is None:
        return "the domain must be a DNS subdomain (lower-case letters, digits, '-' and '.')"
    return None


def resource_name_problem(name: str) -> str | None:
    """What makes ``name`` an invalid extended resource name for kubelet, or None when it is valid."""
    if not isinstance(name, str):
        return f"expected a string, got {type(name).__name__}"
    if "/" not in name:
        return "expected <domain>/<name>"
    if _NATIVE_PREFIX in name:
        return f"names in {_NATIVE_PREFIX!r} are reserved for Kubernetes"
    if name.startswith(_REQUESTS_PREFIX):
        return f"names starting with {_REQUESTS_PREFIX!r} are reserved for quota"
    parts = f"{_REQUESTS_PREFIX}{name}".split("/")
    if len(parts) != 2:
        return "expected exactly one '/'"
    return _subdomain_problem(parts[0]) or _name_part_problem(parts[1])


def invalid_resource_name_message(name: str) -> str:
    """kubelet's answer to a Register with an invalid resource name (Go's ``%q`` quoting)."""
    return f"the ResourceName {json.dumps(name)} is invalid"


def namespace_problem(namespace: str) -> str | None:
    """What makes ``namespace`` unusable as the domain of ``<namespace>/<type>`` resource names, or None."""
    if not isinstance(namespace, str):
        return f"expected a string, got {type(namespace).__name__}"
    if not namespace or "/" in namespace:
        return "expected a DNS subdomain such as 'example.com'"
    return resource_name_problem(f"{namespace}/x")


def device_type_problem(dev_type: str) -> str | None:
    """What makes ``dev_type`` unusable as the name part of a resource name (and of a socket name), or None."""
    if not isinstance(dev_type, str):
        return f"expected a string, got {type(dev_type).__name__}"
    return _name_part_problem(dev_type)


def endpoint_problem(endpoint: str) -> str | None:
    """What makes a Register ``endpoint`` anything but a plain socket file name, or None."""
    if not endpoint:
        return "the endpoint is empty"
    if "/" in endpoint or "\0" in endpoint:
        return "expected a socket file name inside the plugin directory, without '/'"
    if endpoint in (".", ".."):
        return "expected a socket file name, not a directory"
    return None


def _cdi_part_problem(what: str, value: str) -> str | None:
    if not value:
        return f"the {what} is empty"
    if _CDI_VENDOR_OR_CLASS.fullmatch(value) is None:
        return (
            f"the {what} {value!r} must start with a letter, end with a letter or digit,"
            " and hold only letters, digits, '_', '-' and '.'"
        )
    return None


def cdi_kind_problem(kind: str) -> str | None:
    """What makes ``kind`` an invalid CDI kind (``<vendor>/<class>``), or None."""
    if not isinstance(kind, str):
        return f"expected a string, got {type(kind).__name__}"
    vendor, slash, cls = kind.partition("/")
    if not slash or not vendor or not cls:
        return "expected <vendor>/<class>, e.g. 'example.com/device'"
    return _cdi_part_problem("vendor", vendor) or _cdi_part_problem("class", cls)


def cdi_device_name_problem(name: str) -> str | None:
    """What makes ``name`` an invalid CDI device name, or None."""
    if not isinstance(name, str) or not name:
        return "the device name is empty"
    if _CDI_DEVICE_NAME.fullmatch(name) is None:
        return (
            "a device name must start and end with a letter or digit and hold only letters, digits,"
            " '_', '-', '.' and ':'"
        )
    return None
