"""Normalisation: ``moments``, ``batch_normalization`` and ``fused_batch_norm``, with
TensorFlow's formulas (population variance in ``moments`` and for normalising; the
returned batch variance of ``fused_batch_norm`` with Bessel's correction)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch

from ._args import alias, broadcasts, check_floating, check_tensors, tensor, to_int

_HALF = (torch.float16, torch.bfloat16)

# TensorFlow raises epsilon to this (cuDNN's minimum) in fused_batch_norm.
_MIN_EPSILON = 1.001e-5


def moments(
    x: torch.Tensor,
    axes: int | Sequence[int],
    shift: Any = None,
    name: str | None = None,
    keep_dims: bool | None = None,
    keepdims: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and variance of ``x`` over ``axes``, as ``tf.compat.v1.nn.moments``.

    The variance is the population variance (divided by the number of elements,
    not one less), computed as TensorFlow does: ``mean((x - stop_gradient(mean)) **
    2)``. float16 input is computed in float32 and the results cast back.

    Args:
        x: a floating-point tensor.
        axes: the dimensions to reduce, an int or a list of ints (negative ones
            count from the end; an empty list reduces nothing).
        shift: ignored, as TensorFlow ignores it.
        name: ignored (PyTorch has no graph to name operations in).
        keep_dims: keep the reduced dimensions with size 1 (default False).
        keepdims: ``keep_dims``'s TensorFlow 2 spelling; either works, not both.

    Returns:
        ``(mean, variance)``.

    Raises:
        TypeError: ``x`` is not a tensor.
        ValueError: ``axes`` holds a dimension twice or one ``x`` lacks, or
            ``x`` is not floating point.

    Example:
        >>> import torch
        >>> import torchscope as ts
        >>> mean, variance = ts.nn.moments(torch.tensor([[1.0, 2.0], [3.0, 6.0]]), axes=[0])
        >>> mean, variance
        (tensor([2., 4.]), tensor([1., 4.]))
    """
    fn = "moments"
    x = tensor(fn, "x", x)
    keep = bool(alias(fn, "keepdims", keepdims, "keep_dims", keep_dims))
    check_floating(fn, "x", x)
    dims = _axes(fn, axes, x.dim())
    y = x.float() if x.dtype == torch.float16 else x
    if not dims:
        mean, variance = y, (y - y.detach()).square()
    else:
        mean = y.mean(dims, keepdim=True)
        variance = (y - mean.detach()).square().mean(dims, keepdim=True)
        if not keep:
            mean, variance = mean.squeeze(dims), variance.squeeze(dims)
    return mean.to(x.dtype), variance.to(x.dtype)


def batch_normalization(
    x: torch.Tensor,
    mean: torch.Tensor,
    variance: torch.Tensor,
    offset: torch.Tensor | None,
    scale: torch.Tensor | None,
    variance_epsilon: float,
    name: str | None = None,
) -> torch.Tensor:
    """``(x - mean) * scale / sqrt(variance + variance_epsilon) + offset``, as
    ``tf.nn.batch_normalization`` computes it.

    TensorFlow's order of operations: ``inv = rsqrt(variance + variance_epsilon)``,
    times ``scale`` when given, then ``x * inv + (offset - mean * inv)`` (or
    ``- mean * inv`` without ``offset``). ``mean``, ``variance``, ``offset`` and
    ``scale`` broadcast against ``x`` (for NHWC: shape ``[channels]``, or ``x``'s
    rank with size-1 dimensions, as ``moments(..., keep_dims=True)`` gives).

    Args:
        x: the input.
        mean: the mean to subtract.
        variance: the variance to divide by (its square root).
        offset: added after normalising, or None.
        scale: multiplied after normalising, or None.
        variance_epsilon: a small number added to ``variance``.
        name: ignored (PyTorch has no graph to name operations in).

    Returns:
        The normalised tensor, of ``x``'s shape and dtype.

    Raises:
        TypeError: a tensor argument is not a tensor (``offset`` and ``scale``
            may be None).
        ValueError: an argument does not broadcast against ``x``.

    Example:
        >>> import torch
        >>> import torchscope as ts
        >>> x = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
        >>> mean, variance = ts.nn.moments(x, [0])
        >>> ts.nn.batch_normalization(x, mean, variance, None, None, 0.0)
        tensor([[-1., -1.],
                [ 1.,  1.]])
    """
    fn = "batch_normalization"
    tensor(fn, "x", x)
    given = {"mean": mean, "variance": variance, "offset": offset, "scale": scale}
    for arg, value in given.items():
        if value is None and arg in ("offset", "scale"):
            continue
        shape = tensor(fn, arg, value).shape
        if not broadcasts(shape, x.shape):
            raise ValueError(
                f"torchscope.nn.{fn}: argument '{arg}' (shape {list(shape)}) must "
                f"broadcast against 'x' (shape {list(x.shape)}) without changing its shape"
            )
    inv = torch.rsqrt(variance + variance_epsilon)
    if scale is not None:
        inv = inv * scale
    shift = -mean * inv if offset is None else offset - mean * inv
    return x * inv.to(x.dtype) + shift.to(x.dtype)


def fused_batch_norm(
    x: torch.Tensor,
    scale: torch.Tensor,
    offset: torch.Tensor,
    mean: torch.Tensor | None = None,
    variance: torch.Tensor | None = None,
    epsilon: float = 0.001,
    data_format: str | None = "NHWC",
    is_training: bool = True,
    name: str | None = None,
    exponential_avg_factor: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch normalisation over the channel dimension, as
    ``tf.compat.v1.nn.fused_batch_norm`` (``FusedBatchNormV3``).

    Training (``is_training=True``): ``y`` is normalised with the batch's mean and
    population variance; the returned mean and variance are those of the batch, the
    variance with Bessel's correction (``n / (n - 1)``, ``n`` the elements per
    channel; 1 when ``n`` is 1), as TensorFlow returns it for updating moving
    averages. With ``exponential_avg_factor`` ``f`` other than 1 they are the
    running averages ``(1 - f) * mean + f * batch_mean`` and ``(1 - f) * variance
    + f * batch_variance``. Inference: ``y`` uses ``mean`` and ``variance``, which
    are returned as given. As in TensorFlow, gradients flow into ``x``, ``scale``
    and ``offset`` only, never through the returned statistics or into ``mean``
    and ``variance``. float16 and bfloat16 ``x`` is computed in float32.

    Args:
        x: 4-D (``"NHWC"``/``"NCHW"``) or 5-D (``"NDHWC"``/``"NCDHW"``).
        scale: ``[channels]``, float32 for half-precision ``x``, else ``x``'s dtype.
        offset: ``[channels]``, like ``scale``.
        mean: ``[channels]``: the population mean for inference, the running mean
            for ``exponential_avg_factor`` other than 1; otherwise unused.
        variance: ``[channels]``, like ``mean``.
        epsilon: added to the variance; raised to 1.001e-5 when smaller, as
            TensorFlow does.
        data_format: ``"NHWC"`` (or ``None``), ``"NCHW"``, ``"NDHWC"`` or
            ``"NCDHW"``.
        is_training: batch statistics (True) or ``mean`` and ``variance`` (False).
        name: ignored (PyTorch has no graph to name operations in).
        exponential_avg_factor: the weight of the batch statistics in the
            returned running averages.

    Returns:
        ``(y, batch_mean, batch_variance)``.

    Raises:
        TypeError: ``x``, ``scale`` or ``offset`` is not a tensor (``mean`` and
            ``variance`` may be None where they are unused).
        ValueError: naming the argument that is missing, malformed or does not
            fit.

    Example:
        >>> import torch
        >>> import torchscope as ts
        >>> x = torch.tensor([1.0, 2.0, 3.0, 6.0]).reshape(1, 2, 2, 1)  # NHWC, 1 channel
        >>> y, mean, variance = ts.nn.fused_batch_norm(x, torch.ones(1), torch.zeros(1))
        >>> mean, variance  # variance: 14 / 3, with Bessel's correction (y used 14 / 4)
        (tensor([3.]), tensor([4.6667]))
    """
    fn = "fused_batch_norm"
    check_tensors(fn, x=x, scale=scale, offset=offset)
    fmt, channel = _batch_norm_format(fn, x, data_format)
    if not is_training or exponential_avg_factor != 1.0:
        _given(fn, mean, variance)
    channels = x.shape[channel]
    stats = {"scale": scale, "offset": offset, "mean": mean, "variance": variance}
    for arg, value in stats.items():
        if value is None:
            continue
        tensor(fn, arg, value)
        if value.dim() != 1 or value.shape[0] != channels:
            raise ValueError(
                f"torchscope.nn.{fn}: argument '{arg}' must be 1-D with {channels} elements (the "
                f"channels of 'x', shape {list(x.shape)}, data_format={fmt!r}), got shape "
                f"{list(value.shape)}"
            )
    check_floating(fn, "x", x)
    eps = max(float(epsilon), _MIN_EPSILON)
    xc = x.float() if x.dtype in _HALF else x
    dims = [d for d in range(x.dim()) if d != channel]
    shape = [channels if d == channel else 1 for d in range(x.dim())]

    def per_channel(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(shape)

    if not is_training:
        mean, variance = _given(fn, mean, variance)
        inv = torch.rsqrt(per_channel(variance.detach()) + eps) * per_channel(scale)
        y = (xc - per_channel(mean.detach())) * inv + per_channel(offset)
        return y.to(x.dtype), mean, variance
    batch_mean = xc.mean(dims, keepdim=True)
    centered = xc - batch_mean
    batch_variance = centered.square().mean(dims, keepdim=True)
    y = centered * torch.rsqrt(batch_variance + eps) * per_channel(scale) + per_channel(offset)
    n = x.numel() // max(channels, 1)
    out_mean = batch_mean.detach().reshape(channels)
    out_variance = batch_variance.detach().reshape(channels) * (n / max(n - 1, 1))
    if exponential_avg_factor != 1.0:
        mean, variance = _given(fn, mean, variance)
        f = float(exponential_avg_factor)
        out_mean = (1 - f) * mean.detach() + f * out_mean
        out_variance = (1 - f) * variance.detach() + f * out_variance
    return y.to(x.dtype), out_mean, out_variance


def _given(
    fn: str, mean: torch.Tensor | None, variance: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean`` and ``variance``, which inference and running averages need."""
    if mean is None or variance is None:
        raise ValueError(
            f"torchscope.nn.{fn}: arguments 'mean' and 'variance' must both be 1-D tensors when "
            f"is_training is False or exponential_avg_factor is not 1, got mean={mean!r} and "
            f"variance={variance!r}"
        )
    return mean, variance


def _axes(fn: str, axes: Any, rank: int) -> list[int]:
    """``axes`` as a list of distinct non-negative dimensions of a rank-``rank`` tensor."""
    given = axes.tolist() if isinstance(axes, torch.Tensor) else axes
    values = [given] if isinstance(given, numbers.Integral) else given
    dims = (
        [to_int(v) for v in values]
        if isinstance(values, Sequence) and not isinstance(values, str)
        else [None]
    )
    if any(d is None or not -rank <= d < rank for d in dims):
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'axes' must be an int or a list of ints in "
            f"[-{rank}, {rank}) (the dimensions of 'x', rank {rank}), got {axes!r}"
        )
    normal = [d % rank for d in dims]  # type: ignore[operator]
    if len(set(normal)) != len(normal):
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'axes' names a dimension twice, got {axes!r}"
        )
    return normal


def _batch_norm_format(fn: str, x: torch.Tensor, data_format: Any) -> tuple[str, int]:
    """The data format and the channel dimension, for a 4-D or 5-D ``x``."""
    fmt = "NHWC" if data_format is None else data_format
    ranks = {"NHWC": 4, "NCHW": 4, "NDHWC": 5, "NCDHW": 5}
    if fmt not in ranks:
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'data_format' must be 'NHWC', 'NCHW' (4-D 'x'), "
            f"'NDHWC' or 'NCDHW' (5-D 'x'), got {data_format!r}"
        )
    if x.dim() != ranks[fmt]:
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'x' must be {ranks[fmt]}-D for "
            f"data_format={fmt!r}, got shape {list(x.shape)}"
        )
    return fmt, 1 if fmt.startswith("NC") else x.dim() - 1
