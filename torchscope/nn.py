"""TensorFlow-signature neural-network helpers, for ported ``tf.nn`` code.

``conv2d``, ``bias_add``, ``relu`` and ``conv2d_bias_relu`` take TensorFlow's
arguments and give TensorFlow's numbers: filters in HWIO layout
(``[height, width, in_channels, out_channels]``), data in ``"NHWC"`` (the
default, also spelled ``None``) or ``"NCHW"``, ``strides``/``dilations`` as an
int or a list of 1, 2 or 4 ints (numpy integers too), and ``padding`` ``"SAME"``
(with TensorFlow's split: for an odd total the extra row/column goes at the
bottom/right; an empty input dimension gives an empty output), ``"VALID"`` or an
explicit list of ``[before, after]`` pairs per dimension. Grouped
convolutions follow TensorFlow too: ``in_channels`` a multiple of the
filter's. ``conv2d_bias_relu`` runs the fused op of :mod:`torchscope.ops`.
Errors are ``ValueError`` naming TensorFlow's argument (``input``, ``filter``,
``bias``, ...) with the shapes as they were passed, and ``TypeError`` naming it
when it is not a tensor (None, a list).

>>> images = torch.ones(1, 4, 4, 3)                      # NHWC
>>> kernel = torch.ones(3, 3, 3, 8)                      # HWIO
>>> ts.nn.conv2d_bias_relu(images, kernel, torch.zeros(8), [1, 2, 2, 1], "SAME").shape
torch.Size([1, 2, 2, 8])
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from . import ops
from .ops._wrapper import autocast_dtype

__all__ = ["bias_add", "conv2d", "conv2d_bias_relu", "relu"]

_FORMATS = ("NHWC", "NCHW")


def conv2d(
    input: torch.Tensor,
    filter: torch.Tensor,
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str | None = "NHWC",
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
        data_format: ``"NHWC"`` (or ``None``) or ``"NCHW"``.
        dilations: like ``strides``; ``None`` means 1.

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
    return _from_nchw(F.conv2d(c.x, c.w, None, c.stride, c.padding, c.dilation, c.groups), c.fmt)


def bias_add(
    value: torch.Tensor, bias: torch.Tensor, data_format: str | None = None
) -> torch.Tensor:
    """Adds ``bias`` along the channel dimension, as ``tf.nn.bias_add``.

    Args:
        value: at least 2-D, channels last or second (see ``data_format``).
        bias: 1-D, one value per channel, of ``value``'s dtype.
        data_format: where the channels are, as TensorFlow reads it: a string
            starting with ``"NC"`` (``"NCHW"``, ``"NCW"``, ``"NCDHW"``, ``"NC..."``)
            puts them in dimension 1; ``None`` or another string starting with
            ``"N"`` and ending with ``"C"`` (``"NHWC"``, ``"NWC"``, ``"NDHWC"``,
            ``"N...C"``) in the last.

    Returns:
        ``value + bias`` broadcast over the channel dimension.

    Raises:
        ValueError: naming the argument that does not fit.

    Example:
        >>> import torch
        >>> import torchscope as ts
        >>> ts.nn.bias_add(torch.zeros(1, 2, 1, 1), torch.tensor([1.0, 2.0]), "NCHW").flatten()
        tensor([1., 2.])
        >>> ts.nn.bias_add(torch.zeros(1, 3, 2), torch.tensor([1.0, 2.0]), "NWC")[0, 0]
        tensor([1., 2.])
    """
    fn = "bias_add"
    _check_tensors(fn, value=value, bias=bias)
    channels_last = _bias_add_channels_last(data_format)
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
    _check_tensors("relu", features=features)
    return F.relu(features)


def conv2d_bias_relu(
    input: torch.Tensor,
    filter: torch.Tensor,
    bias: torch.Tensor | None,
    strides: int | Sequence[int],
    padding: str | Sequence[Sequence[int]],
    data_format: str | None = "NHWC",
    dilations: int | Sequence[int] | None = None,
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
    return _from_nchw(out, c.fmt)


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
) -> _Conv:
    """Checks the arguments against each other, in the caller's layouts, and converts
    them: NCHW input (padded for asymmetric padding), OIHW weight, symmetric padding."""
    _check_tensors(fn, input=input, filter=filter, bias=bias)
    fmt = "NHWC" if data_format is None else data_format
    if fmt not in _FORMATS:
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'data_format' must be 'NHWC' or 'NCHW', "
            f"got {data_format!r}"
        )
    for name, t, layout in (
        ("input", input, f"[batch, ...] in {fmt}"),
        ("filter", filter, "[height, width, in_channels, out_channels]"),
    ):
        if t.dim() != 4:
            raise ValueError(
                f"torchscope.nn.{fn}: argument '{name}' must be 4-D ({layout}), got shape "
                f"{list(t.shape)}"
            )
    stride = _spatial(fn, "strides", strides, fmt)
    dilation = _spatial(fn, "dilations", 1 if dilations is None else dilations, fmt)
    x = input.permute(0, 3, 1, 2) if fmt == "NHWC" else input
    groups = _check_channels(fn, input, filter, bias, fmt)
    _check_dtypes(fn, input, filter, bias)
    w = filter.permute(3, 2, 0, 1)
    kernel = [w.shape[2], w.shape[3]]
    size = list(x.shape[2:])
    before, after = _padding(fn, padding, size, kernel, stride, dilation, fmt)
    empty = None
    if isinstance(padding, str) and padding.upper() == "SAME" and 0 in size:
        # TensorFlow's output size, ceil(size / stride), is 0: nothing to compute.
        out = [(n + s - 1) // s for n, s in zip(size, stride, strict=True)]
        empty = _from_nchw(x.new_empty([x.shape[0], w.shape[0], *out]), fmt)
    else:
        _check_window(fn, input, filter, size, before, after, kernel, dilation, padding, fmt)
    pad = [min(b, a) for b, a in zip(before, after, strict=True)]
    extra = [before[1] - pad[1], after[1] - pad[1], before[0] - pad[0], after[0] - pad[0]]
    if any(extra) and empty is None:
        x = F.pad(x, extra)
    return _Conv(x, w, stride, pad, dilation, groups, fmt, empty)


def _check_tensors(fn: str, **arguments: Any) -> None:
    """TypeError naming the first argument that is not a tensor (``bias`` may be None
    where the function takes None)."""
    for name, value in arguments.items():
        if isinstance(value, torch.Tensor) or (
            value is None and name == "bias" and fn != "bias_add"
        ):
            continue
        allowed = (
            "a torch.Tensor or None" if name == "bias" and fn != "bias_add" else "a torch.Tensor"
        )
        raise TypeError(
            f"torchscope.nn.{fn}: argument '{name}' must be {allowed}, got {type(value).__name__}"
        )


def _shapes(input: torch.Tensor, filter: torch.Tensor, data_format: str) -> str:
    return (
        f"input shape {list(input.shape)} ({data_format}), filter shape {list(filter.shape)} (HWIO)"
    )


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


def _check_dtypes(
    fn: str, input: torch.Tensor, filter: torch.Tensor, bias: torch.Tensor | None
) -> None:
    """A floating ``input``, and ``filter`` and ``bias`` of its dtype (under
    ``torch.autocast`` the convolution casts them, as PyTorch's does)."""
    if not input.is_floating_point():
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'input' must have a floating-point dtype, "
            f"got {input.dtype}"
        )
    if autocast_dtype(input.device.type) is not None:
        return
    for name, t in (("filter", filter), ("bias", bias)):
        if t is not None and t.dtype != input.dtype:
            raise ValueError(
                f"torchscope.nn.{fn}: argument '{name}' must have the dtype of 'input' "
                f"({input.dtype}), got {t.dtype}"
            )


def _check_window(
    fn: str,
    input: torch.Tensor,
    filter: torch.Tensor,
    size: list[int],
    before: list[int],
    after: list[int],
    kernel: list[int],
    dilation: list[int],
    padding: Any,
    data_format: str,
) -> None:
    """The padded input is at least as large as the dilated filter."""
    for d, name in enumerate(("height", "width")):
        padded = size[d] + before[d] + after[d]
        dilated = dilation[d] * (kernel[d] - 1) + 1
        if padded < dilated:
            raise ValueError(
                f"torchscope.nn.{fn}: argument 'filter' (dilated {name} {dilated}) is larger "
                f"than the {name} of 'input' after padding ({padded}) "
                f"({_shapes(input, filter, data_format)}, padding={padding!r}, "
                f"dilations={dilation})"
            )


def _from_nchw(y: torch.Tensor, data_format: str) -> torch.Tensor:
    return y.permute(0, 2, 3, 1) if data_format == "NHWC" else y


def _bias_add_channels_last(data_format: Any) -> bool:
    """TensorFlow's reading of bias_add's data_format: "NC..." strings put the
    channels in dim 1; None and the other "N...C" strings in the last dim."""
    if data_format is None:
        return True
    if isinstance(data_format, str):
        if data_format.startswith("NC"):
            return False
        if data_format.startswith("N") and data_format.endswith("C"):
            return True
    raise ValueError(
        "torchscope.nn.bias_add: argument 'data_format' must be None, a string of the form "
        f"'N...C' (channels last: 'NHWC', 'NWC', ...) or 'NC...' (channels second: 'NCHW', "
        f"'NCW', ...), got {data_format!r}"
    )


def _index(value: Any) -> int | None:
    """``value`` as an int when it is an integer (numpy's too; not a bool), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _spatial(fn: str, name: str, value: Any, data_format: str) -> list[int]:
    """[height, width] from an int or a list of 1, 2 or 4 ints."""
    scalar = _index(value)
    if scalar is not None:
        values: list[Any] = [scalar]
    elif isinstance(value, Sequence) and not isinstance(value, str):
        values = [_index(v) for v in value]
    else:
        values = []
    ok = len(values) in (1, 2, 4) and all(v is not None and v > 0 for v in values)
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
        pairs: list[list[int]] = [[_index(v) for v in p] for p in padding]  # type: ignore[misc]
        h, w = (1, 2) if data_format == "NHWC" else (2, 3)
        others = [pairs[i] for i in range(4) if i not in (h, w)]
        if others == [[0, 0], [0, 0]]:
            return [pairs[h][0], pairs[w][0]], [pairs[h][1], pairs[w][1]]
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
            and all(_index(v) is not None and _index(v) >= 0 for v in p)  # type: ignore[operator]
            for p in padding
        )
    )
