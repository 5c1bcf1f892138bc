"""Name scopes: the names of operations, shown as ranges in ``torch.profiler``.

Name-scope bookkeeping is bounded: every scope entry owns the counter table of
the names opened directly inside it and drops it when it closes, so a training
loop that re-enters the same scopes every step keeps the same names and the same
memory. Uniqueness ("foo", then "foo_1") holds among the siblings of one entry,
case-insensitively, as in TensorFlow. ``variable_scope`` opens a name scope too,
through the same save/restore half (:class:`_ScopeEntry`).
"""

from __future__ import annotations

from typing import Any

from . import _naming
from ._checks import describe
from ._context import ScopeEntry, current, name_table
from ._naming import is_checked_scope_name

__all__ = ["get_name_scope", "name_scope"]


class name_scope(ScopeEntry):
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
        self._context = None
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
        if self._context is not None:
            raise RuntimeError("this name_scope is already open; create a new one to nest it")
        context = current()
        name = self._name
        outer_ns = context.name_scope
        if not outer_ns and name and name[0] in "_->\\":
            # Opened at the root, where names begin with a letter or digit (_naming's rule).
            _naming.check_scope_name(name, "name_scope", root=True)
        if not name:
            full = ""
        elif name[-1] == "/":
            full = name[:-1]
        else:
            name_counts = name_table(context)
            key = name.lower()
            if key not in name_counts and "_" not in key:
                name_counts[key] = 1  # a first use (what unique_name does, without its search)
            else:
                name = _naming.unique_name(name_counts, name)
            full = f"{outer_ns}/{name}" if outer_ns else name
        self._enter_name_scope(context, full)
        self._full = full
        return full + "/" if full else ""

    def __exit__(self, *exc: object) -> None:
        context = self._context
        # Identity tests: every entry puts back the very objects it replaced.
        if context is not None and (
            context.name_scope is not self._full or context.scope is not self._entered
        ):
            raise RuntimeError(self._improper_nesting(self._full))
        ScopeEntry.__exit__(self, *exc)


def get_name_scope() -> str:
    """The current name scope, without a trailing ``/`` (``""`` at the root).

    >>> with ts.variable_scope("foo"):
    ...     with ts.name_scope("bar"):
    ...         ts.get_name_scope()
    'foo/bar'
    """
    return current().name_scope
