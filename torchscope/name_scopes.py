"""Name scopes: the names of operations, shown as ranges in ``torch.profiler``.

Name-scope bookkeeping is bounded: every scope entry owns the counter table of
the names opened directly inside it and drops it when it closes, so a training
loop that re-enters the same scopes every step keeps the same names and the same
memory. Uniqueness ("foo", then "foo_1") holds among the siblings of one entry,
case-insensitively, as in TensorFlow. ``variable_scope`` opens a name scope too,
through the same save/restore half (:class:`_ScopeEntry`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from . import _naming
from ._checks import describe
from ._errors import IMPROPER_NESTING
from ._naming import is_checked_scope_name
from ._state import current, profiling

if TYPE_CHECKING:
    from . import _state

__all__ = ["get_name_scope", "name_scope"]


class _ScopeEntry:
    """The save/restore half shared by ``name_scope`` and ``variable_scope``.

    ``_saved`` is None while closed; while open, one tuple: the context, its four scope
    fields as they were before the entry, the variable scope current inside the entry,
    and the profiler range the entry opened (None when the profiler is off).

    Entries close in the reverse order they were opened. Closing one while a variable
    scope opened inside it is still open (a generator holding a scope, resumed and
    finished inside another scope; ``__exit__`` called by hand) raises RuntimeError and
    changes nothing, as TensorFlow's "Improper nesting of variable_scope." does. The
    check is one identity test of the current variable scope; ``name_scope`` adds one of
    the current name scope. (A variable scope closed while only a name scope opened
    inside it is open is caught when that name scope closes.)
    """

    __slots__ = ("_saved",)

    def __exit__(self, *exc: object) -> None:
        context, scope, var_counts, name_scope, name_counts, entered, profiler_range = self._saved
        if context.scope is not entered:
            raise RuntimeError(_improper_nesting(self, entered._name, context))
        context.scope = scope
        context.var_counts = var_counts
        context.name_scope = name_scope
        context.name_counts = name_counts
        self._saved = None
        if profiler_range is not None:
            profiler_range.__exit__(None, None, None)


def _improper_nesting(entry: _ScopeEntry, closing: str, context: _state.Context) -> str:
    """The error for closing ``entry`` (named ``closing``) when it is not the innermost
    open scope: the current variable scope (or name scope) is not the one it opened."""
    entered = entry._saved[5]
    if context.scope is not entered:
        what, current, expected = "variable scope", context.scope._name, entered._name
    else:
        what, current, expected = "name scope", context.name_scope, closing
    return IMPROPER_NESTING.format(
        kind=type(entry).__name__,
        closing=_shown(closing),
        what=what,
        current=_shown(current),
        expected=_shown(expected),
    )


def _shown(name: str) -> str:
    return repr(name) if name else "the root"


def _open_range(name_scope: str) -> Any:
    """A profiler range named after the name scope (None for the root), entered."""
    if not name_scope:
        return None
    profiler_range = torch.profiler.record_function(name_scope)
    profiler_range.__enter__()
    return profiler_range


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

    __slots__ = ("_name", "_full")

    def __init__(
        self, name: str | None, default_name: str | None = None, values: Any = None
    ) -> None:
        self._saved = None
        if is_checked_scope_name(name):
            self._name = name  # a checked name: the common call
            return
        if name is None:
            name = default_name
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name_scope's name must be a str or None, got {describe(name)}")
        if name and not name.endswith("/"):
            _naming.check_scope_name(name, "name_scope")  # where it opens: see __enter__
        elif name:
            _naming.check_scope_name(name[:-1], "name_scope", root=True)  # an absolute name
        self._name = name

    def __enter__(self) -> str:
        if self._saved is not None:
            raise RuntimeError("this name_scope is already open; create a new one to nest it")
        context = current()
        name = self._name
        outer_ns = context.name_scope
        if not outer_ns and name and name[0] in "_->\\":
            # Opened at the root, where names begin with a letter or digit (_naming's rule).
            _naming.check_scope_name(name, "name_scope", root=True)
        name_counts = context.name_counts
        if name_counts is None:
            name_counts = context.name_counts = {}
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
        var_counts = context.var_counts  # stays current: made now, so that it is put back
        if var_counts is None:
            var_counts = context.var_counts = {}
        scope = context.scope
        saved = (context, scope, var_counts, outer_ns, name_counts, scope, None)
        context.name_scope = full
        context.name_counts = None
        if profiling():
            saved = (*saved[:6], _open_range(full))
        self._full = full
        self._saved = saved
        return full + "/" if full else ""

    def __exit__(self, *exc: object) -> None:
        saved = self._saved
        if saved is not None:
            context = saved[0]
            # Identity tests: every entry puts back the very objects it replaced.
            if context.name_scope is not self._full or context.scope is not saved[5]:
                raise RuntimeError(_improper_nesting(self, self._full, context))
        _ScopeEntry.__exit__(self, *exc)


def get_name_scope() -> str:
    """The current name scope, without a trailing ``/`` (``""`` at the root).

    >>> with ts.variable_scope("foo"):
    ...     with ts.name_scope("bar"):
    ...         ts.get_name_scope()
    'foo/bar'
    """
    return current().name_scope
