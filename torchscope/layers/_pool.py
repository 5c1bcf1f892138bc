"""``max_pooling2d`` and ``average_pooling2d``, as ``tf.compat.v1.layers``' pooling layers.

The arithmetic is :mod:`torchscope.nn`'s ``max_pool`` and ``avg_pool`` (TensorFlow's
SAME split; the average over the window's part inside the input).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .. import nn
from ._base import check_data_format, check_inputs, check_padding, check_tuple, opened_scope

__all__ = ["average_pooling2d", "max_pooling2d"]


def max_pooling2d(
    inputs: torch.Tensor,
    pool_size: int | Sequence[int],
    strides: int | Sequence[int] | None,
    padding: str = "valid",
    data_format: str = "channels_last",
    name: str | None = None,
) -> torch.Tensor:
    """The maximum over each window, as ``tf.compat.v1.layers.max_pooling2d``.

    Args:
        inputs: 4-D, ``[batch, height, width, channels]`` (channels_last) or
            ``[batch, channels, height, width]`` (channels_first), floating-point.
        pool_size: the window, an int or two ints (height, width).
        strides: an int or two ints; None: ``pool_size``.
        padding: ``"valid"`` or ``"same"`` (any case; SAME splits as TensorFlow does, and
            padding never wins the maximum).
        data_format: ``"channels_last"`` or ``"channels_first"``.
        name: the layer's scope name (made unique; the layer has no variables).

    Example:
        >>> x = torch.arange(16.0).reshape(1, 4, 4, 1)
        >>> ts.layers.max_pooling2d(x, 2, 2)[0, :, :, 0]
        tensor([[ 5.,  7.],
                [13., 15.]])
    """
    return _pool(
        "max_pooling2d", nn.max_pool, inputs, pool_size, strides, padding, data_format, name
    )


def average_pooling2d(
    inputs: torch.Tensor,
    pool_size: int | Sequence[int],
    strides: int | Sequence[int] | None,
    padding: str = "valid",
    data_format: str = "channels_last",
    name: str | None = None,
) -> torch.Tensor:
    """The mean over each window, as ``tf.compat.v1.layers.average_pooling2d``: with
    ``"same"`` padding, the mean of the window's part inside the input (the padding is
    not counted). The arguments are :func:`max_pooling2d`'s.

    Example:
        >>> x = torch.arange(9.0).reshape(1, 3, 3, 1)
        >>> ts.layers.average_pooling2d(x, 2, 2, padding="same")[0, :, :, 0]
        tensor([[2.0000, 3.5000],
                [6.5000, 8.0000]])
    """
    return _pool(
        "average_pooling2d", nn.avg_pool, inputs, pool_size, strides, padding, data_format, name
    )


def _pool(
    layer: str,
    pool: Callable[..., torch.Tensor],
    inputs: torch.Tensor,
    pool_size: int | Sequence[int],
    strides: int | Sequence[int] | None,
    padding: str,
    data_format: str,
    name: str | None,
) -> torch.Tensor:
    check_inputs(layer, inputs, ndim=4)
    window = check_tuple(layer, "pool_size", pool_size)
    stride = window if strides is None else check_tuple(layer, "strides", strides)
    padding = check_padding(layer, padding)
    fmt = "NCHW" if check_data_format(layer, data_format) else "NHWC"
    with opened_scope(layer, name):
        return pool(inputs, list(window), list(stride), padding, fmt)
