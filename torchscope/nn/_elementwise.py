"""Element-wise ``tf.nn`` operations: ``bias_add``, ``relu``, ``dropout``."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ._args import check_tensors


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


def relu(features: torch.Tensor) -> torch.Tensor:
    """``max(features, 0)``, as ``tf.nn.relu``.

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
