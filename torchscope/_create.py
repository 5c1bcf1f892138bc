"""Making a new variable: its value from the initializer, checked, as a Parameter."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._checks import check_device, check_dtype, describe, shapes_compatible
from ._errors import INITIALIZER_DTYPE_MISMATCH, SHAPE_NOT_DEFINED, VALUE_DOES_NOT_FIT

__all__ = ["check_dtype_arg", "check_value_dtype", "first_change", "make_parameter"]

_VALUE_TYPES = (torch.Tensor, bool, int, float, complex, list, tuple)


def check_dtype_arg(dtype: Any, name: str) -> torch.dtype | None:
    return check_dtype(dtype, name)


def _is_value(initializer: Any) -> bool:
    return isinstance(initializer, _VALUE_TYPES) or hasattr(initializer, "__array__")


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


def _exact(value: Any) -> torch.Tensor:
    """A Python number or list as a tensor that holds it exactly (float64, complex128)."""
    tensor = torch.tensor(value)
    if tensor.is_floating_point():
        return torch.tensor(value, dtype=torch.float64)
    if tensor.is_complex():
        return torch.tensor(value, dtype=torch.complex128)
    return tensor


def first_change(exact: torch.Tensor, converted: torch.Tensor) -> tuple[Any, Any] | None:
    """The first value of ``exact`` (a value as given, held exactly) that converting it to
    ``converted``'s dtype changed, and what it became; None if nothing changed. Changed
    means lost: a fraction, an imaginary part, a sign, a value out of range (wrapped), a
    NaN or infinity made an integer, a number other than 0 and 1 made a bool. (Rounding
    to a float's precision is not a change.)"""
    dtype = converted.dtype
    if dtype.is_complex or (dtype.is_floating_point and not exact.is_complex()):
        return None
    converted = converted.cpu()
    changed = converted.to(exact.dtype) != exact.cpu()
    if not bool(changed.any()):
        return None
    index = tuple(changed.nonzero()[0].tolist())
    return exact.cpu()[index].item(), converted[index].item()


def _check_fits(name: str, value: Any, tensor: torch.Tensor) -> None:
    """Refuses a Python value that ``tensor`` (the value converted to the variable's
    dtype) holds only with changes (see :func:`first_change`)."""
    if tensor.dtype.is_complex:
        return
    change = first_change(_exact(value), tensor)
    if change is not None:
        raise ValueError(
            VALUE_DOES_NOT_FIT.format(
                name=name, dtype=tensor.dtype, example=change[0], converted=change[1]
            )
        )


def _from_value(
    name: str, value: Any, shape: tuple | None, dtype: torch.dtype | None, device: torch.device
) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().to(device=device, dtype=dtype, copy=True)
    else:
        try:
            tensor = torch.tensor(value, dtype=dtype, device=device)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(
                f"initializer of variable {name!r} is not a value torch.tensor() understands "
                f"({error}); give a tensor, a number, a nested list or a callable "
                "init(shape, dtype=None, device=None)."
            ) from None
        if dtype is not None:
            _check_fits(name, value, tensor)
    if shape is not None and not shapes_compatible(shape, tensor.shape):
        raise ValueError(
            f"initializer of variable {name!r} is a value of shape {list(tensor.shape)}, but "
            f"shape {list(shape)} was given; give a matching shape or omit it."
        )
    return tensor


def _call(initializer: Any, shape: tuple, dtype: torch.dtype, device: torch.device) -> Any:
    try:
        return initializer(shape, dtype=dtype, device=device)
    except TypeError as error:
        if "device" not in str(error):
            raise
    # A TensorFlow-style init(shape, dtype=None, partition_info=None): no device argument.
    value = initializer(shape, dtype=dtype)
    return value.to(device) if isinstance(value, torch.Tensor) else value


def _named(name: str, error: Exception) -> Exception:
    """``error`` again, its message prefixed with the variable's name: an initializer
    cannot know which variable it is making. Same type and traceback (the frames inside
    the initializer stay visible); ``error`` itself if its type cannot be rebuilt."""
    try:
        named = type(error)(f"variable {name!r}: {error}")
    except Exception:
        return error
    return named.with_traceback(error.__traceback__)


def _instantiate(cls: type) -> Any:
    """An initializer class (``initializer=ts.zeros_initializer``) made into an instance
    with no arguments, as TensorFlow does."""
    try:
        return cls()
    except TypeError as error:
        raise TypeError(
            f"initializer {cls.__name__} is a class, and making an instance with no arguments "
            f"failed ({error}); pass an instance, for example {cls.__name__}(...)."
        ) from None


def _run_initializer(
    name: str, initializer: Any, shape: tuple, dtype: torch.dtype, device: torch.device
) -> Any:
    """Makes the initial value; a ValueError or TypeError raised on the way (instantiating
    an initializer class, or the call itself) names the variable."""
    try:
        if initializer is None:
            from .initializers import default_initializer

            initializer = default_initializer(dtype)
        elif isinstance(initializer, type):
            initializer = _instantiate(initializer)
        return _call(initializer, shape, dtype, device), initializer
    except (ValueError, TypeError) as error:
        raise _named(name, error) from None


def _from_initializer(
    name: str,
    initializer: Any,
    shape: tuple | None,
    dtype: torch.dtype | None,
    device: torch.device,
) -> torch.Tensor:
    if shape is None or any(d is None for d in shape):
        shown = "None" if shape is None else [("None" if d is None else d) for d in shape]
        raise ValueError(SHAPE_NOT_DEFINED.format(name=name, shape=shown))
    dtype = dtype if dtype is not None else torch.get_default_dtype()
    if initializer is not None and not callable(initializer):
        raise TypeError(
            f"initializer of variable {name!r} must be a callable init(shape, dtype=None, "
            f"device=None), a tensor, a number or a nested list, got {describe(initializer)}"
        )
    value, initializer = _run_initializer(name, initializer, shape, dtype, device)
    if not isinstance(value, torch.Tensor):
        value = torch.as_tensor(value, dtype=dtype, device=device)
    if tuple(value.shape) != shape:
        raise ValueError(
            f"initializer {describe(initializer)} of variable {name!r} returned shape "
            f"{list(value.shape)}, but the variable's shape is {list(shape)}."
        )
    return value.detach().to(device=device, dtype=dtype)


def make_parameter(
    name: str,
    shape: tuple | None,
    dtype: torch.dtype | None,
    initializer: Any,
    trainable: Any,
    device: Any,
) -> tuple[nn.Parameter, bool]:
    """Creates the Parameter for a new variable; returns it and whether it is trainable."""
    if trainable is None:
        trainable = True
    if not isinstance(trainable, bool):
        raise TypeError(f"trainable of variable {name!r} must be a bool, got {describe(trainable)}")
    device = check_device(device, name)
    if device is None:
        device = torch.get_default_device()
    with torch.inference_mode(False), torch.no_grad():
        if initializer is not None and not callable(initializer) and _is_value(initializer):
            value = _from_value(name, initializer, shape, dtype, device)
        else:
            value = _from_initializer(name, initializer, shape, dtype, device)
    trainable = trainable and (value.is_floating_point() or value.is_complex())
    return nn.Parameter(value, requires_grad=trainable), trainable
