"""Registrations with ``torch.compile``'s tracer, made when ``torch._dynamo`` is first
imported rather than at ``import torchscope``.

Registering a substitution (``torch.compiler.substitute_in_graph``) or a constant
(``torch.compiler.assume_constant_result``) imports ``torch._dynamo``: some 800
modules, most of ``import torchscope``'s time, paid by every program and every pytest
run (the pytest plugin loads the package) whether it compiles anything or not.
Nothing can be traced before ``torch._dynamo`` is imported, so a registration made
right after that import is in time for every trace: :func:`when_dynamo_loads` runs
its callback then (at once if it already is), through an import hook that wraps the
loader of ``torch._dynamo`` and removes itself after that one import.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

__all__ = ["when_dynamo_loads"]

_DYNAMO = "torch._dynamo"
_pending: list[Callable[[], None]] = []
_lock = threading.Lock()


def when_dynamo_loads(register: Callable[[], None]) -> None:
    """Runs ``register`` once ``torch._dynamo`` is imported: now if it is, else right
    after the import that loads it (before any trace can start)."""
    with _lock:
        if not _loaded():
            _pending.append(register)
            if not any(isinstance(f, _Finder) for f in sys.meta_path):
                sys.meta_path.insert(0, _Finder())
            return
    register()


def _loaded() -> bool:
    module = sys.modules.get(_DYNAMO)
    # A module being imported is in sys.modules already; its spec says when it is done.
    return module is not None and not getattr(
        getattr(module, "__spec__", None), "_initializing", False
    )


def _run_pending() -> None:
    with _lock:
        callbacks = list(_pending)
        _pending.clear()
    for register in callbacks:
        register()


class _Finder(importlib.abc.MetaPathFinder):
    """Finds ``torch._dynamo`` as the other finders do, with its loader wrapped."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _DYNAMO:
            return None
        sys.meta_path.remove(self)  # one import only; the real finders do the finding
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _Loader(spec.loader)
                return spec
        return None


class _Loader(importlib.abc.Loader):
    """``torch._dynamo``'s own loader, then the pending registrations."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _run_pending()

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, ...
        return getattr(self._loader, name)
