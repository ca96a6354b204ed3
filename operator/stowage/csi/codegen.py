"""Generates stowage.csi.proto: the Python bindings, with their type stubs, of the CSI spec
and of the kubelet's plugin-registration API. `make csi-proto` runs it on the .proto files
that scripts/csi-proto.sh finds in the Go module cache; the output is committed, never edited
by hand, and a unit test checks that it matches a fresh run."""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path

from grpc_tools import protoc

# A binding's module is named after its .proto as protoc is given it: csi_pb2, ...
CSI = "csi"
REGISTRATION = "pluginregistration"
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


class CodegenError(RuntimeError):
    pass


def generated_names(modules: Mapping[str, Path]) -> list[str]:
    return sorted(module + suffix for module in modules for suffix in SUFFIXES)


def generate(sources: Mapping[str, Path], out: Path) -> None:
    """Writes the bindings of each .proto of `sources` (module name: path) into `out`."""
    plugins = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        include, staging = Path(tmp, "include"), Path(tmp, "out")
        include.mkdir()
        staging.mkdir()
        for module, source in sources.items():
            (include / f"{module}.proto").write_bytes(source.read_bytes())
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"--proto_path={include}",
                f"--proto_path={files('grpc_tools') / '_proto'}",
                f"--plugin=protoc-gen-mypy={plugins / 'protoc-gen-mypy'}",
                f"--plugin=protoc-gen-mypy_grpc={plugins / 'protoc-gen-mypy_grpc'}",
                f"--python_out={staging}",
                f"--grpc_python_out={staging}",
                f"--mypy_out={staging}",
                f"--mypy_grpc_out={staging}",
                *(f"{module}.proto" for module in sources),
            ]
        )
        if status != 0:
            raise CodegenError(f"protoc failed with status {status} (its message is above)")
        out.mkdir(parents=True, exist_ok=True)
        for name in generated_names(sources):
            text = _package_relative((staging / name).read_text(), sources)
            (out / name).write_text(text)


def _package_relative(text: str, modules: Mapping[str, Path]) -> str:
    """protoc imports sibling bindings as top-level modules (`import csi_pb2 as ...`)."""
    names = "|".join(re.escape(module) for module in modules)
    return re.sub(rf"^import ({names})_pb2\b", r"from . import \1_pb2", text, flags=re.MULTILINE)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--csi", type=Path, required=True, help="csi.proto of the CSI spec")
    parser.add_argument(
        "--registration", type=Path, required=True, help="api.proto of pluginregistration/v1"
    )
    parser.add_argument("out", type=Path, help="the folder to write the bindings into")
    args = parser.parse_args(argv)
    generate({CSI: args.csi, REGISTRATION: args.registration}, args.out)


if __name__ == "__main__":
    main()
