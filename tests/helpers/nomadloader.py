"""Build ``nomadloader`` (tests/go/nomadloader/main.go): a Go program that launches a plugin binary the way a Nomad
agent's plugin loader does, with HashiCorp's go-plugin client, go-version and grpc-go.

It builds in GOPATH mode against Debian's Go packages (no network, no Go modules): the gRPC stubs for Nomad's
base, device and driver protos are generated from this repository's ``proto/`` with protoc and Debian's
protoc-gen-go 1.3 (``plugins=grpc``, which matches grpc-go 1.33) into a temporary GOPATH, next to the harness
source. Nothing generated is kept but the binary, cached under ``~/.cache/plugin-host/nomadloader/`` keyed by the
harness source, the protos and the toolchain; a cold build takes about 15 s, a cached one nothing.

Needs the Debian packages in :data:`DEBIAN_PACKAGES` (``tools/setup-test-env`` installs them); without them
:func:`build_nomadloader` raises :class:`MissingToolchain` saying what is missing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["DEBIAN_PACKAGES", "MissingToolchain", "build_nomadloader", "cache_dir"]

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "tests" / "go" / "nomadloader" / "main.go"
PROTO_ROOT = ROOT / "proto"
GOCODE = Path("/usr/share/gocode")

DEBIAN_PACKAGES = (
    "golang-go",
    "golang-github-hashicorp-go-plugin-dev",
    "golang-github-hashicorp-go-version-dev",
    "golang-google-grpc-dev",
    "golang-github-golang-protobuf-1-3-dev",
    "protobuf-compiler",
    "libprotobuf-dev",
    "protoc-gen-go-1-3",
)
"""What the build needs on Debian 12: Go 1.19, go-plugin 1.0.1, go-version 1.3.0, grpc-go 1.33, golang/protobuf
1.3.5 (its protoc-gen-go still has ``plugins=grpc``), protoc and the well-known-type .proto files."""

# The protos the harness imports, each mapped to a Go import path under the temporary GOPATH. Nomad's own files say
# go_package "proto", which protoc-gen-go cannot resolve across files, hence the explicit M options.
_PROTO_FILES = (
    "plugins/base/proto/base.proto",
    "plugins/device/proto/device.proto",
    "plugins/drivers/proto/driver.proto",
    "plugins/shared/hclspec/hcl_spec.proto",
    "plugins/shared/structs/proto/attribute.proto",
    "plugins/shared/structs/proto/recoverable_error.proto",
    "plugins/shared/structs/proto/stats.proto",
)
_GO_ROOT_PACKAGE = "nomadproto"
# protoc 3.21's well-known types name the APIv2 packages (google.golang.org/protobuf/types/known/...), which
# golang/protobuf 1.3 does not have; its ptypes packages are the same messages.
_WELL_KNOWN = ("any", "duration", "empty", "timestamp", "wrappers")
# Go packages the harness imports from /usr/share/gocode, checked before building to give a clear error.
_GO_DEPENDENCIES = (
    "github.com/hashicorp/go-plugin",
    "github.com/hashicorp/go-version",
    "github.com/hashicorp/go-hclog",
    "github.com/golang/protobuf/jsonpb",
    "github.com/golang/protobuf/ptypes/duration",
    "google.golang.org/grpc",
)
_RECIPE_VERSION = "1"


class MissingToolchain(RuntimeError):
    """The Go toolchain, protoc or a Go package the harness needs is not installed."""


def cache_dir() -> Path:
    """Where built harness binaries live."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "plugin-host" / "nomadloader"


def _missing() -> list[str]:
    missing = [tool for tool in ("go", "protoc", "protoc-gen-go") if shutil.which(tool) is None]
    missing += [f"{GOCODE}/src/{package}" for package in _GO_DEPENDENCIES if not (GOCODE / "src" / package).is_dir()]
    if not Path("/usr/include/google/protobuf/timestamp.proto").is_file():
        missing.append("/usr/include/google/protobuf/timestamp.proto")
    return missing


def _output(*command: str) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def _key() -> str:
    digest = hashlib.sha256(_RECIPE_VERSION.encode())
    digest.update(SOURCE.read_bytes())
    for name in _PROTO_FILES:
        digest.update(name.encode() + b"\0" + (PROTO_ROOT / name).read_bytes())
    # A Debian upgrade of Go, protoc or the Go libraries changes these.
    digest.update(_output("go", "version").encode())
    digest.update(_output("protoc", "--version").encode())
    for package in _GO_DEPENDENCIES:
        digest.update(f"{package}:{(GOCODE / 'src' / package).stat().st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _generate(gopath: Path) -> None:
    out = gopath / "src" / _GO_ROOT_PACKAGE
    out.mkdir(parents=True)
    mappings = [f"M{name}={_GO_ROOT_PACKAGE}/{os.path.dirname(name)}" for name in _PROTO_FILES]
    mappings += [f"Mgoogle/protobuf/{w}.proto=github.com/golang/protobuf/ptypes/{w}" for w in _WELL_KNOWN]
    options = ",".join(["plugins=grpc", "paths=source_relative", *mappings])
    # protoc-gen-go wants the files of one Go package in one run.
    by_dir: dict[str, list[str]] = {}
    for name in _PROTO_FILES:
        by_dir.setdefault(os.path.dirname(name), []).append(name)
    for names in by_dir.values():
        command = ["protoc", f"-I{PROTO_ROOT}", "-I/usr/include", f"--go_out={options}:{out}", *names]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")


def build_nomadloader(cache: Path | None = None) -> Path:
    """The harness binary, built (and cached) when missing; raises :class:`MissingToolchain` without the packages."""
    missing = _missing()
    if missing:
        raise MissingToolchain(
            "the Nomad go-plugin client harness cannot be built: missing "
            + ", ".join(missing)
            + ". Run tools/setup-test-env (as root on Debian 12), which installs: "
            + " ".join(DEBIAN_PACKAGES)
        )
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    binary = cache / f"nomadloader-{_key()}"
    if binary.exists():
        return binary
    with tempfile.TemporaryDirectory(prefix="nomadloader-", dir=cache) as tmp:
        gopath = Path(tmp) / "gopath"
        _generate(gopath)
        package = gopath / "src" / "nomadloader"
        package.mkdir(parents=True)
        shutil.copyfile(SOURCE, package / "main.go")
        partial = Path(tmp) / "nomadloader"
        env = {
            **os.environ,
            "GO111MODULE": "off",
            "GOPATH": f"{gopath}:{GOCODE}",
            "GOFLAGS": "",
            "GOCACHE": str(cache / "go-build"),
            # Go 1.19 insists on a C compiler when cgo is on; the harness needs none.
            "CGO_ENABLED": "0",
        }
        result = subprocess.run(
            ["go", "build", "-o", str(partial), "."], cwd=package, env=env, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeError(f"go build of {SOURCE} failed:\n{result.stdout}{result.stderr}")
        # Atomic: parallel sessions may build at once; each lands a complete binary.
        os.replace(partial, binary)
    return binary


if __name__ == "__main__":
    print(build_nomadloader())
