"""Argument checks shared by scopes, stores and ``get_variable``.

Each ``check_*`` returns the normalised value or raises an error that names the
argument (and the variable, when there is one), what was given and what is
allowed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = [
    "check_callable",
    "check_defined_shape",
    "check_device",
    "check_dtype",
    "check_shape",
    "describe",
    "shapes_compatible",
]

Shape = tuple  # a tuple of ints, with None for dimensions left open on reuse

_TF_DEVICE = re.compile(
    r"^/(?:job:[^/]+/)?(?:replica:\d+/)?(?:task:\d+/)?(?:device:)?([A-Za-z]+):(\d+)$"
)


def describe(value: Any) -> str:
    """A short description of ``value`` for error messages."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _where(variable: str | None) -> str:
    return f" of variable {variable!r}" if variable else ""


def check_shape(shape: Any, variable: str | None = None) -> Shape | None:
    """Normalises a shape argument to a tuple (``None`` stays ``None``).

    Accepts an int (a 1-D shape), or a list, tuple or ``torch.Size`` of
    non-negative ints and ``None`` (a dimension left open, allowed when reusing).

    >>> check_shape([5, 5, 3, None]), check_shape(4), check_shape(None)
    ((5, 5, 3, None), (4,), None)
    """
    if shape is None:
        return None
    if isinstance(shape, bool):
        raise TypeError(f"shape{_where(variable)} must be a list of ints, got {describe(shape)}")
    if isinstance(shape, int):
        shape = (shape,)
    elif isinstance(shape, torch.Tensor) and shape.dim() <= 1 and not shape.is_floating_point():
        shape = tuple(shape.tolist())
    if not isinstance(shape, Sequence) or isinstance(shape, str):
        raise TypeError(
            f"shape{_where(variable)} must be a list, tuple or torch.Size of ints (None for an "
            f"unknown dimension), got {describe(shape)}"
        )
    return _dims(shape, variable, defined=False)


def check_defined_shape(shape: Any) -> tuple[int, ...]:
    """A shape an initializer is called with: a tuple, list or ``torch.Size`` of
    non-negative ints, every dimension given.

    >>> check_defined_shape([2, 3])
    (2, 3)
    """
    if not isinstance(shape, (tuple, list, torch.Size)):
        raise TypeError(
            f"shape must be a tuple, list or torch.Size of ints, got {shape!r} "
            f"({type(shape).__name__}); write (n,) for a vector"
        )
    return _dims(shape, None, defined=True)  # type: ignore[return-value]


def _dims(shape: Sequence[Any], variable: str | None, defined: bool) -> Shape:
    """The dimensions as ints (``None`` kept unless ``defined``), each checked."""
    dims = []
    for dim in shape:
        if dim is None and not defined:
            dims.append(None)
            continue
        if isinstance(dim, int | torch.SymInt) and not isinstance(dim, bool):
            pass  # (tested first: torch.compile traces neither hasattr nor __index__ on a SymInt)
        elif dim is None or isinstance(dim, bool) or not hasattr(dim, "__index__"):
            if defined:
                raise TypeError(f"shape entries must be ints, got {tuple(shape)!r}")
            raise TypeError(
                f"shape{_where(variable)} has a dimension that is not an int: {describe(dim)} in "
                f"{list(shape)}; dimensions are non-negative ints, or None for an unknown one."
            )
        else:
            dim = dim.__index__()  # numpy integers and the like
        if dim < 0:
            if defined:
                shown = tuple(d.__index__() if hasattr(d, "__index__") else d for d in shape)
                raise ValueError(f"shape entries must be non-negative ints, got {shown!r}")
            raise ValueError(
                f"shape{_where(variable)} has a negative dimension: {list(shape)}; dimensions are "
                "non-negative ints, or None for an unknown one."
            )
        dims.append(dim)
    return tuple(dims)


def shapes_compatible(requested: Shape, found: Sequence[int]) -> bool:
    """Whether a requested shape (``None`` = any size) matches a found one."""
    if len(requested) != len(found):
        return False
    return all(r is None or r == f for r, f in zip(requested, found, strict=True))


def check_dtype(dtype: Any, variable: str | None = None) -> torch.dtype | None:
    """Normalises a dtype argument: a ``torch.dtype``, its name, or ``None``.

    >>> check_dtype("float64"), check_dtype(torch.int32), check_dtype(None)
    (torch.float64, torch.int32, None)
    """
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        found = getattr(torch, dtype.rsplit(".", 1)[-1], None)
        if isinstance(found, torch.dtype):
            return found
    raise TypeError(
        f"dtype{_where(variable)} must be a torch.dtype (for example torch.float32) or its name, "
        f"got {describe(dtype)}"
    )


def check_device(device: Any, variable: str | None = None) -> torch.device | None:
    """Normalises a device argument; TensorFlow's ``"/gpu:0"`` spelling is understood.

    >>> check_device("/cpu:0"), check_device("/device:GPU:1"), check_device(None)
    (device(type='cpu', index=0), device(type='cuda', index=1), None)
    """
    if device is None or isinstance(device, torch.device):
        return device
    if isinstance(device, str):
        match = _TF_DEVICE.match(device)
        if match:
            kind, index = match.group(1).lower(), int(match.group(2))
            kind = "cuda" if kind == "gpu" else kind
            device = f"{kind}:{index}"
        try:
            return torch.device(device)
        except RuntimeError as error:
            raise ValueError(
                f"device{_where(variable)} {device!r} is not a device PyTorch knows ({error}); use "
                "'cpu', 'cuda:0', torch.device(...) or TensorFlow's '/gpu:0'."
            ) from None
    if isinstance(device, int) and not isinstance(device, bool):
        return torch.device(device)
    raise TypeError(
        f"device{_where(variable)} must be a str, int or torch.device, got {describe(device)}"
    )


def check_callable(value: Any, argument: str, variable: str | None = None) -> Callable | None:
    """Returns ``value`` if it is ``None`` or callable, else raises TypeError."""
    if value is None or callable(value):
        return value
    raise TypeError(f"{argument}{_where(variable)} must be callable or None, got {describe(value)}")
