"""Images built offline from a Dockerfile and imported into the cluster (`e2e/scripts/image.sh`).

Builds use buildah with a layer cache under $STOWAGE_CACHE/containers, the host network
for RUN steps (Debian's mirror) and `BASE_IMAGE` defaulting to the Debian bookworm
minbase image `localhost/stowage/debian:bookworm`. Pods use the images by exact name
with `imagePullPolicy: Never` (or IfNotPresent).

    python -m stowage_e2e.images build CONTEXT TAG [--target STAGE] [--file F] [--build-arg K=V]
    python -m stowage_e2e.images import TAG...
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stowage_e2e.cluster import E2E_DIR, provider, settings

IMAGE_SH = E2E_DIR / "scripts" / "image.sh"
# The suite's own tools image (Debian base + socat), built up front by scripts/install.sh.
TOOLS_CONTEXT = E2E_DIR / "images" / "tools"


def _image_sh(*args: str) -> None:
    subprocess.run(["bash", str(IMAGE_SH), *args], check=True)


@dataclass(frozen=True)
class ImageBuilder:
    """Builds images and imports them into the cluster's containerd (or kind's node)."""

    import_into_cluster: bool = True

    @property
    def base_image(self) -> str:
        return settings().base_image

    def ensure_base(self) -> str:
        """The Debian bookworm base image exists in the build store; returns its name."""
        _image_sh("base")
        return self.base_image

    def build(
        self,
        context: Path,
        *,
        tag: str,
        target: str | None = None,
        dockerfile: Path | None = None,
        build_args: Mapping[str, str] | None = None,
    ) -> None:
        """Builds CONTEXT (layer-cached) as TAG and imports it into the cluster."""
        args = ["build", str(context), tag]
        if target:
            args += ["--target", target]
        if dockerfile:
            args += ["--file", str(dockerfile)]
        for key, value in (build_args or {}).items():
            args += ["--build-arg", f"{key}={value}"]
        _image_sh(*args)
        if self.import_into_cluster:
            self.import_images(tag)

    def remove(self, *tags: str) -> None:
        """Deletes images from the build store and the cluster (their layers stay cached)."""
        _image_sh("remove", *tags)

    def import_images(self, *tags: str) -> None:
        if provider() == "existing":
            raise RuntimeError("provider 'existing' cannot import images; push them yourself")
        _image_sh("import", *tags)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stowage_e2e.images",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build")
    build.add_argument("context", type=Path)
    build.add_argument("tag")
    build.add_argument("--target")
    build.add_argument("--file", type=Path)
    build.add_argument("--build-arg", action="append", default=[])
    build.add_argument("--no-import", action="store_true")
    sub.add_parser("import").add_argument("tags", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "build":
        builder = ImageBuilder(import_into_cluster=not args.no_import)
        build_args = dict(item.split("=", 1) for item in args.build_arg)
        builder.build(
            args.context,
            tag=args.tag,
            target=args.target,
            dockerfile=args.file,
            build_args=build_args,
        )
    else:
        ImageBuilder().import_images(*args.tags)
    return 0


if __name__ == "__main__":
    sys.exit(main())
