"""Reading checkpoint tensors into sharded variables: each rank fills the local shard of a
``DTensor`` (FSDP2's parameters, or any placed ``Shard(dim)``/``Replicate``) from the rows of
its box, so no rank makes a full tensor."""

from __future__ import annotations

import math
from typing import Any

import torch

from ._bundle import DTYPES, BundleReader, _buffer, _Files, _region, _Span
from ._proto import BundleEntry

__all__ = ["ROW_CHUNK", "check_shards", "fill_shard", "local_box"]

ROW_CHUNK = 4 << 20  # bytes of rows read at a time when a shard cuts the rows


def check_shards(pairs: list[tuple[str, Any]]) -> None:
    """Refuses, before anything is read, a DTensor whose placement holds no box."""
    for key, target in pairs:
        if getattr(target, "device_mesh", None) is not None:
            local_box(key, target)


def fill_shard(
    reader: BundleReader, key: str, entry: BundleEntry, spans: list[_Span], target: Any
) -> None:
    """Fills the local shard of the DTensor ``target`` from ``key``'s stored bytes,
    reading only the rows of the shard's box; no tensor bigger than the shard (or one
    ``ROW_CHUNK`` of rows, or one stored slice of a partitioned tensor) is made."""
    local, box = local_box(key, target)
    if local.numel() == 0:
        return
    if entry.slices:
        for span, piece in zip(spans, entry.slices, strict=True):
            stored = _region(piece, target.shape)
            common = [_overlap(a, b) for a, b in zip(stored, box, strict=True)]
            if any(c.start >= c.stop for c in common):
                continue
            part = torch.empty(span.entry.shape, dtype=target.dtype)
            reader._fill([(span, part)], False)
            local[_shift(common, box)] = part[_shift(common, stored)]
        return
    span, shape = spans[0], tuple(target.shape)
    if not shape:
        local.copy_(_read_rows(reader, span, shape, 0, 1))
        return
    inner = box[1:]
    whole_rows = all(b.start == 0 and b.stop == n for b, n in zip(inner, shape[1:], strict=True))
    if whole_rows and local.is_cpu and local.is_contiguous():
        _read_rows(reader, span, shape, box[0].start, box[0].stop, out=local)
        return
    row_bytes = math.prod(shape[1:]) * target.element_size()
    step = max(1, ROW_CHUNK // max(row_bytes, 1))
    for first in range(box[0].start, box[0].stop, step):
        last = min(first + step, box[0].stop)
        rows = _read_rows(reader, span, shape, first, last)
        start = first - box[0].start
        local[start : start + last - first] = rows[(slice(None), *inner)]


def _read_rows(
    reader: BundleReader,
    span: _Span,
    shape: tuple[int, ...],
    first: int,
    last: int,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Rows ``[first, last)`` (along the first dimension) of an unpartitioned tensor,
    read into ``out`` (contiguous, on CPU) or a new tensor."""
    dtype = DTYPES[span.entry.dtype]
    rows = (last - first, *shape[1:]) if shape else ()
    if out is None:
        out = torch.empty(rows, dtype=dtype)
    row_bytes = math.prod(shape[1:]) * out.element_size()
    with _Files(reader) as files:
        files.read(span, span.entry.offset + first * row_bytes, memoryview(_buffer(out)).cast("B"))
    return out


def local_box(key: str, target: Any) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """A DTensor's local tensor, and the box of the global tensor it holds. Shard and
    Replicate placements hold a box; others (Partial, strided shards) are refused."""
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    placements = tuple(target.placements)
    if not all(type(p) in (Shard, Replicate) for p in placements):
        raise ValueError(
            f"cannot read checkpoint tensor {key!r} into a DTensor placed {placements}: "
            "only Shard(dim) and Replicate placements (FSDP2's, DDP's) are read shard by shard"
        )
    shape, offset = compute_local_shape_and_global_offset(
        target.shape, target.device_mesh, placements
    )
    box = tuple(slice(o, o + n) for o, n in zip(offset, shape, strict=True))
    return target.to_local(), box


def _overlap(a: slice, b: slice) -> slice:
    return slice(max(a.start, b.start), min(a.stop, b.stop))


def _shift(region: list[slice], origin: tuple[slice, ...]) -> tuple[slice, ...]:
    """``region`` (global coordinates) inside a tensor whose corner is ``origin``'s."""
    return tuple(
        slice(r.start - o.start, r.stop - o.start) for r, o in zip(region, origin, strict=True)
    )
