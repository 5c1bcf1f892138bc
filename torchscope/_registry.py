"""The stores of the process: the default one, finding a variable's name in the live
ones, and which store a function that takes "a store or a module" means."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.hooks import RemovableHandle

from . import _context
from ._store import _NAME_ATTR, LIVE_LOCK, LIVE_STORES, VariableStore, short
from ._types import StoreLike

__all__ = [
    "apply_constraints",
    "set_seed",
    "get_default_store",
    "name_of",
    "register_constraint_hook",
    "reset_default_store",
]


def get_default_store() -> VariableStore:
    """The store ``get_variable`` uses on this thread: the innermost ``as_default()``
    store, else the process default.

    >>> isinstance(ts.get_default_store(), ts.VariableStore)
    True
    """
    return _context.current().store


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
    if _context.is_open():
        raise RuntimeError(
            "ts.reset_default_store() was called inside a store's as_default() block or a "
            "ScopedModule call; call it outside them (it replaces the process default store)."
        )
    scope = _context.DEFAULT[0]._local.context.scope
    if scope.name:
        raise RuntimeError(
            f"ts.reset_default_store() was called inside variable_scope {scope.name!r}; "
            "call it outside every scope."
        )
    _context.DEFAULT[0] = VariableStore()
    return _context.DEFAULT[0]


def name_of(param: torch.Tensor) -> str:
    """The full name of a variable made by ``get_variable``.

    ``v.name`` is the same with TensorFlow's ``:0`` (``"foo/v:0"``); this looks the
    variable up in the live stores, so it also names what PyTorch put in a variable's
    place while a store holds it (FSDP2's DTensor parameters). ``KeyError`` for a tensor
    that no live store holds (a copy, a tensor loaded with ``torch.load``, a variable of a
    store that is gone).

    >>> with ts.variable_scope("foo"):
    ...     v = ts.get_variable("v", [1])
    >>> ts.name_of(v)
    'foo/v'
    """
    name = getattr(param, _NAME_ATTR, None)
    if name is not None:  # the name of a candidate: one dict lookup in each live store
        if _context.current().store._parameters.get(name) is param:
            return name
        for store in _live_stores():
            if store._parameters.get(name) is param:
                return name
    for store in _live_stores():
        for key, held in store._snapshot().items():
            if held is param:
                return key
    raise KeyError(
        f"no torchscope store holds this tensor ({short(param)}); only variables "
        "made by ts.get_variable() have names, and only while their store is alive (a "
        "copy, or a tensor loaded with torch.load, is not the variable)"
    )


def _live_stores() -> list[VariableStore]:
    with LIVE_LOCK:
        return list(LIVE_STORES)


def apply_constraints(store: StoreLike | None = None) -> None:
    """Applies every variable's ``constraint`` in place, trainable or not.

    ``store`` is a ``VariableStore`` or a module that has one (``.store``);
    default: the default store. Every result is checked before any variable is written
    (see ``VariableStore.apply_constraints``).

    >>> with ts.variable_scope("c", constraint=lambda v: v.clamp(0, 1)):
    ...     w = ts.get_variable("w", initializer=[-1.0, 0.5, 3.0])
    >>> ts.apply_constraints(); w.data
    tensor([0.0000, 0.5000, 1.0000])
    """
    _resolve(store).apply_constraints()


def register_constraint_hook(
    optimizer: torch.optim.Optimizer, store: StoreLike | None = None
) -> RemovableHandle:
    """Makes ``optimizer.step()`` apply, after each step, the constraints of the variables
    of ``store`` that this optimizer updates (those in its ``param_groups`` at that step).

    As in TensorFlow, whose optimizers apply a variable's constraint in their update of
    that variable: the variables of another optimizer (a GAN's other network) and those
    no optimizer holds (``trainable=False``) are left alone. ``ts.apply_constraints()``
    applies them all. Returns the hook handle (``handle.remove()`` undoes it).

    >>> w = ts.get_variable("w", initializer=[0.5, -0.5], constraint=lambda v: v.clamp(min=0))
    >>> opt = torch.optim.SGD([w], lr=1.0)
    >>> handle = ts.register_constraint_hook(opt)
    >>> w.sum().backward(); opt.step()
    >>> w.detach()
    tensor([0., 0.])
    >>> handle.remove()
    """
    target = _resolve(store)

    def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        updated = {id(p) for group in opt.param_groups for p in group["params"]}
        target._apply_constraints(updated)

    return optimizer.register_step_post_hook(hook)


def set_seed(seed: int | None) -> None:
    """Sets the seed of the current store (the default one, or the one ``as_default()``
    made current); None removes it. See :attr:`VariableStore.seed`. A ``ScopedModule``
    made afterwards takes the seed for its own store.

    >>> ts.set_seed(0)
    >>> w = ts.get_variable("w", [2])
    >>> ts.reset_default_store().seed is None  # a fresh default store has none
    True
    >>> ts.set_seed(0)
    >>> torch.equal(ts.get_variable("w", [2]), w)
    True
    """
    _context.current().store.seed = seed


def _resolve(store: StoreLike | None) -> VariableStore:
    if store is None:
        return _context.current().store
    if isinstance(store, VariableStore):
        return store
    inner = getattr(store, "store", None)
    if isinstance(inner, VariableStore):
        return inner
    raise TypeError(
        f"store must be a ts.VariableStore or a module with a .store, got {type(store).__name__}"
    )


# The process default store: made once, here; reset_default_store() replaces it.
_context.DEFAULT[0] = VariableStore()
