"""Variable stores: where ``get_variable`` keeps what it creates.

A :class:`VariableStore` is an ``nn.ParameterDict`` keyed by full variable names,
so ``store.parameters()`` goes to an optimizer and ``store.state_dict()`` keys are
``"conv1/weights"``. It also holds what belonged to a TensorFlow graph: the
collections, the regularizers and the constraints. Creation is serialised by a
lock; the reuse path reads the dict without one.
"""

from __future__ import annotations

import re
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.compiler import is_compiling

from . import _naming, _state
from ._checks import check_shape, describe, shapes_compatible
from ._errors import (
    ALREADY_EXISTS,
    CREATED_IN_BACKWARD,
    DOES_NOT_EXIST,
    DTYPE_MISMATCH,
    FROZEN,
    SHAPE_MISMATCH,
)
from ._graph_keys import GraphKeys
from .scopes import VariableScope

__all__ = ["VariableStore"]

_NAME_ATTR = "_torchscope_name"
_LIVE_STORES: weakref.WeakSet[VariableStore] = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()  # a WeakSet cannot be iterated while another thread adds


class _ThreadContext(threading.local):
    """This thread's context for one store, made the first time a thread asks."""

    def __init__(self, store_ref: weakref.ref) -> None:
        store = store_ref()
        self.context = _state.Context(store, store._parameters, VariableScope(False))


# For the modules whose ``_parameters`` are variables (``VariableStore``, ``ScopedModule``).
# Variables are keyed by full name and never enter through attributes, so one may be named
# like a module attribute ("training", "forward", "store"). nn.Module would then refuse to
# set that attribute (train()/eval() set self.training), and ``del`` would remove the
# variable; with these, a value that is not a Parameter is a plain attribute beside the
# variable of the same name, and ``del`` removes that attribute. (Plain functions, not a
# base class: one more class in the MRO costs a compiled module two more guards.)


def _setattr_beside_variables(self: nn.Module, name: str, value: Any) -> None:
    params = self.__dict__.get("_parameters")
    if params is not None and name in params and not isinstance(value, nn.Parameter):
        object.__setattr__(self, name, value)
    else:
        nn.Module.__setattr__(self, name, value)


def _delattr_beside_variables(self: nn.Module, name: str) -> None:
    params = self.__dict__.get("_parameters")
    if params is not None and name in params and name in self.__dict__:
        object.__delattr__(self, name)
    else:
        nn.Module.__delattr__(self, name)


class VariableStore(nn.ParameterDict):
    """Holds variables by full name; an ``nn.Module`` (an ``nn.ParameterDict``).

    Fill it with ``ts.get_variable`` while it is the default store. Reading is a
    mapping: ``name in store``, ``store[name]``, ``len(store)``, iteration over
    full names in creation order; ``store.variables()`` gives the Parameters.
    Writing goes through ``get_variable`` only (so names are checked and
    collections stay right); ``load_state_dict`` updates values in place.

    >>> store = ts.VariableStore()
    >>> with store.as_default():
    ...     with ts.variable_scope("conv1"):
    ...         w = ts.get_variable("weights", [3, 3])
    >>> list(store), list(store.state_dict())
    (['conv1/weights'], ['conv1/weights'])
    """

    def __init__(self) -> None:
        super().__init__()
        self._trainable: dict[str, None] = {}
        self._regularizers: dict[str, Callable] = {}
        self._constraints: dict[str, Callable] = {}
        self._created_at: dict[str, str] = {}
        self._collections: dict[str, list[Any]] = {}
        # Creation order across variables and added collection items (TensorFlow keeps one
        # list per collection): a sequence number per variable, and per collection item
        # (``_collection_seq[key][i]`` is that of ``_collections[key][i]``; see
        # add_to_collection for how the two stay aligned).
        self._next_seq = 0
        self._seq: dict[str, int] = {}
        self._collection_seq: dict[str, list[int]] = {}
        self._frozen: str | None = None
        # Set by a ScopedModule converted (.to(), .double(), ...) before its first call: the
        # conversion its new variables get as they are made (see module.py, _Conversion).
        self._conversion: Any = None
        # The ScopedModule that owns this store (a weak reference; None for a plain store).
        self._owner: weakref.ref | None = None
        self._init_local()

    def _init_local(self) -> None:
        self._lock = threading.RLock()
        self._build_lock = threading.RLock()  # a ScopedModule's first call holds it
        self._local = _ThreadContext(weakref.ref(self))
        with _LIVE_LOCK:
            _LIVE_STORES.add(self)

    # -- pickling and copying: thread state and locks are not carried over ------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_lock", None)
        state.pop("_build_lock", None)
        state.pop("_local", None)
        state["_owner"] = None  # the owning module sets it again when it is restored
        return state

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        # nn.Module's, over a snapshot: another thread may be creating variables.
        for name, param in self._snapshot().items():
            if param is not None:
                destination[prefix + name] = param if keep_vars else param.detach()
        for name, buf in self._buffers.copy().items():
            if buf is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = buf if keep_vars else buf.detach()

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("_next_seq", 0)  # stores pickled before creation order was kept
        state.setdefault("_seq", {})
        state.setdefault("_collection_seq", {})
        super().__setstate__(state)
        self._init_local()

    # -- the default store -------------------------------------------------------------------

    def as_default(self) -> _AsDefault:
        """Makes this store the default one on this thread (nests, like
        ``tf.Graph().as_default()``).

        >>> store = ts.VariableStore()
        >>> with store.as_default():
        ...     ts.get_default_store() is store
        True
        """
        return _AsDefault(self)

    # -- the mapping ----------------------------------------------------------------------------

    def __getitem__(self, name: str) -> nn.Parameter:
        try:
            return self._parameters[name]  # type: ignore[return-value]
        except KeyError:
            raise KeyError(f"no variable named {name!r} in this store") from None

    def __contains__(self, name: object) -> bool:
        return name in self._parameters

    def _snapshot(self) -> dict[str, Any]:
        """A copy of the variables dict, safe while another thread creates variables.
        (``list(d.items())`` is not: a garbage collection it triggers can run other
        threads between items; creation holds the lock, and ``dict.copy`` runs no Python.)"""
        with self._lock:
            return self._parameters.copy()

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._snapshot()))

    def __len__(self) -> int:
        return len(self._parameters)

    def keys(self) -> list[str]:  # type: ignore[override]
        return list(self._snapshot())

    def values(self) -> list[nn.Parameter]:  # type: ignore[override]
        return list(self._snapshot().values())

    def items(self) -> list[tuple[str, nn.Parameter]]:  # type: ignore[override]
        return list(self._snapshot().items())

    def get(self, name: str, default: Any = None) -> Any:
        return self._parameters.get(name, default)

    def variables(self) -> list[nn.Parameter]:
        """All variables, in creation order."""
        return self.values()

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(
            "a VariableStore is filled by ts.get_variable() only (it checks names and keeps "
            "collections right); use load_state_dict() to set values."
        )

    __setitem__ = __delitem__ = update = setdefault = pop = popitem = clear = _refuse  # type: ignore[assignment]
    __setattr__ = _setattr_beside_variables
    __delattr__ = _delattr_beside_variables

    def extra_repr(self) -> str:
        return f"{len(self)} variables"

    # -- creation and lookup: the real getter ---------------------------------------------------

    def _get_or_create(
        self,
        params: dict[str, Any],
        name: str,
        shape: Any = None,
        dtype: torch.dtype | None = None,
        initializer: Any = None,
        regularizer: Callable | None = None,
        reuse: Any = None,
        trainable: bool | None = None,
        collections: Any = None,
        caching_device: Any = None,
        partitioner: Any = None,
        validate_shape: bool = True,
        use_resource: Any = None,
        constraint: Callable | None = None,
        synchronization: Any = None,
        aggregation: Any = None,
        *,
        device: Any = None,
    ) -> Any:
        """Returns the variable ``name``, creating it unless ``reuse`` forbids.

        The custom-getter chain ends here; the TensorFlow-only keywords
        (``collections``, ``partitioner``, ...) are accepted so ported getters can
        forward them, and have no effect.
        """
        from ._create import check_dtype_arg, make_parameter

        shape = check_shape(shape, name)
        dtype = check_dtype_arg(dtype, name)
        found = dict.get(params, name)  # not params.get: ts.summary's dict counts those
        if found is None and params is not self._parameters:
            found = self._parameters.get(name)
        if found is None and self._frozen is not None and self._owner is not None:
            found = _computed_by(self._owner(), name)
        if found is not None:
            if not reuse:
                raise ValueError(
                    ALREADY_EXISTS.format(name=name, where=self._created_at.get(name, ""))
                )
            return _check_reused(name, found, shape, dtype)
        if reuse is True:
            raise ValueError(self._missing_message(name))
        if self._frozen is not None:
            raise ValueError(FROZEN.format(name=name, owner=self._frozen))
        if torch._C._current_graph_task_id() != -1 and not is_compiling():
            raise RuntimeError(CREATED_IN_BACKWARD.format(name=name))
        _naming.check_variable_name(name)
        with self._lock:
            found = self._parameters.get(name)
            if found is not None:  # another thread created it meanwhile
                if not reuse:
                    raise ValueError(
                        ALREADY_EXISTS.format(name=name, where=self._created_at.get(name, ""))
                    )
                return _check_reused(name, found, shape, dtype)
            param, trainable = make_parameter(name, shape, dtype, initializer, trainable, device)
            if self._conversion is not None:
                param = self._conversion.apply(param)
            regularizer = _check_hook(regularizer, "regularizer", name)
            constraint = _check_hook(constraint, "constraint", name)
            if regularizer is not None:
                _try_regularizer(regularizer, name, param)
            self._insert(name, param, trainable, regularizer, constraint, _caller())
        return param

    def _adopt(self, name: str, param: nn.Parameter) -> None:
        """Bookkeeping for a Parameter that entered ``_parameters`` without ``get_variable``
        (a ScopedModule subclass's ``self.scale = nn.Parameter(...)``): it is a variable of
        that name, trainable if it requires grad."""
        with self._lock:
            self._keys[name] = None
            if param.requires_grad:
                self._trainable[name] = None
            else:
                self._trainable.pop(name, None)
            self._created_at.setdefault(name, _caller())
            setattr(param, _NAME_ATTR, name)

    def _claim(
        self,
        name: str,
        param: nn.Parameter,
        trainable: Any,
        regularizer: Callable | None,
        constraint: Callable | None,
    ) -> None:
        """Gives a variable made from a checkpoint what the ``get_variable`` call that first
        asks for it says: trainable or not, its regularizer and constraint (a ScopedModule
        loaded before its first call; see ``ScopedModule._load_from_state_dict``)."""
        regularizer = _check_hook(regularizer, "regularizer", name)
        constraint = _check_hook(constraint, "constraint", name)
        if trainable is not None and not isinstance(trainable, bool):
            raise TypeError(
                f"trainable of variable {name!r} must be a bool, got {describe(trainable)}"
            )
        trainable = trainable is not False and (param.is_floating_point() or param.is_complex())
        if regularizer is not None:
            _try_regularizer(regularizer, name, param)
        with self._lock:
            param.requires_grad_(trainable)
            if trainable:
                self._trainable[name] = None
            else:
                self._trainable.pop(name, None)
            if regularizer is not None:
                self._regularizers[name] = regularizer
            if constraint is not None:
                self._constraints[name] = constraint
            self._created_at[name] = _caller()

    def _insert(
        self,
        name: str,
        param: nn.Parameter,
        trainable: bool,
        regularizer: Callable | None = None,
        constraint: Callable | None = None,
        created_at: str = "",
    ) -> None:
        # Nothing here can fail: the store changes all at once or not at all.
        self._parameters[name] = param
        self._keys[name] = None
        if trainable:
            self._trainable[name] = None
        if regularizer is not None:
            self._regularizers[name] = regularizer
        if constraint is not None:
            self._constraints[name] = constraint
        self._created_at[name] = created_at
        self._seq[name] = self._take_seq()
        setattr(param, _NAME_ATTR, name)

    def _take_seq(self) -> int:
        with self._lock:
            seq = self._next_seq
            self._next_seq = seq + 1
        return seq

    def _forget(self, names: Any) -> None:
        """Removes variables (a module's failed first call takes back what it made)."""
        with self._lock:
            for name in names:
                for table in (
                    self._parameters,
                    self._keys,
                    self._trainable,
                    self._regularizers,
                    self._constraints,
                    self._created_at,
                ):
                    table.pop(name, None)

    def _truncate_collections(self, lengths: dict[str, int]) -> None:
        """Puts the collections back to ``lengths`` (key -> length; keys not in it were made
        since, and are removed)."""
        with self._lock:
            for key in list(self._collections):
                if key in lengths:
                    del self._collections[key][lengths[key] :]
                else:
                    del self._collections[key]

    def _missing_message(self, name: str) -> str:
        if self._frozen is not None:
            return FROZEN.format(name=name, owner=self._frozen)
        return DOES_NOT_EXIST.format(name=name)

    # -- collections ----------------------------------------------------------------------------

    def get_collection(
        self, key: str, scope: str | None = None, params: dict | None = None
    ) -> list[Any]:
        """The items of collection ``key`` (a ``GraphKeys`` value or any string), in
        creation order, filtered by ``re.match(scope, name)`` when ``scope`` is given.

        For the keys the store fills (``GLOBAL_VARIABLES``, ``TRAINABLE_VARIABLES``,
        ``REGULARIZATION_LOSSES``), what ``add_to_collection`` put there is listed where it
        was added among the variables, as in TensorFlow's single list. Safe to call while
        other threads create variables (it reads a snapshot taken under the store's lock).
        """
        params = self._parameters if params is None else params
        with self._lock:
            # Not strict: after _truncate_collections the numbers may outlast the items.
            seqs = self._collection_seq.get(key, ())
            added = list(zip(seqs, self._collections.get(key, ()), strict=False))
            if key == GraphKeys.GLOBAL_VARIABLES:
                names = list(params.copy())
            elif key == GraphKeys.TRAINABLE_VARIABLES:
                names = [n for n in self._trainable.copy() if n in params]
            elif key == GraphKeys.REGULARIZATION_LOSSES:
                regularizers = self._regularizers.copy()
                names = [n for n in regularizers if n in params]
            else:
                return _filtered((item for _, item in added), scope)
            seqs = [self._seq.get(n) for n in names]
            found = [params[n] for n in names]
        own = [(q, n, v) for q, n, v in zip(seqs, names, found, strict=True)]
        if scope is not None:
            own = [entry for entry in own if re.match(scope, entry[1])]
        if key == GraphKeys.REGULARIZATION_LOSSES:
            own = [(q, n, regularizers[n](v)) for q, n, v in own]
            own = [entry for entry in own if entry[2] is not None]
        extra = [(q, item) for q, item in added if _in_scope(item, scope)]
        return _merged([(q, v) for q, _, v in own], extra)

    def add_to_collection(self, key: str, value: Any) -> None:
        """Appends ``value`` to collection ``key``."""
        if not isinstance(key, str):
            raise TypeError(f"collection key must be a str, got {describe(key)}")
        with self._lock:
            items = self._collections.setdefault(key, [])
            seqs = self._collection_seq.setdefault(key, [])
            # A failed ScopedModule build cuts items off the end of _collections only
            # (_truncate_collections); cut the numbers the same way before appending.
            del seqs[len(items) :]
            seqs.append(self._take_seq())
            items.append(value)

    def global_variables(self, scope: str | None = None) -> list[nn.Parameter]:
        return self.get_collection(GraphKeys.GLOBAL_VARIABLES, scope)

    def trainable_variables(self, scope: str | None = None) -> list[nn.Parameter]:
        return self.get_collection(GraphKeys.TRAINABLE_VARIABLES, scope)

    def regularization_losses(self, scope: str | None = None) -> list[torch.Tensor]:
        return self.get_collection(GraphKeys.REGULARIZATION_LOSSES, scope)

    # -- constraints ----------------------------------------------------------------------------

    def apply_constraints(self) -> None:
        """Projects every variable that has a constraint: ``v.copy_(constraint(v))``.

        The explicit call: it applies the constraints of all the store's variables,
        trainable or not. (:func:`ts.register_constraint_hook` applies, after an
        optimizer's step, only those of the variables that optimizer updates.)

        Every constraint runs first, and every result is checked (a tensor of the
        variable's shape) before any variable is written: a constraint that fails, or
        returns something else, raises naming its variable and leaves every variable as
        it was. (A constraint that changes its variable in place has already done so.)

        >>> w = ts.get_variable("w", initializer=[3.0, 4.0], constraint=lambda v: v.norm())
        >>> ts.get_default_store().apply_constraints()
        Traceback (most recent call last):
        ...
        ValueError: constraint ... of variable 'w' returned a tensor of shape [], ...
        """
        self._apply_constraints(None)

    @torch.no_grad()
    def _apply_constraints(self, only: set[int] | None) -> None:
        """Applies the constraints of the variables whose ``id`` is in ``only`` (all: None)."""
        with self._lock:
            params = self._parameters
            pending = [(n, fn, params.get(n)) for n, fn in self._constraints.copy().items()]
        pending = [
            (name, fn, param)
            for name, fn, param in pending
            if param is not None and (only is None or id(param) in only)
        ]
        results = [(param, _checked_constraint(name, fn, param)) for name, fn, param in pending]
        for param, value in results:
            if value is not param:
                param.copy_(value)

    def name_of(self, param: torch.Tensor) -> str:
        """The full name of ``param`` in this store; KeyError if it is not here."""
        name = getattr(param, _NAME_ATTR, None)
        if name is not None and self._parameters.get(name) is param:
            return name
        for name, held in self._snapshot().items():
            if held is param:
                return name
        raise KeyError(f"this store holds no variable that is this tensor ({_short(param)})")


def _checked_constraint(name: str, fn: Callable, param: torch.Tensor) -> torch.Tensor:
    """``fn(param)``, refused unless it is a tensor of ``param``'s shape."""
    value = fn(param)
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


def _short(tensor: Any) -> str:
    if isinstance(tensor, torch.Tensor):
        return f"{type(tensor).__name__} of shape {list(tensor.shape)}, dtype {tensor.dtype}"
    return describe(tensor)


def _item_name(item: Any) -> str | None:
    name = getattr(item, _NAME_ATTR, None)
    if name is not None:
        return name
    name = getattr(item, "name", None)
    return name if isinstance(name, str) else None


def _in_scope(item: Any, scope: str | None) -> bool:
    if scope is None:
        return True
    name = _item_name(item)
    return name is not None and re.match(scope, name) is not None


def _filtered(items: Any, scope: str | None) -> list[Any]:
    return [item for item in items if _in_scope(item, scope)]


def _computed_by(owner: nn.Module | None, name: str) -> torch.Tensor | None:
    """The tensor ``owner`` computes in the place of its variable ``name``, if any:
    ``torch.nn.utils.prune`` and ``torch.nn.utils.parametrize`` take a parameter out of
    the module's dict and put an attribute (prune) or a property (parametrize) of the
    same name in its place, which nn.Module code reads as ``self.weight``."""
    if owner is None:
        return None
    try:
        value = getattr(owner, name)
    except AttributeError:
        return None
    return value if isinstance(value, torch.Tensor) else None


def _try_regularizer(regularizer: Callable, name: str, param: torch.Tensor) -> None:
    """Runs a new variable's regularizer once, as TensorFlow does when it creates the
    variable, so that a regularizer that cannot run fails here, naming the variable, and
    not in every later ``ts.regularization_loss()``."""
    try:
        with torch.no_grad():
            regularizer(param)
    except Exception as error:
        message = (
            f"regularizer {describe(regularizer)} of variable {name!r} failed on the new "
            f"variable: {error}. A regularizer is called as fn(variable) -> loss tensor or None."
        )
        try:
            wrapped = type(error)(message)
        except Exception:  # an exception type that takes other arguments
            wrapped = ValueError(message)
        raise wrapped from error


def _check_hook(fn: Any, argument: str, name: str) -> Callable | None:
    if fn is None or callable(fn):
        return fn
    raise TypeError(f"{argument} of variable {name!r} must be callable or None, got {describe(fn)}")


def _check_reused(
    name: str, found: torch.Tensor, shape: tuple | None, dtype: torch.dtype | None
) -> Any:
    if shape is not None and not shapes_compatible(shape, found.shape):
        raise ValueError(
            SHAPE_MISMATCH.format(
                name=name,
                # torch.compile cannot format a size it traces as dynamic (a SymInt)
                shape="(sizes torch.compile traced)" if is_compiling() else _fmt_shape(shape),
                found=_fmt_shape(found.shape),
            )
        )
    if dtype is not None and dtype != found.dtype:
        raise ValueError(DTYPE_MISMATCH.format(name=name, dtype=dtype, found=found.dtype))
    return found


def _fmt_shape(shape: Any) -> str:
    return "(" + ", ".join(_fmt_dim(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _fmt_dim(dim: Any) -> str:
    return "?" if dim is None else str(dim)


def _caller() -> str:
    """``file:line`` of the first frame outside torchscope (where a variable was created)."""
    frame = sys._getframe(2)
    package = __name__.rpartition(".")[0]
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] == package:
        frame = frame.f_back
    if frame is None:
        return ""
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


class _AsDefault:
    """``store.as_default()``: makes this thread's context of the store current, and
    puts back what it replaced on exit. Entered once at a time (``tf.Graph``'s
    ``as_default()`` object is single-use too); nest by calling ``as_default()`` again."""

    __slots__ = ("_store", "_context", "_previous")

    def __init__(self, store: VariableStore) -> None:
        self._store = store
        self._context: _state.Context | None = None
        self._previous: _state.Context | None = None

    def __enter__(self) -> VariableStore:
        if self._context is not None:
            raise RuntimeError(
                "this as_default() block is already open; call store.as_default() again to "
                "nest (each call gives a new context manager)."
            )
        context = self._store._local.context
        self._previous = _state.push(context)
        self._context = context
        return self._store

    def __exit__(self, *exc: object) -> None:
        context, previous = self._context, self._previous
        _state.pop(context, previous)  # raises, changing nothing, if closed out of order
        self._context = self._previous = None


_state.DEFAULT[0] = VariableStore()
