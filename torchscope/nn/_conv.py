"""TensorFlow's convolutions: ``conv2d``, ``conv2d_bias_relu`` (fused) and
``depthwise_conv2d``, all through one argument reader, ``_prepare``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from .. import ops
from ._args import (
    alias,
    check_dtypes,
    check_format,
    check_rank,
    check_tensors,
    check_window,
    from_nchw,
    is_same,
    pad,
    padding_amounts,
    same_size,
    spatial,
    split_padding,
    to_nchw,
)


def conv2d(
    input: torch.Tensor,
    filter: torch.Tensor,
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str | None = "NHWC",
    dilations: int | Sequence[int] | None = None,
    name: str | None = None,
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
        data_format: ``"NHWC"`` (or ``None``) or ``"NCHW"``.
        dilations: like ``strides``; ``None`` means 1.
        name: ignored (PyTorch has no graph to name operations in).

    Returns:
        The output, in ``data_format``. With ``"SAME"`` and an input of height or
        width 0, an empty output of TensorFlow's shape.

    Raises:
        ValueError: naming the argument that is malformed or does not fit
            (shapes as given: ``input`` in ``data_format``, ``filter`` in HWIO).

    Example:
        >>> import torch
        >>> import torchscope as ts
        >>> x = torch.arange(1.0, 6.0).reshape(1, 1, 5, 1)  # NHWC: one row [1, 2, 3, 4, 5]
        >>> w = torch.ones(1, 2, 1, 1)  # HWIO: a 1x2 box filter
        >>> # SAME, stride 2: 3 outputs, the one padding zero goes on the right
        >>> ts.nn.conv2d(x, w, strides=2, padding="SAME").flatten()
        tensor([3., 7., 5.])
    """
    c = _prepare("conv2d", input, filter, None, strides, padding, data_format, dilations)
    if c.empty is not None:
        return c.empty
    return from_nchw(F.conv2d(c.x, c.w, None, c.stride, c.padding, c.dilation, c.groups), c.fmt)


def conv2d_bias_relu(
    input: torch.Tensor,
    filter: torch.Tensor,
    bias: torch.Tensor | None,
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str | None = "NHWC",
    dilations: int | Sequence[int] | None = None,
    name: str | None = None,
) -> torch.Tensor:
    """``relu(bias_add(conv2d(input, filter, ...), bias))`` as one fused op.

    The arguments are :func:`conv2d`'s plus ``bias`` (``[out_channels]`` of
    ``input``'s dtype, or ``None``); the work runs in
    :func:`torchscope.ops.conv2d_bias_relu`.

    Example:
        >>> import torch
        >>> import torchscope as ts
        >>> x = torch.tensor([[[[1.0], [-3.0]], [[2.0], [0.5]]]])  # NHWC, 2x2, 1 channel
        >>> w = torch.ones(1, 1, 1, 2)  # 1x1 filter, 1 -> 2 channels
        >>> ts.nn.conv2d_bias_relu(x, w, torch.tensor([0.0, 1.0]), 1, "VALID")[0, :, :, 1]
        tensor([[2.0000, 0.0000],
                [3.0000, 1.5000]])
    """
    c = _prepare("conv2d_bias_relu", input, filter, bias, strides, padding, data_format, dilations)
    if c.empty is not None:
        return c.empty
    out = ops.conv2d_bias_relu(c.x, c.w, bias, c.stride, c.padding, c.dilation, c.groups)
    return from_nchw(out, c.fmt)


def depthwise_conv2d(
    input: torch.Tensor,
    filter: torch.Tensor,
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    rate: int | Sequence[int] | None = None,
    name: str | None = None,
    data_format: str | None = None,
    dilations: int | Sequence[int] | None = None,
) -> torch.Tensor:
    """A depthwise 2-D convolution, as ``tf.compat.v1.nn.depthwise_conv2d``.

    Each input channel ``k`` is convolved with its own ``channel_multiplier``
    filters; output channel ``k * channel_multiplier + m`` is input channel ``k``
    with filter ``filter[:, :, k, m]`` (TensorFlow's order).

    Args:
        input: 4-D, ``[batch, height, width, in_channels]`` for ``"NHWC"`` or
            ``[batch, in_channels, height, width]`` for ``"NCHW"``.
        filter: ``[filter_height, filter_width, in_channels,
            channel_multiplier]``, of ``input``'s dtype.
        strides: an int, or a list of 1, 2 or 4 ints (4: in ``data_format``
            order, 1 for the batch and channel dimensions).
        padding: ``"SAME"``, ``"VALID"``, or explicit ``[before, after]`` pairs
            for the 4 dimensions in ``data_format`` order.
        rate: the dilation, an int or a list of 1, 2 or 4 ints; above 1 only
            with strides of 1. TensorFlow 2 spells it ``dilations``; either
            keyword works, not both.
        name: ignored (PyTorch has no graph to name operations in).
        data_format: ``"NHWC"`` (or ``None``) or ``"NCHW"``.
        dilations: ``rate``'s TensorFlow 2 spelling.

    Returns:
        ``[batch, out_height, out_width, in_channels * channel_multiplier]`` (or
        NCHW).

    Raises:
        TypeError: ``input`` or ``filter`` is not a tensor.
        ValueError: naming the argument that is malformed or does not fit.

    Example:
        >>> import torch
        >>> import torchscope as ts
        >>> x = torch.ones(1, 3, 3, 2) * torch.tensor([1.0, 2.0])  # NHWC: channels 1 and 2
        >>> w = torch.ones(3, 3, 2, 2) * torch.tensor([1.0, 10.0])  # multipliers 1 and 10
        >>> ts.nn.depthwise_conv2d(x, w, strides=1, padding="VALID").flatten()
        tensor([  9.,  90.,  18., 180.])
    """
    fn = "depthwise_conv2d"
    rate_name = "rate" if dilations is None else "dilations"
    rate = alias(fn, "dilations", dilations, "rate", rate)
    c = _prepare(fn, input, filter, None, strides, padding, data_format, rate, rate_name)
    if c.empty is not None:
        return c.empty
    return from_nchw(F.conv2d(c.x, c.w, None, c.stride, c.padding, c.dilation, c.groups), c.fmt)


# ---------------------------------------------------------------- arguments


class _Conv(NamedTuple):
    """A TensorFlow-style convolution's arguments in PyTorch's terms."""

    x: torch.Tensor  # NCHW, padded for what the symmetric padding leaves over
    w: torch.Tensor  # OIHW
    stride: list[int]
    padding: list[int]  # symmetric
    dilation: list[int]
    groups: int
    fmt: str
    empty: torch.Tensor | None  # the whole result, when it has no elements ("SAME")


def _prepare(
    fn: str,
    input: torch.Tensor,
    filter: torch.Tensor,
    bias: torch.Tensor | None,
    strides: Any,
    padding: Any,
    data_format: str | None,
    dilations: Any,
    dilations_name: str = "dilations",
) -> _Conv:
    """Checks the arguments against each other, in the caller's layouts, and converts
    them: NCHW input (padded for asymmetric padding), OIHW weight, symmetric padding.
    For ``depthwise_conv2d`` the filter is ``[h, w, in_channels, multiplier]``, made a
    grouped convolution's (one group per input channel)."""
    check_tensors(fn, input=input, filter=filter, bias=bias)
    fmt = check_format(fn, data_format)
    depthwise = fn == "depthwise_conv2d"
    check_rank(fn, "input", input, 4, f"[batch, ...] in {fmt}")
    check_rank(fn, "filter", filter, 4, _LAYOUTS[depthwise])
    stride = spatial(fn, "strides", strides, fmt)
    dilation = spatial(fn, dilations_name, 1 if dilations is None else dilations, fmt)
    x = to_nchw(input, fmt)
    check_dtypes(fn, "input", input, filter=filter, bias=bias)
    if depthwise:
        groups = _check_depthwise(fn, input, filter, stride, dilation, dilations_name, fmt)
        w = filter.reshape(*filter.shape[:2], 1, -1).permute(3, 2, 0, 1)
    else:
        groups = _check_channels(fn, input, filter, bias, fmt)
        w = filter.permute(3, 2, 0, 1)
    kernel = [w.shape[2], w.shape[3]]
    size = list(x.shape[2:])
    before, after = padding_amounts(fn, padding, size, kernel, stride, dilation, fmt)
    sym, extra = split_padding(before, after)
    if is_same(padding) and 0 in size:
        # TensorFlow's output size, ceil(size / stride), is 0: nothing to compute.
        out = [same_size(n, s) for n, s in zip(size, stride, strict=True)]
        empty = from_nchw(x.new_empty([x.shape[0], w.shape[0], *out]), fmt)
        return _Conv(x, w, stride, sym, dilation, groups, fmt, empty)
    shapes = _shapes(input, filter, fmt, depthwise)
    context = f"{shapes}, padding={padding!r}, {dilations_name}={dilation}"
    check_window(fn, "filter", "input", size, before, after, kernel, dilation, context)
    return _Conv(pad(x, extra), w, stride, sym, dilation, groups, fmt, None)


_LAYOUTS = {  # of the filter, by depthwise
    False: "[height, width, in_channels, out_channels]",
    True: "[height, width, in_channels, channel_multiplier]",
}


def _shapes(
    input: torch.Tensor, filter: torch.Tensor, data_format: str, depthwise: bool = False
) -> str:
    layout = _LAYOUTS[True] if depthwise else "HWIO"
    return (
        f"input shape {list(input.shape)} ({data_format}), filter shape {list(filter.shape)} "
        f"({layout})"
    )


def _check_depthwise(
    fn: str,
    input: torch.Tensor,
    filter: torch.Tensor,
    stride: list[int],
    dilation: list[int],
    dilations_name: str,
    data_format: str,
) -> int:
    """The number of groups (``input``'s channels, which ``filter``'s in_channels must
    equal); a rate above 1 only with strides of 1, as TensorFlow documents."""
    channels = input.shape[3 if data_format == "NHWC" else 1]
    if filter.shape[2] != channels:
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'filter' has {filter.shape[2]} in_channels (dim 2 of "
            f"{_LAYOUTS[True]}, shape {list(filter.shape)}), which must equal the {channels} "
            f"channels of 'input' (shape {list(input.shape)}, data_format={data_format!r})"
        )
    if max(dilation) > 1 and max(stride) > 1:
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'strides' must be 1 when '{dilations_name}' is above "
            f"1, got strides {stride} and {dilations_name} {dilation}"
        )
    return channels


def _check_channels(
    fn: str,
    input: torch.Tensor,
    filter: torch.Tensor,
    bias: torch.Tensor | None,
    data_format: str,
) -> int:
    """The number of groups: ``input``'s channels over ``filter``'s in_channels, which
    must divide them; it must divide ``filter``'s out_channels too, and ``bias`` has one
    element per out_channel."""
    channels = input.shape[3 if data_format == "NHWC" else 1]
    filter_in, filter_out = filter.shape[2], filter.shape[3]
    if filter_in == 0 or channels % filter_in != 0:
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'filter' has {filter_in} input channels (dim 2), "
            f"which must divide the {channels} channels of 'input' (shape {list(input.shape)}, "
            f"data_format={data_format!r})"
        )
    groups = channels // filter_in
    if filter_out % groups != 0:
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'filter' has {filter_out} output channels (dim 3), "
            f"which must be a multiple of the {groups} groups ('input' has {channels} "
            f"channels, {groups} times the filter's {filter_in} in_channels; "
            f"{_shapes(input, filter, data_format)})"
        )
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != filter_out):
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'bias' must be 1-D with {filter_out} elements (the "
            f"out_channels of 'filter', shape {list(filter.shape)}), got shape {list(bias.shape)}"
        )
    return groups
