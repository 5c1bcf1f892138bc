"""The one place scope state lives, and the one place it is written.

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

Scopes change a context only through :class:`ScopeEntry` (the base of
``variable_scope`` and ``name_scope``): its ``_enter_*`` methods write the new state
and keep what they replaced in the entry's own named fields, and ``__exit__`` puts
it back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.autograd.profiler as _autograd_profiler

from ._errors import IMPROPER_NESTING
from ._naming import Node, OpenedScopes

if TYPE_CHECKING:
    from ._store import VariableStore
    from ._variable_scope import VariableScope

__all__ = [
    "Context",
    "DEFAULT",
    "ScopeEntry",
    "current",
    "is_open",
    "name_table",
    "pop",
    "profiling",
    "push",
]


class Context:
    """One thread's view of one store.

    Attributes:
        store: the ``VariableStore`` that creates and owns variables (None only for
            :data:`ROOT`, the slot's value while no context is entered).
        params: the dict variables are read from: ``store._parameters``, or a
            module's own ``_parameters`` (a data-parallel replica reads its copies).
        scope: the current ``VariableScope``.
        var_counts: the full names of the variable scopes opened inside the current
            variable-scope entry, with ``""`` mapped to ``outer``; None until one is.
        outer: the ``var_counts`` table the current scope's entry was recorded in (None at
            the context's start). Together, the tables of the open entries: what was opened
            and not forgotten since (TensorFlow's ``variable_scopes_count``, which
            ``default_name`` consults), while every entry is a plain named child.
        opened: the same record as a tree, made from the tables the first time something
            needs more (a ``default_name``, a captured scope, a name with ``/``, a
            transaction: see :meth:`record`); from then on the entries keep the tree.
        node: the node of ``opened`` that is the current scope's, or None when not known
            (an entry then finds it by the full name); a named child's is one lookup away.
        name_scope: the current name scope, ``""`` at the root, no trailing ``/``.
        name_counts: the names used by name scopes opened inside the current one.
        on_get: called with each variable ``get_variable`` hands out, or None (what
            ``ts.summary(module, inputs=...)`` counts uses with).

    The tables are None until something is opened inside the current entry (most entries
    are leaves: not making them saves allocations per entry). A forward of named scopes
    (what runs every training step) keeps the tables: one dict per level per call, where
    a tree would cost a node per scope per call (measured: 1.4% of a training step).
    """

    __slots__ = (
        "store",
        "params",
        "scope",
        "var_counts",
        "outer",
        "opened",
        "node",
        "name_scope",
        "name_counts",
        "on_get",
    )

    def __init__(
        self,
        store: VariableStore,
        params: dict[str, Any],
        scope: VariableScope,
        name_scope: str = "",
        on_get: Callable[[torch.Tensor], None] | None = None,
    ) -> None:
        self.store: VariableStore = store
        self.params: dict[str, Any] = params
        self.scope: VariableScope = scope
        self.var_counts: dict[str, Any] | None = None
        self.outer: dict[str, Any] | None = None
        self.opened: OpenedScopes | None = None
        self.node: Node | None = None
        self.name_scope: str = name_scope
        self.name_counts: dict[str, int] | None = None
        self.on_get: Callable[[torch.Tensor], None] | None = on_get

    def copy(self, scope: VariableScope) -> Context:
        """A context of the same store and dict in ``scope``, with this one's name scope and
        copies of its counter tables (what ``ts.checkpoint`` replays a forward in)."""
        replay = Context(self.store, self.params, scope, self.name_scope)
        replay.opened = self.record().copy()
        replay.name_counts = None if self.name_counts is None else dict(self.name_counts)
        return replay

    def counters(self) -> tuple[int, dict[str, int] | None]:
        """A mark in the record of opened variable scopes and a copy of the name-scope
        table (a transaction puts them back on failure); pair with :meth:`keep_counters`
        or :meth:`restore_counters`."""
        opened = self.record()
        name_counts = self.name_counts
        return opened.mark(), None if name_counts is None else dict(name_counts)

    def record(self) -> OpenedScopes:
        """The variable scopes opened and not forgotten, as a tree: made the first time
        from the tables of the open entries (each holds the plain named children opened
        in its entry; those of closed entries, forgotten with them, are gone)."""
        opened = self.opened
        if opened is None:
            opened = self.opened = OpenedScopes()
            table = self.outer if self.var_counts is None else self.var_counts
            while table is not None:
                for name in table:
                    if name:
                        opened.open(name)
                table = table[""]
            self.node = None
        return opened

    def keep_counters(self) -> None:
        """Ends what :meth:`counters` began, keeping what changed since."""
        self.opened.release()  # type: ignore[union-attr]  (counters() made it)

    def restore_counters(self, saved: tuple[int, dict[str, int] | None]) -> None:
        """Puts back what :meth:`counters` recorded: the opened variable scopes; the
        name-scope table if it existed, in place (the entries that made it hold it); one
        made since, unmade."""
        mark, old_names = saved
        opened: OpenedScopes = self.opened  # type: ignore[assignment]  (counters() made it)
        opened.undo(mark)
        self.node = None  # found again by name at the next entry
        opened.release()
        if old_names is None:
            self.name_counts = None
        elif self.name_counts is not None:
            self.name_counts.clear()
            self.name_counts.update(old_names)


# The slot's value while no context is entered (then :func:`current` gives the process
# default store's context for this thread). A plain ``Context``, told apart by its
# ``store`` being None: the slot then holds one type whether or not a context is open,
# and ``torch.compile``, which guards on that type, does not recompile for it.
ROOT = Context(None, {}, None)  # type: ignore[arg-type]  (the one context without a store)


class _Slot(threading.local):
    # A one-element list rather than an attribute: torch.compile replays what a compiled
    # call changed, and it replays a list's contents through the thread-local's own
    # attribute lookup, whereas an attribute set on a threading.local is replayed into a
    # dict that no thread reads (torch 2.13).
    def __init__(self) -> None:
        self.slot: list[Context] = [ROOT]


_THREAD = _Slot()

DEFAULT: list[Any] = [None]
"""The process-wide default store, in a one-element list (resetting it is one assignment
every thread sees). ``_registry`` owns it: it makes the first one and replaces it."""


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


def name_table(context: Context) -> dict[str, int]:
    """The names used by name scopes opened in the current entry (made when first needed)."""
    table = context.name_counts
    if table is None:
        table = context.name_counts = {}
    return table


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


# -- scope entries -----------------------------------------------------------------------------


class ScopeEntry:
    """What ``variable_scope`` and ``name_scope`` share: writing a context on entry and
    putting back, on exit, exactly what the entry replaced.

    While open, the entry holds (in named fields) the context, its four scope fields as
    they were before the entry, the variable scope it made current, and the profiler
    range it opened (None when the profiler is off); ``_context`` is None while closed.

    Entries close in the reverse order they were opened. Closing one while a variable
    scope opened inside it is still open (a generator holding a scope, resumed and
    finished inside another scope; ``__exit__`` called by hand) raises RuntimeError and
    changes nothing, as TensorFlow's "Improper nesting of variable_scope." does. The
    check is one identity test of the current variable scope; ``name_scope`` adds one of
    the current name scope. (A variable scope closed while only a name scope opened
    inside it is open is caught when that name scope closes.)
    """

    __slots__ = (
        "_context",
        "_old_scope",
        "_node",
        "_old_node",
        "_old_var_counts",
        "_mark",
        "_old_name_scope",
        "_old_name_counts",
        "_entered",
        "_range",
    )
    _context: Context | None
    _old_scope: VariableScope
    _node: Node | None
    _old_node: Node | None
    _old_var_counts: dict[str, Any] | None
    _mark: int
    _old_name_scope: str
    _old_name_counts: dict[str, int] | None
    _entered: VariableScope
    _range: Any

    def _enter_variable_scope(
        self,
        context: Context,
        scope: VariableScope,
        name_scope: str | None,
        name_key: Any,
        captured: bool = False,
    ) -> None:
        """Makes ``scope`` current, and ``name_scope`` (None: the name scope stays). A
        named child marks ``name_key`` used among the name scopes of the current entry
        (only its first use writes: see ``_naming.mark_used``). The scope's name is
        recorded as opened; leaving forgets what was opened below it, or, for a
        ``captured`` scope re-entered, puts back what was recorded on entry (TensorFlow's
        ``default_name`` counting)."""
        parent = context.node
        opened = context.record()
        node = opened.open(scope._name)
        if captured:
            self._mark = opened.mark()
        self._node = None if captured else node
        self._old_var_counts = None
        self._old_node = parent
        context.node = node
        name_counts = context.name_counts
        if name_key is not None:
            if name_counts is None:
                name_counts = context.name_counts = {name_key: 1}
            elif name_key not in name_counts:
                name_counts[name_key] = 1
        self._context = context
        self._old_scope = context.scope
        self._old_name_scope = context.name_scope
        self._entered = scope
        context.scope = scope
        if name_scope is None:
            # The name-scope table stays current: make it now, so that what is opened
            # inside marks the table this entry puts back on exit.
            if name_counts is None:
                name_counts = context.name_counts = {}
            self._old_name_counts = name_counts
            self._range = None
        else:
            self._old_name_counts = name_counts
            context.name_scope = name_scope
            context.name_counts = None
            self._range = _open_range(name_scope) if profiling() else None

    def _enter_child(self, context: Context, scope: VariableScope, relative: str) -> None:
        """:meth:`_enter_variable_scope` for a child of the current scope named ``relative``
        with no overrides, what a forward enters on every call: its node is found (or made)
        under the current scope's, and its name scope is its own."""
        if context.opened is None and "/" not in relative:
            # Tables (see Context): the name goes in the table of the current entry.
            counts = context.var_counts
            if counts is None:
                counts = context.var_counts = {"": context.outer}
            if scope._name not in counts:
                counts[scope._name] = 1
            self._old_var_counts = counts
            context.var_counts = None
            context.outer = counts
        else:
            parent = context.node
            if parent is None:  # the current scope's node, known from now on
                parent = context.record().find(context.scope._name)
            node = parent.get(relative)
            if node is None or "" not in node:
                node = context.opened.open(relative, parent)  # type: ignore[union-attr]
            self._node = node
            self._old_node = parent
            self._old_var_counts = None
            context.node = node
        name_key = scope._ns_key
        name_counts = context.name_counts
        if name_counts is None:
            name_counts = context.name_counts = {name_key: 1}
        elif name_key not in name_counts:
            name_counts[name_key] = 1
        self._context = context
        self._old_scope = context.scope
        self._old_name_scope = context.name_scope
        self._old_name_counts = name_counts
        self._entered = scope
        context.scope = scope
        context.name_scope = scope._ns
        context.name_counts = None
        self._range = _open_range(scope._ns) if profiling() else None

    def _enter_name_scope(self, context: Context, full: str) -> None:
        """Makes ``full`` the current name scope (the variable scope stays)."""
        name_counts = context.name_counts
        if name_counts is None:
            name_counts = context.name_counts = {}
        self._context = context
        self._old_scope = self._entered = context.scope
        self._node, self._mark, self._old_var_counts = None, -1, None
        self._old_name_scope = context.name_scope
        self._old_name_counts = name_counts
        context.name_scope = full
        context.name_counts = None
        self._range = _open_range(full) if profiling() else None

    def __exit__(self, *exc: object) -> None:
        context: Context = self._context  # type: ignore[assignment]  (None only while closed)
        if context.scope is not self._entered:
            raise RuntimeError(self._improper_nesting(self._entered._name))
        counts = self._old_var_counts
        if counts is not None:  # an entry recorded in the tables (see Context)
            context.var_counts = counts
            context.outer = counts[""]
            if context.opened is not None:  # the record became a tree inside the entry
                context.opened.forget_below(self._entered._name)
                context.node = None
        elif (node := self._node) is not None:
            if len(node) > 1:  # scopes were opened below it ("" marks it opened)
                context.opened.close(node)  # type: ignore[union-attr]  (the entry made it)
            context.node = self._old_node
        elif self._mark >= 0:
            opened: OpenedScopes = context.opened  # type: ignore[assignment]  (made on entry)
            opened.undo(self._mark)
            opened.release()
            context.node = self._old_node
        context.scope = self._old_scope
        context.name_scope = self._old_name_scope
        context.name_counts = self._old_name_counts
        self._context = None
        profiler_range = self._range
        if profiler_range is not None:
            profiler_range.__exit__(None, None, None)

    def _improper_nesting(self, closing: str) -> str:
        """The error for closing this entry (named ``closing``) when it is not the innermost
        open scope: the current variable scope (or name scope) is not the one it opened."""
        context: Context = self._context  # type: ignore[assignment]  (None only while closed)
        entered = self._entered
        if context.scope is not entered:
            what, found, expected = "variable scope", context.scope._name, entered._name
        else:
            what, found, expected = "name scope", context.name_scope, closing
        return IMPROPER_NESTING.format(
            kind=type(self).__name__,
            closing=_shown(closing),
            what=what,
            current=_shown(found),
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
