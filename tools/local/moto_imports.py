"""moto packages imported for one small module, without their whole backend.

moto's Step Functions interpreter (tools/local/sfn_adapter.py) imports `moto.batch.utils` for
one enum; importing it runs `moto/batch/__init__.py`, which loads the Batch backend, EC2's with
it, and EC2's instance-type catalogue (13 MB of JSON): ~97 MB and ~1.3 s of CPU in every test
worker and local run, for services the stack never uses. A deferred package is imported with
its search path only: its submodules import as usual, and the first attribute read from the
package itself (moto's `batch_backends`, should anything call Batch) runs its `__init__`.
Installing the finder imports nothing (`--help` loads no moto).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any

DEFERRED = frozenset({"moto.batch"})


class _InitOnFirstRead(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def exec_module(self, module: ModuleType) -> None:
        # moto's server answers in threads: the first reader runs __init__, the others wait for
        # it (the hook stays until then, so no reader sees a half-made package).
        lock, running = threading.RLock(), False

        def complete(attribute: str) -> Any:
            nonlocal running
            with lock:
                if running:  # read by the package's own __init__: not made yet, as at import
                    raise AttributeError(f"module {module.__name__!r} has no attribute {attribute!r}")
                if module.__dict__.get("__getattr__") is complete:
                    running = True
                    try:
                        self.loader.exec_module(module)
                    finally:
                        running = False
                    if module.__dict__.get("__getattr__") is complete:  # not the package's own
                        del module.__dict__["__getattr__"]
            return getattr(module, attribute)

        module.__dict__["__getattr__"] = complete  # PEP 562: read only for missing attributes


class DeferredPackages(importlib.abc.MetaPathFinder):
    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or spec.submodule_search_locations is None:
            raise ImportError(f"{fullname} is no longer a package: update {__name__}.DEFERRED")
        spec.loader = _InitOnFirstRead(spec.loader)
        return spec


def defer_packages(names: frozenset[str] = DEFERRED) -> None:
    """From now on, importing one of `names` (or one of its submodules) leaves its `__init__`
    for the first read of one of its attributes. Idempotent."""
    if not any(isinstance(f, DeferredPackages) and f.names == names for f in sys.meta_path):
        sys.meta_path.insert(0, DeferredPackages(names))
