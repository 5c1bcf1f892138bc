"""Values given for variables: whether a dtype holds them exactly, and TensorFlow's dtype
rule for value initializers. One home for the checks ``get_variable(initializer=value)``
and ``ts.constant_initializer(value)`` share."""

from __future__ import annotations

import numbers
from typing import Any

import torch

from ._checks import check_dtype
from ._errors import INITIALIZER_DTYPE_MISMATCH, ValueDoesNotFitError

__all__ = ["check_fits", "check_value_dtype", "exact", "first_change"]

_VALUE_TYPES = (torch.Tensor, bool, int, float, complex, list, tuple)


def is_value(initializer: Any) -> bool:
    """Whether an initializer is a value (a tensor, a number, a list, an array), not a
    callable."""
    return isinstance(initializer, _VALUE_TYPES) or hasattr(initializer, "__array__")


def exact(value: Any) -> torch.Tensor:
    """``value`` as a tensor that holds it exactly: Python numbers and lists as float64 or
    complex128 (tensors and arrays keep their dtype)."""
    tensor = torch.as_tensor(value)
    if isinstance(value, (numbers.Number, list, tuple)) and (
        tensor.is_floating_point() or tensor.is_complex()
    ):
        tensor = torch.as_tensor(
            value, dtype=torch.complex128 if tensor.is_complex() else torch.float64
        )
    return tensor


def first_change(exact: torch.Tensor, converted: torch.Tensor) -> tuple[Any, Any] | None:
    """The first value of ``exact`` (a value as given, held exactly) that converting it to
    ``converted``'s dtype changed, and what it became; None if nothing changed. Changed
    means lost: a fraction, an imaginary part, a sign, a value out of range (wrapped), a
    NaN or infinity made an integer, a number other than 0 and 1 made a bool. (Rounding
    to a float's precision is not a change.)

    >>> first_change(torch.tensor([1.0, 2.5], dtype=torch.float64), torch.tensor([1, 2]))
    (2.5, 2)
    """
    dtype = converted.dtype
    if dtype.is_complex or (dtype.is_floating_point and not exact.is_complex()):
        return None
    converted = converted.cpu()
    changed = converted.to(exact.dtype) != exact.cpu()
    if not bool(changed.any()):
        return None
    index = tuple(changed.nonzero()[0].tolist())
    return exact.cpu()[index].item(), converted[index].item()


def check_fits(value: Any, converted: torch.Tensor, message: str, **fields: Any) -> None:
    """Raises ``ValueDoesNotFitError`` (a ``TypeError`` and a ``ValueError``) if
    ``converted`` (``value`` converted to the dtype wanted) lost values. ``message`` is
    formatted with ``value``, ``dtype``, ``example`` (a value lost), ``converted`` (what
    it became) and ``fields``."""
    change = first_change(exact(value), converted)
    if change is not None:
        raise ValueDoesNotFitError(
            message.format(
                value=value,
                dtype=converted.dtype,
                example=change[0],
                converted=change[1],
                **fields,
            )
        )


def check_value_dtype(name: str, value: Any, dtype: Any) -> None:
    """TensorFlow's rule for a value initializer and an explicit ``dtype``: a value that
    has a dtype of its own (a tensor, an array) must have that dtype. (Python numbers and
    lists have none: they are converted to ``dtype`` when the variable is made, and
    refused there if values would be lost.)

    >>> check_value_dtype("v", torch.ones(2), torch.float64)
    Traceback (most recent call last):
    ...
    ValueError: Initializer type 'torch.float32' and explicit dtype 'torch.float64' don't ...
    """
    if isinstance(value, torch.Tensor):
        found = value.dtype
    elif hasattr(value, "__array__") and not isinstance(value, _VALUE_TYPES):
        found = torch.as_tensor(value).dtype
    else:
        return
    dtype = check_dtype(dtype, name)
    if found != dtype:
        raise ValueError(INITIALIZER_DTYPE_MISMATCH.format(found=found, dtype=dtype, name=name))
