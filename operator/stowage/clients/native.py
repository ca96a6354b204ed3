"""C libraries called through ctypes (libnfs in the helper, libiscsi in the operator)."""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Mapping

# name -> (result type, argument types), as ctypes takes them.
Prototypes = Mapping[str, tuple[object, list[object]]]


def load(name: str, soname: str, prototypes: Prototypes, *, use_errno: bool = False) -> ctypes.CDLL:
    """lib`name` (`soname` when the linker cache does not know it) with the given prototypes
    bound; OSError when it is not installed, AttributeError when a function is missing."""
    lib = ctypes.CDLL(ctypes.util.find_library(name) or soname, use_errno=use_errno)
    for function_name, (result, arguments) in prototypes.items():
        function = getattr(lib, function_name)
        function.restype = result
        function.argtypes = arguments
    return lib
