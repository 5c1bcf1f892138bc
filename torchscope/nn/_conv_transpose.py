"""``conv2d_transpose``: the gradient of ``conv2d`` with respect to its input, with
TensorFlow's ``output_shape`` argument and its crop for ``"SAME"``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ._args import (
    alias,
    check_dtypes,
    check_format,
    check_rank,
    from_nchw,
    is_same,
    nchw_shape,
    pad,
    padding_amounts,
    spatial,
    tensor,
    to_int,
    to_nchw,
)

_FN = "conv2d_transpose"


def conv2d_transpose(
    value: torch.Tensor | None = None,
    filter: torch.Tensor | None = None,
    output_shape: Sequence[int] | torch.Tensor | None = None,
    strides: int | Sequence[int] | None = None,
    padding: str | Sequence[Sequence[int]] = "SAME",
    data_format: str | None = "NHWC",
    name: str | None = None,
    input: torch.Tensor | None = None,
    filters: torch.Tensor | None = None,
    dilations: int | Sequence[int] | None = None,
) -> torch.Tensor:
    """The transpose of :func:`conv2d`, as ``tf.compat.v1.nn.conv2d_transpose``.

    TensorFlow computes it as the gradient of ``conv2d(x, filter, strides, padding)``
    with respect to an ``x`` of shape ``output_shape``, and so does this: the same
    output size for every stride, the same crop of TensorFlow's ``"SAME"`` padding
    (the extra row or column of an odd total at the bottom or right), the same
    numbers.

    Args:
        value: 4-D, ``[batch, height, width, in_channels]`` for ``"NHWC"`` or
            ``[batch, in_channels, height, width]`` for ``"NCHW"``. TensorFlow 2
            spells it ``input``; either keyword works, not both.
        filter: ``[height, width, out_channels, in_channels]`` (note: output
            channels before input channels), of ``value``'s dtype; also spelled
            ``filters``.
        output_shape: the shape of the result, a list, tuple or 1-D integer
            tensor: 4 ints in ``data_format`` order, or 2 (``[height, width]``;
            batch and channels then follow from ``value`` and ``filter``).
        strides: an int, or a list of 1, 2 or 4 ints (4: in ``data_format``
            order, 1 for the batch and channel dimensions).
        padding: ``"SAME"``, ``"VALID"``, or explicit ``[before, after]`` pairs
            for the 4 dimensions in ``data_format`` order: the padding of the
            ``conv2d`` this transposes.
        data_format: ``"NHWC"`` (or ``None``) or ``"NCHW"``.
        name: ignored (PyTorch has no graph to name operations in).
        input: ``value``'s TensorFlow 2 spelling.
        filters: ``filter``'s TensorFlow 2 spelling.
        dilations: like ``strides``; ``None`` means 1.

    Returns:
        A tensor of shape ``output_shape``, in ``data_format``.

    Raises:
        TypeError: ``value`` or ``filter`` is not a tensor.
        ValueError: naming the argument that is malformed or does not fit; in
            particular when ``output_shape`` is not a size that the ``conv2d``
            being transposed maps onto ``value``'s (TensorFlow's "Size of
            out_backprop doesn't match computed"); the message gives the sizes
            that fit.

    Example:
        >>> import torch
        >>> import torchscope as ts
        >>> x = torch.ones(1, 2, 2, 1)  # NHWC
        >>> w = torch.ones(3, 3, 1, 1)  # [h, w, out, in]
        >>> y = ts.nn.conv2d_transpose(x, w, output_shape=[1, 4, 4, 1], strides=2)
        >>> y[0, :, :, 0]
        tensor([[1., 1., 2., 1.],
                [1., 1., 2., 1.],
                [2., 2., 4., 2.],
                [1., 1., 2., 1.]])
        >>> ts.nn.conv2d(y, w, strides=2, padding="SAME").shape  # back to value's size
        torch.Size([1, 2, 2, 1])
    """
    value = tensor(_FN, "value", alias(_FN, "input", input, "value", value))
    filter = tensor(_FN, "filter", alias(_FN, "filters", filters, "filter", filter))
    fmt = check_format(_FN, data_format)
    check_rank(_FN, "value", value, 4, f"[batch, ...] in {fmt}")
    check_rank(_FN, "filter", filter, 4, "[height, width, out_channels, in_channels]")
    stride = spatial(_FN, "strides", strides, fmt)
    dilation = spatial(_FN, "dilations", 1 if dilations is None else dilations, fmt)
    check_dtypes(_FN, "value", value, filter=filter)
    x = to_nchw(value, fmt)
    out = _output_shape(value, filter, output_shape, fmt)
    kernel = [filter.shape[0], filter.shape[1]]
    before, after = padding_amounts(_FN, padding, out[2:], kernel, stride, dilation, fmt)
    _check_fit(value, output_shape, out, before, after, kernel, stride, dilation, padding, fmt)
    if 0 in out:
        return from_nchw(x.new_zeros(out), fmt)
    # PyTorch's transposed convolution crops the same amount on both sides; the rest
    # of TensorFlow's crop (or the zeros past the last input's reach) is cut or padded
    # afterwards.
    full = [
        (n - 1) * s + (k - 1) * d + 1
        for n, s, k, d in zip(x.shape[2:], stride, kernel, dilation, strict=True)
    ]
    sym = [min(b, a, (f - 1) // 2) for b, a, f in zip(before, after, full, strict=True)]
    # What is left past the end: zeros that output_padding can add (when it is smaller
    # than the stride or the dilation, as PyTorch requires), else F.pad.
    rest = [b + o - (f - p) for b, o, f, p in zip(before, out[2:], full, sym, strict=True)]
    grow = [r if 0 < r < max(s, d) else 0 for r, s, d in zip(rest, stride, dilation, strict=True)]
    w = filter.permute(3, 2, 0, 1)  # [in, out, h, w]
    y = F.conv_transpose2d(x, w, None, stride, sym, grow, 1, dilation)
    left = [p - b for p, b in zip(sym, before, strict=True)]
    right = [r - g for r, g in zip(rest, grow, strict=True)]
    return from_nchw(pad(y, [left[1], right[1], left[0], right[0]]), fmt)


def _output_shape(
    value: torch.Tensor, filter: torch.Tensor, output_shape: Any, data_format: str
) -> list[int]:
    """``output_shape`` as an NCHW list, its batch and channels checked against
    ``value``'s and ``filter``'s."""
    given = output_shape.tolist() if isinstance(output_shape, torch.Tensor) else output_shape
    sizes = (
        [to_int(v) for v in given]
        if isinstance(given, Sequence) and not isinstance(given, str)
        else []
    )
    tensor_ok = not isinstance(output_shape, torch.Tensor) or (
        output_shape.dim() == 1 and not output_shape.is_floating_point()
    )
    if not (tensor_ok and len(sizes) in (2, 4) and all(v is not None and v >= 0 for v in sizes)):
        order = (
            "[batch, height, width, channels]"
            if data_format == "NHWC"
            else ("[batch, channels, height, width]")
        )
        raise ValueError(
            f"torchscope.nn.{_FN}: argument 'output_shape' must be a list, tuple or 1-D integer "
            f"tensor of 4 non-negative ints in data_format order ({order}) or of 2 "
            f"([height, width]), got {output_shape!r}"
        )
    channels = 3 if data_format == "NHWC" else 1
    in_channels = value.shape[channels]
    if filter.shape[3] != in_channels:
        raise ValueError(
            f"torchscope.nn.{_FN}: argument 'filter' has {filter.shape[3]} in_channels (dim 3 "
            f"of [height, width, out_channels, in_channels], shape {list(filter.shape)}), which "
            f"must equal the {in_channels} channels of 'value' (shape {list(value.shape)}, "
            f"data_format={data_format!r})"
        )
    if len(sizes) == 2:
        return [value.shape[0], filter.shape[2], *sizes]  # type: ignore[list-item]
    out: list[int] = nchw_shape(sizes, data_format)  # type: ignore[arg-type]
    if out[0] != value.shape[0]:
        raise ValueError(
            f"torchscope.nn.{_FN}: argument 'output_shape' ({output_shape!r}) has batch size "
            f"{out[0]}, 'value' (shape {list(value.shape)}) has {value.shape[0]}; they must be "
            f"equal"
        )
    if out[1] != filter.shape[2]:
        raise ValueError(
            f"torchscope.nn.{_FN}: argument 'output_shape' ({output_shape!r}) has {out[1]} "
            f"channels, 'filter' (shape {list(filter.shape)}) has {filter.shape[2]} out_channels "
            f"(dim 2 of [height, width, out_channels, in_channels]); they must be equal"
        )
    return out


def _check_fit(
    value: torch.Tensor,
    output_shape: Any,
    out: list[int],
    before: list[int],
    after: list[int],
    kernel: list[int],
    stride: list[int],
    dilation: list[int],
    padding: Any,
    data_format: str,
) -> None:
    """``conv2d`` with these arguments maps ``out``'s height and width onto
    ``value``'s, as TensorFlow's ``Conv2DBackpropInput`` requires."""
    size = value.shape[2:] if data_format == "NCHW" else value.shape[1:3]
    for d, dim in enumerate(("height", "width")):
        window = (kernel[d] - 1) * dilation[d] + 1
        n, s = size[d], stride[d]
        if is_same(padding):
            computed = (out[d + 2] + s - 1) // s
            low, high = (n - 1) * s + 1, n * s
        else:
            padded = out[d + 2] + before[d] + after[d]
            computed = (padded - window) // s + 1 if padded >= window else -1
            low = (n - 1) * s + window - before[d] - after[d]
            high = low + s - 1
        if computed != n:
            fits = f"{max(low, 0)}" if low == high else f"{max(low, 0)} to {high}"
            raise ValueError(
                f"torchscope.nn.{_FN}: argument 'output_shape' ({output_shape!r}) does not fit "
                f"'value' (shape {list(value.shape)}, data_format={data_format!r}): conv2d with "
                f"strides={stride}, padding={padding!r}, dilations={dilation} and a "
                f"{kernel[0]}x{kernel[1]} filter maps output {dim} {out[d + 2]} to {computed}, "
                f"not to the {n} of 'value'; output {dim}s that fit: {fits}"
            )
