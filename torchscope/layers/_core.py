"""``dense``, ``dropout`` and ``flatten``: ``tf.compat.v1.layers``' core layers."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import torch

from .._checks import describe
from .._context import current
from .._initializers import zeros_initializer
from .._types import Constraint, InitializerLike, Regularizer, Reuse
from ._base import (
    Activation,
    check_bool,
    check_callables,
    check_data_format,
    check_inputs,
    check_positive_int,
    check_training,
    finish,
    layer_dtype,
    layer_scope,
    opened_scope,
    weight,
)

__all__ = ["dense", "dropout", "flatten"]

_ZEROS = zeros_initializer()


def dense(
    inputs: torch.Tensor,
    units: int,
    activation: Activation | None = None,
    use_bias: bool = True,
    kernel_initializer: InitializerLike | None = None,
    bias_initializer: InitializerLike | None = _ZEROS,
    kernel_regularizer: Regularizer | None = None,
    bias_regularizer: Regularizer | None = None,
    activity_regularizer: Regularizer | None = None,
    kernel_constraint: Constraint | None = None,
    bias_constraint: Constraint | None = None,
    trainable: bool = True,
    name: str | None = None,
    reuse: Reuse = None,
) -> torch.Tensor:
    """A densely-connected layer, as ``tf.compat.v1.layers.dense``:
    ``activation(inputs @ kernel + bias)``.

    Makes (or reuses) ``<scope>/kernel`` ``[in, units]`` and ``<scope>/bias`` ``[units]``,
    the scope named as TensorFlow names it: ``name``, else ``dense``, ``dense_1``, ... (see
    :mod:`torchscope.layers`). Inputs of more than 2 dimensions are multiplied along
    their last one.

    Args:
        inputs: a floating-point tensor of at least 2 dimensions; the variables take its
            dtype.
        units: the size of the output's last dimension.
        activation: ``fn(outputs) -> outputs`` (``torch.relu``...), or None.
        use_bias: whether to add a bias.
        kernel_initializer: None: the scope's initializer, else Glorot-uniform.
        bias_initializer: default zeros (the scope's initializer does not apply).
        kernel_regularizer, bias_regularizer: ``fn(variable) -> loss``, added to the scope's
            regularizer (``ts.regularization_losses()``).
        activity_regularizer: ``fn(outputs) -> loss``; the loss over the batch size goes
            into the ``REGULARIZATION_LOSSES`` collection, in the place of this layer's
            loss from an earlier call.
        kernel_constraint, bias_constraint: ``fn(variable) -> projected``, applied by
            ``ts.apply_constraints()`` (or an optimizer hooked by
            ``ts.register_constraint_hook``), as TensorFlow's optimizers apply them.
        trainable: False makes the variables non-trainable.
        name: the layer's scope name; a name is not made unique.
        reuse: True or ``ts.AUTO_REUSE`` to share the variables of an earlier layer of
            this name.

    Returns:
        ``inputs``' shape with the last dimension ``units``.

    Example:
        >>> x = torch.ones(2, 4)
        >>> y = ts.layers.dense(x, 3)
        >>> y = ts.layers.dense(y, 2, activation=torch.relu)
        >>> [ts.name_of(v) for v in ts.global_variables()]
        ['dense/kernel', 'dense/bias', 'dense_1/kernel', 'dense_1/bias']
    """
    layer = "dense"
    check_inputs(layer, inputs, min_ndim=2)
    units = check_positive_int(layer, "units", units, minimum=0)
    check_bool(layer, "use_bias", use_bias)
    check_callables(layer, activation=activation, activity_regularizer=activity_regularizer)
    with layer_scope(layer, name, reuse):
        dtype = layer_dtype(inputs)
        kernel = weight(
            "kernel",
            [inputs.shape[-1], units],
            dtype,
            kernel_initializer,
            kernel_regularizer,
            trainable,
            kernel_constraint,
        )
        outputs = torch.matmul(inputs, kernel)
        if use_bias:
            bias = weight(
                "bias",
                [units],
                dtype,
                bias_initializer,
                bias_regularizer,
                trainable,
                bias_constraint,
            )
            outputs = outputs + bias
        return finish(layer, outputs, activation, activity_regularizer)


# The generators of dropout layers given a seed, per store and layer (see dropout).
_GENERATORS: weakref.WeakKeyDictionary[Any, dict[tuple[str, int, torch.device], torch.Generator]]
_GENERATORS = weakref.WeakKeyDictionary()


def dropout(
    inputs: torch.Tensor,
    rate: float = 0.5,
    noise_shape: Sequence[int | None] | None = None,
    seed: int | None = None,
    training: bool | torch.Tensor = False,
    name: str | None = None,
) -> torch.Tensor:
    """Dropout, as ``tf.compat.v1.layers.dropout``: in training, each element (or each
    slice, with ``noise_shape``) is zeroed with probability ``rate`` and the rest are
    scaled by ``1 / (1 - rate)``; otherwise ``inputs`` is returned.

    Args:
        inputs: a floating-point tensor.
        rate: the fraction dropped, in ``[0, 1]`` (1 only outside training, as in
            TensorFlow); 0 returns ``inputs``.
        noise_shape: the shape of the keep/drop mask, broadcast over ``inputs`` (each
            entry 1 or ``inputs``' size; ``None`` entries take ``inputs``' size).
        seed: None draws from torch's global generator (``torch.manual_seed`` makes a run
            repeatable). An int gives this layer a generator of its own, seeded with it at
            the layer's first call and drawn from on each later call, as a TensorFlow op
            seed gives a repeatable sequence of masks (not TensorFlow's numbers).
            ``torch.compile`` traces ``seed=None`` only, and only ``seed=None`` gives the
            same mask again where ``ts.checkpoint`` recomputes the forward (torch restores
            its global generator's state for that, not this one's).
        training: a bool, or a one-element bool tensor (then both results are computed
            and the tensor picks, without reading it back).
        name: the layer's scope name (made unique; the layer has no variables).

    Example:
        >>> x = torch.ones(2, 4)
        >>> ts.layers.dropout(x, 0.5) is x  # not training
        True
        >>> sorted(set(ts.layers.dropout(x, 0.5, training=True).flatten().tolist()) - {0.0})
        [2.0]
    """
    layer = "dropout"
    check_inputs(layer, inputs)
    rate = _check_rate(rate)
    training = check_training(layer, training)
    shape = _noise_shape(inputs, noise_shape)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(
            f"torchscope.layers.dropout: argument 'seed' must be an int or None, got "
            f"{describe(seed)}"
        )
    with opened_scope(layer, name) as scope:
        if rate == 0 or training is False:
            return inputs
        if rate == 1:
            raise ValueError(
                "torchscope.layers.dropout: argument 'rate' must be below 1 in training (all "
                "of the inputs dropped, the rest scaled by 1 / 0), got 1"
            )
        generator = None if seed is None else _generator(scope.name, seed, inputs.device)
        keep = torch.rand(shape, dtype=inputs.dtype, device=inputs.device, generator=generator)
        dropped = inputs * (1.0 / (1.0 - rate)) * (keep >= rate).to(inputs.dtype)
        if training is True:
            return dropped
        return torch.where(training, dropped, inputs)


def _check_rate(rate: Any) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise TypeError(
            "torchscope.layers.dropout: argument 'rate' must be a number in [0, 1], got "
            f"{describe(rate)}"
        )
    if not 0 <= rate <= 1:
        raise ValueError(
            f"torchscope.layers.dropout: argument 'rate' must be in [0, 1], got {rate}"
        )
    return float(rate)


def _noise_shape(inputs: torch.Tensor, noise_shape: Any) -> list[int]:
    """The mask's shape: ``noise_shape`` with ``None`` entries filled from ``inputs``."""
    if noise_shape is None:
        return list(inputs.shape)
    if isinstance(noise_shape, torch.Size):
        noise_shape = list(noise_shape)
    if not isinstance(noise_shape, (list, tuple)) or len(noise_shape) != inputs.dim():
        raise ValueError(
            "torchscope.layers.dropout: argument 'noise_shape' must be a list of "
            f"{inputs.dim()} sizes (one per dimension of 'inputs', shape "
            f"{list(inputs.shape)}; None for the input's size), got {noise_shape!r}"
        )
    shape = [size if d is None else d for d, size in zip(noise_shape, inputs.shape, strict=True)]
    for d, size in zip(shape, inputs.shape, strict=True):
        if isinstance(d, bool) or not isinstance(d, int) or d not in (1, size):
            raise ValueError(
                "torchscope.layers.dropout: argument 'noise_shape' must broadcast to "
                f"'inputs' (each size 1 or the input's, shape {list(inputs.shape)}), got "
                f"{list(noise_shape)}"
            )
    return shape


def _generator(scope: str, seed: int, device: torch.device) -> torch.Generator:
    """The generator of the dropout layer ``scope`` with ``seed``, in the current store."""
    table = _GENERATORS.setdefault(current().store, {})
    key = (scope, seed, device)
    generator = table.get(key)
    if generator is None:
        generator = table[key] = torch.Generator(device=device)
        generator.manual_seed(seed)
    return generator


def flatten(
    inputs: torch.Tensor, name: str | None = None, data_format: str = "channels_last"
) -> torch.Tensor:
    """Flattens all but the first dimension, as ``tf.compat.v1.layers.flatten``.

    With ``data_format="channels_first"`` the channels (dimension 1) are moved last
    first, so that the order of the flattened features is channels-last's, as
    TensorFlow's. A 1-D input becomes ``[n, 1]``.

    Example:
        >>> ts.layers.flatten(torch.ones(2, 3, 4, 5)).shape
        torch.Size([2, 60])
    """
    layer = "flatten"
    check_inputs(layer, inputs, floating=False)
    channels_first = check_data_format(layer, data_format)
    with opened_scope(layer, name):
        if inputs.dim() == 1:
            return inputs.unsqueeze(1)
        if channels_first and inputs.dim() > 2:
            inputs = inputs.movedim(1, -1)
        features = 1
        for size in inputs.shape[1:]:
            features *= size
        return inputs.reshape(inputs.shape[0], features)
