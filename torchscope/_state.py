"""The one place scope state lives.

A :class:`Context` is what ``get_variable`` works in: the store that owns the
variables, the dict it reads them from, and this thread's scope state for that
store (the current ``VariableScope``, the current name scope and the counter
tables of both). Each (thread, store) pair has its own context, so threads never
see each other's open scopes; the variables themselves are shared.

Contexts are pushed and popped only by context managers (``store.as_default()``
and the module adapter's call), each restoring in ``finally`` exactly what it
replaced. :func:`current` is the one accessor.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .scopes import VariableScope
    from .store import VariableStore

__all__ = ["Context", "current", "push", "pop", "stack_depth"]


class Context:
    """One thread's view of one store.

    Attributes:
        store: the ``VariableStore`` that creates and owns variables.
        params: the dict variables are read from: ``store._parameters``, or a
            module's own ``_parameters`` (a data-parallel replica reads its copies).
        scope: the current ``VariableScope``.
        var_counts: how often each variable-scope name was opened inside the current
            variable-scope entry (TensorFlow's ``default_name`` counters).
        name_scope: the current name scope, ``""`` at the root, no trailing ``/``.
        name_counts: the names used by name scopes opened inside the current one.
    """

    __slots__ = ("store", "params", "scope", "var_counts", "name_scope", "name_counts")

    def __init__(self, store: VariableStore, params: dict[str, Any], scope: VariableScope) -> None:
        self.store = store
        self.params = params
        self.scope = scope
        self.var_counts: dict[str, int] = {}
        self.name_scope = ""
        self.name_counts: dict[str, int] = {}


class _ThreadStack(threading.local):
    def __init__(self) -> None:
        self.stack: list[Context] = []


_THREAD = _ThreadStack()

# The process-wide default store, set by ``store.py`` (one slot, so resetting it
# is one assignment that every thread sees).
DEFAULT: list[Any] = [None]


def current() -> Context:
    """The context ``get_variable`` works in on this thread."""
    stack = _THREAD.stack
    if stack:
        return stack[-1]
    return DEFAULT[0]._local.context


def push(context: Context) -> None:
    _THREAD.stack.append(context)


def pop(context: Context) -> None:
    stack = _THREAD.stack
    if not stack or stack[-1] is not context:
        raise RuntimeError(
            "torchscope: scope contexts were closed out of order (a store's as_default() "
            "or a ScopedModule call was exited while a context opened inside it was open)."
        )
    stack.pop()


def stack_depth() -> int:
    """How many contexts (``as_default()`` blocks, module calls) this thread has open."""
    return len(_THREAD.stack)
