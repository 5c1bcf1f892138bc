"""The process default store, and finding a variable's name in the live stores."""

from __future__ import annotations

import torch

from . import _state
from .store import _LIVE_LOCK, _LIVE_STORES, _NAME_ATTR, VariableStore, _short

__all__ = ["get_default_store", "name_of", "reset_default_store"]


def get_default_store() -> VariableStore:
    """The store ``get_variable`` uses on this thread: the innermost ``as_default()``
    store, else the process default.

    >>> isinstance(ts.get_default_store(), ts.VariableStore)
    True
    """
    return _state.current().store


def reset_default_store() -> VariableStore:
    """Replaces the process default store with an empty one and returns it.

    Like ``tf.reset_default_graph()``, it refuses to run inside an
    ``as_default()`` block or a module call on this thread.

    >>> _ = ts.get_variable("w", [1])
    >>> len(ts.reset_default_store())
    0
    >>> ts.get_default_store() is ts.reset_default_store()
    False
    """
    if _state.is_open():
        raise RuntimeError(
            "ts.reset_default_store() was called inside a store's as_default() block or a "
            "ScopedModule call; call it outside them (it replaces the process default store)."
        )
    scope = _state.DEFAULT[0]._local.context.scope
    if scope.name:
        raise RuntimeError(
            f"ts.reset_default_store() was called inside variable_scope {scope.name!r}; "
            "call it outside every scope."
        )
    _state.DEFAULT[0] = VariableStore()
    return _state.DEFAULT[0]


def name_of(param: torch.Tensor) -> str:
    """The full name of a variable made by ``get_variable``.

    Names do not live on tensors (``Tensor.name`` is PyTorch's); this looks the
    variable up. ``KeyError`` for a tensor that no live store holds (a copy, a tensor
    loaded with ``torch.load``, a variable of a store that is gone).

    >>> with ts.variable_scope("foo"):
    ...     v = ts.get_variable("v", [1])
    >>> ts.name_of(v)
    'foo/v'
    """
    name = getattr(param, _NAME_ATTR, None)
    if name is not None:  # the name of a candidate: one dict lookup in each live store
        if _state.current().store._parameters.get(name) is param:
            return name
        for store in _live_stores():
            if store._parameters.get(name) is param:
                return name
    for store in _live_stores():
        for key, held in store._snapshot().items():
            if held is param:
                return key
    raise KeyError(
        f"no torchscope store holds this tensor ({_short(param)}); only variables "
        "made by ts.get_variable() have names, and only while their store is alive (a "
        "copy, or a tensor loaded with torch.load, is not the variable)"
    )


def _live_stores() -> list[VariableStore]:
    with _LIVE_LOCK:
        return list(_LIVE_STORES)
