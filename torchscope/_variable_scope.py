"""The ``VariableScope`` object: a name prefix, a reuse flag and ``get_variable``'s defaults.

``variable_scope`` (in ``_scopes.py``) opens these; this module holds the object and
the re-entry cache that lets a forward pass re-open the same scopes on every call
without building them again (see ``VariableScope._child``), and the root scopes a
module's calls start from.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.compiler import is_compiling

from . import _naming
from ._checks import check_callable, check_device, check_dtype, describe
from ._context import current
from ._fastpath import cached_scope
from ._getters import check_getter
from ._lookup import get_variable_in
from ._naming import is_checked_scope_name
from ._types import (
    AUTO_REUSE,
    Constraint,
    DeviceLike,
    DTypeLike,
    Getter,
    InitializerLike,
    Regularizer,
    Reuse,
    ReuseMode,
    ShapeLike,
)
from ._values import is_value

__all__ = ["AUTO_REUSE", "VariableScope"]


_REUSE_VALUES = "True, False, None or ts.AUTO_REUSE"
_CACHE_LIMIT = 256  # scopes cached per parent scope


class VariableScope:
    """A variable scope: a name prefix, a reuse flag and defaults for ``get_variable``.

    Obtained from ``with ts.variable_scope(...) as scope`` or
    ``ts.get_variable_scope()``. Passing it back to ``variable_scope`` re-opens
    it ("captures" it) wherever that happens.

    >>> with ts.variable_scope("foo") as scope:
    ...     scope.name, scope.reuse, scope.original_name_scope
    ('foo', False, 'foo/')
    """

    __slots__ = (
        "_name",
        "_prefix",
        "_reuse",
        "_initializer",
        "_regularizer",
        "_dtype",
        "_device",
        "_custom_getter",
        "_constraint",
        "_name_scope",
        "_fast",
        "_children",
        "_owner",
        "_outer_ns",
        "_ns",
        "_ns_key",
    )

    def __init__(
        self,
        reuse: Reuse,
        name: str = "",
        initializer: InitializerLike | None = None,
        regularizer: Regularizer | None = None,
        dtype: DTypeLike | None = None,
        device: DeviceLike | None = None,
        custom_getter: Getter | None = None,
        constraint: Constraint | None = None,
        name_scope: str = "",
    ) -> None:
        self._name = name
        self._prefix = name + "/" if name else ""
        self._reuse = reuse if reuse else False
        self._initializer = _check_initializer(initializer)
        self._regularizer = check_callable(regularizer, "regularizer")
        self._dtype = check_dtype(dtype)
        self._device = check_device(device)
        self._custom_getter = check_getter(custom_getter)
        self._constraint = check_callable(constraint, "constraint")
        self._name_scope = name_scope
        self._children: dict[Any, VariableScope] = {}
        self._owner: dict[Any, VariableScope] | None = None
        self._update_fast()

    def _update_fast(self) -> None:
        # get_variable's reuse path: reusing, and nothing to apply on the way.
        self._fast = bool(self._reuse) and self._custom_getter is None and self._dtype is None

    @property
    def name(self) -> str:
        """The full name, ``""`` for the root scope."""
        return self._name

    @property
    def reuse(self) -> bool | ReuseMode:
        """``False``, ``True`` or ``ts.AUTO_REUSE``."""
        return self._reuse

    @property
    def initializer(self) -> InitializerLike | None:
        return self._initializer

    @property
    def regularizer(self) -> Regularizer | None:
        return self._regularizer

    @property
    def dtype(self) -> torch.dtype:
        """The scope's dtype, or ``torch.get_default_dtype()`` when none was set."""
        return self._dtype if self._dtype is not None else torch.get_default_dtype()

    @property
    def device(self) -> torch.device | None:
        return self._device

    @property
    def custom_getter(self) -> Getter | None:
        return self._custom_getter

    @property
    def constraint(self) -> Constraint | None:
        return self._constraint

    @property
    def original_name_scope(self) -> str:
        """The name scope this scope opened when it was first entered, with a trailing ``/``."""
        return self._name_scope

    def reuse_variables(self) -> None:
        """Switches this scope to reuse: later ``get_variable`` calls in it return existing
        variables. Reuse cannot be switched off again."""
        self._detach()
        self._reuse = True
        self._update_fast()

    def set_initializer(self, initializer: InitializerLike | None) -> None:
        """Sets the default initializer of this scope: a callable or a value (see
        ``variable_scope``'s ``initializer``)."""
        initializer = _check_initializer(initializer)
        self._detach()
        self._initializer = initializer

    def set_regularizer(self, regularizer: Regularizer | None) -> None:
        regularizer = check_callable(regularizer, "regularizer")
        self._detach()
        self._regularizer = regularizer

    def set_dtype(self, dtype: DTypeLike | None) -> None:
        dtype = check_dtype(dtype)
        self._detach()
        self._dtype = dtype
        self._update_fast()

    def set_device(self, device: DeviceLike | None) -> None:
        device = check_device(device)
        self._detach()
        self._device = device

    def set_constraint(self, constraint: Constraint | None) -> None:
        constraint = check_callable(constraint, "constraint")
        self._detach()
        self._constraint = constraint

    def set_custom_getter(self, custom_getter: Getter | None) -> None:
        custom_getter = check_getter(custom_getter)
        self._detach()
        self._custom_getter = custom_getter
        self._update_fast()

    # -- the re-entry cache --------------------------------------------------------------------
    #
    # A forward re-enters the same scopes on every call. Each scope keeps the scopes
    # opened in it without overrides, by relative name (``_children``), and
    # ``variable_scope`` hands the same object out again when the reuse flag and the
    # enclosing name scope match: one dict lookup instead of building a scope. It does so
    # only while nothing else holds the object (``_fastpath.cached_scope``): TensorFlow
    # builds a new scope on every entry, so an object a caller kept (``as s``) or that
    # an open entry uses is never handed out twice; that entry gets a fresh scope of
    # its own, and the cache keeps the held one. A scope that is changed (``reuse_variables()``,
    # ``set_*``) leaves its parent's cache, so the change stays with that object as in
    # TensorFlow, and drops its own cache (its children inherited the old values).
    # While torch.compile traces, nothing is added to a cache (a ScopedModule's traced call
    # starts from a fresh root anyway); a compiled plain function whose scopes an eager
    # call enters for the first time later recompiles once, on the cache's new entry.

    def _detach(self) -> None:
        owner = self._owner
        if owner is not None:
            self._owner = None
            for key, child in list(owner.items()):
                if child is self:
                    owner.pop(key, None)
        self._children = {}

    def _recopy(self, reuse: bool | ReuseMode) -> VariableScope:
        """The scope ``variable_scope(self, reuse=...)`` opens (no overrides), made and
        cached in this scope under the reuse flag (names are never such keys)."""
        scope = self._copy(reuse, self._name, self._name_scope)
        if not is_compiling() and reuse not in self._children:  # see _child
            self._children[reuse] = scope
            scope._owner = self._children
        return scope

    def _child(self, relative: str, reuse: bool | ReuseMode, outer_ns: str) -> VariableScope:
        """The scope ``variable_scope(relative)`` opens in this one with no overrides,
        made and cached (the cache is bounded: names made in a loop do not pile up).
        Raises ValueError for an invalid name: the cache holds valid names only."""
        if not is_checked_scope_name(relative):
            # At the root (of variable names, or of name scopes) a name begins a full name.
            root = not self._prefix or not outer_ns
            _naming.check_scope_name(relative, "variable_scope", root=root)
        ns = f"{outer_ns}/{relative}" if outer_ns else relative
        scope = self._copy(reuse, self._prefix + relative, ns + "/")
        scope._outer_ns = outer_ns
        scope._ns = ns
        scope._ns_key = relative.lower()
        if is_compiling():
            # Not cached while torch.compile traces: the next call would find the entry the
            # trace added, fail the guard on the cache's contents, and recompile.
            return scope
        children = self._children
        held = children.get(relative)
        if held is not None and held._reuse is reuse and held._outer_ns == outer_ns:
            # The cached scope is held elsewhere (see cached_scope): this entry gets its own,
            # uncached, and the cache keeps the object, whose identity compiled code may
            # guard on (torch.compile's traces keep references until the garbage collector
            # runs).
            return scope
        if len(children) >= 256:  # _CACHE_LIMIT, written out: a global read is a compile guard
            children.clear()
        children[relative] = scope
        scope._owner = children
        return scope

    def get_variable(
        self,
        name: str,
        shape: ShapeLike | None = None,
        dtype: DTypeLike | None = None,
        *,
        initializer: InitializerLike | None = None,
        regularizer: Regularizer | None = None,
        trainable: bool | None = True,
        device: DeviceLike | None = None,
        constraint: Constraint | None = None,
        **tf_keywords: Any,
    ) -> torch.nn.Parameter:
        """``ts.get_variable`` in this scope (its name, reuse flag and defaults);
        ``tf_keywords`` are ``ts.get_variable``'s TensorFlow keywords (``collections``,
        ``custom_getter``, ``partitioner``, ...)."""
        return get_variable_in(
            current(),
            self,
            name,
            shape,
            dtype,
            initializer=initializer,
            regularizer=regularizer,
            trainable=trainable,
            device=device,
            constraint=constraint,
            **tf_keywords,
        )

    def global_variables(self) -> list[torch.nn.Parameter]:
        """The variables whose full names start with this scope's name."""
        return self.get_collection("variables")

    def trainable_variables(self) -> list[torch.nn.Parameter]:
        """The trainable variables whose full names start with this scope's name."""
        return self.get_collection("trainable_variables")

    def get_collection(self, key: str) -> list[Any]:
        """The items of collection ``key`` under this scope."""
        context = current()
        return context.store.get_collection(key, self._prefix or None, context.params)

    def _copy(self, reuse: bool | ReuseMode, name: str, name_scope: str) -> VariableScope:
        scope = VariableScope.__new__(VariableScope)
        scope._name = name
        scope._prefix = name + "/" if name else ""
        scope._reuse = reuse if reuse else False
        scope._initializer = self._initializer
        scope._regularizer = self._regularizer
        scope._dtype = self._dtype
        scope._device = self._device
        scope._custom_getter = self._custom_getter
        scope._constraint = self._constraint
        scope._name_scope = name_scope
        scope._children = {}
        scope._owner = None
        scope._update_fast()
        return scope

    def __repr__(self) -> str:
        return f"VariableScope(name={self._name!r}, reuse={self._reuse!r})"


_ROOTS: dict[tuple[Any, str | None], VariableScope] = {}


def _fresh_root(reuse: bool | ReuseMode | None, name: str | None = None) -> VariableScope:
    """A new root scope, as ``_root_scope`` gives, built from constants only: what a call
    starts from while ``torch.compile`` traces it (a shared scope's caches would become
    guards, and recompile when they change)."""
    scope = VariableScope.__new__(VariableScope)
    scope._name = name or ""
    scope._prefix = name + "/" if name else ""
    scope._reuse = reuse if reuse else False
    scope._initializer = None
    scope._regularizer = None
    scope._dtype = None
    scope._device = None
    scope._custom_getter = None
    scope._constraint = None
    scope._name_scope = name + "/" if name else ""
    scope._children = {}
    scope._owner = None
    scope._fast = bool(reuse)
    return scope


def _root_scope(reuse: bool | ReuseMode | None, name: str | None = None) -> VariableScope:
    """A root scope for a fresh context (a module's call), shared by the calls that ask
    for the same one so that the scopes entered under it come from its cache. With
    ``name``: the scope ``variable_scope(name)`` opens at a fresh root."""
    key = (reuse, name)
    scope = cached_scope(_ROOTS, key)  # None if missing, or held (by a call still running)
    if scope is None:
        if name is None:
            scope = VariableScope(reuse)
        else:
            scope = VariableScope(reuse, name, name_scope=name + "/")
        if key in _ROOTS:  # held: this call gets its own (see VariableScope._child)
            return scope
        if len(_ROOTS) >= _CACHE_LIMIT:
            _ROOTS.clear()
        _ROOTS[key] = scope
        scope._owner = _ROOTS
    return scope


def _check_initializer(initializer: Any) -> Any:
    """A scope's initializer: a callable, or a value (tensor, number, numpy array, nested
    list) that ``get_variable`` makes the variable from, as TensorFlow's
    ``variable_scope("s", initializer=tf.constant(0.1))`` does."""
    if initializer is None or callable(initializer):
        return initializer
    if isinstance(initializer, (list, tuple)) and any(
        isinstance(v, torch.Tensor) for v in initializer
    ):
        raise TypeError(
            "variable_scope's initializer must be callable init(shape, dtype=None, device=None), "
            "got a list of tensors: TensorFlow's third argument 'values' is not needed in "
            "torchscope; pass the initializer by keyword (initializer=...)."
        )
    if is_value(initializer):
        if not isinstance(initializer, torch.Tensor):
            try:
                torch.as_tensor(initializer)
            except (TypeError, ValueError, RuntimeError) as error:
                raise TypeError(
                    f"a scope's initializer {describe(initializer)} is not a value "
                    f"torch.tensor() understands ({error}); give a tensor, a number, a numpy "
                    "array, a nested list of numbers or a callable "
                    "init(shape, dtype=None, device=None)."
                ) from None
        return initializer
    raise TypeError(
        "a scope's initializer must be callable init(shape, dtype=None, device=None) -> Tensor "
        "(for example ts.constant_initializer(0.1)) or a value (a tensor, a number, a numpy "
        f"array, a nested list), got {describe(initializer)}"
    )


def _check_reuse(reuse: Any) -> bool | ReuseMode | None:
    if reuse is None or reuse is True or reuse is AUTO_REUSE:
        return reuse
    if reuse is False:
        return None  # False behaves as None: reuse is inherited, never switched off.
    raise ValueError(f"reuse must be {_REUSE_VALUES}, got {describe(reuse)}")
