"""Variable scopes: ``variable_scope`` and ``get_variable_scope``.

``variable_scope`` carries the prefix of variable names, the reuse flag and the
defaults ``get_variable`` inherits (initializer, regularizer, dtype, device,
constraint, custom getter). ``name_scope`` names operations; a variable scope
opens one too. Both are thread-local and per store (see ``_context.py``).

The ``VariableScope`` object and its re-entry cache live in ``_variable_scope.py``,
name scopes in ``name_scopes.py``; this module re-exports both.

A variable scope's name scope is its own name, never made unique: re-entering
``variable_scope("model", reuse=True)`` puts operations under ``model/`` again
(TensorFlow would say ``model_1/``), so a re-entered model names its operations
the same way on every call. ``name_scope`` and ``default_name`` make names unique
as TensorFlow does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from . import _naming
from ._checks import check_callable, check_device, check_dtype, describe
from ._context import _THREAD, DEFAULT, Context, ScopeEntry, current, name_table
from ._fastpath import cached_scope
from ._getters import check_getter, wrap_getter
from ._name_scopes import get_name_scope, name_scope
from ._types import (
    AUTO_REUSE,
    Constraint,
    DeviceLike,
    DTypeLike,
    Getter,
    InitializerLike,
    Regularizer,
    Reuse,
)
from ._variable_scope import VariableScope, _check_initializer, _check_reuse

__all__ = [
    "AUTO_REUSE",
    "VariableScope",
    "get_name_scope",
    "get_variable_scope",
    "name_scope",
    "variable_scope",
]


class variable_scope(ScopeEntry):
    """Opens a variable scope (and a name scope of the same name).

    Args:
        name_or_scope: a name (nests under the current scope) or a captured
            ``VariableScope`` (re-opens that scope by its absolute name, leaving the
            current name scope alone). ``None`` with ``default_name``.
        default_name: used when ``name_or_scope`` is ``None``; made unique
            (``layer``, ``layer_1``, ...) as TensorFlow makes it: against the full names
            of the scopes opened so far, forgotten below a scope when it closes (so
            ``"enc/layer"`` opened at the root makes ``default_name="layer"`` inside
            ``"enc"`` give ``enc/layer_1``).
        initializer, regularizer, dtype, device, constraint, custom_getter: defaults
            for ``get_variable`` in this scope and its sub-scopes; a custom getter is
            composed with the inherited one (this one runs first).
            The initializer may be a value (a tensor, number, numpy array or nested
            list), as TensorFlow's ``initializer=tf.constant(0.1)``: ``get_variable``
            then takes the variable's shape from it (a shape given must match it; with
            an explicit ``dtype`` the value must fit that dtype, as for a value given
            to ``get_variable``, where TensorFlow would keep the value's dtype).
        reuse: ``True`` or ``ts.AUTO_REUSE`` switch reuse on for this scope and its
            sub-scopes; ``None`` or ``False`` inherit it (from the parent for a name,
            from the captured scope for a ``VariableScope``).
        auxiliary_name_scope: ``False`` opens no name scope.
        values: accepted for TensorFlow compatibility and ignored.
        partitioner, use_resource, caching_device: TensorFlow's; checked, and no effect
            (variables are not split: see ``ts.get_variable``'s ``partitioner``).

    Re-entering a scope by name with no overrides (what a forward does on every
    call) hands out the same ``VariableScope`` object as the last time, from its
    parent's cache, as long as nothing else holds that object; a scope kept with
    ``as s``, or still open, is never handed out again (TensorFlow makes a new one on
    every entry). See ``VariableScope._child``.

    >>> with ts.variable_scope("foo"):
    ...     with ts.variable_scope("bar"):
    ...         v = ts.get_variable("v", [1])
    >>> ts.name_of(v)
    'foo/bar/v'
    >>> with ts.variable_scope("foo", reuse=True):
    ...     ts.get_variable("bar/v") is v
    True
    """

    __slots__ = (
        "_name_or_scope",
        "_reuse",
        "_overrides",
        "_default_name",
        "_auxiliary",
    )
    _name_or_scope: str | VariableScope | None
    _reuse: Reuse
    # None: a name, no overrides; _CAPTURED: a captured scope, no overrides; else the six
    # overrides (initializer, regularizer, dtype, device, constraint, custom getter).
    _overrides: tuple[Any, ...] | None
    _default_name: str | None
    _auxiliary: bool

    def __init__(
        self,
        name_or_scope: str | VariableScope | None,
        default_name: str | None = None,
        initializer: InitializerLike | None = None,
        regularizer: Regularizer | None = None,
        reuse: Reuse = None,
        dtype: DTypeLike | None = None,
        device: DeviceLike | None = None,
        custom_getter: Getter | None = None,
        auxiliary_name_scope: bool = True,
        *,
        values: Any = None,
        constraint: Constraint | None = None,
        partitioner: Callable[..., Any] | None = None,
        use_resource: bool | None = None,
        caching_device: Any = None,
    ) -> None:
        self._context = None
        if (
            (reuse is None or reuse is True or reuse is AUTO_REUSE)
            and initializer is None
            and regularizer is None
            and dtype is None
            and device is None
            and custom_getter is None
            and constraint is None
            and partitioner is None
            and use_resource is None
            and caching_device is None
            and auxiliary_name_scope is True
            and default_name is None
        ):
            # The common calls: a name, or a captured scope, with no overrides. Nothing
            # else to check here; a name is checked on entry, when its scope is made.
            kind = type(name_or_scope)
            if kind is str:
                self._name_or_scope = name_or_scope
                self._reuse = reuse
                self._overrides = None
                return
            if kind is VariableScope:
                self._name_or_scope = name_or_scope
                self._reuse = reuse
                self._overrides = _CAPTURED
                return
        if name_or_scope is None:
            if default_name is None:
                raise TypeError(
                    "variable_scope needs name_or_scope, or default_name when it is None"
                )
            _naming.check_scope_name(default_name, "default_name")
        elif isinstance(name_or_scope, str):
            _naming.check_scope_name(name_or_scope, "variable_scope")
        elif not isinstance(name_or_scope, VariableScope):
            raise TypeError(
                "variable_scope's name_or_scope must be a str, a VariableScope or None, got "
                f"{describe(name_or_scope)}"
            )
        if default_name is not None and not isinstance(default_name, str):
            raise TypeError(f"default_name must be a str or None, got {describe(default_name)}")
        if not isinstance(auxiliary_name_scope, bool):
            raise TypeError(
                f"auxiliary_name_scope must be a bool, got {describe(auxiliary_name_scope)}"
            )
        self._reuse = _check_reuse(reuse)
        if name_or_scope is None and self._reuse:
            raise ValueError(
                f"variable_scope(None, default_name={default_name!r}) cannot use reuse="
                f"{reuse!r}: a default name is made unique, so there is nothing to reuse; "
                "give the scope's name (or a captured VariableScope) to reuse it."
            )
        _check_scope_tf_keywords(partitioner, use_resource, caching_device)
        self._name_or_scope = name_or_scope
        self._default_name = default_name
        self._auxiliary = auxiliary_name_scope
        # The defaults are usually all None; check only what was given.
        overrides = (
            initializer if initializer is None else _check_initializer(initializer),
            regularizer if regularizer is None else check_callable(regularizer, "regularizer"),
            dtype if dtype is None else check_dtype(dtype),
            device if device is None else check_device(device),
            constraint if constraint is None else check_callable(constraint, "constraint"),
            custom_getter if custom_getter is None else check_getter(custom_getter),
        )
        # `is`, not `!=`: an array initializer compares by element
        if any(given is not None for given in overrides):
            self._overrides = overrides
        elif isinstance(name_or_scope, VariableScope):
            self._overrides = _CAPTURED
        elif name_or_scope is not None and auxiliary_name_scope:
            self._overrides = None
        else:
            self._overrides = overrides

    def __enter__(self) -> VariableScope:
        if self._context is not None:
            raise RuntimeError("this variable_scope is already open; create a new one to nest it")
        context = _THREAD.slot[0]  # current(), inlined: entered on every forward call
        if context.store is None:
            context = DEFAULT[0]._local.context
        old = context.scope
        outer_ns = context.name_scope
        if self._overrides is None:
            # A name and no overrides: the cached child of the current scope.
            relative: str = self._name_or_scope  # type: ignore[assignment]  (a name)
            reuse = self._reuse or old._reuse
            scope = cached_scope(old._children, relative)  # None if missing or held
            if scope is None or scope._reuse is not reuse or scope._outer_ns != outer_ns:
                scope = old._child(relative, reuse, outer_ns)
            self._enter_child(context, scope, relative)
        elif self._overrides is _CAPTURED:
            # A captured scope and no overrides: its cached copy for this reuse flag.
            target: VariableScope = self._name_or_scope  # type: ignore[assignment]  (captured)
            reuse = self._reuse or target._reuse
            scope = cached_scope(target._children, reuse)
            if scope is None:
                scope = target._recopy(reuse)
            # the name scope is left alone
            self._enter_variable_scope(context, scope, None, None, captured=True)
        else:
            scope, name_scope = self._open(context, old, outer_ns)
            captured = isinstance(self._name_or_scope, VariableScope)
            self._enter_variable_scope(context, scope, name_scope, None, captured)
        return scope

    def _open(
        self, context: Context, old: VariableScope, outer_ns: str
    ) -> tuple[VariableScope, str | None]:
        """The general entry: a captured scope, a default name or overrides. Returns the
        new scope and the name scope to open (None: leave it alone)."""
        target = self._name_or_scope
        if isinstance(target, VariableScope):
            reuse = self._reuse if self._reuse else target._reuse
            scope = target._copy(reuse, target._name, target._name_scope)
            outer_getter = target._custom_getter
            name_scope = None  # a captured scope leaves the name scope alone
        else:
            relative = (
                target
                if target is not None
                # default_name is a str when there is no name (checked in __init__)
                else _unique_default(context, old, self._default_name)  # type: ignore[arg-type]
            )
            if not old._prefix or (self._auxiliary and not outer_ns):
                # At the root (of variable names, or of name scopes): begins a full name.
                kind = "variable_scope" if target is not None else "default_name"
                _naming.check_scope_name(relative, kind, root=True)
            reuse = self._reuse if self._reuse else old._reuse
            name_scope = self._open_name_scope(context, outer_ns, relative)
            current_ns = name_scope if name_scope is not None else outer_ns
            scope = old._copy(reuse, old._prefix + relative, current_ns + "/" if current_ns else "")
            outer_getter = old._custom_getter
        initializer, regularizer, dtype, device, constraint, getter = self._overrides  # type: ignore[misc]
        if initializer is not None:
            scope._initializer = initializer
        if regularizer is not None:
            scope._regularizer = regularizer
        if dtype is not None:
            scope._dtype = dtype
        if device is not None:
            scope._device = device
        if constraint is not None:
            scope._constraint = constraint
        if getter is not None:
            scope._custom_getter = wrap_getter(getter, outer_getter)
        scope._update_fast()
        return scope, name_scope

    def _open_name_scope(self, context: Context, outer_ns: str, relative: str) -> str | None:
        """The name scope a named or default-named entry opens (None without one), marked
        as used among its siblings. A named scope's is its own name; a default name's is
        made unique among the name scopes, as TensorFlow's ``name_scope(default_name)``
        makes it, while the variable scope's name comes from the variable-scope counters:
        after ``name_scope("layer")``, ``variable_scope(None, default_name="layer")`` is
        variable scope ``layer`` with name scope ``layer_1``."""
        if not self._auxiliary:
            return None
        table = name_table(context)
        if self._name_or_scope is None:
            # default_name is a str when there is no name (checked in __init__)
            relative = _naming.unique_name(table, self._default_name)  # type: ignore[arg-type]
        else:
            _naming.mark_used(table, relative)
        return _naming.join(outer_ns, relative)


_CAPTURED = ("captured",)  # variable_scope._overrides of a captured scope without overrides


def _check_scope_tf_keywords(partitioner: Any, use_resource: Any, caching_device: Any) -> None:
    """``variable_scope``'s TensorFlow-only keywords: checked, no effect (a scope's
    partitioner does not split its variables; see ``ts.get_variable``'s ``partitioner``)."""
    if partitioner is not None and not callable(partitioner):
        raise TypeError(
            "variable_scope's partitioner must be callable partitioner(shape, dtype) (for "
            f"example ts.fixed_size_partitioner(3)), got {describe(partitioner)}"
        )
    if use_resource is not None and not isinstance(use_resource, bool):
        raise TypeError(
            f"variable_scope's use_resource must be a bool, got {describe(use_resource)}"
        )
    if caching_device is not None and not (
        isinstance(caching_device, (str, torch.device)) or callable(caching_device)
    ):
        raise TypeError(
            "variable_scope's caching_device must be a device string or a function (it has "
            f"no effect in torchscope), got {describe(caching_device)}"
        )


def _unique_default(context: Context, old: VariableScope, default_name: str) -> str:
    """TensorFlow's ``default_name`` rule: ``layer`` unless a scope of that full name was
    opened (and not forgotten since: see ``_naming.OpenedScopes``), else the first free
    ``layer_1``, ``layer_2``..."""
    return context.record().unique(old._prefix, default_name)


def get_variable_scope() -> VariableScope:
    """The current variable scope of this thread in the default store.

    >>> ts.get_variable_scope().name
    ''
    """
    return current().scope
