"""TensorFlow-signature neural-network helpers, for ported ``tf.nn`` code.

``conv2d``, ``bias_add``, ``relu`` and ``conv2d_bias_relu`` take TensorFlow's
arguments and give TensorFlow's numbers: filters in HWIO layout
(``[height, width, in_channels, out_channels]``), data in ``"NHWC"`` (the
default) or ``"NCHW"``, ``strides``/``dilations`` as an int or a list of 1, 2
or 4 ints, and ``padding`` ``"SAME"`` (with TensorFlow's split: for an odd
total the extra row/column goes at the bottom/right), ``"VALID"`` or an
explicit list of ``[before, after]`` pairs per dimension. Grouped
convolutions follow TensorFlow too: ``in_channels`` a multiple of the
filter's. ``conv2d_bias_relu`` runs the fused op of :mod:`torchscope.ops`.

>>> images = torch.ones(1, 4, 4, 3)                      # NHWC
>>> kernel = torch.ones(3, 3, 3, 8)                      # HWIO
>>> ts.nn.conv2d_bias_relu(images, kernel, torch.zeros(8), [1, 2, 2, 1], "SAME").shape
torch.Size([1, 2, 2, 8])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from . import ops

__all__ = ["bias_add", "conv2d", "conv2d_bias_relu", "relu"]

_FORMATS = ("NHWC", "NCHW")


def conv2d(
    input: torch.Tensor,
    filter: torch.Tensor,
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str = "NHWC",
    dilations: int | Sequence[int] | None = None,
) -> torch.Tensor:
    """A 2-D convolution with the arguments and numbers of ``tf.nn.conv2d``.

    Args:
        input: 4-D, ``[batch, height, width, channels]`` for ``"NHWC"`` or
            ``[batch, channels, height, width]`` for ``"NCHW"``.
        filter: ``[filter_height, filter_width, in_channels, out_channels]``;
            ``input``'s channels must be a multiple of ``in_channels`` (the
            multiple is the number of groups).
        strides: an int, or a list of 1, 2 or 4 ints (4: in ``data_format``
            order, 1 for the batch and channel dimensions).
        padding: ``"SAME"``, ``"VALID"``, or explicit ``[before, after]`` pairs
            for the 4 dimensions in ``data_format`` order (``[0, 0]`` for batch
            and channels).
        data_format: ``"NHWC"`` or ``"NCHW"``.
        dilations: like ``strides``; ``None`` means 1.

    Returns:
        The output, in ``data_format``.

    Raises:
        ValueError: naming the argument that is malformed or does not fit.

    Example:
        >>> import torch
        >>> import torchscope as ts
        >>> x = torch.arange(1.0, 6.0).reshape(1, 1, 5, 1)  # NHWC: one row [1, 2, 3, 4, 5]
        >>> w = torch.ones(1, 2, 1, 1)  # HWIO: a 1x2 box filter
        >>> # SAME, stride 2: 3 outputs, the one padding zero goes on the right
        >>> ts.nn.conv2d(x, w, strides=2, padding="SAME").flatten()
        tensor([3., 7., 5.])
    """
    x, w, stride, pad, dilation, groups, fmt = _prepare(
        "conv2d", input, filter, strides, padding, data_format, dilations
    )
    return _from_nchw(F.conv2d(x, w, None, stride, pad, dilation, groups), fmt)


def bias_add(value: torch.Tensor, bias: torch.Tensor, data_format: str = "NHWC") -> torch.Tensor:
    """Adds ``bias`` along the channel dimension, as ``tf.nn.bias_add``.

    Args:
        value: at least 2-D, channels last (``"NHWC"``, also spelled
            ``"N...C"``) or second (``"NCHW"``, also ``"NC..."``).
        bias: 1-D, one value per channel, of ``value``'s dtype.
        data_format: where the channels are.

    Returns:
        ``value + bias`` broadcast over the channel dimension.

    Raises:
        ValueError: naming the argument that does not fit.

    Example:
        >>> import torch
        >>> import torchscope as ts
        >>> ts.nn.bias_add(torch.zeros(1, 2, 1, 1), torch.tensor([1.0, 2.0]), "NCHW").flatten()
        tensor([1., 2.])
    """
    fn = "bias_add"
    channels_last = {"NHWC": True, "N...C": True, "NCHW": False, "NC...": False}.get(data_format)
    if channels_last is None:
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'data_format' must be 'NHWC' (or 'N...C') or 'NCHW' "
            f"(or 'NC...'), got {data_format!r}"
        )
    if value.dim() < 2:
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'value' must be at least 2-D, got shape "
            f"{list(value.shape)}"
        )
    channel_dim = value.dim() - 1 if channels_last else 1
    channels = value.shape[channel_dim]
    if bias.dim() != 1 or bias.shape[0] != channels:
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'bias' must be 1-D with {channels} elements (the size "
            f"of dimension {channel_dim} of 'value', shape {list(value.shape)}, for "
            f"data_format={data_format!r}), got shape {list(bias.shape)}"
        )
    if bias.dtype != value.dtype:
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'bias' must have the dtype of 'value' ({value.dtype}), "
            f"got {bias.dtype}"
        )
    if channels_last:
        return value + bias
    return value + bias.reshape([channels] + [1] * (value.dim() - 2))


def relu(features: torch.Tensor) -> torch.Tensor:
    """``max(features, 0)``, as ``tf.nn.relu``.

    Example:
        >>> import torch
        >>> import torchscope as ts
        >>> ts.nn.relu(torch.tensor([-1.0, 0.0, 2.0]))
        tensor([0., 0., 2.])
    """
    return F.relu(features)


def conv2d_bias_relu(
    input: torch.Tensor,
    filter: torch.Tensor,
    bias: torch.Tensor | None,
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str = "NHWC",
    dilations: int | Sequence[int] | None = None,
) -> torch.Tensor:
    """``relu(bias_add(conv2d(input, filter, ...), bias))`` as one fused op.

    The arguments are :func:`conv2d`'s plus ``bias`` (``[out_channels]`` or
    ``None``); the work runs in :func:`torchscope.ops.conv2d_bias_relu`.

    Example:
        >>> import torch
        >>> import torchscope as ts
        >>> x = torch.tensor([[[[1.0], [-3.0]], [[2.0], [0.5]]]])  # NHWC, 2x2, 1 channel
        >>> w = torch.ones(1, 1, 1, 2)  # 1x1 filter, 1 -> 2 channels
        >>> ts.nn.conv2d_bias_relu(x, w, torch.tensor([0.0, 1.0]), 1, "VALID")[0, :, :, 1]
        tensor([[2.0000, 0.0000],
                [3.0000, 1.5000]])
    """
    x, w, stride, pad, dilation, groups, fmt = _prepare(
        "conv2d_bias_relu", input, filter, strides, padding, data_format, dilations
    )
    return _from_nchw(ops.conv2d_bias_relu(x, w, bias, stride, pad, dilation, groups), fmt)


# ---------------------------------------------------------------- arguments


def _prepare(
    fn: str,
    input: torch.Tensor,
    filter: torch.Tensor,
    strides: Any,
    padding: Any,
    data_format: str,
    dilations: Any,
) -> tuple[torch.Tensor, torch.Tensor, list[int], list[int], list[int], int, str]:
    """NCHW input (padded for asymmetric padding), OIHW weight, symmetric conv args."""
    if data_format not in _FORMATS:
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'data_format' must be 'NHWC' or 'NCHW', "
            f"got {data_format!r}"
        )
    for name, t, layout in (
        ("input", input, f"[batch, ...] in {data_format}"),
        ("filter", filter, "[height, width, in_channels, out_channels]"),
    ):
        if t.dim() != 4:
            raise ValueError(
                f"torchscope.nn.{fn}: argument '{name}' must be 4-D ({layout}), got shape "
                f"{list(t.shape)}"
            )
    stride = _spatial(fn, "strides", strides, data_format)
    dilation = _spatial(fn, "dilations", 1 if dilations is None else dilations, data_format)
    x = input.permute(0, 3, 1, 2) if data_format == "NHWC" else input
    channels, filter_in = x.shape[1], filter.shape[2]
    if filter_in == 0 or channels % filter_in != 0:
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'filter' has {filter_in} input channels (dim 2), "
            f"which must divide the {channels} channels of 'input' (shape {list(input.shape)}, "
            f"data_format={data_format!r})"
        )
    w = filter.permute(3, 2, 0, 1)
    kernel = [w.shape[2], w.shape[3]]
    before, after = _padding(fn, padding, list(x.shape[2:]), kernel, stride, dilation, data_format)
    pad = [min(b, a) for b, a in zip(before, after, strict=True)]
    extra = [before[1] - pad[1], after[1] - pad[1], before[0] - pad[0], after[0] - pad[0]]
    if any(extra):
        x = F.pad(x, extra)
    return x, w, stride, pad, dilation, channels // filter_in, data_format


def _from_nchw(y: torch.Tensor, data_format: str) -> torch.Tensor:
    return y.permute(0, 2, 3, 1) if data_format == "NHWC" else y


def _spatial(fn: str, name: str, value: Any, data_format: str) -> list[int]:
    """[height, width] from an int or a list of 1, 2 or 4 ints."""
    values = (
        [value] if isinstance(value, int) else list(value) if isinstance(value, Sequence) else None
    )
    ok = values is not None and len(values) in (1, 2, 4)
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)
    if not ok:
        raise ValueError(
            f"torchscope.nn.{fn}: argument '{name}' must be a positive int or a list of 1, 2 or 4 "
            f"positive ints, got {value!r}"
        )
    if len(values) == 1:
        return [values[0], values[0]]
    if len(values) == 2:
        return values
    h, w = (1, 2) if data_format == "NHWC" else (2, 3)
    others = [values[i] for i in range(4) if i not in (h, w)]
    if others != [1, 1]:
        raise ValueError(
            f"torchscope.nn.{fn}: argument '{name}' must be 1 in the batch and channel "
            f"dimensions for data_format={data_format!r}, got {value!r}"
        )
    return [values[h], values[w]]


def _padding(
    fn: str,
    padding: Any,
    size: list[int],
    kernel: list[int],
    stride: list[int],
    dilation: list[int],
    data_format: str,
) -> tuple[list[int], list[int]]:
    """([top, left], [bottom, right]) for TensorFlow's padding argument."""
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return [0, 0], [0, 0]
        if mode == "SAME":
            before, after = [], []
            for n, k, s, d in zip(size, kernel, stride, dilation, strict=True):
                out = (n + s - 1) // s
                total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
                before.append(total // 2)
                after.append(total - total // 2)
            return before, after
    elif _is_pairs(padding):
        h, w = (1, 2) if data_format == "NHWC" else (2, 3)
        others = [list(padding[i]) for i in range(4) if i not in (h, w)]
        if others == [[0, 0], [0, 0]]:
            return [padding[h][0], padding[w][0]], [padding[h][1], padding[w][1]]
    raise ValueError(
        f"torchscope.nn.{fn}: argument 'padding' must be 'SAME', 'VALID' or 4 [before, after] "
        f"pairs of non-negative ints in {data_format} order with [0, 0] for the batch and channel "
        f"dimensions, got {padding!r}"
    )


def _is_pairs(padding: Any) -> bool:
    return (
        isinstance(padding, Sequence)
        and len(padding) == 4
        and all(
            isinstance(p, Sequence)
            and len(p) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in p)
            for p in padding
        )
    )
