"""The types torchscope's signatures speak in, in one place.

Leaf module: it imports only torch and the standard library, so every layer can use
these names in annotations.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeAlias, runtime_checkable

import torch

__all__ = [
    "AUTO_REUSE",
    "Constraint",
    "DTypeLike",
    "DeviceLike",
    "Getter",
    "Initializer",
    "InitializerLike",
    "Regularizer",
    "Reuse",
    "ReuseMode",
    "ShapeLike",
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


InitializerLike: TypeAlias = (
    Initializer
    | Callable[..., Any]
    | type
    | torch.Tensor
    | float
    | int
    | bool
    | complex
    | Sequence[Any]
)
"""What ``get_variable(initializer=...)`` takes: an initializer (or its class, made with
no arguments), or a value (a tensor, a number, a nested list)."""

Regularizer: TypeAlias = Callable[[torch.Tensor], torch.Tensor | float | None]
"""``fn(variable) -> loss``: the variable's contribution to ``ts.regularization_loss()``."""

Constraint: TypeAlias = Callable[[torch.Tensor], torch.Tensor]
"""``fn(variable) -> projected``, applied by ``ts.apply_constraints()``."""

Getter: TypeAlias = Callable[..., Any]
"""A custom getter, called as TensorFlow calls one: ``getter(getter=next_getter,
name=full_name, shape=..., dtype=..., initializer=..., ...)``; it returns the variable."""
