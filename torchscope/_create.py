"""Making a new variable: its value from the initializer, checked, as a Parameter."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from . import _keyed
from ._checks import check_device, describe, shapes_compatible
from ._errors import SHAPE_NOT_DEFINED, VALUE_DOES_NOT_FIT, note
from ._initializers import Initializer, default_initializer
from ._types import DeviceLike, InitializerLike
from ._values import check_fits, is_value

__all__ = ["RECIPE_ATTR", "Recipe", "initial_value", "make_parameter"]

# A meta variable carries its recipe under this attribute until the store takes it.
RECIPE_ATTR = "_torchscope_recipe"


class Recipe(NamedTuple):
    """What made a variable on the meta device, for ``ts.materialize`` to make its values:
    the initializer (or value) its creation used, after scopes and custom getters had
    their say, its shape and dtype, and its store's seed then."""

    initializer: Any
    shape: tuple[int, ...] | None
    dtype: torch.dtype | None
    seed: int | None


def _from_value(
    name: str, value: Any, shape: tuple | None, dtype: torch.dtype | None, device: torch.device
) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
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
            check_fits(value, tensor, VALUE_DOES_NOT_FIT, name=name)
    if shape is not None and not shapes_compatible(shape, tensor.shape):
        raise ValueError(
            f"initializer of variable {name!r} is a value of shape {list(tensor.shape)}, but "
            f"shape {list(shape)} was given; give a matching shape or omit it."
        )
    return tensor


def _call(initializer: Any, shape: tuple, dtype: torch.dtype, device: torch.device) -> Any:
    key = _keyed.active()
    if key is not None and not isinstance(initializer, Initializer) and device.type != "meta":
        # A callable of one's own draws from torch's global generators: seeded from the key
        # for the call and put back after.
        with _keyed.seeded_global_rng(key):
            return _call_unkeyed(initializer, shape, dtype, device)
    return _call_unkeyed(initializer, shape, dtype, device)


def _call_unkeyed(initializer: Any, shape: tuple, dtype: Any, device: torch.device) -> Any:
    try:
        return initializer(shape, dtype=dtype, device=device)
    except TypeError as error:
        if "device" not in str(error):
            raise
    # A TensorFlow-style init(shape, dtype=None, partition_info=None): no device argument.
    value = initializer(shape, dtype=dtype)
    return value.to(device) if isinstance(value, torch.Tensor) else value


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
    """Makes the initial value. An exception raised on the way (instantiating an initializer
    class, or the call itself) keeps its type, message and traceback, with a note naming
    the variable (an initializer cannot know which variable it is making)."""
    try:
        if initializer is None:
            initializer = default_initializer(dtype)
        elif isinstance(initializer, type):
            initializer = _instantiate(initializer)
        return _call(initializer, shape, dtype, device), initializer
    except Exception as error:
        note(error, f"variable {name!r}: raised while its initial value was made")
        raise


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
    value = _checked_result(name, initializer, value, dtype, device)
    if tuple(value.shape) != shape:
        raise ValueError(
            f"initializer {describe(initializer)} of variable {name!r} returned shape "
            f"{list(value.shape)}, but the variable's shape is {list(shape)}."
        )
    return value


def _checked_result(
    name: str, initializer: Any, value: Any, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """What an initializer returned, as a tensor of ``dtype`` on ``device``, or an error
    naming the variable: a tensor of another dtype (TensorFlow refuses it too: convert it
    in the initializer), a meta tensor (no values), or something that is not a value."""
    if isinstance(value, torch.Tensor):
        if value.dtype != dtype:
            raise ValueError(
                f"initializer {describe(initializer)} of variable {name!r} returned a tensor of "
                f"dtype {value.dtype}, but the variable's dtype is {dtype}; return "
                f"value.to(dtype) from the initializer (it is called with the dtype)."
            )
        if value.is_meta and device.type != "meta":
            raise ValueError(
                f"initializer {describe(initializer)} of variable {name!r} returned a meta "
                f"tensor, which has no values, for a variable on {device}."
            )
        return value
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(
            f"initializer {describe(initializer)} of variable {name!r} returned "
            f"{describe(value) if value is not None else 'None'}; an initializer returns the "
            "initial value: a tensor (or a number or nested list) of the variable's shape."
        )
    try:
        return torch.as_tensor(value, dtype=dtype, device=device)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(
            f"initializer {describe(initializer)} of variable {name!r} returned "
            f"{describe(value)}, which torch.as_tensor() cannot make a tensor of ({error})."
        ) from None


def _own(value: torch.Tensor, dtype: torch.dtype | None, device: torch.device) -> torch.Tensor:
    """A copy of ``value`` in fresh, dense memory: a variable never shares memory with the
    tensor it was made from (two variables made from one tensor would be one buffer), nor
    keeps an expanded or strided layout an optimizer cannot step."""
    out = torch.empty(value.shape, dtype=dtype or value.dtype, device=device)
    out.copy_(value.detach())
    return out


def _value(
    name: str, shape: Any, dtype: Any, initializer: Any, device: torch.device
) -> torch.Tensor:
    if initializer is not None and not callable(initializer) and is_value(initializer):
        return _from_value(name, initializer, shape, dtype, device)
    return _from_initializer(name, initializer, shape, dtype, device)


def initial_value(
    name: str,
    shape: tuple | None,
    dtype: torch.dtype | None,
    initializer: InitializerLike | None,
    device: torch.device,
    seed: int | None,
) -> torch.Tensor:
    """A new variable's value, in its own memory on ``device``; with ``seed`` (its store's),
    drawn from generators keyed by (``seed``, ``name``)."""
    with torch.inference_mode(False), torch.no_grad():
        if seed is None:
            value = _value(name, shape, dtype, initializer, device)
        else:
            with _keyed.drawing((seed, name)):
                value = _value(name, shape, dtype, initializer, device)
        try:
            return _own(value, dtype, device)
        except Exception as error:  # a device that is not there, memory the allocator refuses
            note(error, f"variable {name!r}: raised while its memory was allocated on {device}")
            raise


def make_parameter(
    name: str,
    shape: tuple | None,
    dtype: torch.dtype | None,
    initializer: InitializerLike | None,
    trainable: bool | None,
    device: DeviceLike | None,
    seed: int | None = None,
) -> tuple[nn.Parameter, bool]:
    """Creates the Parameter for a new variable; returns it and whether it is trainable.
    A meta variable carries its :class:`Recipe` (``RECIPE_ATTR``) for the store to keep."""
    if trainable is None:
        trainable = True
    if not isinstance(trainable, bool):
        raise TypeError(f"trainable of variable {name!r} must be a bool, got {describe(trainable)}")
    device = check_device(device, name)
    if device is None:
        device = torch.get_default_device()
    value = initial_value(name, shape, dtype, initializer, device, seed)
    trainable = trainable and (value.is_floating_point() or value.is_complex())
    param = nn.Parameter(value, requires_grad=trainable)
    if value.is_meta:
        recipe = Recipe(initializer, tuple(value.shape), value.dtype, seed)
        setattr(param, RECIPE_ATTR, recipe)
    return param, trainable
