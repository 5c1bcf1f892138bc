"""``conv2d`` and ``conv2d_transpose``, as ``tf.compat.v1.layers``' convolution layers.

The arithmetic is :mod:`torchscope.nn`'s (TensorFlow's SAME split, HWIO filters, NHWC or
NCHW); a ``conv2d`` with a bias and a ReLU activation runs the fused
``ts.nn.conv2d_bias_relu``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .. import nn
from .._initializers import zeros_initializer
from .._types import Constraint, InitializerLike, Regularizer, Reuse
from ._base import (
    Activation,
    check_bool,
    check_callables,
    check_data_format,
    check_inputs,
    check_padding,
    check_positive_int,
    check_tuple,
    finish,
    layer_dtype,
    layer_scope,
    weight,
)

__all__ = ["conv2d", "conv2d_transpose"]

_ZEROS = zeros_initializer()
_RELUS = (torch.relu, F.relu, nn.relu)


def conv2d(
    inputs: torch.Tensor,
    filters: int,
    kernel_size: int | Sequence[int],
    strides: int | Sequence[int] = (1, 1),
    padding: str = "valid",
    data_format: str = "channels_last",
    dilation_rate: int | Sequence[int] = (1, 1),
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
    """A 2-D convolution layer, as ``tf.compat.v1.layers.conv2d``.

    Makes (or reuses) ``<scope>/kernel`` ``[kernel_h, kernel_w, in_channels, filters]``
    and ``<scope>/bias`` ``[filters]``; the scope is ``name``, else ``conv2d``,
    ``conv2d_1``, ...

    Args:
        inputs: 4-D, ``[batch, height, width, channels]`` (channels_last) or
            ``[batch, channels, height, width]`` (channels_first), floating-point.
        filters: the number of output channels.
        kernel_size, strides, dilation_rate: an int or two ints (height, width). Strides
            above 1 cannot be combined with a dilation above 1.
        padding: ``"valid"`` or ``"same"`` (any case; SAME splits as TensorFlow does).
        data_format: ``"channels_last"`` or ``"channels_first"``.
        activation: as for :func:`dense`, and so are ``use_bias``, the initializers,
            regularizers and constraints, ``trainable``, ``name`` and ``reuse``.

    Example:
        >>> images = torch.ones(2, 8, 8, 3)  # NHWC
        >>> y = ts.layers.conv2d(images, 16, 3, strides=2, padding="same", activation=torch.relu)
        >>> y.shape, [tuple(v.shape) for v in ts.global_variables()]
        (torch.Size([2, 4, 4, 16]), [(3, 3, 3, 16), (16,)])
    """
    layer = "conv2d"
    check_inputs(layer, inputs, ndim=4)
    filters = check_positive_int(layer, "filters", filters)
    kernel_size = check_tuple(layer, "kernel_size", kernel_size)
    strides = check_tuple(layer, "strides", strides)
    dilation_rate = check_tuple(layer, "dilation_rate", dilation_rate)
    if max(strides) > 1 and max(dilation_rate) > 1:
        raise ValueError(
            f"torchscope.layers.{layer}: arguments 'strides' {list(strides)} and "
            f"'dilation_rate' {list(dilation_rate)} cannot both be above 1"
        )
    padding = check_padding(layer, padding)
    channels_first = check_data_format(layer, data_format)
    check_bool(layer, "use_bias", use_bias)
    check_callables(layer, activation=activation, activity_regularizer=activity_regularizer)
    fmt = "NCHW" if channels_first else "NHWC"
    channels = inputs.shape[1 if channels_first else 3]
    with layer_scope(layer, name, reuse):
        dtype = layer_dtype(inputs)
        kernel = weight(
            "kernel",
            [*kernel_size, channels, filters],
            dtype,
            kernel_initializer,
            kernel_regularizer,
            trainable,
            kernel_constraint,
        )
        bias = None
        if use_bias:
            bias = weight(
                "bias",
                [filters],
                dtype,
                bias_initializer,
                bias_regularizer,
                trainable,
                bias_constraint,
            )
        if bias is not None and activation in _RELUS:
            outputs = nn.conv2d_bias_relu(
                inputs, kernel, bias, list(strides), padding, fmt, list(dilation_rate)
            )
            activation = None
        else:
            outputs = nn.conv2d(inputs, kernel, list(strides), padding, fmt, list(dilation_rate))
            if bias is not None:
                outputs = nn.bias_add(outputs, bias, fmt)
        return finish(layer, outputs, activation, activity_regularizer)


def conv2d_transpose(
    inputs: torch.Tensor,
    filters: int,
    kernel_size: int | Sequence[int],
    strides: int | Sequence[int] = (1, 1),
    padding: str = "valid",
    data_format: str = "channels_last",
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
    """A transposed 2-D convolution layer, as ``tf.compat.v1.layers.conv2d_transpose``.

    Makes (or reuses) ``<scope>/kernel`` ``[kernel_h, kernel_w, filters, in_channels]``
    (TensorFlow's layout: output channels first) and ``<scope>/bias`` ``[filters]``; the
    scope is ``name``, else ``conv2d_transpose``, ``conv2d_transpose_1``, ... The output's
    height (and width) is TensorFlow's: ``height * stride`` with ``"same"``,
    ``height * stride + max(kernel - stride, 0)`` with ``"valid"``; the numbers are
    ``ts.nn.conv2d_transpose``'s.

    Args:
        inputs, filters, kernel_size, strides, padding, data_format: as for
            :func:`conv2d` (``filters``: the number of output channels).
        activation: as for :func:`dense`, and so are ``use_bias``, the initializers,
            regularizers and constraints, ``trainable``, ``name`` and ``reuse``.

    Example:
        >>> x = torch.ones(2, 4, 4, 8)  # NHWC
        >>> ts.layers.conv2d_transpose(x, 3, 5, strides=2, padding="same").shape
        torch.Size([2, 8, 8, 3])
        >>> [tuple(v.shape) for v in ts.global_variables()]
        [(5, 5, 3, 8), (3,)]
    """
    layer = "conv2d_transpose"
    check_inputs(layer, inputs, ndim=4)
    filters = check_positive_int(layer, "filters", filters)
    kernel_size = check_tuple(layer, "kernel_size", kernel_size)
    strides = check_tuple(layer, "strides", strides)
    padding = check_padding(layer, padding)
    channels_first = check_data_format(layer, data_format)
    check_bool(layer, "use_bias", use_bias)
    check_callables(layer, activation=activation, activity_regularizer=activity_regularizer)
    fmt = "NCHW" if channels_first else "NHWC"
    batch = inputs.shape[0]
    channels, height, width = (
        inputs.shape[1:] if channels_first else (inputs.shape[3], *inputs.shape[1:3])
    )
    size = [
        _transposed_size(n, k, s, padding)
        for n, k, s in zip((height, width), kernel_size, strides, strict=True)
    ]
    output_shape = [batch, filters, *size] if channels_first else [batch, *size, filters]
    with layer_scope(layer, name, reuse):
        dtype = layer_dtype(inputs)
        kernel = weight(
            "kernel",
            [*kernel_size, filters, channels],
            dtype,
            kernel_initializer,
            kernel_regularizer,
            trainable,
            kernel_constraint,
        )
        outputs = nn.conv2d_transpose(inputs, kernel, output_shape, list(strides), padding, fmt)
        if use_bias:
            bias = weight(
                "bias",
                [filters],
                dtype,
                bias_initializer,
                bias_regularizer,
                trainable,
                bias_constraint,
            )
            outputs = nn.bias_add(outputs, bias, fmt)
        return finish(layer, outputs, activation, activity_regularizer)


def _transposed_size(size: int, kernel: int, stride: int, padding: str) -> int:
    """Keras's ``deconv_output_length`` without output padding or dilation."""
    if padding == "SAME":
        return size * stride
    return size * stride + max(kernel - stride, 0)
