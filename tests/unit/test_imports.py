"""Every module of the package loads: an error at import time (a bad dataclass default, say)
stops the operator or a helper before it serves anything. Loaded in a process of their own, so
that kopf's logging set-up stays out of the other tests."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import stowage

pytestmark = pytest.mark.unit

# `python -m stowage` runs the command line when loaded.
MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(stowage.__path__, "stowage.")
    if not info.name.endswith(".__main__")
)


def test_every_module_loads() -> None:
    loading = "import importlib, sys\nfor name in sys.argv[1:]: importlib.import_module(name)"
    result = subprocess.run(
        [sys.executable, "-c", loading, *MODULES], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(MODULES) > 50
