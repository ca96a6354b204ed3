"""Building stowage's two images from the Dockerfile and importing them into the cluster.

The Dockerfile installs its Python dependencies offline from build/wheels/, so this module
first fills that folder from PyPI on the host (pip's cache makes a warm run a no-op), then
hands the two targets to the cluster's image builder (stowage_e2e.images), which builds with
a layer cache and imports the result into the cluster's containerd.

    python -m stowage_e2e.images_stowage [--no-import]   # build them (and the tools image)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Protocol

from stowage_e2e.cluster import settings
from stowage_e2e.install import REPO_DIR, Images

WHEELS_DIR = REPO_DIR / "build" / "wheels"
# Binaries the Dockerfile copies in: the CSI sidecars built from their Go modules.
STAGED_BINARIES_DIR = REPO_DIR / "build" / "bin"
SIDECARS = ("csi-provisioner",)
# The images run Debian bookworm's CPython.
IMAGE_PYTHON = "3.11"
MANYLINUX_TAGS = (
    "manylinux_2_28",
    "manylinux_2_17",
    "manylinux2014",
    "manylinux_2_5",
    "manylinux1",
)


def default_images() -> Images:
    return Images(operator=settings().operator_image, helper=settings().helper_image)


class ImageBuilder(Protocol):
    """What this module needs of stowage_e2e.images: build a Dockerfile target and import it."""

    def build(self, context: Path, *, tag: str, target: str) -> None: ...


def build_requirements() -> list[str]:
    pyproject = tomllib.loads((REPO_DIR / "pyproject.toml").read_text())
    requires: list[str] = pyproject["build-system"]["requires"]
    return requires


def download_wheels(destination: Path = WHEELS_DIR) -> None:
    """The runtime dependencies and the build backend as wheels for the image's Python.

    Offline first: when the folder already holds them, PyPI is not asked (the suite builds
    images while its network guard is on)."""
    destination.mkdir(parents=True, exist_ok=True)
    if _pip_download(destination, "--no-index", "--find-links", str(destination)) == 0:
        return
    if _pip_download(destination) != 0:
        raise RuntimeError(f"pip download of the images' wheels into {destination} failed")


def _pip_download(destination: Path, *index_args: str) -> int:
    machine = os.uname().machine
    platforms = [arg for tag in MANYLINUX_TAGS for arg in ("--platform", f"{tag}_{machine}")]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            *index_args,
            "--only-binary=:all:",
            "--python-version",
            IMAGE_PYTHON,
            "--implementation",
            "cp",
            *platforms,
            "--platform",
            "any",
            "--dest",
            str(destination),
            "--requirement",
            str(REPO_DIR / "requirements" / "runtime.txt"),
            *build_requirements(),
        ],
        capture_output=bool(index_args),
        check=False,
    ).returncode


def stage_sidecars(source: Path, destination: Path = STAGED_BINARIES_DIR) -> None:
    """Copies the sidecars into the build context (only when changed: the layer cache keys on
    the file's content)."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in SIDECARS:
        built = source / name
        if not built.is_file():
            raise FileNotFoundError(f"{built} is missing: run `bash e2e/scripts/build-binaries.sh`")
        staged = destination / name
        if not staged.is_file() or staged.read_bytes() != built.read_bytes():
            shutil.copy2(built, staged)


def build_stowage_images(builder: ImageBuilder, images: Images | None = None) -> Images:
    """Both images built from this tree and present in the cluster's containerd."""
    images = images or default_images()
    download_wheels()
    stage_sidecars(settings().bin_dir)
    builder.build(REPO_DIR, tag=images.operator, target="operator")
    builder.build(REPO_DIR, tag=images.helper, target="helper")
    return images


def main(argv: list[str] | None = None) -> None:
    """Builds every image the suite uses; with --no-import only into the build store (the
    install step, before any cluster runs)."""
    from stowage_e2e.images import TOOLS_CONTEXT
    from stowage_e2e.images import ImageBuilder as ClusterImageBuilder

    args = sys.argv[1:] if argv is None else argv
    builder = ClusterImageBuilder(import_into_cluster="--no-import" not in args)
    started = time.monotonic()
    images = build_stowage_images(builder)
    builder.build(TOOLS_CONTEXT, tag=settings().tools_image)
    print(
        f"{images.operator}, {images.helper} and {settings().tools_image}"
        f" in {time.monotonic() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
