"""TensorFlow's ``get_variable`` keywords that PyTorch has little or no use for.

``collections``, ``partitioner``, ``caching_device``, ``validate_shape``, ``use_resource``,
``synchronization`` and ``aggregation`` are accepted so that a ported TF1 line runs
unchanged; each is checked here, once, on the create path (the reuse path never reads
them). What each means in torchscope:

- ``collections``: the collections a new variable joins (see ``_lookup``); on reuse they
  are not changed, as in TensorFlow.
- ``partitioner``: called as TensorFlow calls it and its answer checked, but the variable
  is **not split**: torchscope makes one variable of the full shape, which is what a
  partitioned variable's checkpoint entry holds (TensorFlow saves the slices as one
  full-shape entry), so ``ts.train`` restores it whole.
- ``caching_device``, ``use_resource``, ``aggregation``: no effect (PyTorch has no
  cached reads, reference variables or replica aggregation).
- ``synchronization``: ``ON_READ`` makes the variable non-trainable unless ``trainable``
  is given, as in TensorFlow; otherwise no effect.
- ``validate_shape``: no effect (every PyTorch tensor has a fully defined shape).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from typing_extensions import TypedDict

from ._checks import describe
from ._types import Getter

__all__ = [
    "TF_KEYWORDS",
    "TFKeywords",
    "VariableAggregation",
    "VariableSynchronization",
    "check_collections",
    "check_partitioner",
    "check_tf_keywords",
    "fixed_size_partitioner",
    "min_max_variable_partitioner",
    "variable_axis_size_partitioner",
]


class TFKeywords(TypedDict, total=False):
    """``get_variable``'s TensorFlow-only keywords (see its docstring for each)."""

    collections: Sequence[str] | None
    caching_device: Any
    partitioner: Callable[..., Sequence[int]] | None
    validate_shape: bool
    use_resource: bool | None
    custom_getter: Getter | None
    synchronization: VariableSynchronization | None
    aggregation: VariableAggregation | None


TF_KEYWORDS = frozenset(TFKeywords.__annotations__)


class VariableSynchronization(enum.Enum):
    """``tf.VariableSynchronization``: accepted by ``get_variable(synchronization=...)``.

    >>> ts.VariableSynchronization.ON_READ
    <VariableSynchronization.ON_READ: 3>
    """

    AUTO = 0
    NONE = 1
    ON_WRITE = 2
    ON_READ = 3


class VariableAggregation(enum.Enum):
    """``tf.VariableAggregation``: accepted by ``get_variable(aggregation=...)``, no effect."""

    NONE = 0
    SUM = 1
    MEAN = 2
    ONLY_FIRST_REPLICA = 3


Partitioner = Callable[..., Sequence[int]]


def _element_size(dtype: Any, bytes_per_string_element: int) -> int:
    if isinstance(dtype, torch.dtype):
        return dtype.itemsize
    return bytes_per_string_element  # no torch dtype (TensorFlow's strings)


def _check_positive(function: str, **values: Any) -> None:
    for argument, value in values.items():
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ValueError(
                f"{function}: {argument} must be a positive int, got {describe(value)}"
            )


def fixed_size_partitioner(num_shards: int, axis: int = 0) -> Partitioner:
    """``tf.compat.v1.fixed_size_partitioner``: ``num_shards`` shards along ``axis``.
    torchscope does not split the variable (see ``get_variable``'s ``partitioner``).

    >>> ts.fixed_size_partitioner(3)((6, 2), torch.float32)
    [3, 1]
    """
    _check_positive("fixed_size_partitioner", num_shards=num_shards)

    def partitioner(shape: Sequence[int], dtype: Any = None, **unused: Any) -> list[int]:
        partitions = [1] * len(shape)
        partitions[axis] = min(num_shards, shape[axis])
        return partitions

    return partitioner


def variable_axis_size_partitioner(
    max_shard_bytes: int,
    axis: int = 0,
    bytes_per_string_element: int = 16,
    max_shards: int | None = None,
) -> Partitioner:
    """``tf.compat.v1.variable_axis_size_partitioner``: shards of at most
    ``max_shard_bytes`` along ``axis``. torchscope does not split the variable.

    >>> ts.variable_axis_size_partitioner(16)((6, 2), torch.float32)
    [3, 1]
    """
    _check_positive(
        "variable_axis_size_partitioner",
        max_shard_bytes=max_shard_bytes,
        bytes_per_string_element=bytes_per_string_element,
        max_shards=max_shards,
    )

    def partitioner(shape: Sequence[int], dtype: Any = None, **unused: Any) -> list[int]:
        partitions = [1] * len(shape)
        slice_bytes = (
            math.prod(shape) / shape[axis] * _element_size(dtype, bytes_per_string_element)
        )
        slices_per_shard = max(1, math.floor(max_shard_bytes / slice_bytes))
        shards = math.ceil(shape[axis] / slices_per_shard)
        partitions[axis] = min(max_shards, shards) if max_shards else shards
        return partitions

    return partitioner


def min_max_variable_partitioner(
    max_partitions: int = 1,
    axis: int = 0,
    min_slice_size: int = 256 << 10,
    bytes_per_string_element: int = 16,
) -> Partitioner:
    """``tf.compat.v1.min_max_variable_partitioner``: at most ``max_partitions`` shards of
    at least ``min_slice_size`` bytes along ``axis``. torchscope does not split the
    variable.

    >>> ts.min_max_variable_partitioner(4, min_slice_size=16)((6, 2), torch.float32)
    [3, 1]
    """
    _check_positive(
        "min_max_variable_partitioner",
        max_partitions=max_partitions,
        min_slice_size=min_slice_size,
        bytes_per_string_element=bytes_per_string_element,
    )

    def partitioner(shape: Sequence[int], dtype: Any = None, **unused: Any) -> list[int]:
        if axis >= len(shape):
            raise ValueError(
                f"Cannot partition variable along axis {axis} when shape is only {list(shape)}"
            )
        size = math.prod(shape) * _element_size(dtype, bytes_per_string_element)
        partitions = [1] * len(shape)
        partitions[axis] = max(
            1, min(shape[axis], max_partitions, math.ceil(size / min_slice_size))
        )
        return partitions

    return partitioner


def check_partitioner(partitioner: Any, name: str, shape: tuple | None, dtype: Any) -> None:
    """Calls ``partitioner(shape, dtype)`` as TensorFlow does and checks its answer (one
    positive int per dimension); the variable is made whole either way."""
    if not callable(partitioner):
        raise TypeError(
            f"partitioner of variable {name!r} must be callable partitioner(shape, dtype) "
            f"(for example ts.fixed_size_partitioner(3)), got {describe(partitioner)}"
        )
    if shape is None:
        raise ValueError(
            f"variable {name!r} has a partitioner but no shape: give the shape (TensorFlow "
            "needs it to partition, and so does the partitioner)."
        )
    partitions = partitioner(shape, dtype)
    if (
        not isinstance(partitions, (list, tuple))
        or len(partitions) != len(shape)
        or any(isinstance(p, bool) or not isinstance(p, int) or p < 1 for p in partitions)
        or sum(p > 1 for p in partitions) > 1
    ):
        raise ValueError(
            f"partitioner {describe(partitioner)} of variable {name!r} returned "
            f"{partitions!r} for shape {list(shape)}; a partitioner returns one positive int "
            "per dimension, above 1 along one dimension at most."
        )


def check_collections(collections: Any, name: str) -> list[str] | None:
    """``collections`` as a list of keys (None: not given)."""
    if collections is None:
        return None
    if isinstance(collections, str) or not isinstance(collections, (list, tuple, set)):
        raise TypeError(
            f"collections of variable {name!r} must be a list of collection keys (for "
            f"example [ts.GraphKeys.LOCAL_VARIABLES]), got {describe(collections)}"
        )
    for key in collections:
        if not isinstance(key, str):
            raise TypeError(
                f"collections of variable {name!r} must hold str keys, got {describe(key)}"
            )
    return list(dict.fromkeys(collections))  # once each, in order


def check_tf_keywords(
    name: str,
    trainable: bool | None,
    caching_device: Any,
    validate_shape: Any,
    use_resource: Any,
    synchronization: Any,
    aggregation: Any,
) -> bool | None:
    """Checks the keywords that have no effect (or one on ``trainable``); returns
    ``trainable`` as ``synchronization`` leaves it."""
    if synchronization is not None and not isinstance(synchronization, VariableSynchronization):
        raise ValueError(
            f"Invalid variable synchronization mode: {synchronization!r} for variable: "
            f"{name!r}; give a ts.VariableSynchronization (AUTO, NONE, ON_WRITE, ON_READ)."
        )
    if aggregation is not None and not isinstance(aggregation, VariableAggregation):
        raise ValueError(
            f"Invalid variable aggregation mode: {aggregation!r} for variable: {name!r}; "
            "give a ts.VariableAggregation (NONE, SUM, MEAN, ONLY_FIRST_REPLICA)."
        )
    for argument, value in (("validate_shape", validate_shape), ("use_resource", use_resource)):
        if value is not None and not isinstance(value, bool):
            raise TypeError(
                f"{argument} of variable {name!r} must be a bool, got {describe(value)}"
            )
    if caching_device is not None and not (
        isinstance(caching_device, (str, torch.device)) or callable(caching_device)
    ):
        raise TypeError(
            f"caching_device of variable {name!r} must be a device string or a function "
            f"(it has no effect in torchscope), got {describe(caching_device)}"
        )
    if trainable is None and synchronization is VariableSynchronization.ON_READ:
        return False  # TensorFlow: ON_READ variables are not trainable unless asked
    return trainable
