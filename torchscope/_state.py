"""The one place scope state lives.

A :class:`Context` is what ``get_variable`` works in: the store that owns the
variables, the dict it reads them from, and this thread's scope state for that
store (the current ``VariableScope``, the current name scope and the counter
tables of both). Each (thread, store) pair has its own context, so threads never
see each other's open scopes; the variables themselves are shared.

This thread's current context is one thread-local slot, not a stack: entering a
context (``store.as_default()``, a module call) saves the slot's value and
restores it in ``finally``. Code that runs inside therefore reads the same thing
however deeply the caller is nested, which is what lets ``torch.compile`` trace a
module call once for every caller. :func:`current` is the one accessor.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import torch.autograd.profiler as _autograd_profiler

if TYPE_CHECKING:
    from .scopes import VariableScope
    from .store import VariableStore

__all__ = ["Context", "current", "push", "pop", "profiling", "is_open"]


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

    Both tables are None until something is opened inside the current entry (most
    entries are leaves: not making their tables saves two allocations per entry).
    """

    __slots__ = ("store", "params", "scope", "var_counts", "name_scope", "name_counts")

    def __init__(self, store: VariableStore, params: dict[str, Any], scope: VariableScope) -> None:
        self.store = store
        self.params = params
        self.scope = scope
        self.var_counts: dict[str, int] | None = None
        self.name_scope = ""
        self.name_counts: dict[str, int] | None = None


# The slot's value while no context is entered (then :func:`current` gives the process
# default store's context for this thread). A plain ``Context``, told apart by its
# ``store`` being None: the slot then holds one type whether or not a context is open,
# and ``torch.compile``, which guards on that type, does not recompile for it.
ROOT = Context(None, {}, None)  # type: ignore[arg-type]


class _Slot(threading.local):
    # A one-element list rather than an attribute: torch.compile replays what a compiled
    # call changed, and it replays a list's contents through the thread-local's own
    # attribute lookup, whereas an attribute set on a threading.local is replayed into a
    # dict that no thread reads (torch 2.13).
    def __init__(self) -> None:
        self.slot: list[Context] = [ROOT]


_THREAD = _Slot()

# The process-wide default store, set by ``store.py`` (one slot, so resetting it
# is one assignment that every thread sees).
DEFAULT: list[Any] = [None]


def current() -> Context:
    """The context ``get_variable`` works in on this thread."""
    context = _THREAD.slot[0]
    if context.store is None:  # ROOT (not `is ROOT`: torch.compile would guard on that alias)
        return DEFAULT[0]._local.context
    return context


def push(context: Context) -> Context:
    """Makes ``context`` current on this thread; returns what it replaced, which the
    caller hands to :func:`pop` in ``finally``."""
    slot = _THREAD.slot
    previous = slot[0]
    slot[0] = context
    return previous


def pop(context: Context, previous: Context) -> None:
    """Undoes ``push(context)``, which returned ``previous``.

    Raises RuntimeError, changing nothing, if ``context`` is not current: a context
    entered inside it is still open (contexts must close in the reverse order).
    """
    slot = _THREAD.slot
    if slot[0] is not context:
        raise RuntimeError(
            "torchscope: scope contexts were closed out of order (a store's as_default() "
            "or a ScopedModule call was exited while a context opened inside it was open)."
        )
    slot[0] = previous


def profiling() -> bool:
    """Whether ``torch.profiler`` is recording (scopes then open ranges of their names).

    Every module reads the flag through this one function: ``torch.compile`` guards on
    each path to a module object, and two modules' globals reaching the same module
    cost a guard evaluated in Python on every compiled call.
    """
    return _autograd_profiler._is_profiler_enabled


def is_open() -> bool:
    """Whether this thread is inside an ``as_default()`` block or a module call."""
    return _THREAD.slot[0].store is not None
