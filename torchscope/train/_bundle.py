"""TensorFlow's V2 checkpoint format (a "tensor bundle"): tensors to files and back.

A checkpoint ``prefix`` is ``prefix.index`` (a table: key -> where the tensor is,
see ``_sstable`` and ``_proto``) and data files ``prefix.data-NNNNN-of-NNNNN``
holding the tensors' bytes, little-endian and C-ordered, each tensor's masked
CRC-32C in its index entry. A partitioned variable's entry lists its slices; each
slice is stored under a key encoded from the name and the slice's extents.

Reading into existing tensors (``BundleReader.read_into``) is all or nothing: the
index, the files and every CRC are checked before the first byte is written.
"""

from __future__ import annotations

import ctypes
import math
import os
import struct
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from . import _crc
from ._proto import BundleEntry, BundleHeader, ProtoError, Slice, read_varint
from ._sstable import TableError, read_table

__all__ = ["DTYPES", "BundleReader", "CheckpointError", "data_path", "slice_key"]

STRING = 7
DTYPES: dict[int, torch.dtype] = {
    1: torch.float32,
    2: torch.float64,
    3: torch.int32,
    4: torch.uint8,
    5: torch.int16,
    6: torch.int8,
    8: torch.complex64,
    9: torch.int64,
    10: torch.bool,
    14: torch.bfloat16,
    17: torch.uint16,
    18: torch.complex128,
    19: torch.float16,
    22: torch.uint32,
    23: torch.uint64,
    24: torch.float8_e5m2,
    25: torch.float8_e4m3fn,
}
TF_DTYPES = {dtype: number for number, dtype in DTYPES.items()}
_TF_NAMES = {11: "qint8", 12: "quint8", 13: "qint32", 15: "qint16", 16: "quint16", 20: "resource"}
_TF_NAMES |= {21: "variant", 26: "float8_e4m3fnuz", 27: "float8_e4m3b11fnuz", 28: "float8_e5m2fnuz"}
_TF_NAMES |= {29: "int4", 30: "uint4"}
_VERSION = 1  # the bundle format version this code reads and writes (kTensorBundleVersion)
_CHUNK = 4 << 20  # bytes read or checksummed at a time (4 MiB measured fastest here)


class CheckpointError(ValueError):
    """A checkpoint that cannot be read: missing, truncated, corrupt or of an unknown kind."""


def data_path(prefix: str, shard: int, num_shards: int) -> str:
    return f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"


def _buffer(tensor: torch.Tensor) -> Any:
    """A writable bytes-like view of a contiguous CPU tensor's memory."""
    nbytes = tensor.numel() * tensor.element_size()
    if nbytes == 0:
        return bytearray()
    return (ctypes.c_ubyte * nbytes).from_address(tensor.data_ptr())


# -- slice keys: TensorFlow's OrderedCode ---------------------------------------------------------

_HEADER_BITS = [(0, 0), (0x80, 0), (0xC0, 0), (0xE0, 0), (0xF0, 0), (0xF8, 0), (0xFC, 0)]
_HEADER_BITS += [(0xFE, 0), (0xFF, 0), (0xFF, 0x80), (0xFF, 0xC0)]


def _signed_increasing(value: int) -> bytes:
    """OrderedCode::WriteSignedNumIncreasing."""
    x = ~value if value < 0 else value
    if x < 64:
        return bytes([(0x80 ^ value) & 0xFF])
    length = x.bit_length() // 7 + 1
    raw = bytearray(value.to_bytes(10, "big", signed=True)[10 - length :])
    raw[0] ^= _HEADER_BITS[length][0]
    raw[1] ^= _HEADER_BITS[length][1]
    return bytes(raw)


def slice_key(name: str, piece: Slice) -> bytes:
    """The key a slice of a partitioned variable is stored under (EncodeTensorNameSlice)."""
    escaped = name.encode().replace(b"\xff", b"\xff\x00").replace(b"\x00", b"\x00\xff")
    dims = len(piece.extents)
    out = bytearray(b"\x00" + escaped + b"\x00\x01")
    out += bytes([1, dims]) if dims else b"\x00"  # WriteNumIncreasing(dims)
    for start, length in piece.extents:
        out += _signed_increasing(start) + _signed_increasing(-1 if length is None else length)
    return bytes(out)


# -- reading -------------------------------------------------------------------------------------


@dataclass
class _Span:
    """Bytes of one stored tensor to read: where, how many, and the CRC they must have."""

    key: str
    entry: BundleEntry


class BundleReader:
    """The index of a checkpoint, and its tensors on demand.

    Args:
        prefix: the checkpoint prefix (``.../model.ckpt``).
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        index = prefix + ".index"
        try:
            with open(index, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raise CheckpointError(f"checkpoint index {index} not found") from None
        try:
            items = read_table(raw, index)
            if not items or items[0][0] != b"":
                raise CheckpointError(f"{index}: no bundle header (not a V2 checkpoint index)")
            self.header = BundleHeader.parse(items[0][1])
            self._check_header(index)
            self.entries: dict[str, BundleEntry] = {}
            self._slices: dict[bytes, BundleEntry] = {}
            for key, value in items[1:]:
                entry = BundleEntry.parse(value)
                if key[:1] == b"\x00":
                    self._slices[key] = entry
                else:
                    self.entries[key.decode("utf-8", "surrogateescape")] = entry
        except (TableError, ProtoError) as e:
            raise CheckpointError(
                str(e) if isinstance(e, TableError) else f"{index}: {e}"
            ) from None
        self._files: dict[int, int] = {}  # shard -> size, checked on first use

    def _check_header(self, index: str) -> None:
        h = self.header
        if h.big_endian:
            raise CheckpointError(
                f"{index}: the checkpoint was written big-endian; torchscope reads little-endian "
                "checkpoints only (re-save it on a little-endian machine)"
            )
        if h.min_consumer > _VERSION or _VERSION in h.bad_consumers:
            raise CheckpointError(
                f"{index}: checkpoint format version {h.producer} needs a reader of version "
                f"{h.min_consumer} or later; torchscope reads version {_VERSION}"
            )
        if h.num_shards < 1:
            raise CheckpointError(f"{index}: bad shard count {h.num_shards}")

    # -- what is in it

    def keys(self) -> list[str]:
        return sorted(self.entries)

    def dtype(self, key: str) -> torch.dtype | type[bytes]:
        """The torch dtype of ``key``'s tensor; ``bytes`` for a string tensor."""
        number = self._entry(key).dtype
        if number == STRING:
            return bytes
        if number not in DTYPES:
            name = _TF_NAMES.get(number, f"enum {number}")
            raise CheckpointError(
                f"tensor {key!r} of checkpoint {self.prefix} has TensorFlow dtype {name}, "
                "which torch has no equivalent of"
            )
        return DTYPES[number]

    def shape(self, key: str) -> tuple[int, ...]:
        return self._entry(key).shape

    def _entry(self, key: str) -> BundleEntry:
        try:
            return self.entries[key]
        except KeyError:
            raise KeyError(f"tensor {key!r} not found in checkpoint {self.prefix}") from None

    # -- reading one tensor

    def read(self, key: str, *, verify: bool = True) -> torch.Tensor | Any:
        """``key``'s tensor (string tensors: nested lists of bytes, a scalar as bytes)."""
        entry = self._entry(key)
        if entry.dtype == STRING:
            return self._read_strings(key, entry, verify)
        out = torch.empty(entry.shape, dtype=self.dtype(key))  # type: ignore[arg-type]
        spans = self._spans(key, entry)
        self._check_spans(spans, key, out)
        if entry.slices:
            for span, piece in zip(spans, entry.slices, strict=True):
                part = torch.empty(span.entry.shape, dtype=out.dtype)
                self._fill([(span, part)], verify)
                out[_region(piece, out.shape)] = part
        else:
            self._fill([(spans[0], out)], verify)
        return out

    def _spans(self, key: str, entry: BundleEntry) -> list[_Span]:
        if not entry.slices:
            return [_Span(key, entry)]
        spans = []
        for piece in entry.slices:
            found = self._slices.get(slice_key(key, piece))
            if found is None:
                raise CheckpointError(
                    f"checkpoint {self.prefix}: slice {piece.extents} of partitioned tensor "
                    f"{key!r} is listed but not stored (damaged index)"
                )
            spans.append(_Span(key, found))
        return spans

    def slice_keys(self, key: str) -> list[bytes]:
        """The keys of a partitioned tensor's stored slices."""
        return [slice_key(key, piece) for piece in self._entry(key).slices]

    def _check_spans(self, spans: list[_Span], key: str, like: torch.Tensor) -> None:
        """Sizes agree with shapes and dtypes, and the data files hold every byte."""
        for span in spans:
            entry = span.entry
            expected = math.prod(entry.shape) * like.element_size()
            if entry.size != expected:
                raise CheckpointError(
                    f"tensor {key!r} of checkpoint {self.prefix}: the index says {entry.size} "
                    f"bytes for shape {list(entry.shape)}, {like.dtype} needs {expected} "
                    "(damaged index)"
                )
            self._check_file(span)

    def _check_file(self, span: _Span) -> None:
        entry = span.entry
        shard = entry.shard_id
        num = self.header.num_shards
        if not 0 <= shard < num:
            raise CheckpointError(
                f"tensor {span.key!r} of checkpoint {self.prefix} is in shard {shard} of {num}"
            )
        path = data_path(self.prefix, shard, num)
        size = self._files.get(shard)
        if size is None:
            try:
                size = self._files[shard] = os.path.getsize(path)
            except OSError:
                raise CheckpointError(
                    f"data file {path} of checkpoint {self.prefix} is missing (it holds "
                    f"{span.key!r})"
                ) from None
        if entry.offset < 0 or entry.offset + entry.size > size:
            raise CheckpointError(
                f"data file {path} is truncated: tensor {span.key!r} needs bytes "
                f"{entry.offset}..{entry.offset + entry.size}, the file has {size}"
            )

    def _read_strings(self, key: str, entry: BundleEntry, verify: bool) -> Any:
        if entry.slices:
            raise CheckpointError(f"partitioned string tensor {key!r} is not supported")
        span = _Span(key, entry)
        self._check_file(span)
        with open(data_path(self.prefix, entry.shard_id, self.header.num_shards), "rb") as f:
            f.seek(entry.offset)
            raw = f.read(entry.size)
        n = math.prod(entry.shape)
        pos, lengths, crc = 0, [], 0
        try:
            for _ in range(n):
                length, pos = read_varint(raw, pos)
                lengths.append(length)
                crc = _crc.extend(crc, struct.pack("<I" if length <= 0xFFFFFFFF else "<Q", length))
            crc = _crc.extend(crc, raw[pos : pos + 4])
            pos += 4
        except ValueError:
            raise CheckpointError(f"string tensor {key!r}: damaged lengths") from None
        items = []
        for length in lengths:
            items.append(raw[pos : pos + length])
            pos += length
        if pos != len(raw):
            raise CheckpointError(f"string tensor {key!r}: {len(raw) - pos} stray bytes")
        if verify and _crc.mask(_crc.extend(crc, raw[pos - sum(lengths) : pos])) != entry.crc32c:
            self._corrupt(span)
        return _nest(items, list(entry.shape))

    def _corrupt(self, span: _Span) -> None:
        path = data_path(self.prefix, span.entry.shard_id, self.header.num_shards)
        raise CheckpointError(
            f"checksum mismatch for tensor {span.key!r} in {path} (bytes {span.entry.offset}.."
            f"{span.entry.offset + span.entry.size}): the checkpoint is corrupt"
        )

    # -- reading many tensors into existing ones, all or nothing

    def read_into(
        self,
        pairs: list[tuple[str, torch.Tensor]],
        *,
        verify: bool = True,
        fill_shard: Callable[..., None] | None = None,
    ) -> None:
        """Reads each key's tensor into the given tensor (same shape and dtype, any device);
        ``fill_shard(reader, key, entry, spans, target)`` fills a DTensor's local shard.

        Everything is checked before anything is written: shapes, dtypes, the files'
        sizes and, with ``verify``, every CRC. So a failure leaves the tensors as they were.
        """
        jobs = []
        for key, target in pairs:
            entry = self._entry(key)
            dtype = self.dtype(key)
            if dtype is bytes:
                raise CheckpointError(f"tensor {key!r} holds strings; it cannot fill a tensor")
            if tuple(target.shape) != entry.shape or target.dtype != dtype:
                raise ValueError(
                    f"tensor {key!r} of checkpoint {self.prefix} is {dtype} {list(entry.shape)}; "
                    f"it cannot fill a {target.dtype} tensor of shape {list(target.shape)}"
                )
            spans = self._spans(key, entry)
            self._check_spans(spans, key, target)
            jobs.append((key, entry, spans, target))
        if verify:
            self._verify([span for _, _, spans, _ in jobs for span in spans])
        with torch.no_grad():
            for key, entry, spans, target in jobs:
                if fill_shard is not None and getattr(target, "device_mesh", None) is not None:
                    fill_shard(self, key, entry, spans, target)
                elif entry.slices:
                    for span, piece in zip(spans, entry.slices, strict=True):
                        part = torch.empty(span.entry.shape, dtype=target.dtype)
                        self._fill([(span, part)], False)
                        target[_region(piece, target.shape)] = part
                elif target.is_cpu and target.is_contiguous():
                    self._fill([(spans[0], target)], False)
                else:
                    part = torch.empty(entry.shape, dtype=target.dtype)
                    self._fill([(spans[0], part)], False)
                    target.copy_(part)

    def verify_all(self) -> None:
        """Checks every tensor's CRC (and that the files hold every byte)."""
        spans = []
        for key, entry in self.entries.items():
            if entry.dtype == STRING:
                self._read_strings(key, entry, True)
                continue
            if entry.dtype not in DTYPES:
                continue  # not readable anyway; reading it says why
            like = torch.empty(0, dtype=DTYPES[entry.dtype])
            found = self._spans(key, entry)
            self._check_spans(found, key, like)
            spans += found
        self._verify(spans)

    def _verify(self, spans: list[_Span]) -> None:
        """Checks the CRC of every span: each file is read in order, in chunks of up to
        4 MiB (many small tensors in one read), checksummed in a second thread while the
        next chunk is read."""
        spans = sorted(spans, key=lambda s: (s.entry.shard_id, s.entry.offset))
        with _Files(self) as files, _Checker() as checker:
            batch: list[_Span] = []

            def flush() -> None:
                if not batch:
                    return
                first, last = batch[0].entry, batch[-1].entry
                buffer = checker.buffer()[: last.offset + last.size - first.offset]
                files.read(batch[0], first.offset, buffer)
                pieces, at = [], 0
                for span in batch:
                    pieces.append((span, buffer[at : at + span.entry.size], True, True))
                    at += span.entry.size
                checker.check(pieces)
                batch.clear()

            for span in spans:
                entry = span.entry
                if entry.size > _CHUNK // 16:  # large: streamed in chunks of its own
                    flush()
                    for at in range(0, entry.size, _CHUNK):
                        buffer = checker.buffer()[: min(_CHUNK, entry.size - at)]
                        files.read(span, entry.offset + at, buffer)
                        last = at + len(buffer) == entry.size
                        checker.check([(span, buffer, at == 0, last)])
                    continue
                if batch:
                    prev = batch[-1].entry
                    if (
                        prev.shard_id != entry.shard_id
                        or prev.offset + prev.size != entry.offset
                        or entry.offset + entry.size - batch[0].entry.offset > _CHUNK
                    ):
                        flush()
                batch.append(span)
            flush()
        if checker.corrupt:
            self._corrupt(checker.corrupt[0])

    def _fill(self, jobs: list[tuple[_Span, torch.Tensor]], verify: bool) -> None:
        """Reads each span into its contiguous CPU tensor (checking the CRC if asked)."""
        with _Files(self) as files:
            for span, out in jobs:
                buffer = memoryview(_buffer(out)).cast("B")
                files.read(span, span.entry.offset, buffer)
                if verify and _crc.mask(_crc.value(buffer)) != span.entry.crc32c:
                    self._corrupt(span)


class _Files:
    """The data files of one reading pass, each opened once."""

    def __init__(self, reader: BundleReader) -> None:
        self._reader = reader
        self._fds: dict[int, int] = {}

    def __enter__(self) -> _Files:
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self._fds.values():
            os.close(fd)

    def read(self, span: _Span, offset: int, buffer: memoryview) -> None:
        """Fills ``buffer`` with the bytes at ``offset`` of ``span``'s data file."""
        shard = span.entry.shard_id
        fd = self._fds.get(shard)
        if fd is None:
            fd = self._fds[shard] = os.open(self._path(shard), os.O_RDONLY)
        done = 0
        while done < len(buffer):
            n = os.preadv(fd, [buffer[done:]], offset + done)
            if not n:
                raise CheckpointError(
                    f"data file {self._path(shard)} ended early while reading tensor "
                    f"{span.key!r} (truncated)"
                )
            done += n

    def _path(self, shard: int) -> str:
        return data_path(self._reader.prefix, shard, self._reader.header.num_shards)


class _Checker:
    """Checks CRCs in a worker thread while the caller reads on. Pieces of a span come in
    order (``first``/``last`` mark its ends); two buffers alternate, and a buffer is handed
    out again only once the checks reading it are done."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="torchscope-crc")
        self._buffers = [memoryview(bytearray(_CHUNK)), memoryview(bytearray(_CHUNK))]
        self._pending: list[Future | None] = [None, None]
        self._turn = 0
        self._crc = 0
        self.corrupt: list[_Span] = []

    def __enter__(self) -> _Checker:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)

    def buffer(self) -> memoryview:
        self._turn ^= 1
        pending = self._pending[self._turn]
        if pending is not None:
            pending.result()
        return self._buffers[self._turn]

    def check(self, pieces: list[tuple[_Span, memoryview, bool, bool]]) -> None:
        self._pending[self._turn] = self._pool.submit(self._work, pieces)

    def _work(self, pieces: list[tuple[_Span, memoryview, bool, bool]]) -> None:
        for span, data, first, last in pieces:
            self._crc = _crc.extend(0 if first else self._crc, data)
            if last and _crc.mask(self._crc) != span.entry.crc32c:
                self.corrupt.append(span)


def _region(piece: Slice, shape: torch.Size | tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(
        slice(start, dim if length is None or length < 0 else start + length)
        for (start, length), dim in zip(piece.extents, shape, strict=True)
    )


def _nest(items: list[bytes], shape: list[int]) -> Any:
    if not shape:
        return items[0]
    if len(shape) == 1:
        return items
    step = math.prod(shape[1:])
    return [_nest(items[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]
