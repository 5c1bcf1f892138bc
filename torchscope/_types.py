"""The types torchscope's signatures speak in, in one place.

Leaf module: it imports only torch and the standard library, so every layer can use
these names in annotations (``VariableStore`` is imported for type checkers only).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

import torch
from typing_extensions import ParamSpec, TypeVar

if TYPE_CHECKING:
    from ._store import VariableStore

__all__ = [
    "AUTO_REUSE",
    "Constraint",
    "DTypeLike",
    "DeviceLike",
    "Getter",
    "HasStore",
    "Initializer",
    "InitializerLike",
    "P",
    "PathLike",
    "R",
    "Regularizer",
    "Reuse",
    "ReuseMode",
    "ShapeLike",
    "StoreLike",
    "SupportsArray",
    "ValueLike",
]


class ReuseMode(enum.Enum):
    """The type of ``ts.AUTO_REUSE``: ``get_variable`` creates what is missing and
    returns what exists.

    >>> def dense(x):
    ...     with ts.variable_scope("dense", reuse=ts.AUTO_REUSE):
    ...         return x @ ts.get_variable("w", [2, 2])
    >>> _ = dense(torch.ones(1, 2)); _ = dense(torch.ones(1, 2))
    >>> list(ts.get_default_store().keys())
    ['dense/w']
    """

    AUTO_REUSE = 1

    def __repr__(self) -> str:
        return "ts.AUTO_REUSE"


AUTO_REUSE = ReuseMode.AUTO_REUSE
"""Reuse flag: ``get_variable`` creates a variable if it is missing, else returns it."""

Reuse: TypeAlias = bool | ReuseMode | None
"""A scope's reuse flag: ``True``, ``ts.AUTO_REUSE``, or ``False``/``None`` (inherit)."""

ShapeLike: TypeAlias = int | Sequence[int | None] | torch.Size
"""A shape: an int (1-D), or a sequence of ints (``None`` for a dimension left open)."""

DTypeLike: TypeAlias = torch.dtype | str
"""A ``torch.dtype`` or its name (``"float32"``, ``"torch.int64"``)."""

DeviceLike: TypeAlias = torch.device | str | int
"""A ``torch.device``, its name (``"cuda:0"``), TensorFlow's ``"/gpu:0"``, or an index."""


@runtime_checkable
class Initializer(Protocol):
    """``init(shape, dtype=None, device=None) -> Tensor``, as ``ts.zeros_initializer()``."""

    def __call__(
        self,
        shape: Sequence[int],
        dtype: torch.dtype | None = None,
        device: torch.device | str | int | None = None,
    ) -> torch.Tensor: ...


class SupportsArray(Protocol):
    """An array of another library (a NumPy array): what has ``__array__``."""

    def __array__(self) -> Any: ...


ValueLike: TypeAlias = torch.Tensor | complex | Sequence[Any] | SupportsArray
"""A value a variable can start from: a tensor, a number (``bool``, ``int``, ``float``,
``complex``), a (nested) list or tuple, or an array."""

InitializerLike: TypeAlias = Initializer | Callable[..., Any] | type | ValueLike
"""What ``get_variable(initializer=...)`` takes: an initializer (or its class, made with
no arguments), or a value (a tensor, a number, a nested list)."""

Regularizer: TypeAlias = Callable[[torch.Tensor], torch.Tensor | float | None]
"""``fn(variable) -> loss``: the variable's contribution to ``ts.regularization_loss()``."""

Constraint: TypeAlias = Callable[[torch.Tensor], torch.Tensor]
"""``fn(variable) -> projected``, applied by ``ts.apply_constraints()``."""

Getter: TypeAlias = Callable[..., Any]
"""A custom getter, called as TensorFlow calls one: ``getter(getter=next_getter,
name=full_name, shape=..., dtype=..., initializer=..., ...)``; it returns the variable."""


class HasStore(Protocol):
    """An object that owns a ``VariableStore`` as ``.store``, as ``ts.ScopedModule`` does."""

    @property
    def store(self) -> VariableStore: ...


StoreLike: TypeAlias = "VariableStore | HasStore"
"""A ``VariableStore``, or a module that has one (``.store``): where a function that takes
"a store or a module" looks for variables."""

PathLike: TypeAlias = str | os.PathLike[str]
"""A file or folder: a ``str`` or a ``pathlib.Path``."""

P = ParamSpec("P", default=...)
"""The parameters of a wrapped function (``ts.ScopedModule(fn)``, ``ts.make_template``):
the wrapper is called as ``fn`` is. Default ``...``: a subclass that overrides ``forward``."""

R = TypeVar("R", default=Any)
"""What a wrapped function returns, and so what calling its wrapper returns."""
