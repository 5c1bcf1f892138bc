"""Custom getters, composed and called as TensorFlow composes and calls them.

A getter is called as TensorFlow's ``_VariableStore.get_variable`` calls it: with keywords,
all of TensorFlow's always (those torchscope has no use for are None, ``validate_shape`` is
True), so that a ported getter with an explicit signature and no ``**kwargs`` works. The
keywords torchscope adds (``device``, and ``constraint``, which TensorFlow too passes only
to a getter that takes it) go only to a getter that takes them, by name or through
``**kwargs``; the real getter at the end of the chain has them bound, so they apply
either way. Nested scopes compose their getters: the innermost runs first, and calling
its ``getter`` argument runs the next one out.
"""

from __future__ import annotations

import functools
import inspect
import weakref
from typing import Any

from torch.compiler import is_compiling

from ._checks import describe
from ._types import Getter

__all__ = ["call_getter", "check_getter", "wrap_getter"]

_EXTRAS = ("device", "constraint")
_EXTRAS_TAKEN: weakref.WeakKeyDictionary[Any, tuple[str, ...]] = weakref.WeakKeyDictionary()


def _extras_taken(getter: Getter) -> tuple[str, ...]:
    """Which of ``device`` and ``constraint`` ``getter`` accepts as keywords: both with
    ``**kwargs``, else those it names. Read from the code of the function underneath (a
    ``functools.partial``'s, a bound method's, a callable object's ``__call__``), once per
    function; a callable with no Python code underneath is given both."""
    fn = getter
    while isinstance(fn, functools.partial):
        fn = fn.func
    fn = getattr(fn, "__func__", fn)
    if not inspect.isfunction(fn):
        fn = type(fn).__call__  # a callable object's method (a builtin's is a slot wrapper)
        if not inspect.isfunction(fn):
            return _EXTRAS
    taken = _EXTRAS_TAKEN.get(fn)
    if taken is None:
        code = fn.__code__
        if code.co_flags & inspect.CO_VARKEYWORDS:
            taken = _EXTRAS
        else:
            named = code.co_varnames[
                code.co_posonlyargcount : code.co_argcount + code.co_kwonlyargcount
            ]
            taken = tuple(key for key in _EXTRAS if key in named)
        if not is_compiling():  # a function made inside a traced call has nothing to keep
            _EXTRAS_TAKEN[fn] = taken
    return taken


def call_getter(getter: Getter, /, *args: Any, **kwargs: Any) -> Any:
    """Calls a custom getter with ``kwargs`` less the extras (``device``, ``constraint``)
    it does not accept."""
    taken = _extras_taken(getter)
    if taken is not _EXTRAS:
        for key in _EXTRAS:
            if key not in taken:
                kwargs.pop(key, None)
    return getter(*args, **kwargs)


class _ComposedGetter:
    """Two custom getters composed as TensorFlow composes them: ``getter`` runs first, and
    its ``getter`` argument runs ``outer``, which runs the real one (or the next one out).
    Each is called through :func:`call_getter`, so each gets only the extras it accepts.
    A class, not a closure: its one ``__call__`` is what :func:`_extras_taken` reads."""

    __slots__ = ("__wrapped__", "_outer")

    def __init__(self, getter: Getter, outer: Getter) -> None:
        self.__wrapped__ = getter
        self._outer = outer

    def __call__(self, getter_: Getter | None = None, *args: Any, **kwargs: Any) -> Any:
        if getter_ is None:
            getter_ = kwargs.pop("getter")
        next_getter = functools.partial(call_getter, self._outer, getter_)
        return call_getter(self.__wrapped__, next_getter, *args, **kwargs)


def wrap_getter(getter: Getter, outer: Getter | None) -> Getter:
    """``getter`` composed with the inherited ``outer`` (see :class:`_ComposedGetter`)."""
    return getter if outer is None else _ComposedGetter(getter, outer)


def check_getter(getter: Any) -> Getter | None:
    """``getter`` if it is None or callable, else ValueError (as TensorFlow raises)."""
    if getter is not None and not callable(getter):
        raise ValueError(
            f"custom_getter must be callable (getter, name, *args, **kwargs) -> variable, got "
            f"{describe(getter)}"
        )
    return getter
