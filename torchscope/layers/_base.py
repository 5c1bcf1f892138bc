"""What every layer shares: the variable scope it opens, its variables, its arguments'
checks, and what happens to its output (activation, activity regularizer).

The scope follows ``tf.compat.v1.layers`` (its ``base.Layer``): a layer given a ``name``
opens ``variable_scope(name, reuse=reuse)`` as it is, so a second layer of that name
without reuse finds its variables taken; an unnamed layer opens
``variable_scope(None, default_name="dense")``, made unique as TensorFlow makes it (against
the full names of the scopes opened: ``dense``, ``dense_1``, ...), unless it is asked to
reuse, when it opens ``"dense"`` itself. Layers without variables (pooling, dropout,
flatten) open theirs too: they take their names as TensorFlow's do
(``max_pooling2d(..., name="dense")`` makes the next unnamed dense layer ``dense_1``).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from typing import Any, TypeAlias

import torch
from torch.compiler import is_compiling

from .._checks import describe
from .._context import current
from .._errors import DTYPE_MISMATCH, DtypeMismatchError
from .._graph_keys import GraphKeys
from .._lookup import get_variable
from .._scopes import variable_scope
from .._types import Constraint, InitializerLike, Regularizer, Reuse, ShapeLike
from ..ops._wrapper import autocast_dtype

__all__ = [
    "Activation",
    "check_bool",
    "check_callables",
    "check_data_format",
    "check_inputs",
    "check_padding",
    "check_positive_int",
    "check_training",
    "check_tuple",
    "finish",
    "layer_scope",
    "opened_scope",
    "layer_dtype",
    "weight",
]

Activation: TypeAlias = Callable[[torch.Tensor], torch.Tensor]
"""``fn(outputs) -> outputs``: a layer's activation (``torch.relu``, ``ts.nn.relu``, ...)."""


def _error(layer: str, argument: str, message: str) -> str:
    return f"torchscope.layers.{layer}: argument '{argument}' {message}"


# -- the scope ------------------------------------------------------------------------------


def layer_scope(layer: str, name: str | None, reuse: Reuse) -> variable_scope:
    """The variable scope a layer with variables opens (see the module's docstring)."""
    if name:
        if not isinstance(name, str):
            raise TypeError(_error(layer, "name", f"must be a str or None, got {describe(name)}"))
        return variable_scope(name, reuse=reuse)
    if reuse:
        return variable_scope(layer, reuse=reuse)
    return variable_scope(None, default_name=layer)


def opened_scope(layer: str, name: str | None) -> variable_scope:
    """The variable scope a layer without variables opens: ``name`` (or the layer's own)
    made unique, as TensorFlow names every layer it calls."""
    if name and not isinstance(name, str):
        raise TypeError(_error(layer, "name", f"must be a str or None, got {describe(name)}"))
    return variable_scope(None, default_name=name or layer)


# -- variables ------------------------------------------------------------------------------


class _Summed:
    """Two regularizers of one variable: the scope's (which ``get_variable`` applies to
    every variable it makes) and the layer's own. TensorFlow lists the two losses apart;
    here they are one loss, their sum."""

    __slots__ = ("first", "second")

    def __init__(self, first: Regularizer, second: Regularizer) -> None:
        self.first = first
        self.second = second

    def __call__(self, variable: torch.Tensor) -> torch.Tensor | float | None:
        losses = [
            loss for loss in (self.first(variable), self.second(variable)) if loss is not None
        ]
        if not losses:
            return None
        return losses[0] if len(losses) == 1 else losses[0] + losses[1]

    def __repr__(self) -> str:
        return f"{self.first!r} + {self.second!r}"


def weight(
    name: str,
    shape: ShapeLike,
    dtype: torch.dtype | None,
    initializer: InitializerLike | None,
    regularizer: Regularizer | None = None,
    trainable: bool = True,
    constraint: Constraint | None = None,
) -> torch.nn.Parameter:
    """The layer's variable ``name`` in the current scope (made or reused by
    ``get_variable``), of ``dtype`` (None: ``get_variable``'s default).

    ``initializer=None`` is the scope's initializer, else Glorot-uniform; a layer's
    ``regularizer`` is added to the scope's, as TensorFlow adds both. A ``dtype`` that
    ``get_variable`` would pick anyway is not passed (which keeps its reuse path, the call
    a forward makes every step) but checked here, unless a custom getter runs (it gets
    the dtype, as TensorFlow's layers pass it, and may return another)."""
    scope = current().scope
    if regularizer is not None and scope._regularizer is not None:
        regularizer = _Summed(scope._regularizer, regularizer)
    default = scope._dtype if scope._dtype is not None else torch.get_default_dtype()
    implied = dtype == default and scope._custom_getter is None
    variable = get_variable(
        name,
        shape,
        dtype=None if implied else dtype,
        initializer=initializer,
        regularizer=regularizer,
        trainable=trainable,
        constraint=constraint,
    )
    if implied and variable.dtype != dtype:
        raise DtypeMismatchError(
            DTYPE_MISMATCH.format(name=scope._prefix + name, dtype=dtype, found=variable.dtype)
        )
    return variable


def layer_dtype(inputs: torch.Tensor, dtype: torch.dtype | None = None) -> torch.dtype | None:
    """The dtype of a layer's variables: ``dtype``, else the inputs' (as TensorFlow's
    layers take it); None (``get_variable``'s default) for inputs in the dtype of an
    enabled ``torch.autocast``, which keeps the variables in full precision."""
    if dtype is None:
        dtype = inputs.dtype
    return None if dtype == autocast_dtype(inputs.device.type) else dtype


# -- the output -----------------------------------------------------------------------------

# The activity losses of each store, by layer scope: the latest call's loss replaces the one
# before in the store's REGULARIZATION_LOSSES (a forward runs on every step; the collection
# holds the latest step's losses, not one per step).
_ACTIVITY: weakref.WeakKeyDictionary[Any, dict[str, torch.Tensor]] = weakref.WeakKeyDictionary()


def finish(
    layer: str,
    outputs: torch.Tensor,
    activation: Activation | None,
    activity_regularizer: Regularizer | None,
) -> torch.Tensor:
    """``activation(outputs)``, and its activity loss (``activity_regularizer(outputs)``
    over the batch size, as TensorFlow's) put into ``REGULARIZATION_LOSSES``."""
    if activation is not None:
        outputs = activation(outputs)
    if activity_regularizer is not None:
        loss = activity_regularizer(outputs)
        if loss is not None:
            if not isinstance(loss, torch.Tensor):
                loss = torch.as_tensor(loss, dtype=outputs.dtype, device=outputs.device)
            _set_activity_loss(loss / outputs.shape[0])
    return outputs


def _set_activity_loss(loss: torch.Tensor) -> None:
    """Puts ``loss`` into the current store's ``REGULARIZATION_LOSSES`` for the current
    scope, in the place of that scope's loss from an earlier call."""
    context = current()
    store, scope = context.store, context.scope._name
    key = GraphKeys.REGULARIZATION_LOSSES
    loss._torchscope_name = scope + "/ActivityRegularizer"  # type: ignore[attr-defined]
    with contextlib.nullcontext() if is_compiling() else store._lock:  # dynamo cannot trace locks
        latest = _ACTIVITY.setdefault(store, {})
        previous = latest.get(scope)
        items = store._collections.get(key, [])
        for i, item in enumerate(items):
            if item is previous:
                items[i] = latest[scope] = loss
                return
        store.add_to_collection(key, loss)
        latest[scope] = loss


# -- arguments ------------------------------------------------------------------------------


def check_inputs(
    layer: str, inputs: Any, ndim: int | None = None, min_ndim: int = 1, floating: bool = True
) -> None:
    """TypeError unless ``inputs`` is a tensor (a floating-point one, with ``floating``);
    ValueError unless it has ``ndim`` dimensions (at least ``min_ndim``)."""
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(_error(layer, "inputs", f"must be a torch.Tensor, got {describe(inputs)}"))
    if floating and not inputs.is_floating_point():
        raise TypeError(
            _error(layer, "inputs", f"must be a floating-point tensor, got dtype {inputs.dtype}")
        )
    if ndim is not None and inputs.dim() != ndim:
        raise ValueError(
            _error(layer, "inputs", f"must be {ndim}-D, got shape {list(inputs.shape)}")
        )
    if inputs.dim() < min_ndim:
        raise ValueError(
            _error(
                layer, "inputs", f"must be at least {min_ndim}-D, got shape {list(inputs.shape)}"
            )
        )


def check_bool(layer: str, argument: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(_error(layer, argument, f"must be a bool, got {describe(value)}"))
    return value


def check_positive_int(layer: str, argument: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int; TypeError for a non-integer, ValueError below ``minimum``."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(_error(layer, argument, f"must be an int, got {describe(value)}"))
    value = int(value)
    if value < minimum:
        allowed = "positive" if minimum == 1 else f"at least {minimum}"
        raise ValueError(_error(layer, argument, f"must be {allowed}, got {value}"))
    return value


def check_tuple(layer: str, argument: str, value: Any, n: int = 2) -> tuple[int, ...]:
    """An int or ``n`` ints (Keras's ``normalize_tuple``), each positive, as a tuple."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(
                _error(layer, argument, f"must be an int or {n} ints, got {list(value)}")
            )
        return tuple(check_positive_int(layer, argument, v) for v in value)
    return (check_positive_int(layer, argument, value),) * n


def check_padding(layer: str, padding: Any) -> str:
    """``"valid"`` or ``"same"``, any case, as ``"VALID"``/``"SAME"``."""
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(
            _error(layer, "padding", f"must be 'valid' or 'same' (any case), got {padding!r}")
        )
    return padding.upper()


def check_data_format(layer: str, data_format: Any) -> bool:
    """Whether ``data_format`` is channels-first: ``"channels_first"`` or
    ``"channels_last"`` (any case; ``None`` is channels-last)."""
    if data_format is None:
        return False
    if isinstance(data_format, str) and data_format.lower() in ("channels_first", "channels_last"):
        return data_format.lower() == "channels_first"
    raise ValueError(
        _error(
            layer,
            "data_format",
            f"must be 'channels_last' or 'channels_first', got {data_format!r}",
        )
    )


def check_training(layer: str, training: Any) -> bool | torch.Tensor:
    """``training`` as given: a bool, or a one-element bool tensor (decided without
    reading it back, so that a GPU tensor costs no synchronisation)."""
    if isinstance(training, bool):
        return training
    if isinstance(training, torch.Tensor) and training.dtype == torch.bool:
        if training.numel() != 1:
            raise ValueError(
                _error(
                    layer,
                    "training",
                    f"must be a bool or a one-element bool tensor, got shape "
                    f"{list(training.shape)}",
                )
            )
        return training.reshape(())
    raise TypeError(
        _error(layer, "training", f"must be a bool or a bool tensor, got {describe(training)}")
    )


def check_callables(layer: str, **arguments: Any) -> None:
    """TypeError naming the first argument that is neither None nor callable."""
    for argument, value in arguments.items():
        if value is not None and not callable(value):
            hint = " (pass the function, e.g. torch.relu)" if argument == "activation" else ""
            raise TypeError(
                _error(layer, argument, f"must be callable or None, got {describe(value)}{hint}")
            )
