"""Variable scopes and name scopes.

``variable_scope`` carries the prefix of variable names, the reuse flag and the
defaults ``get_variable`` inherits (initializer, regularizer, dtype, device,
constraint, custom getter). ``name_scope`` names operations; a variable scope
opens one too. Both are thread-local and per store (see ``_state.py``).

Name-scope bookkeeping is bounded: every scope entry owns the counter table of
the names opened directly inside it and drops it when it closes, so a training
loop that re-enters the same scopes every step keeps the same names and the same
memory. Uniqueness ("foo", then "foo_1") holds among the siblings of one entry.
A variable scope's name scope is its own name, never made unique: re-entering
``variable_scope("model", reuse=True)`` puts operations under ``model/`` again
(TensorFlow would say ``model_1/``), so a re-entered model names its operations
the same way on every call. ``name_scope`` and ``default_name`` make names unique
as TensorFlow does.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.autograd.profiler as _autograd_profiler

from . import _naming, _state
from ._checks import check_callable, check_device, check_dtype, describe

if TYPE_CHECKING:
    from .initializers import Initializer

__all__ = [
    "AUTO_REUSE",
    "VariableScope",
    "get_name_scope",
    "get_variable_scope",
    "name_scope",
    "variable_scope",
]


class _ReuseMode(enum.Enum):
    AUTO_REUSE = 1

    def __repr__(self) -> str:
        return "ts.AUTO_REUSE"


AUTO_REUSE = _ReuseMode.AUTO_REUSE
"""Reuse flag: ``get_variable`` creates a variable if it is missing, else returns it."""

_REUSE_VALUES = "True, False, None or ts.AUTO_REUSE"
_CACHE_LIMIT = 256  # scopes cached per parent scope


def _wrap_getter(getter: Callable, outer: Callable | None) -> Callable:
    """Composes custom getters as TensorFlow does: ``getter`` runs first, and its
    ``getter`` argument runs ``outer``, which runs the real one."""
    if outer is None:
        return getter

    def wrapped(getter_: Callable | None = None, *args: Any, **kwargs: Any) -> Any:
        if getter_ is None:
            getter_ = kwargs.pop("getter")
        return getter(functools.partial(outer, getter_), *args, **kwargs)

    wrapped.__wrapped__ = getter  # type: ignore[attr-defined]
    return wrapped


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
        reuse: bool | _ReuseMode | None,
        name: str = "",
        initializer: Initializer | Callable | None = None,
        regularizer: Callable | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        custom_getter: Callable | None = None,
        constraint: Callable | None = None,
        name_scope: str = "",
    ) -> None:
        self._name = name
        self._prefix = name + "/" if name else ""
        self._reuse = reuse if reuse else False
        self._initializer = _check_initializer(initializer)
        self._regularizer = check_callable(regularizer, "regularizer")
        self._dtype = check_dtype(dtype)
        self._device = check_device(device)
        self._custom_getter = _check_getter(custom_getter)
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
    def reuse(self) -> bool | _ReuseMode:
        """``False``, ``True`` or ``ts.AUTO_REUSE``."""
        return self._reuse

    @property
    def initializer(self) -> Callable | None:
        return self._initializer

    @property
    def regularizer(self) -> Callable | None:
        return self._regularizer

    @property
    def dtype(self) -> torch.dtype:
        """The scope's dtype, or ``torch.get_default_dtype()`` when none was set."""
        return self._dtype if self._dtype is not None else torch.get_default_dtype()

    @property
    def device(self) -> torch.device | None:
        return self._device

    @property
    def custom_getter(self) -> Callable | None:
        return self._custom_getter

    @property
    def constraint(self) -> Callable | None:
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

    def set_initializer(self, initializer: Callable | None) -> None:
        initializer = _check_initializer(initializer)
        self._detach()
        self._initializer = initializer

    def set_regularizer(self, regularizer: Callable | None) -> None:
        regularizer = check_callable(regularizer, "regularizer")
        self._detach()
        self._regularizer = regularizer

    def set_dtype(self, dtype: torch.dtype | str | None) -> None:
        dtype = check_dtype(dtype)
        self._detach()
        self._dtype = dtype
        self._update_fast()

    def set_device(self, device: torch.device | str | None) -> None:
        device = check_device(device)
        self._detach()
        self._device = device

    def set_constraint(self, constraint: Callable | None) -> None:
        constraint = check_callable(constraint, "constraint")
        self._detach()
        self._constraint = constraint

    def set_custom_getter(self, custom_getter: Callable | None) -> None:
        custom_getter = _check_getter(custom_getter)
        self._detach()
        self._custom_getter = custom_getter
        self._update_fast()

    # -- the re-entry cache --------------------------------------------------------------------
    #
    # A forward re-enters the same scopes on every call. Each scope keeps the scopes
    # opened in it without overrides, by relative name (``_children``), and
    # ``variable_scope`` hands the same object out again when the reuse flag and the
    # enclosing name scope match: one dict lookup instead of building a scope. A scope
    # that is changed (``reuse_variables()``, ``set_*``) leaves its parent's cache, so
    # the change stays with that object as in TensorFlow (re-entering the name builds
    # a fresh scope), and drops its own cache (its children inherited the old values).

    def _detach(self) -> None:
        owner = self._owner
        if owner is not None:
            self._owner = None
            for key, child in list(owner.items()):
                if child is self:
                    owner.pop(key, None)
        self._children = {}

    def _recopy(self, reuse: bool | _ReuseMode) -> VariableScope:
        """The scope ``variable_scope(self, reuse=...)`` opens (no overrides), made and
        cached in this scope under the reuse flag (names are never such keys)."""
        scope = self._copy(reuse, self._name, self._name_scope)
        self._children[reuse] = scope
        scope._owner = self._children
        return scope

    def _child(self, relative: str, reuse: bool | _ReuseMode, outer_ns: str) -> VariableScope:
        """The scope ``variable_scope(relative)`` opens in this one with no overrides,
        made and cached (the cache is bounded: names made in a loop do not pile up)."""
        ns = f"{outer_ns}/{relative}" if outer_ns else relative
        scope = self._copy(reuse, self._prefix + relative, ns + "/")
        scope._outer_ns = outer_ns
        scope._ns = ns
        scope._ns_key = relative.lower()
        children = self._children
        if len(children) >= _CACHE_LIMIT:
            children.clear()
        children[relative] = scope
        scope._owner = children
        return scope

    def get_variable(self, name: str, shape: Any = None, dtype: Any = None, **kwargs: Any) -> Any:
        """``ts.get_variable`` in this scope (its name, reuse flag and defaults)."""
        from .variables import _get_variable

        return _get_variable(_state.current(), self, name, shape, dtype, **kwargs)

    def global_variables(self) -> list[torch.nn.Parameter]:
        """The variables whose full names start with this scope's name."""
        return self.get_collection("variables")

    def trainable_variables(self) -> list[torch.nn.Parameter]:
        """The trainable variables whose full names start with this scope's name."""
        return self.get_collection("trainable_variables")

    def get_collection(self, key: str) -> list[Any]:
        """The items of collection ``key`` under this scope."""
        context = _state.current()
        return context.store.get_collection(key, self._prefix or None, context.params)

    def _copy(self, reuse: bool | _ReuseMode, name: str, name_scope: str) -> VariableScope:
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


def _root_scope(reuse: bool | _ReuseMode | None, name: str | None = None) -> VariableScope:
    """A root scope for a fresh context (a module's call), shared by the calls that ask
    for the same one so that the scopes entered under it come from its cache. With
    ``name``: the scope ``variable_scope(name)`` opens at a fresh root."""
    key = (reuse, name)
    scope = _ROOTS.get(key)
    if scope is None:
        if name is None:
            scope = VariableScope(reuse)
        else:
            scope = VariableScope(reuse, name, name_scope=name + "/")
            scope._outer_ns = ""
            scope._ns = name
            scope._ns_key = name.lower()
        if len(_ROOTS) >= _CACHE_LIMIT:
            _ROOTS.clear()
        _ROOTS[key] = scope
        scope._owner = _ROOTS
    return scope


def _check_getter(getter: Any) -> Callable | None:
    if getter is not None and not callable(getter):
        raise ValueError(
            f"custom_getter must be callable (getter, name, *args, **kwargs) -> variable, got "
            f"{describe(getter)}"
        )
    return getter


def _check_initializer(initializer: Any) -> Any:
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
    raise TypeError(
        "a scope's initializer must be callable init(shape, dtype=None, device=None) -> Tensor "
        f"(for example ts.constant_initializer(0.1)), got {describe(initializer)}"
    )


def _check_reuse(reuse: Any) -> bool | _ReuseMode | None:
    if reuse is None or reuse is True or reuse is AUTO_REUSE:
        return reuse
    if reuse is False:
        return None  # False behaves as None: reuse is inherited, never switched off.
    raise ValueError(f"reuse must be {_REUSE_VALUES}, got {describe(reuse)}")


def _profiling() -> bool:
    return _autograd_profiler._is_profiler_enabled


class _ScopeEntry:
    """The save/restore half shared by ``name_scope`` and ``variable_scope``: the
    context's four scope fields are saved in one tuple on entry and put back on exit."""

    __slots__ = ("_context", "_saved", "_range")

    def _open_range(self, name_scope: str) -> None:
        """A profiler range named after the name scope, while the profiler runs."""
        if name_scope:
            self._range = torch.profiler.record_function(name_scope)
            self._range.__enter__()

    def __exit__(self, *exc: object) -> None:
        context = self._context
        context.scope, context.var_counts, context.name_scope, context.name_counts = self._saved
        self._saved = None
        if self._range is not None:
            self._range.__exit__(None, None, None)
            self._range = None


class variable_scope(_ScopeEntry):
    """Opens a variable scope (and a name scope of the same name).

    Args:
        name_or_scope: a name (nests under the current scope) or a captured
            ``VariableScope`` (re-opens that scope by its absolute name, leaving the
            current name scope alone). ``None`` with ``default_name``.
        default_name: used when ``name_or_scope`` is ``None``; made unique
            (``layer``, ``layer_1``, ...) among the scopes opened in the current one.
        initializer, regularizer, dtype, device, constraint, custom_getter: defaults
            for ``get_variable`` in this scope and its sub-scopes; a custom getter is
            composed with the inherited one (this one runs first).
        reuse: ``True`` or ``ts.AUTO_REUSE`` switch reuse on for this scope and its
            sub-scopes; ``None`` or ``False`` inherit it (from the parent for a name,
            from the captured scope for a ``VariableScope``).
        auxiliary_name_scope: ``False`` opens no name scope.
        values: accepted for TensorFlow compatibility and ignored.

    Re-entering a scope by name with no overrides (what a forward does on every
    call) hands out the same ``VariableScope`` object as the last time, from its
    parent's cache; see ``VariableScope._child``.

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

    def __init__(
        self,
        name_or_scope: str | VariableScope | None,
        default_name: str | None = None,
        initializer: Callable | None = None,
        regularizer: Callable | None = None,
        reuse: bool | _ReuseMode | None = None,
        dtype: torch.dtype | str | None = None,
        device: torch.device | str | None = None,
        custom_getter: Callable | None = None,
        auxiliary_name_scope: bool = True,
        *,
        values: Any = None,
        constraint: Callable | None = None,
    ) -> None:
        self._saved = None
        self._range = None
        if (
            (reuse is None or reuse is True or reuse is AUTO_REUSE)
            and initializer is None
            and regularizer is None
            and dtype is None
            and device is None
            and custom_getter is None
            and constraint is None
            and auxiliary_name_scope is True
            and default_name is None
        ):
            # The common calls: re-entering a checked name, or a captured scope, with no
            # overrides. Nothing else to check.
            kind = type(name_or_scope)
            if kind is str and name_or_scope in _naming._CHECKED_SCOPE_NAMES:
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
            custom_getter if custom_getter is None else _check_getter(custom_getter),
        )
        if overrides != _NO_OVERRIDES:
            self._overrides = overrides
        elif isinstance(name_or_scope, VariableScope):
            self._overrides = _CAPTURED
        elif name_or_scope is not None and auxiliary_name_scope:
            self._overrides = None
        else:
            self._overrides = overrides

    def __enter__(self) -> VariableScope:
        if self._saved is not None:
            raise RuntimeError("this variable_scope is already open; create a new one to nest it")
        context = _state.current()
        old = context.scope
        outer_ns = context.name_scope
        counts = context.var_counts
        name_counts = context.name_counts
        if self._overrides is None:
            # A name and no overrides: the cached child of the current scope.
            relative = self._name_or_scope
            reuse = self._reuse or old._reuse
            scope = old._children.get(relative)
            if scope is None or scope._reuse is not reuse or scope._outer_ns != outer_ns:
                scope = old._child(relative, reuse, outer_ns)
            name_scope = scope._ns
            key = scope._ns_key
            if key not in name_counts:  # only the first use writes (see _naming.mark_used)
                name_counts[key] = 1
        elif self._overrides is _CAPTURED:
            # A captured scope and no overrides: its cached copy for this reuse flag.
            target = self._name_or_scope
            reuse = self._reuse or target._reuse
            scope = target._children.get(reuse)
            if scope is None:
                scope = target._recopy(reuse)
            name_scope = None  # a captured scope leaves the name scope alone
        else:
            scope, name_scope = self._open(context, old, outer_ns)
        if scope._name not in counts:  # a set, in effect: default_name asks "was it opened?"
            counts[scope._name] = 1
        self._context = context
        self._saved = (old, counts, outer_ns, name_counts)
        context.scope = scope
        context.var_counts = {}
        if name_scope is not None:
            context.name_scope = name_scope
            context.name_counts = {}
            if _autograd_profiler._is_profiler_enabled:
                self._open_range(name_scope)
        return scope

    def _open(
        self, context: _state.Context, old: VariableScope, outer_ns: str
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
                target if target is not None else _unique_default(context, old, self._default_name)
            )
            reuse = self._reuse if self._reuse else old._reuse
            name_scope = _naming.join(outer_ns, relative) if self._auxiliary else None
            current_ns = name_scope if name_scope is not None else outer_ns
            scope = old._copy(reuse, old._prefix + relative, current_ns + "/" if current_ns else "")
            outer_getter = old._custom_getter
            if name_scope is not None:
                _naming.mark_used(context.name_counts, relative)
        initializer, regularizer, dtype, device, constraint, getter = self._overrides
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
            scope._custom_getter = _wrap_getter(getter, outer_getter)
        scope._update_fast()
        return scope, name_scope


_NO_OVERRIDES = (None,) * 6
_CAPTURED = ("captured",)  # variable_scope._overrides of a captured scope without overrides


def _unique_default(context: _state.Context, old: VariableScope, default_name: str) -> str:
    """TensorFlow's ``default_name`` rule: ``layer`` if no scope of that full name was
    opened in the current scope entry, else the first free ``layer_1``, ``layer_2``..."""
    counts = context.var_counts
    if not counts.get(old._prefix + default_name):
        return default_name
    index = 1
    while counts.get(f"{old._prefix}{default_name}_{index}"):
        index += 1
    return f"{default_name}_{index}"


class name_scope(_ScopeEntry):
    """Opens a name scope for operations (not variables).

    ``name`` is made unique among the name scopes opened in the current one
    (``foo``, then ``foo_1``); a name ending in ``/`` re-enters that absolute scope;
    ``None`` or ``""`` goes back to the root. The ``with`` value is the scope's
    name with a trailing ``/``. While it is open, ``torch.profiler`` shows a range
    of that name.

    >>> with ts.name_scope("foo") as a:
    ...     pass
    >>> with ts.name_scope("foo") as b:
    ...     ts.get_name_scope()
    'foo_1'
    >>> a, b
    ('foo/', 'foo_1/')
    """

    __slots__ = ("_name",)

    def __init__(
        self, name: str | None, default_name: str | None = None, values: Any = None
    ) -> None:
        self._saved = None
        self._range = None
        if type(name) is str and name in _naming._CHECKED_SCOPE_NAMES:
            self._name = name  # a checked name: the common call
            return
        if name is None:
            name = default_name
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name_scope's name must be a str or None, got {describe(name)}")
        if name and not name.endswith("/"):
            _naming.check_scope_name(name, "name_scope")
        elif name:
            _naming.check_scope_name(name[:-1], "name_scope")
        self._name = name

    def __enter__(self) -> str:
        if self._saved is not None:
            raise RuntimeError("this name_scope is already open; create a new one to nest it")
        context = _state.current()
        name = self._name
        outer_ns = context.name_scope
        name_counts = context.name_counts
        if not name:
            full = ""
        elif name[-1] == "/":
            full = name[:-1]
        else:
            key = name.lower()
            if key not in name_counts and "_" not in key:
                name_counts[key] = 1  # a first use (what unique_name does, without its search)
            else:
                name = _naming.unique_name(name_counts, name)
            full = f"{outer_ns}/{name}" if outer_ns else name
        self._context = context
        self._saved = (context.scope, context.var_counts, outer_ns, name_counts)
        context.name_scope = full
        context.name_counts = {}
        if _autograd_profiler._is_profiler_enabled:
            self._open_range(full)
        return full + "/" if full else ""


def get_variable_scope() -> VariableScope:
    """The current variable scope of this thread in the default store.

    >>> ts.get_variable_scope().name
    ''
    """
    return _state.current().scope


def get_name_scope() -> str:
    """The current name scope, without a trailing ``/`` (``""`` at the root).

    >>> with ts.variable_scope("foo"):
    ...     with ts.name_scope("bar"):
    ...         ts.get_name_scope()
    'foo/bar'
    """
    return _state.current().name_scope
