"""Writing a TensorFlow V2 checkpoint (see ``_bundle`` for the format)."""

from __future__ import annotations

import contextlib
import os
import struct
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

from . import _crc
from ._bundle import _CHUNK, STRING, TF_DTYPES, _buffer, data_path
from ._proto import BundleEntry, BundleHeader, put_varint
from ._sstable import write_table

__all__ = ["BundleWriter"]

_FALLOCATE = getattr(os, "posix_fallocate", None)  # not on macOS or Windows
_WRITEV = hasattr(os, "writev")  # not on Windows
_IOV_MAX = 512  # buffers per writev call (POSIX guarantees at least 16; Linux takes 1024)
_GATHER = 1 << 20  # bytes of small tensors written together


class BundleWriter:
    """Writes a checkpoint: tensors go to the data file as they are added, the index at
    ``finish()``. Both are written under temporary names and renamed at the end, data
    first, so a failure midway leaves any checkpoint already at ``prefix`` intact."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._data_name = data_path(prefix, 0, 1)
        self._temp = f".tempstate{os.getpid()}_{threading.get_ident()}"
        self._data = open(self._data_name + self._temp, "wb", buffering=0)  # noqa: SIM115
        self._offset = 0
        self._entries: dict[bytes, bytes] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._no_fallocate = False
        self._pending: list[tuple[torch.Tensor, memoryview]] = []
        self._pending_bytes = 0

    def add(self, key: str, value: torch.Tensor | Iterable) -> None:
        """Writes ``value`` (a tensor, or nested lists of bytes/str for a string tensor)."""
        name = key.encode("utf-8", "surrogateescape")
        if not name or name in self._entries:
            raise ValueError(f"checkpoint key {key!r} is empty or given twice")
        if isinstance(value, torch.Tensor):
            entry = self._add_tensor(key, value)
        else:
            entry = self._add_strings(value)
        self._entries[name] = entry.serialize()

    def _add_tensor(self, key: str, value: torch.Tensor) -> BundleEntry:
        if value.dtype not in TF_DTYPES:
            raise TypeError(f"checkpoint key {key!r}: TensorFlow has no dtype for {value.dtype}")
        if value.is_meta:
            raise ValueError(f"checkpoint key {key!r}: a meta tensor has no values to save")
        if getattr(value, "device_mesh", None) is not None:
            raise ValueError(
                f"checkpoint key {key!r}: a DTensor (FSDP2, tensor parallel) holds only this "
                "rank's part of the variable. Gather it on every rank (a collective: "
                "{name: v.full_tensor() for ...}) and save those tensors from one rank, or "
                "save the shards with torch.distributed.checkpoint"
            )
        tensor = value.detach()
        if not tensor.is_cpu or not tensor.is_contiguous() or tensor.is_conj() or tensor.is_neg():
            tensor = tensor.to("cpu", memory_format=torch.contiguous_format).resolve_conj()
            tensor = tensor.resolve_neg().contiguous()
        if tensor.numel() and not tensor.data_ptr():
            raise ValueError(
                f"checkpoint key {key!r}: a {type(value).__name__} without memory of its own "
                "(a wrapper tensor subclass) cannot be saved; save a plain tensor of its values"
            )
        view = memoryview(_buffer(tensor)).cast("B")
        if len(view) <= _CHUNK // 16:
            crc = _crc.value(view)
            self._gather(tensor, view)
        else:  # checksum each chunk in the worker while it is written
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="torchscope-crc")
            self._reserve(len(view))
            crc_of = self._pool.submit(_crc.value, view[:0])
            for start in range(0, len(view), _CHUNK):
                chunk = view[start : start + _CHUNK]
                crc_of = self._pool.submit(_extend_after, crc_of, chunk)
                self._write(chunk)
            crc = crc_of.result()
        entry = BundleEntry(
            TF_DTYPES[tensor.dtype], tuple(tensor.shape), 0, self._offset, len(view), _crc.mask(crc)
        )
        self._offset += len(view)
        return entry

    def _add_strings(self, value: Any) -> BundleEntry:
        shape, items = _flatten_strings(value)
        lengths = bytearray()
        crc = 0
        for item in items:
            put_varint(lengths, len(item))
            crc = _crc.extend(
                crc, struct.pack("<I" if len(item) <= 0xFFFFFFFF else "<Q", len(item))
            )
        checksum = struct.pack("<I", _crc.mask(crc))
        crc = _crc.extend(crc, checksum)
        body = b"".join(items)
        crc = _crc.extend(crc, body)
        raw = bytes(lengths) + checksum + body
        self._write(memoryview(raw))
        entry = BundleEntry(STRING, shape, 0, self._offset, len(raw), _crc.mask(crc))
        self._offset += len(raw)
        return entry

    def _reserve(self, size: int) -> None:
        """Allocates the file's blocks for the next ``size`` bytes at once, as
        ``ndarray.tofile`` does: writing 1 GiB into them took 119 ms instead of 176 (ext4,
        page cache warm). Where the call or the file system lacks it, writing allocates."""
        if _FALLOCATE is not None and not self._no_fallocate:
            try:
                _FALLOCATE(self._data.fileno(), self._offset, size)
            except OSError:
                self._no_fallocate = True

    def _gather(self, tensor: torch.Tensor, view: memoryview) -> None:
        """Queues a small tensor's bytes (the tensor kept alive with them): small tensors
        go to the file together, up to ``_GATHER`` bytes in one call (2,000 tensors of
        32 KiB: 43 ms one write each)."""
        self._pending.append((tensor, view))
        self._pending_bytes += len(view)
        if self._pending_bytes >= _GATHER:
            self._flush()

    def _flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        views = [view for _, view in pending]
        for start in range(0, len(views), _IOV_MAX):
            batch = views[start : start + _IOV_MAX]
            done = os.writev(self._data.fileno(), batch) if _WRITEV else 0
            if done < sum(len(v) for v in batch):  # no writev, or a short write: the rest
                rest = memoryview(b"".join(batch))
                self._write_all(rest[done:])
        pending.clear()  # only now: the views point into the tensors' memory
        self._pending_bytes = 0

    def _write(self, chunk: memoryview) -> None:
        self._flush()  # the queued small tensors come first
        self._write_all(chunk)

    def _write_all(self, chunk: memoryview) -> None:
        done = 0
        while done < len(chunk):
            done += self._data.write(chunk[done:])

    def _close(self) -> None:
        self._data.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def finish(self) -> None:
        """Writes the index and puts both files in place."""
        self._flush()
        self._close()
        items = [(b"", BundleHeader(num_shards=1).serialize()), *sorted(self._entries.items())]
        index = self.prefix + ".index"
        with open(index + self._temp, "wb") as f:
            write_table(f, items)
        os.replace(self._data_name + self._temp, self._data_name)
        os.replace(index + self._temp, index)

    def abort(self) -> None:
        """Removes the temporary files (after a failure)."""
        self._close()
        for path in (self._data_name + self._temp, self.prefix + ".index" + self._temp):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)


def _extend_after(previous: Future, chunk: memoryview) -> int:
    return _crc.extend(previous.result(), chunk)  # the worker runs in order: it is done


def _flatten_strings(value: Any) -> tuple[tuple[int, ...], list[bytes]]:
    if isinstance(value, (bytes, str)):
        return (), [value.encode() if isinstance(value, str) else value]
    value = list(value)
    parts = [_flatten_strings(v) for v in value]
    shapes = {shape for shape, _ in parts}
    if len(shapes) > 1:
        raise ValueError("a string tensor's nested lists must be rectangular")
    inner = shapes.pop() if shapes else ()
    return (len(value), *inner), [item for _, items in parts for item in items]
