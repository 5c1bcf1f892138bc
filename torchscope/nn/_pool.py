"""TensorFlow's 2-D pooling: ``max_pool`` and ``avg_pool``, with its ``"SAME"``
split and an average that counts only the input's elements, never the padding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from ._args import (
    alias,
    check_floating,
    check_format,
    check_rank,
    check_window,
    from_nchw,
    is_same,
    pad,
    padding_amounts,
    same_size,
    spatial,
    split_padding,
    tensor,
    to_nchw,
)


def max_pool(
    value: torch.Tensor | None = None,
    ksize: int | Sequence[int] | None = None,
    strides: int | Sequence[int] | None = None,
    padding: str | Sequence[Sequence[int]] | None = None,
    data_format: str | None = "NHWC",
    name: str | None = None,
    input: torch.Tensor | None = None,
) -> torch.Tensor:
    """The maximum over each window, as ``tf.compat.v1.nn.max_pool``.

    Args:
        value: 4-D, ``[batch, height, width, channels]`` for ``"NHWC"`` or
            ``[batch, channels, height, width]`` for ``"NCHW"``, floating point.
            TensorFlow 2 spells it ``input``; either keyword works, not both.
        ksize: the window: an int, or a list of 1, 2 or 4 ints (4: in
            ``data_format`` order, 1 for the batch and channel dimensions).
        strides: like ``ksize``.
        padding: ``"SAME"`` (TensorFlow's split: the extra row or column of an
            odd total at the bottom or right; padding never wins the maximum),
            ``"VALID"``, or explicit ``[before, after]`` pairs for the 4
            dimensions in ``data_format`` order.
        data_format: ``"NHWC"`` (or ``None``) or ``"NCHW"``.
        name: ignored (PyTorch has no graph to name operations in).
        input: ``value``'s TensorFlow 2 spelling.

    Returns:
        The pooled tensor, in ``data_format``. With ``"SAME"`` its height and
        width are ``ceil(size / stride)``.

    Raises:
        TypeError: ``value`` is not a tensor.
        ValueError: naming the argument that is malformed or does not fit (a
            window larger than the padded input too, where TensorFlow would give
            an empty result or fail).

    Example:
        >>> import torch
        >>> import torchscope as ts
        >>> x = torch.arange(1.0, 6.0).reshape(1, 1, 5, 1)  # NHWC: one row [1, 2, 3, 4, 5]
        >>> ts.nn.max_pool(x, ksize=[1, 2], strides=2, padding="SAME").flatten()
        tensor([2., 4., 5.])
    """
    w = _window("max_pool", value, input, ksize, strides, padding, data_format)
    if w.empty is not None:
        return w.empty
    sym, extra = split_padding(w.before, w.after, [k // 2 for k in w.kernel])
    x = pad(w.x, extra, float("-inf"))
    return from_nchw(F.max_pool2d(x, w.kernel, w.stride, sym), w.fmt)


def avg_pool(
    value: torch.Tensor | None = None,
    ksize: int | Sequence[int] | None = None,
    strides: int | Sequence[int] | None = None,
    padding: str | None = None,
    data_format: str | None = "NHWC",
    name: str | None = None,
    input: torch.Tensor | None = None,
) -> torch.Tensor:
    """The mean over each window, as ``tf.compat.v1.nn.avg_pool``.

    With ``"SAME"`` a window that reaches past the input averages only the input
    elements it covers, as TensorFlow does (PyTorch's ``count_include_pad=True``
    would divide by the whole window).

    Args:
        value: as :func:`max_pool`'s (``input`` is its TensorFlow 2 spelling).
        ksize: the window, as :func:`max_pool`'s.
        strides: as :func:`max_pool`'s.
        padding: ``"SAME"`` or ``"VALID"`` (TensorFlow's average pooling takes no
            explicit padding).
        data_format: ``"NHWC"`` (or ``None``) or ``"NCHW"``.
        name: ignored (PyTorch has no graph to name operations in).
        input: ``value``'s TensorFlow 2 spelling.

    Returns:
        The pooled tensor, in ``data_format``.

    Raises:
        TypeError: ``value`` is not a tensor.
        ValueError: naming the argument that is malformed or does not fit.

    Example:
        >>> import torch
        >>> import torchscope as ts
        >>> x = torch.arange(1.0, 6.0).reshape(1, 1, 5, 1)  # NHWC: one row [1, 2, 3, 4, 5]
        >>> # the last window holds only the 5: its mean is 5, not 5 / 2
        >>> ts.nn.avg_pool(x, ksize=[1, 2], strides=2, padding="SAME").flatten()
        tensor([1.5000, 3.5000, 5.0000])
    """
    w = _window("avg_pool", value, input, ksize, strides, padding, data_format)
    if w.empty is not None:
        return w.empty
    if not any(w.before + w.after):
        return from_nchw(F.avg_pool2d(w.x, w.kernel, w.stride), w.fmt)
    sym, extra = split_padding(w.before, w.after, [k // 2 for k in w.kernel])
    sums = F.avg_pool2d(pad(w.x, extra), w.kernel, w.stride, sym, divisor_override=1)
    return from_nchw(sums / _counts(w, sums), w.fmt)


class _Window(NamedTuple):
    """A pooling's arguments in PyTorch's terms."""

    x: torch.Tensor  # NCHW
    kernel: list[int]
    stride: list[int]
    before: list[int]  # [top, left]
    after: list[int]  # [bottom, right]
    fmt: str
    empty: torch.Tensor | None  # the whole result, when it has no elements ("SAME")


def _window(
    fn: str,
    value: Any,
    input: Any,
    ksize: Any,
    strides: Any,
    padding: Any,
    data_format: Any,
) -> _Window:
    value = tensor(fn, "value", alias(fn, "input", input, "value", value))
    fmt = check_format(fn, data_format)
    check_rank(fn, "value", value, 4, f"[batch, ...] in {fmt}")
    check_floating(fn, "value", value)
    kernel = spatial(fn, "ksize", ksize, fmt)
    stride = spatial(fn, "strides", strides, fmt)
    x = to_nchw(value, fmt)
    size = list(x.shape[2:])
    explicit = fn == "max_pool"
    before, after = padding_amounts(fn, padding, size, kernel, stride, [1, 1], fmt, explicit)
    if is_same(padding) and 0 in size:
        # TensorFlow's output size, ceil(size / stride), is 0: nothing to compute.
        out = [same_size(n, s) for n, s in zip(size, stride, strict=True)]
        empty = from_nchw(x.new_empty([*x.shape[:2], *out]), fmt)
        return _Window(x, kernel, stride, before, after, fmt, empty)
    for side, amounts in (("top and left", before), ("bottom and right", after)):
        if any(p >= k for p, k in zip(amounts, kernel, strict=True)):
            raise ValueError(
                f"torchscope.nn.{fn}: argument 'padding' ({padding!r}) must be smaller than the "
                f"window ('ksize' {kernel}) on every side, got {amounts} at the {side} (a window "
                f"of padding only has no maximum)"
            )
    context = f"value shape {list(value.shape)} ({fmt}), ksize={ksize!r}, padding={padding!r}"
    check_window(fn, "ksize", "value", size, before, after, kernel, [1, 1], context)
    return _Window(x, kernel, stride, before, after, fmt, None)


def _counts(w: _Window, like: torch.Tensor) -> torch.Tensor:
    """How many input elements each output's window covers: [out_height, out_width]."""
    counts = []
    for n, k, s, b, o in zip(
        w.x.shape[2:], w.kernel, w.stride, w.before, like.shape[2:], strict=True
    ):
        start = torch.arange(o, device=like.device) * s - b
        counts.append((start + k).clamp(max=n) - start.clamp(min=0))
    return (counts[0][:, None] * counts[1][None, :]).to(like.dtype)
