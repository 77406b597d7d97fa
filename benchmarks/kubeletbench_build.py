"""Build ``kubeletbench`` (benchmarks/go/kubeletbench/main.go): kubelet's side of the device plugin API in Go (a
client timing Allocate and ListAndWatch like kubelet's devicemanager) and a minimal Go device plugin as the peer.

Built like tests/helpers/nomadloader.py: GOPATH mode against Debian's Go packages (no network, no Go modules), with the
v1beta1 stubs generated at build time from this repository's ``proto/`` by protoc and Debian's protoc-gen-go 1.3
(``plugins=grpc``, matching grpc-go 1.33) into a temporary GOPATH. Only the binary is kept, cached under
``~/.cache/plugin-host/kubeletbench/`` keyed by the source, the proto and the toolchain.

Needs the Debian packages in :data:`DEBIAN_PACKAGES` (``tools/setup-test-env`` installs them); without them
:func:`build_kubeletbench` raises :class:`MissingToolchain` saying what to install.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["DEBIAN_PACKAGES", "MissingToolchain", "build_kubeletbench"]

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "benchmarks" / "go" / "kubeletbench" / "main.go"
PROTO_ROOT = ROOT / "proto"
PROTO = "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1/api.proto"
GOCODE = Path("/usr/share/gocode")
_GO_PACKAGE = "kubeletproto"
_GO_DEPENDENCIES = ("google.golang.org/grpc", "github.com/golang/protobuf/proto")
_RECIPE_VERSION = "1"

DEBIAN_PACKAGES = (
    "golang-go",
    "golang-google-grpc-dev",
    "golang-github-golang-protobuf-1-3-dev",
    "protobuf-compiler",
    "protoc-gen-go-1-3",
)
"""What the build needs on Debian 12: Go 1.19, grpc-go 1.33, golang/protobuf 1.3 and its protoc-gen-go, protoc."""


class MissingToolchain(RuntimeError):
    """Go, protoc or a Go package the program needs is not installed."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "plugin-host" / "kubeletbench"


def _missing() -> list[str]:
    missing = [tool for tool in ("go", "protoc", "protoc-gen-go") if shutil.which(tool) is None]
    missing += [f"{GOCODE}/src/{package}" for package in _GO_DEPENDENCIES if not (GOCODE / "src" / package).is_dir()]
    return missing


def _output(*command: str) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def _key() -> str:
    digest = hashlib.sha256(_RECIPE_VERSION.encode())
    digest.update(SOURCE.read_bytes())
    digest.update((PROTO_ROOT / PROTO).read_bytes())
    digest.update(_output("go", "version").encode())
    digest.update(_output("protoc", "--version").encode())
    for package in _GO_DEPENDENCIES:
        digest.update(f"{package}:{(GOCODE / 'src' / package).stat().st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def build_kubeletbench(cache: Path | None = None) -> Path:
    """The binary, built (and cached) when missing; :class:`MissingToolchain` without the Debian packages."""
    missing = _missing()
    if missing:
        raise MissingToolchain(
            "the Go kubelet benchmark peer cannot be built: missing "
            + ", ".join(missing)
            + ". Run tools/setup-test-env (as root on Debian 12), or install: "
            + " ".join(DEBIAN_PACKAGES)
        )
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    binary = cache / f"kubeletbench-{_key()}"
    if binary.exists():
        return binary
    with tempfile.TemporaryDirectory(prefix="kubeletbench-", dir=cache) as tmp:
        gopath = Path(tmp) / "gopath"
        stubs = gopath / "src" / _GO_PACKAGE
        stubs.mkdir(parents=True)
        options = f"plugins=grpc,paths=source_relative,M{PROTO}={_GO_PACKAGE}"
        command = ["protoc", f"-I{PROTO_ROOT}", f"--go_out={options}:{stubs}", PROTO]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
        # paths=source_relative puts the file under the proto's directory; the package is the flat GOPATH folder.
        for generated in stubs.rglob("*.pb.go"):
            generated.rename(stubs / generated.name)
        package = gopath / "src" / "kubeletbench"
        package.mkdir(parents=True)
        shutil.copyfile(SOURCE, package / "main.go")
        partial = Path(tmp) / "kubeletbench"
        env = {
            **os.environ,
            "GO111MODULE": "off",
            "GOPATH": f"{gopath}:{GOCODE}",
            "GOFLAGS": "",
            "GOCACHE": str(cache / "go-build"),
            "CGO_ENABLED": "0",
        }
        result = subprocess.run(
            ["go", "build", "-o", str(partial), "."], cwd=package, env=env, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeError(f"go build of {SOURCE} failed:\n{result.stdout}{result.stderr}")
        os.replace(partial, binary)  # atomic: parallel builds each land a complete binary
    return binary


if __name__ == "__main__":
    print(build_kubeletbench())
