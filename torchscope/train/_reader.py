"""Reading TensorFlow checkpoints: ``load_checkpoint``, ``list_variables``, ``CheckpointReader``."""

from __future__ import annotations

import os
import re
from typing import Any

import torch

from .._types import PathLike
from ._bundle import BundleReader, CheckpointError
from ._shards import check_shards, fill_shard
from ._state_file import latest_checkpoint

__all__ = ["CheckpointReader", "checkpoint_prefix", "list_variables", "load_checkpoint"]

_DATA_SUFFIX = re.compile(r"\.data-\d{5}-of-\d{5}$")


def checkpoint_prefix(ckpt_dir_or_file: PathLike) -> str:
    """The checkpoint prefix a folder (its newest checkpoint), a prefix, or either file of
    the pair (``.index``, ``.data-NNNNN-of-NNNNN``) stands for."""
    path = os.fspath(ckpt_dir_or_file)
    if os.path.isdir(path):
        prefix = latest_checkpoint(path)
        if prefix is None:
            raise CheckpointError(
                f"no checkpoint in folder {path}: it has no 'checkpoint' state file, or the "
                "checkpoint that file names is gone (pass a checkpoint prefix instead, such as "
                f"{os.path.join(path, 'model.ckpt')})"
            )
        return prefix
    if path.endswith(".index"):
        return path[: -len(".index")]
    match = _DATA_SUFFIX.search(path)
    if match:
        return path[: match.start()]
    if not os.path.exists(path + ".index"):
        if os.path.exists(path) or os.path.exists(path + ".meta"):
            raise CheckpointError(
                f"{path} is not a V2 checkpoint (no {path}.index); torchscope reads the V2 "
                "format TensorFlow has written by default since 1.2"
            )
        raise CheckpointError(f"checkpoint {path} not found (no {path}.index)")
    return path


class CheckpointReader:
    """A TensorFlow checkpoint's tensors, by key (``tf.train.load_checkpoint``'s reader).

    Args:
        ckpt_dir_or_file: a folder (its newest checkpoint, from its ``checkpoint`` state
            file), a checkpoint prefix (``.../model.ckpt``) or either file of the pair.
        verify: check each tensor's CRC when it is read (TensorFlow's default).

    String tensors come back as ``bytes`` (nested lists for non-scalars), everything else
    as torch tensors on the CPU. Partitioned variables are reassembled; their slices are
    not listed.

    >>> import os, tempfile
    >>> _ = ts.get_variable("w", [5, 6])
    >>> path = ts.train.Saver().save(os.path.join(tempfile.mkdtemp(), "model.ckpt"))
    >>> reader = ts.train.load_checkpoint(path)
    >>> reader.get_variable_to_shape_map(), reader.get_tensor("w").dtype
    ({'w': [5, 6]}, torch.float32)
    """

    def __init__(self, ckpt_dir_or_file: PathLike, *, verify: bool = True) -> None:
        self._bundle = BundleReader(checkpoint_prefix(ckpt_dir_or_file))
        self.verify = verify

    @property
    def prefix(self) -> str:
        """The checkpoint prefix read."""
        return self._bundle.prefix

    def keys(self) -> list[str]:
        """Every tensor's key, sorted."""
        return self._bundle.keys()

    def has_tensor(self, key: str) -> bool:
        return key in self._bundle.entries

    def get_tensor(self, key: str) -> torch.Tensor | Any:
        """``key``'s tensor; ``KeyError`` naming the checkpoint if it holds none."""
        return self._bundle.read(key, verify=self.verify)

    def get_variable_to_shape_map(self) -> dict[str, list[int]]:
        return {key: list(self._bundle.shape(key)) for key in self.keys()}

    def get_variable_to_dtype_map(self) -> dict[str, torch.dtype | type[bytes]]:
        """Key -> torch dtype (``bytes`` for string tensors)."""
        return {key: self._bundle.dtype(key) for key in self.keys()}

    def nbytes(self, key: str) -> int:
        """The bytes ``key``'s tensor takes in the data files."""
        entry = self._bundle._entry(key)
        if not entry.slices:
            return entry.size
        return sum(self._bundle._slices[s].size for s in self._bundle.slice_keys(key))

    def read_into(self, pairs: list[tuple[str, torch.Tensor]]) -> None:
        """Reads each key's tensor into the given tensor, in place. Shapes, dtypes, files
        and (with ``verify``) every CRC are checked before anything is written. A DTensor
        gets its local shard only (see ``_shards``)."""
        check_shards(pairs)
        self._bundle.read_into(pairs, verify=self.verify, fill_shard=fill_shard)

    def verify_all(self) -> None:
        """Checks every tensor's CRC; ``CheckpointError`` naming the first corrupt one."""
        self._bundle.verify_all()

    def __repr__(self) -> str:
        return f"CheckpointReader({self.prefix!r}, {len(self.keys())} tensors)"


def load_checkpoint(ckpt_dir_or_file: PathLike) -> CheckpointReader:
    """A reader for a TensorFlow checkpoint, as ``tf.train.load_checkpoint``; no TensorFlow
    needed. See :class:`CheckpointReader`."""
    return CheckpointReader(ckpt_dir_or_file)


def list_variables(ckpt_dir_or_file: PathLike) -> list[tuple[str, list[int]]]:
    """(key, shape) of every tensor in a checkpoint, sorted by key, as
    ``tf.train.list_variables``."""
    reader = load_checkpoint(ckpt_dir_or_file)
    return sorted(reader.get_variable_to_shape_map().items())
