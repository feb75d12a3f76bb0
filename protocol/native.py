"""The codec's C extension, ``tenantry.protocol._native``, if it was built and is not switched off.

`pip install -e .` builds it (setup.py; it is optional, so an install without a C compiler still
works). Every piece of it has a pure-Python equivalent that stays the reference: set
TENANTRY_PURE_PYTHON=1 to run that instead (the tests compare the two).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def _load() -> ModuleType | None:
    if os.environ.get("TENANTRY_PURE_PYTHON"):
        return None
    try:
        return importlib.import_module("tenantry.protocol._native")
    except ImportError:
        return None


NATIVE = _load()
