"""``make_template``: a function whose variables are made once and shared by every call."""

from __future__ import annotations

import functools
import re
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, overload

import torch

from . import _naming
from ._context import current
from ._graph_keys import GraphKeys
from ._scopes import VariableScope, _unique_default, name_scope, variable_scope
from ._types import Getter, P, R

__all__ = ["Template", "make_template"]


class Template(Generic[P, R]):
    """A function wrapped so that all its calls share one set of variables.

    The first call opens a unique variable scope (``name``, ``name_1``, ...) and
    creates the variables there; later calls re-open that scope with reuse, and
    re-enter its original name scope with fresh counters, so every call names its
    operations the same way. A later call that would create a variable raises
    ``ValueError``.

    >>> scale = ts.make_template("scale", lambda x: x * ts.get_variable("s", [1]))
    >>> _ = scale(torch.ones(1)); _ = scale(torch.ones(1))
    >>> isinstance(scale, ts.Template), [ts.name_of(v) for v in scale.variables]
    (True, ['scale/s'])

    Type checkers see the template called as the function is, returning what it returns.
    """

    def __init__(
        self,
        name: str,
        func: Callable[P, R],
        create_scope_now: bool = False,
        unique_name: str | None = None,
        custom_getter: Getter | None = None,
    ) -> None:
        if name is None:
            raise ValueError(
                "make_template's name_ cannot be None; give a scope name such as 'encoder'"
            )
        _naming.check_scope_name(name, "make_template")
        if not callable(func):
            raise TypeError(f"make_template's func_ must be callable, got {type(func).__name__}")
        if unique_name is not None:
            _naming.check_scope_name(unique_name, "unique_name_")
        self._name = name
        self._func = func
        self._unique_name = unique_name
        self._custom_getter = custom_getter
        self._variable_scope: VariableScope | None = None
        self._variables_created = False
        # The store the first call made variables in, and the first of them: if that store
        # loses it (a ScopedModule's failed first call takes its variables back), the
        # template's next call there makes its variables again.
        self._made_in: tuple[weakref.ref[Any], str] | None = None
        self._lock = threading.RLock()  # first calls, one thread at a time
        if create_scope_now:
            context = current()
            scope_name = unique_name or _unique_default(context, context.scope, name)
            with variable_scope(scope_name, custom_getter=custom_getter) as scope:
                self._variable_scope = scope

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if self._variables_created and not self._lost_variables():
            return self._reuse_call(args, kwargs)
        # A first call: one thread at a time; one that waited reuses what the first made.
        with self._lock:
            if self._variables_created and not self._lost_variables():
                return self._reuse_call(args, kwargs)
            return self._first_call(args, kwargs)

    def _lost_variables(self) -> bool:
        """Whether the store the first call made variables in has lost them (a
        ScopedModule's failed first call took them back): then the next call makes them
        again."""
        made_in = self._made_in
        if made_in is None:
            return False
        store_ref, first = made_in
        store = current().store
        if store is store_ref() and first not in store._parameters:
            self._variables_created, self._made_in = False, None
            return True
        return False

    def _first_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        """Opens the template's scope (made unique now, unless it was made at once) and makes
        the variables; a failure takes back what the call added, the scope's name too."""
        store = current().store
        made_scope = self._variable_scope is None
        try:
            with store.transaction() as record:
                if made_scope:
                    with variable_scope(
                        self._unique_name,
                        default_name=self._name,
                        custom_getter=self._custom_getter,
                    ) as scope:
                        self._variable_scope = scope
                        result = self._func(*args, **kwargs)
                else:
                    assert self._variable_scope is not None
                    with (
                        variable_scope(self._variable_scope),
                        name_scope(self._variable_scope.original_name_scope or None),
                    ):
                        result = self._func(*args, **kwargs)
        except BaseException:
            if made_scope:
                self._variable_scope = None
            raise
        if record.added:
            self._made_in = (weakref.ref(store), record.added[0])
        self._variables_created = True
        return result

    def _reuse_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        """A later call: the template's scope re-opened with reuse; creating a trainable
        variable is refused (and what the call made taken back)."""
        scope = self._variable_scope
        assert scope is not None
        store = current().store
        with (
            store.transaction() as record,
            variable_scope(scope, reuse=True),
            name_scope(scope.original_name_scope or None),
        ):
            result = self._func(*args, **kwargs)
            if record.added:
                trainable = store._trainable
                new = [name for name in record.added if name in trainable]
                if new:
                    raise ValueError(
                        f"template {self._name!r} created trainable variable(s) {new} on a "
                        "call after the first; every call must use the variables the first "
                        "call made."
                    )
        return result

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_made_in"] = None  # a weak reference does not pickle
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    @property
    def name(self) -> str:
        """The name given to ``make_template``."""
        return self._name

    @property
    def variable_scope(self) -> VariableScope | None:
        """The template's scope (``None`` until the first call, unless made at once)."""
        return self._variable_scope

    var_scope = variable_scope

    @property
    def variable_scope_name(self) -> str:
        """The scope's full name with a trailing ``/`` (``""`` before it exists)."""
        if self._variable_scope is None:
            return ""
        return self._variable_scope.name + "/"

    @property
    def variables(self) -> list[torch.nn.Parameter]:
        """The variables under the template's scope, in creation order."""
        return self._collection(GraphKeys.GLOBAL_VARIABLES)

    global_variables = variables

    @property
    def trainable_variables(self) -> list[torch.nn.Parameter]:
        return self._collection(GraphKeys.TRAINABLE_VARIABLES)

    @property
    def non_trainable_variables(self) -> list[torch.nn.Parameter]:
        trainable = {id(v) for v in self.trainable_variables}
        return [v for v in self.variables if id(v) not in trainable]

    def _collection(self, key: str) -> list[Any]:
        if self._variable_scope is None:
            return []
        context = current()
        prefix = re.escape(self.variable_scope_name)
        return context.store.get_collection(key, prefix, context.params)

    def __repr__(self) -> str:
        return f"Template(name={self._name!r}, scope={self.variable_scope_name!r})"


@overload
def make_template(
    name_: str,
    func_: Callable[P, R],
    create_scope_now_: bool = False,
    unique_name_: str | None = None,
    custom_getter_: Getter | None = None,
) -> Template[P, R]: ...


@overload
def make_template(
    name_: str,
    func_: Callable[..., R],
    create_scope_now_: bool = False,
    unique_name_: str | None = None,
    custom_getter_: Getter | None = None,
    **kwargs: Any,
) -> Template[..., R]: ...


def make_template(
    name_: str,
    func_: Callable[..., R],
    create_scope_now_: bool = False,
    unique_name_: str | None = None,
    custom_getter_: Getter | None = None,
    **kwargs: Any,
) -> Template[..., R]:
    """Wraps ``func_`` so that it creates its variables on the first call and reuses them after.

    Args:
        name_: the scope name; made unique (``name_``, ``name__1``...) unless
            ``unique_name_`` is given.
        func_: the function; it calls ``ts.get_variable``.
        create_scope_now_: open the scope now rather than at the first call.
        unique_name_: use this exact scope name.
        custom_getter_: a custom getter for the template's scope.
        **kwargs: bound to ``func_`` on every call.

    >>> def dense(x, units):
    ...     w = ts.get_variable("w", [x.shape[-1], units])
    ...     return x @ w
    >>> layer = ts.make_template("dense", dense, units=3)
    >>> a, b = layer(torch.ones(2, 4)), layer(torch.zeros(2, 4))
    >>> [ts.name_of(v) for v in layer.variables]
    ['dense/w']
    """
    func = functools.partial(func_, **kwargs) if kwargs else func_
    return Template(
        name_,
        func,
        create_scope_now=create_scope_now_,
        unique_name=unique_name_,
        custom_getter=custom_getter_,
    )
