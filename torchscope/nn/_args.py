"""TensorFlow's argument conventions, read once for every ``ts.nn`` function.

Each helper returns the normalised value or raises an error that starts with
``torchscope.nn.<function>:`` and names TensorFlow's argument: ``TypeError`` for a
value of the wrong type (None or a list where a tensor belongs), ``ValueError`` for a
malformed or misfitting one.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any, TypeVar

import torch
import torch.nn.functional as F

from ..ops._wrapper import autocast_dtype

FORMATS = ("NHWC", "NCHW")

_T = TypeVar("_T")


def check_tensors(fn: str, **arguments: Any) -> None:
    """TypeError naming the first argument that is not a tensor (``bias`` may be None
    where the function takes None)."""
    for name, value in arguments.items():
        if value is None and name == "bias" and fn != "bias_add":
            continue
        tensor(fn, name, value)


def tensor(fn: str, name: str, value: Any) -> torch.Tensor:
    """``value``, or a TypeError naming the argument when it is not a tensor."""
    if isinstance(value, torch.Tensor):
        return value
    allowed = "a torch.Tensor or None" if name == "bias" and fn != "bias_add" else "a torch.Tensor"
    raise TypeError(
        f"torchscope.nn.{fn}: argument '{name}' must be {allowed}, got {type(value).__name__}"
    )


def alias(fn: str, name: str, value: _T, old_name: str, old_value: _T) -> _T:
    """One of two spellings of an argument (TensorFlow 2's ``name``, TensorFlow 1's
    ``old_name``), as TensorFlow's ``deprecated_argument_lookup``: both given is an error."""
    if value is not None and old_value is not None:
        raise ValueError(
            f"torchscope.nn.{fn}: cannot specify both '{old_name}' and '{name}' (two spellings "
            f"of one argument); pass one of them"
        )
    return old_value if value is None else value


def check_format(fn: str, data_format: Any) -> str:
    """``"NHWC"`` (also for None) or ``"NCHW"``."""
    fmt = "NHWC" if data_format is None else data_format
    if fmt not in FORMATS:
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'data_format' must be 'NHWC' or 'NCHW', "
            f"got {data_format!r}"
        )
    return fmt


def check_rank(fn: str, name: str, t: torch.Tensor, rank: int, layout: str) -> None:
    if t.dim() != rank:
        raise ValueError(
            f"torchscope.nn.{fn}: argument '{name}' must be {rank}-D ({layout}), got shape "
            f"{list(t.shape)}"
        )


def check_floating(fn: str, name: str, t: torch.Tensor) -> None:
    if not t.is_floating_point():
        raise ValueError(
            f"torchscope.nn.{fn}: argument '{name}' must have a floating-point dtype, got {t.dtype}"
        )


def check_dtypes(fn: str, input_name: str, input: torch.Tensor, **others: Any) -> None:
    """A floating ``input``, and the other tensors (None skipped) of its dtype (under
    ``torch.autocast`` the convolution casts them, as PyTorch's does)."""
    check_floating(fn, input_name, input)
    if autocast_dtype(input.device.type) is not None:
        return
    for name, t in others.items():
        if t is not None and t.dtype != input.dtype:
            raise ValueError(
                f"torchscope.nn.{fn}: argument '{name}' must have the dtype of '{input_name}' "
                f"({input.dtype}), got {t.dtype}"
            )


def broadcasts(shape: Sequence[int], target: torch.Size) -> bool:
    """Whether ``shape`` broadcasts to ``target`` without changing it."""
    try:
        return torch.broadcast_shapes(torch.Size(shape), target) == target
    except RuntimeError:
        return False


def to_int(value: Any) -> int | None:
    """``value`` as an int when it is an integer (numpy's too; not a bool), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def spatial(fn: str, name: str, value: Any, data_format: str) -> list[int]:
    """[height, width] from an int or a list of 1, 2 or 4 ints."""
    scalar = to_int(value)
    if scalar is not None:
        values: list[Any] = [scalar]
    elif isinstance(value, Sequence) and not isinstance(value, str):
        values = [to_int(v) for v in value]
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


def padding_amounts(
    fn: str,
    padding: Any,
    size: list[int],
    kernel: list[int],
    stride: list[int],
    dilation: list[int],
    data_format: str,
    explicit: bool = True,
) -> tuple[list[int], list[int]]:
    """([top, left], [bottom, right]) for TensorFlow's padding argument: ``"SAME"`` (the
    extra row or column of an odd total at the bottom or right), ``"VALID"`` or, where
    ``explicit``, 4 ``[before, after]`` pairs in ``data_format`` order."""
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return [0, 0], [0, 0]
        if mode == "SAME":
            before, after = [], []
            for n, k, s, d in zip(size, kernel, stride, dilation, strict=True):
                total = max((same_size(n, s) - 1) * s + (k - 1) * d + 1 - n, 0)
                before.append(total // 2)
                after.append(total - total // 2)
            return before, after
    elif explicit and _is_pairs(padding):
        pairs: list[list[int]] = [[to_int(v) for v in p] for p in padding]  # type: ignore[misc]
        h, w = (1, 2) if data_format == "NHWC" else (2, 3)
        others = [pairs[i] for i in range(4) if i not in (h, w)]
        if others == [[0, 0], [0, 0]]:
            return [pairs[h][0], pairs[w][0]], [pairs[h][1], pairs[w][1]]
    if not explicit:
        raise ValueError(
            f"torchscope.nn.{fn}: argument 'padding' must be 'SAME' or 'VALID', got {padding!r}"
        )
    raise ValueError(
        f"torchscope.nn.{fn}: argument 'padding' must be 'SAME', 'VALID' or 4 [before, after] "
        f"pairs of non-negative ints in {data_format} order with [0, 0] for the batch and channel "
        f"dimensions, got {padding!r}"
    )


def same_size(size: int, stride: int) -> int:
    """TensorFlow's output size for ``"SAME"``: ``ceil(size / stride)``."""
    return (size + stride - 1) // stride


def is_same(padding: Any) -> bool:
    return isinstance(padding, str) and padding.upper() == "SAME"


def _is_pairs(padding: Any) -> bool:
    return (
        isinstance(padding, Sequence)
        and len(padding) == 4
        and all(
            isinstance(p, Sequence)
            and len(p) == 2
            and all(to_int(v) is not None and to_int(v) >= 0 for v in p)  # type: ignore[operator]
            for p in padding
        )
    )


def check_window(
    fn: str,
    kernel_name: str,
    input_name: str,
    size: list[int],
    before: list[int],
    after: list[int],
    kernel: list[int],
    dilation: list[int],
    context: str,
) -> None:
    """The padded input is at least as large as the (dilated) window; ``context`` (the
    shapes and arguments as passed) ends the message."""
    for d, dim in enumerate(("height", "width")):
        padded = size[d] + before[d] + after[d]
        window = dilation[d] * (kernel[d] - 1) + 1
        if padded < window:
            what = f"dilated {dim} {window}" if kernel_name == "filter" else f"{dim} {window}"
            raise ValueError(
                f"torchscope.nn.{fn}: argument '{kernel_name}' ({what}) is larger than the "
                f"{dim} of '{input_name}' after padding ({padded}) ({context})"
            )


def split_padding(
    before: list[int], after: list[int], limit: list[int] | None = None
) -> tuple[list[int], list[int]]:
    """TensorFlow's (possibly asymmetric) padding as the symmetric part a PyTorch op
    takes (at most ``limit``: pooling takes half its window) and the rest, as
    ``F.pad``'s ``[left, right, top, bottom]``."""
    top = [max(b, a) for b, a in zip(before, after, strict=True)] if limit is None else limit
    sym = [min(b, a, t) for b, a, t in zip(before, after, top, strict=True)]
    extra = [before[1] - sym[1], after[1] - sym[1], before[0] - sym[0], after[0] - sym[0]]
    return sym, extra


def pad(x: torch.Tensor, extra: list[int], value: float = 0.0) -> torch.Tensor:
    """``x`` padded (or cropped, for negative amounts) by ``[left, right, top, bottom]``."""
    return F.pad(x, extra, value=value) if any(extra) else x


def to_nchw(x: torch.Tensor, data_format: str) -> torch.Tensor:
    return x.permute(0, 3, 1, 2) if data_format == "NHWC" else x


def from_nchw(y: torch.Tensor, data_format: str) -> torch.Tensor:
    return y.permute(0, 2, 3, 1) if data_format == "NHWC" else y


def nchw_shape(shape: list[int], data_format: str) -> list[int]:
    """A shape given in ``data_format`` order, in NCHW order."""
    return [shape[0], shape[3], shape[1], shape[2]] if data_format == "NHWC" else list(shape)
