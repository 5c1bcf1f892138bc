"""Element-wise ``tf.nn`` operations: ``bias_add``, ``relu``, ``dropout``."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ._args import alias, broadcasts, check_tensors, tensor, to_int


def bias_add(
    value: torch.Tensor, bias: torch.Tensor, data_format: str | None = None, name: str | None = None
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
        name: ignored (PyTorch has no graph to name operations in).

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
    check_tensors(fn, value=value, bias=bias)
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


def relu(features: torch.Tensor, name: str | None = None) -> torch.Tensor:
    """``max(features, 0)``, as ``tf.nn.relu`` (``name`` is ignored).

    Example:
        >>> import torch
        >>> import torchscope as ts
        >>> ts.nn.relu(torch.tensor([-1.0, 0.0, 2.0]))
        tensor([0., 0., 2.])
    """
    check_tensors("relu", features=features)
    return F.relu(features)


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


def dropout(
    x: torch.Tensor,
    keep_prob: float | torch.Tensor | None = None,
    noise_shape: Sequence[int | None] | torch.Tensor | None = None,
    seed: int | None = None,
    name: str | None = None,
    rate: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Zeroes each element with probability ``rate`` and scales the rest by
    ``1 / (1 - rate)``, as ``tf.compat.v1.nn.dropout``.

    An element is kept where a uniform draw in ``[0, 1)`` is ``>= rate``, and the
    result is ``where(keep, x * scale, 0)`` as TensorFlow computes it (so a dropped
    NaN gives 0). With ``noise_shape`` one draw serves every element that the
    broadcast maps onto it (``[batch, 1, 1, channels]`` drops whole feature maps).
    TensorFlow's random numbers cannot be reproduced: the masks come from
    PyTorch's global generator (``torch.manual_seed`` makes a run repeatable).
    Use it in training only; at inference call nothing (TensorFlow 1 code often
    passes ``keep_prob=1.0`` there, which returns ``x``).

    Args:
        x: a floating-point tensor.
        keep_prob: TensorFlow 1's argument, ``1 - rate``; give it or ``rate``,
            not both.
        noise_shape: the shape of the random keep/drop mask, which must broadcast
            to ``x``'s shape: a list, tuple or 1-D integer tensor (``None``
            entries take ``x``'s size when the rank is ``x``'s); None: ``x``'s.
        seed: accepted and ignored (PyTorch has no per-operation seeds; see
            above).
        name: ignored (PyTorch has no graph to name operations in).
        rate: the probability of dropping each element, a float in ``[0, 1)`` or
            a 0-D tensor.

    Returns:
        A tensor of ``x``'s shape and dtype.

    Raises:
        TypeError: ``x`` is not a tensor.
        ValueError: as TensorFlow's: no rate, both ``keep_prob`` and ``rate``, a
            rate outside ``[0, 1)`` or not a scalar, a non-floating ``x``; and a
            ``noise_shape`` that does not broadcast to ``x``'s shape.

    Example:
        >>> import torch
        >>> import torchscope as ts
        >>> y = ts.nn.dropout(torch.ones(1000), rate=0.2)
        >>> sorted(set(y.tolist()))  # dropped, or kept and scaled by 1 / 0.8
        [0.0, 1.25]
        >>> ts.nn.dropout(torch.ones(3), keep_prob=1.0)
        tensor([1., 1., 1.])
    """
    fn = "dropout"
    x = tensor(fn, "x", x)
    keep = None
    if keep_prob is not None:
        if not isinstance(keep_prob, (numbers.Real, torch.Tensor)) or isinstance(keep_prob, bool):
            raise ValueError(
                f"torchscope.nn.{fn}: argument 'keep_prob' must be a float or a 0-D tensor, "
                f"got {keep_prob!r}"
            )
        keep = 1 - keep_prob
    rate = alias(fn, "rate", rate, "keep_prob", keep)
    if rate is None:
        raise ValueError(f"torchscope.nn.{fn}: argument 'rate' (or 'keep_prob') must be given")
    if isinstance(rate, torch.Tensor):
        if rate.dim() != 0:
            raise ValueError(
                f"torchscope.nn.{fn}: argument 'rate' must be a float or a 0-D tensor, got a "
                f"tensor of shape {list(rate.shape)}"
            )
    elif not isinstance(rate, numbers.Real) or isinstance(rate, bool) or not 0 <= rate < 1:
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'rate' must be a 0-D tensor or a float in the range "
            f"[0, 1), got {rate!r}"
        )
    if not x.is_floating_point():
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'x' must have a floating-point dtype (it is scaled), "
            f"got {x.dtype}"
        )
    if not isinstance(rate, torch.Tensor) and rate == 0:
        return x
    shape = _noise_shape(fn, noise_shape, x)
    kept = torch.rand(shape, dtype=x.dtype, device=x.device) >= rate
    scaled = x * (1 / (1 - rate)) if not isinstance(rate, torch.Tensor) else x / (1 - rate)
    return torch.where(kept, scaled, 0.0)


def _noise_shape(fn: str, noise_shape: Any, x: torch.Tensor) -> list[int]:
    """The mask's shape: ``noise_shape`` with None entries filled from ``x``'s shape,
    broadcasting to it."""
    if noise_shape is None:
        return list(x.shape)
    given = noise_shape.tolist() if isinstance(noise_shape, torch.Tensor) else noise_shape
    sizes: list[Any] = (
        list(given) if isinstance(given, Sequence) and not isinstance(given, str) else [""]
    )
    if len(sizes) == x.dim():
        sizes = [n if s is None else s for s, n in zip(sizes, x.shape, strict=True)]
    ints = [to_int(s) for s in sizes]
    shape = [s for s in ints if s is not None]
    if len(shape) != len(ints) or not broadcasts(shape, x.shape):
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'noise_shape' must be a shape that broadcasts to the "
            f"shape of 'x' ({list(x.shape)}): a list of ints (None for x's size), each x's size "
            f"or 1, got {noise_shape!r}"
        )
    return shape
