"""Variable stores: where ``get_variable`` keeps what it creates.

A :class:`VariableStore` is an ``nn.ParameterDict`` keyed by full variable names,
so ``store.parameters()`` goes to an optimizer and ``store.state_dict()`` keys are
``"conv1/weights"``. It also holds what belonged to a TensorFlow graph: the
collections, the regularizers and the constraints. Creation is serialised by a
lock; the reuse path reads the dict without one.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NoReturn, Protocol

import torch
from torch import nn

from . import _collections, _context
from ._atomic import Savepoint, Transaction, check_load
from ._checks import check_callable, describe
from ._create import RECIPE_ATTR, Recipe
from ._graph_keys import GraphKeys
from ._lookup import caller as _caller
from ._types import Constraint, Regularizer
from ._variable import NAME_ATTR, name_variable
from ._variable_scope import VariableScope

__all__ = ["CreationPolicy", "VariableStore", "check_load"]

_NAME_ATTR = NAME_ATTR
LIVE_STORES: weakref.WeakSet[VariableStore] = weakref.WeakSet()
LIVE_LOCK = threading.Lock()  # a WeakSet cannot be iterated while another thread adds

_FILLED_BY_GET_VARIABLE = (
    "a VariableStore is filled by ts.get_variable() only (it checks names and keeps "
    "collections right); use load_state_dict() to set values."
)


class CreationPolicy(Protocol):
    """What a store's owner allows when ``get_variable`` would create a variable (the
    lookup engine consults ``store.policy``; a plain store has none). A ``ScopedModule``
    sets one: before its first call it converts what is made as the module was converted
    (``.to()``, ``.double()``); after it, it creates nothing (``frozen`` names the module);
    and it finds what ``torch.nn.utils.prune``/``parametrize`` put in a variable's place."""

    @property
    def frozen(self) -> str | None:
        """None while creation is allowed, else who refuses it (for the error)."""
        ...

    def computed(self, name: str) -> torch.Tensor | None:
        """The tensor computed in the place of variable ``name``, if any."""
        ...

    def convert(self, param: nn.Parameter) -> nn.Parameter:
        """A new variable, as the owner's conversions would have left it."""
        ...


class _ThreadContext(threading.local):
    """This thread's context for one store, made the first time a thread asks, and the
    savepoints of the transactions this thread has open in the store."""

    def __init__(self, store_ref: weakref.ref[VariableStore]) -> None:
        store = store_ref()
        assert store is not None  # made when the store asks for its context: it is alive
        self.context = _context.Context(store, store._parameters, VariableScope(False))
        self.savepoints: list[Savepoint] = []
        self.making: set[str] = set()  # the variables being made (their callbacks run)


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


_BYPASS = (
    "{what} would go around the store's bookkeeping (names, collections, regularizers); "
    "a VariableStore is filled by ts.get_variable() only, and its values are set with "
    "load_state_dict(). (A ScopedModule subclass may add its own nn.Parameter attributes.)"
)


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

    With ``seed``, initializers without a seed of their own draw each variable's values
    from generators keyed by (seed, full name): see :attr:`seed`.
    """

    def __init__(self, *, seed: int | None = None) -> None:
        super().__init__()
        self._seed = _check_store_seed(seed)
        # How each variable made on the meta device was made (for ts.materialize).
        self._recipes: dict[str, Recipe] = {}
        self._trainable: dict[str, None] = {}
        self._regularizers: dict[str, Regularizer] = {}
        self._constraints: dict[str, Constraint] = {}
        self._created_at: dict[str, str] = {}
        self._not_global: dict[str, None] = {}  # left out of GLOBAL_VARIABLES
        self._collections: dict[str, list[Any]] = {}
        # Creation order across variables and added collection items (TensorFlow keeps one
        # list per collection): a sequence number per variable, and per collection item
        # (``_collection_seq[key][i]`` is that of ``_collections[key][i]``; see
        # add_to_collection for how the two stay aligned).
        self._next_seq = 0
        self._seq: dict[str, int] = {}
        self._collection_seq: dict[str, list[int]] = {}
        # What the store's owner allows when a variable would be created (a ScopedModule's).
        self.policy: CreationPolicy | None = None
        self._init_local()

    @property
    def seed(self) -> int | None:
        """The store's seed (None: none). With one, every random initializer that has no
        ``seed=`` of its own draws a variable's values from CPU generators keyed by (this
        seed, the variable's full name): the same values whatever the creation order, the
        process, the thread or the device, and torch's global generator is not advanced.
        It matters when a variable is created; changing it changes no existing value.

        >>> a, b = ts.VariableStore(seed=7), ts.VariableStore(seed=7)
        >>> with a.as_default():
        ...     _ = ts.get_variable("x", [3]), ts.get_variable("w", [2, 2])
        >>> with b.as_default():
        ...     _ = ts.get_variable("w", [2, 2])  # another order, no "x"
        >>> torch.equal(a["w"], b["w"])
        True
        """
        return self._seed

    @seed.setter
    def seed(self, seed: int | None) -> None:
        self._seed = _check_store_seed(seed)

    def _init_local(self) -> None:
        self._lock = threading.RLock()
        self._local = _ThreadContext(weakref.ref(self))
        with LIVE_LOCK:
            LIVE_STORES.add(self)

    # -- pickling and copying: thread state and locks are not carried over ------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_lock", None)
        state.pop("_local", None)
        state["policy"] = None  # the owning module sets it again when it is restored
        # A tensor with autograd history in a collection (a loss put there by a forward)
        # is copied and pickled detached: torch copies only graph leaves.
        # The modules built in this store are not carried over (weak references).
        state["_collections"] = {
            key: [_detached(item) for item in items]
            for key, items in self._collections.items()
            if key != _collections.BUILT_MODULES
        }
        state["_collection_seq"] = {
            key: seqs
            for key, seqs in self._collection_seq.items()
            if key != _collections.BUILT_MODULES
        }
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
        state.setdefault("_not_global", {})
        state.setdefault("policy", None)
        state.setdefault("_seed", None)  # stores pickled before seeds
        state.setdefault("_recipes", {})
        for old in ("_frozen", "_conversion", "_owner"):  # stores pickled before policies
            state.pop(old, None)
        super().__setstate__(state)
        self._init_local()
        self._name_again()  # copy.deepcopy makes Parameters without their attributes

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

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return self._parameters.get(name, default)

    def variables(self) -> list[nn.Parameter]:
        """All variables, in creation order."""
        return self.values()

    # Writing goes through get_variable only: the mapping's other writers refuse.

    def __setitem__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(_FILLED_BY_GET_VARIABLE)

    def __delitem__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(_FILLED_BY_GET_VARIABLE)

    def update(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(_FILLED_BY_GET_VARIABLE)

    def setdefault(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(_FILLED_BY_GET_VARIABLE)

    def pop(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(_FILLED_BY_GET_VARIABLE)

    def popitem(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(_FILLED_BY_GET_VARIABLE)

    def clear(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(_FILLED_BY_GET_VARIABLE)

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, nn.Parameter):
            raise TypeError(_BYPASS.format(what=f"setting a Parameter as attribute {name!r}"))
        _setattr_beside_variables(self, name, value)

    def __delattr__(self, name: str) -> None:
        if name in self._parameters and name not in self.__dict__:
            raise TypeError(_BYPASS.format(what=f"deleting variable {name!r}"))
        _delattr_beside_variables(self, name)

    def register_parameter(self, name: str, param: nn.Parameter | None) -> None:
        raise TypeError(_BYPASS.format(what=f"register_parameter({name!r}, ...)"))

    def extra_repr(self) -> str:
        return f"{len(self)} variables"

    def _apply(self, fn: Any, recurse: bool = True) -> Any:
        super()._apply(fn, recurse)
        self._name_again()
        return self

    def _name_again(self) -> None:
        """Puts each variable's name back on it after ``nn.Module._apply`` (``.to()``,
        ``.cuda()``, ``.double()``), which makes new Parameters where it cannot convert in
        place (or swaps their contents: ``torch.__future__``'s switches), and after
        ``copy.deepcopy`` (``nn.Parameter.__deepcopy__`` copies no attributes)."""
        with self._lock:
            for name, param in self._parameters.items():
                if param is not None and getattr(param, NAME_ATTR, None) != name:
                    name_variable(param, name)

    # -- loading -------------------------------------------------------------------------------

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """``nn.Module.load_state_dict``, all or nothing: every key, shape and (with
        ``strict``) the key sets are checked before any value is copied, so a checkpoint that
        does not fit changes nothing (``nn.Module`` copies what fits, then raises). Values
        are copied into the variables (cast to their dtypes); ``assign=True`` is refused
        (it would replace the variables behind the store's bookkeeping)."""
        if assign:
            raise TypeError(
                "VariableStore.load_state_dict(assign=True) would replace the variables "
                "behind the store's bookkeeping; load with assign=False (values are copied in)"
            )
        check_load(self, state_dict, strict)
        return super().load_state_dict(state_dict, strict=strict)

    # -- adding variables ------------------------------------------------------------------------
    #
    # Variables enter through get_variable (the lookup engine calls _insert), or, for a
    # ScopedModule, through its own bookkeeping (_adopt, _claim). Each of these, and
    # add_to_collection, is recorded by the thread's open transaction, if any.

    def _insert(
        self,
        name: str,
        param: nn.Parameter,
        trainable: bool,
        regularizer: Regularizer | None = None,
        constraint: Constraint | None = None,
        created_at: str = "",
        is_global: bool = True,
    ) -> None:
        """Adds a new variable with its attributes (under the store's lock); one not
        ``is_global`` is left out of ``GLOBAL_VARIABLES`` (``get_variable(collections=...)``
        without it)."""
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
        if not is_global:
            self._not_global[name] = None
        self._seq[name] = self._take_seq()
        name_variable(param, name)
        recipe = getattr(param, RECIPE_ATTR, None)
        if recipe is not None:
            delattr(param, RECIPE_ATTR)
            self._recipes[name] = recipe
        savepoints = self._local.savepoints
        if savepoints:
            savepoints[-1].added.append(name)

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
            name_variable(param, name)

    def _claim(
        self,
        name: str,
        param: nn.Parameter,
        trainable: bool | None,
        regularizer: Regularizer | None,
        constraint: Constraint | None,
    ) -> None:
        """Gives a variable made from a checkpoint what the ``get_variable`` call that first
        asks for it says: trainable or not, its regularizer and constraint (a ScopedModule
        loaded before its first call; see ``ScopedModule._load_from_state_dict``)."""
        regularizer = check_callable(regularizer, "regularizer", name)
        constraint = check_callable(constraint, "constraint", name)
        if trainable is not None and not isinstance(trainable, bool):
            raise TypeError(
                f"trainable of variable {name!r} must be a bool, got {describe(trainable)}"
            )
        trainable = trainable is not False and (param.is_floating_point() or param.is_complex())
        if regularizer is not None:
            _collections.try_regularizer(regularizer, name, param)
        with self._lock:
            savepoints = self._local.savepoints
            if savepoints:
                savepoints[-1].claimed.append(self._attributes(name, param))
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

    def _attributes(self, name: str, param: nn.Parameter) -> tuple:
        return (
            name,
            param,
            param.requires_grad,
            name in self._trainable,
            self._regularizers.get(name),
            self._constraints.get(name),
            self._created_at.get(name),
        )

    def _remove(self, names: Iterable[str]) -> None:
        """Removes variables (a ScopedModule drops checkpoint values no call asked for)."""
        with self._lock:
            for name in names:
                for table in (
                    self._parameters,
                    self._keys,
                    self._trainable,
                    self._regularizers,
                    self._constraints,
                    self._created_at,
                    self._not_global,
                    self._seq,
                    self._recipes,
                ):
                    table.pop(name, None)

    def _take_seq(self) -> int:
        with self._lock:
            seq = self._next_seq
            self._next_seq = seq + 1
        return seq

    # -- transactions -----------------------------------------------------------------------

    def transaction(self) -> Transaction:
        """A block whose additions to the store are taken back if it raises.

        What this thread adds inside the block (variables with their attributes,
        collection items, what a ScopedModule's first call claims), the variable scopes it
        opened (``default_name``) and the name-scope counters of its entry are as they were
        before the block when it raises; what other threads add meanwhile is left alone.
        Transactions nest: an inner one that succeeds hands what it added to the outer one.
        The ``with`` value's ``added`` lists the variables this thread made in the block (so far).

        >>> store = ts.VariableStore()
        >>> with store.as_default():
        ...     try:
        ...         with store.transaction():
        ...             _ = ts.get_variable("w", [2])
        ...             raise KeyboardInterrupt
        ...     except KeyboardInterrupt:
        ...         pass
        >>> list(store)
        []
        """
        return Transaction(self)

    def _rollback(self, savepoint: Savepoint) -> None:
        with self._lock:
            self._remove(reversed(savepoint.added))
            for key, item in reversed(savepoint.collected):
                items = self._collections.get(key, [])
                seqs = self._collection_seq.get(key, [])
                for i in range(len(items) - 1, -1, -1):
                    if items[i] is item:
                        del items[i]
                        if i < len(seqs):
                            del seqs[i]
                        break
                if not items:
                    self._collections.pop(key, None)
                    self._collection_seq.pop(key, None)
            for name, param, grad, trainable, regularizer, constraint, created in reversed(
                savepoint.claimed
            ):
                param.requires_grad_(grad)
                table: dict[str, Any]  # of the four tables below, each of its own value type
                for table, value in (
                    (self._trainable, None if trainable else _MISSING),
                    (self._regularizers, regularizer if regularizer is not None else _MISSING),
                    (self._constraints, constraint if constraint is not None else _MISSING),
                    (self._created_at, created if created is not None else _MISSING),
                ):
                    if value is _MISSING:
                        table.pop(name, None)
                    else:
                        table[name] = value
        if savepoint.context is not None and savepoint.counters is not None:
            savepoint.context.restore_counters(savepoint.counters)

    # -- collections, regularizers, constraints (_collections.py) -------------------------------

    def get_collection(
        self, key: str, scope: str | None = None, params: dict[str, Any] | None = None
    ) -> list[Any]:
        """The items of collection ``key`` (a ``GraphKeys`` value or any string), in
        creation order, filtered by ``re.match(scope, name)`` when ``scope`` is given."""
        return _collections.collection_of(self, key, scope, params)

    def add_to_collection(self, key: str, value: Any) -> None:
        """Appends ``value`` to collection ``key``."""
        if not isinstance(key, str):
            raise TypeError(f"collection key must be a str, got {describe(key)}")
        with self._lock:
            items = self._collections.setdefault(key, [])
            seqs = self._collection_seq.setdefault(key, [])
            del seqs[len(items) :]  # numbers left by a rollback that removed items
            seqs.append(self._take_seq())
            items.append(value)
            savepoints = self._local.savepoints
            if savepoints:
                savepoints[-1].collected.append((key, value))

    def global_variables(self, scope: str | None = None) -> list[nn.Parameter]:
        return self.get_collection(GraphKeys.GLOBAL_VARIABLES, scope)

    def trainable_variables(self, scope: str | None = None) -> list[nn.Parameter]:
        return self.get_collection(GraphKeys.TRAINABLE_VARIABLES, scope)

    def regularization_losses(self, scope: str | None = None) -> list[torch.Tensor]:
        return self.get_collection(GraphKeys.REGULARIZATION_LOSSES, scope)

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
        _collections.apply_constraints_of(self, None)

    def _apply_constraints(self, only: set[int] | None) -> None:
        """Applies the constraints of the variables whose ``id`` is in ``only`` (all: None)."""
        _collections.apply_constraints_of(self, only)

    def name_of(self, param: torch.Tensor) -> str:
        """The full name of ``param`` in this store; KeyError if it is not here."""
        name = getattr(param, _NAME_ATTR, None)
        if name is not None and self._parameters.get(name) is param:
            return name
        for name, held in self._snapshot().items():
            if held is param:
                return name
        raise KeyError(f"this store holds no variable that is this tensor ({short(param)})")


_MISSING = object()


def _check_store_seed(seed: Any) -> int | None:
    if seed is None or type(seed) is int:
        return seed
    if isinstance(seed, bool) or not hasattr(seed, "__index__"):
        raise TypeError(f"a store's seed must be an int or None, got {describe(seed)}")
    return int(seed.__index__())


def short(tensor: Any) -> str:
    """A short description of a tensor for error messages."""
    if isinstance(tensor, torch.Tensor):
        return f"{type(tensor).__name__} of shape {list(tensor.shape)}, dtype {tensor.dtype}"
    return describe(tensor)


class _AsDefault:
    """``store.as_default()``: makes this thread's context of the store current, and
    puts back what it replaced on exit. Entered once at a time (``tf.Graph``'s
    ``as_default()`` object is single-use too); nest by calling ``as_default()`` again."""

    __slots__ = ("_store", "_context", "_previous")

    def __init__(self, store: VariableStore) -> None:
        self._store = store
        self._context: _context.Context | None = None
        self._previous: _context.Context | None = None

    def __enter__(self) -> VariableStore:
        if self._context is not None:
            raise RuntimeError(
                "this as_default() block is already open; call store.as_default() again to "
                "nest (each call gives a new context manager)."
            )
        context = self._store._local.context
        self._previous = _context.push(context)
        self._context = context
        return self._store

    def __exit__(self, *exc: object) -> None:
        context, previous = self._context, self._previous
        # raises, changing nothing, if closed out of order (or never opened: None)
        _context.pop(context, previous)  # type: ignore[arg-type]
        self._context = self._previous = None


def _detached(item: Any) -> Any:
    """``item``, or a tensor with autograd history detached (keeping its name)."""
    if isinstance(item, torch.Tensor) and item.grad_fn is not None:
        detached = item.detach()
        name = getattr(item, _NAME_ATTR, None)
        if name is not None:
            setattr(detached, _NAME_ATTR, name)
        return detached
    return item
