"""Collections, regularizers and constraints: TensorFlow's graph-collection API.

A store keeps the tables (``_collections`` and their creation numbers, each variable's
regularizer and constraint); this module is what reads and fills them, for the store's
methods and for the functions that act on the current store (``ts.get_collection``...).

Lists come in creation order; ``scope`` filters by full name with ``re.match``,
as TensorFlow does (so ``"foo"`` also matches ``"foobar/v"``; write ``"foo/"`` for
the scope alone). Regularization losses are computed from the variables' current
values at every call: eager PyTorch has no graph to cache a loss tensor in.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch.compiler import is_compiling

from ._checks import describe
from ._context import current
from ._errors import note
from ._graph_keys import GraphKeys
from ._variable import NAME_ATTR

if TYPE_CHECKING:
    from ._store import VariableStore

__all__ = [
    "BUILT_MODULES",
    "add_to_collection",
    "collection_of",
    "get_collection",
    "global_variables",
    "regularization_loss",
    "regularization_losses",
    "trainable_variables",
]


# The collection a store lists the ScopedModules built while it was current in (weak
# references to their stores): so that ``ts.trainable_variables()`` after ``model(x)`` lists
# the model's variables, as TensorFlow's graph did. A collection, so a failed call that
# built a module takes it back with the rest; never pickled or copied with the store.
BUILT_MODULES = "__torchscope_built_modules__"


def get_collection(key: str, scope: str | None = None) -> list[Any]:
    """The items of collection ``key`` in the default store, filtered by ``scope``.

    >>> ts.add_to_collection("activations", 1.0)
    >>> ts.get_collection("activations")
    [1.0]
    """
    context = current()
    return context.store.get_collection(key, scope, context.params)


def add_to_collection(key: str, value: Any) -> None:
    """Appends ``value`` to collection ``key`` of the default store.

    >>> ts.add_to_collection("activations", "relu1")
    >>> ts.get_collection("activations")
    ['relu1']
    """
    current().store.add_to_collection(key, value)


def global_variables(scope: str | None = None) -> list[torch.nn.Parameter]:
    """All variables of the default store (filtered by ``re.match(scope, name)``).

    As TensorFlow's graph did, the lists of a store include the variables (and collection
    items) of every ``ScopedModule`` whose first call ran while the store was current,
    for as long as the module is alive: ``model(x)`` then
    ``torch.optim.Adam(ts.trainable_variables())`` trains the model. Before that first call
    the module has made nothing, and the lists do not hold it (call it once first, as with
    PyTorch's lazy modules; ``model.parameters()`` says the same). A module's own store
    (``model.store``) and the mapping of a store (``len(store)``, ``store.state_dict()``)
    hold only their own variables.

    >>> with ts.variable_scope("enc"):
    ...     _ = ts.get_variable("w", [2])
    >>> [ts.name_of(v) for v in ts.global_variables("enc/")]
    ['enc/w']
    """
    return get_collection(GraphKeys.GLOBAL_VARIABLES, scope)


def trainable_variables(scope: str | None = None) -> list[torch.nn.Parameter]:
    """The trainable variables of the default store (``trainable=False`` ones left out).

    >>> with ts.variable_scope("enc"):
    ...     w = ts.get_variable("w", [2])
    ...     step = ts.get_variable("step", [], trainable=False)
    >>> [ts.name_of(v) for v in ts.trainable_variables()]
    ['enc/w']
    """
    return get_collection(GraphKeys.TRAINABLE_VARIABLES, scope)


def regularization_losses(scope: str | None = None) -> list[torch.Tensor]:
    """Each regularizer applied to its variable's current value, in creation order.

    >>> l2 = lambda v: 0.5 * (v ** 2).sum()
    >>> with ts.variable_scope("dense", regularizer=l2):
    ...     w = ts.get_variable("w", initializer=[1.0, 2.0])
    >>> ts.regularization_losses()
    [tensor(2.5000, grad_fn=<MulBackward0>)]
    """
    return get_collection(GraphKeys.REGULARIZATION_LOSSES, scope)


def regularization_loss(scope: str | None = None) -> torch.Tensor:
    """The sum of :func:`regularization_losses`, always a tensor (as TensorFlow's
    ``add_n``): a zero of the default dtype when there are none, and a regularizer that
    returns a Python number still gives a tensor (default dtype when every loss is one).

    >>> ts.regularization_loss()
    tensor(0.)
    >>> with ts.variable_scope("dense", regularizer=lambda v: v.abs().sum()):
    ...     _ = ts.get_variable("w", initializer=[1.0, -2.0])
    >>> ts.regularization_loss()
    tensor(3., grad_fn=<SumBackward0>)
    """
    losses = regularization_losses(scope)
    if not losses:
        return torch.zeros(())
    total = losses[0]
    for loss in losses[1:]:
        total = total + loss
    if not isinstance(total, torch.Tensor):  # every loss was a Python number
        total = torch.as_tensor(total, dtype=torch.get_default_dtype())
    return total


# -- what the store's methods run -------------------------------------------------------------


def collection_of(
    store: VariableStore,
    key: str,
    scope: str | None,
    params: dict[str, Any] | None,
    seen: set[int] | None = None,
) -> list[Any]:
    r"""``store.get_collection``: the items of collection ``key``, in creation order.

    For the keys the store fills (``GLOBAL_VARIABLES``, ``TRAINABLE_VARIABLES``,
    ``REGULARIZATION_LOSSES``), what ``add_to_collection`` put there is listed where it
    was added among the variables, as in TensorFlow's single list. Safe to call while
    other threads create variables (it reads a snapshot taken under the store's lock).

    The collections of the ``ScopedModule``\ s whose first call ran while this store was
    current (see :data:`BUILT_MODULES`) are listed too, where that call ended, while the
    module is alive: what TensorFlow's graph would have held.
    """
    params = store._parameters if params is None else params
    seen = {id(store)} if seen is None else seen | {id(store)}
    with _reading(store):
        # Not strict: after a rollback the numbers may outlast the items.
        seqs = store._collection_seq.get(key, ())
        added = list(zip(seqs, store._collections.get(key, ()), strict=False))
        built = list(
            zip(
                store._collection_seq.get(BUILT_MODULES, ()),
                store._collections.get(BUILT_MODULES, ()),
                strict=False,
            )
        )
        names: list[str] | None = None
        if key == GraphKeys.GLOBAL_VARIABLES:
            not_global = store._not_global
            names = [n for n in params.copy() if n not in not_global]
        elif key == GraphKeys.TRAINABLE_VARIABLES:
            names = [n for n in store._trainable.copy() if n in params]
        elif key == GraphKeys.REGULARIZATION_LOSSES:
            regularizers = store._regularizers.copy()
            names = [n for n in regularizers if n in params]
        if names is not None:
            seqs = [store._seq.get(n) for n in names]
            found = [params[n] for n in names]
    # The modules' stores are read after this one's lock is released (one lock at a time).
    nested = _of_built_modules(built, key, scope, seen) if built else []
    if names is None:
        extra = [(q, item) for q, item in added if _in_scope(item, scope)]
        return [item for _, item in sorted(extra + nested, key=_first)]
    own = [(q, n, v) for q, n, v in zip(seqs, names, found, strict=True)]
    if scope is not None:
        own = [entry for entry in own if re.match(scope, entry[1])]
    if key == GraphKeys.REGULARIZATION_LOSSES:
        own = [(q, n, regularizers[n](v)) for q, n, v in own]
        own = [entry for entry in own if entry[2] is not None]
    extra = [(q, item) for q, item in added if _in_scope(item, scope)]
    if nested:
        extra = sorted(extra + nested, key=_first)
    return _merged([(q, v) for q, _, v in own], extra)


def _first(entry: tuple[int, Any]) -> int:
    return entry[0]


def _of_built_modules(
    built: list[tuple[int, Any]], key: str, scope: str | None, seen: set[int]
) -> list[tuple[int, Any]]:
    """The items of collection ``key`` of each live module store in ``built`` (``(seq,
    weak reference)`` pairs), each numbered with the ``seq`` its module was built at."""
    out: list[tuple[int, Any]] = []
    for seq, ref in built:
        module_store = ref()
        if module_store is None or id(module_store) in seen:
            continue
        items = collection_of(module_store, key, scope, None, seen)
        out.extend((seq, item) for item in items)
    return out


@torch.no_grad()
def apply_constraints_of(store: VariableStore, only: set[int] | None) -> None:
    """Applies the constraints of ``store``'s variables whose ``id`` is in ``only`` (all:
    None). Every constraint runs, and every result is checked, before any is written."""
    with store._lock:
        params = store._parameters
        pending = [(n, fn, params.get(n)) for n, fn in store._constraints.copy().items()]
    pending = [
        (name, fn, param)
        for name, fn, param in pending
        if param is not None and (only is None or id(param) in only)
    ]
    results = [(param, _checked_constraint(name, fn, param)) for name, fn, param in pending]
    for param, value in results:
        if value is not param:
            param.copy_(value)


def try_regularizer(regularizer: Callable[..., Any], name: str, param: torch.Tensor) -> None:
    """Runs a new variable's regularizer once, as TensorFlow does when it creates the
    variable, so that a regularizer that cannot run, or returns something that is not a
    loss, fails here, naming the variable, and not in every later
    ``ts.regularization_loss()``. An exception it raises keeps its type."""
    try:
        with torch.no_grad():
            loss = regularizer(param)
    except Exception as error:
        note(
            error,
            f"regularizer {describe(regularizer)} of variable {name!r} failed on the new "
            "variable. A regularizer is called as fn(variable) -> loss tensor or None.",
        )
        raise
    if loss is None or (isinstance(loss, (int, float)) and not isinstance(loss, bool)):
        return
    if not isinstance(loss, torch.Tensor):
        raise TypeError(
            f"regularizer {describe(regularizer)} of variable {name!r} returned "
            f"{describe(loss)}; a regularizer returns a scalar loss (a tensor of one element "
            "or a number) or None."
        )
    if loss.numel() != 1:
        raise ValueError(
            f"regularizer {describe(regularizer)} of variable {name!r} returned a tensor of "
            f"shape {list(loss.shape)}; a regularizer returns a scalar loss (sum it)."
        )


def _reading(store: Any) -> Any:
    """The store's lock for a consistent snapshot; none while ``torch.compile`` traces (it
    cannot trace a lock, and a trace reads the store on one thread)."""
    return contextlib.nullcontext() if is_compiling() else store._lock


def _checked_constraint(name: str, fn: Callable, param: torch.Tensor) -> torch.Tensor:
    """``fn(param)``, refused unless it is a tensor of ``param``'s shape. An exception
    it raises keeps its type and gets a note naming the variable."""
    try:
        value = fn(param)
    except Exception as error:
        note(
            error,
            f"constraint {describe(fn)} of variable {name!r} failed. A constraint is called "
            "as fn(variable) -> projected tensor; apply_constraints() wrote no result "
            "(each constraint runs and is checked before any result is written).",
        )
        raise
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"constraint {describe(fn)} of variable {name!r} returned {describe(value)}; a "
            f"constraint returns the projected variable, a tensor of shape {list(param.shape)}. "
            "No variable was changed."
        )
    if value.shape != param.shape:
        raise ValueError(
            f"constraint {describe(fn)} of variable {name!r} returned a tensor of shape "
            f"{list(value.shape)}, but the variable's shape is {list(param.shape)}; a "
            "constraint returns the projected variable, of the same shape. No variable was "
            "changed."
        )
    return value


def _merged(own: list[tuple[int | None, Any]], added: list[tuple[int, Any]]) -> list[Any]:
    """The store's own entries and the added items, each list already in creation order,
    merged by sequence number. An entry without one (a variable that entered without
    ``get_variable``) keeps its place after the entry before it."""
    if not added:
        return [value for _, value in own]
    out: list[Any] = []
    i = 0
    last = -1
    for seq, value in own:
        if seq is not None:
            last = seq
        while i < len(added) and added[i][0] < last:
            out.append(added[i][1])
            i += 1
        out.append(value)
    out.extend(item for _, item in added[i:])
    return out


def _item_name(item: Any) -> str | None:
    name = getattr(item, NAME_ATTR, None)
    if name is not None:
        return name
    name = getattr(item, "name", None)
    return name if isinstance(name, str) else None


def _in_scope(item: Any, scope: str | None) -> bool:
    if scope is None:
        return True
    name = _item_name(item)
    return name is not None and re.match(scope, name) is not None


def _filtered(items: Iterable[Any], scope: str | None) -> list[Any]:
    return [item for item in items if _in_scope(item, scope)]
