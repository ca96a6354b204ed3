"""The release before this tree, for upgrade tests: its source from git, its operator image.

`PREVIOUS_RELEASE` is the last commit of main that made every volume with the in-tree
stowage.io/provisioner (before the CSI driver): an upgrade from it must keep every volume it
made. The source comes from this clone's history (`git archive`), and its operator image is
built from it like this tree's, offline (the wheels of this tree serve: the runtime pins are
the same, which `previous_tree` checks).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path

from stowage_e2e.images import ImageBuilder
from stowage_e2e.images_stowage import WHEELS_DIR, download_wheels
from stowage_e2e.install import REPO_DIR, Images

PREVIOUS_RELEASE = "9e471176c90e048a1ebd7c10938ec7d28ae02744"
PREVIOUS_OPERATOR_IMAGE = "localhost/stowage/operator:previous"
RUNTIME_REQUIREMENTS = "requirements/runtime.txt"


def previous_tree(destination: Path) -> Path:
    """The previous release's files in `destination`, with this tree's wheels."""
    archive = subprocess.run(
        ["git", "-C", str(REPO_DIR), "archive", "--format=tar", PREVIOUS_RELEASE],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(destination, filter="data")
    ours = (REPO_DIR / RUNTIME_REQUIREMENTS).read_text()
    if (destination / RUNTIME_REQUIREMENTS).read_text() != ours:
        raise RuntimeError(
            f"{RUNTIME_REQUIREMENTS} changed since {PREVIOUS_RELEASE[:12]}: its image needs "
            "wheels of its own"
        )
    download_wheels()
    shutil.copytree(WHEELS_DIR, destination / "build" / "wheels", dirs_exist_ok=True)
    return destination


def previous_images(builder: ImageBuilder, tree: Path, current: Images) -> Images:
    """The previous release's operator image; its helper image is this tree's (the upgrade
    test's backend runs no helper)."""
    builder.build(tree, tag=PREVIOUS_OPERATOR_IMAGE, target="operator")
    return Images(operator=PREVIOUS_OPERATOR_IMAGE, helper=current.helper)
