"""The few protocol-buffer messages of a TensorFlow checkpoint, read and written by hand.

A V2 checkpoint's index maps each tensor's key to a ``BundleEntryProto`` (dtype,
shape, which data file, offset, size, CRC, and for a partitioned variable its
slices); the empty key holds the ``BundleHeaderProto``. These are the messages of
``tensorflow/core/protobuf/tensor_bundle.proto``, ``tensor_shape.proto`` and
``tensor_slice.proto``, with only the fields a checkpoint uses. Unknown fields are
skipped, as protobuf readers do.

>>> entry = BundleEntry(dtype=1, shape=(2, 3), shard_id=0, offset=8, size=24, crc32c=7)
>>> BundleEntry.parse(entry.serialize()) == entry
True
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["BundleEntry", "BundleHeader", "Slice", "put_varint", "read_varint"]

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class ProtoError(ValueError):
    """A message that cannot be parsed."""


def put_varint(out: bytearray, value: int) -> None:
    """Appends ``value`` (negative: as a 64-bit two's complement, as protobuf does)."""
    value &= 0xFFFFFFFFFFFFFFFF
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def read_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """The unsigned varint at ``pos`` and the position after it."""
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ProtoError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _fields(data: bytes | memoryview) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) for each field; LEN values as bytes."""
    pos = 0
    while pos < len(data):
        tag, pos = read_varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            value, pos = read_varint(data, pos)
        elif wire == _I64:
            (value,) = struct.unpack_from("<Q", data, pos)
            pos += 8
        elif wire == _I32:
            (value,) = struct.unpack_from("<I", data, pos)
            pos += 4
        elif wire == _LEN:
            length, pos = read_varint(data, pos)
            if pos + length > len(data):
                raise ProtoError("truncated length-delimited field")
            value = bytes(data[pos : pos + length])
            pos += length
        else:
            raise ProtoError(f"unsupported wire type {wire} (field {number})")
        if pos > len(data):
            raise ProtoError("truncated field")
        yield number, wire, value


def _put_tag(out: bytearray, number: int, wire: int) -> None:
    put_varint(out, number << 3 | wire)


def _put_len(out: bytearray, number: int, payload: bytes | bytearray) -> None:
    _put_tag(out, number, _LEN)
    put_varint(out, len(payload))
    out += payload


@dataclass(frozen=True)
class Slice:
    """A ``TensorSliceProto``: per dimension, (start, length); length None = the whole."""

    extents: tuple[tuple[int, int | None], ...]

    @staticmethod
    def parse(data: bytes) -> Slice:
        extents = []
        for number, wire, value in _fields(data):
            if number == 1 and wire == _LEN:
                start, length = 0, None
                for n, w, v in _fields(value):  # type: ignore[arg-type]
                    if n == 1 and w == _VARINT:
                        start = _signed64(v)  # type: ignore[arg-type]
                    elif n == 2 and w == _VARINT:
                        length = _signed64(v)  # type: ignore[arg-type]
                extents.append((start, length))
        return Slice(tuple(extents))


@dataclass(frozen=True)
class BundleEntry:
    """A ``BundleEntryProto``: where one tensor's bytes are, and what they are."""

    dtype: int = 0
    shape: tuple[int, ...] = ()
    shard_id: int = 0
    offset: int = 0
    size: int = 0
    crc32c: int = 0  # masked
    slices: tuple[Slice, ...] = field(default=())

    @staticmethod
    def parse(data: bytes | memoryview) -> BundleEntry:
        values: dict = {"slices": []}
        for number, wire, value in _fields(data):
            if number == 1 and wire == _VARINT:
                values["dtype"] = value
            elif number == 2 and wire == _LEN:
                values["shape"] = _parse_shape(value)  # type: ignore[arg-type]
            elif number == 3 and wire == _VARINT:
                values["shard_id"] = _signed64(value)  # type: ignore[arg-type]
            elif number == 4 and wire == _VARINT:
                values["offset"] = _signed64(value)  # type: ignore[arg-type]
            elif number == 5 and wire == _VARINT:
                values["size"] = _signed64(value)  # type: ignore[arg-type]
            elif number == 6 and wire == _I32:
                values["crc32c"] = value
            elif number == 7 and wire == _LEN:
                values["slices"].append(Slice.parse(value))  # type: ignore[arg-type]
        values["slices"] = tuple(values["slices"])
        return BundleEntry(**values)

    def serialize(self) -> bytes:
        out = bytearray()
        if self.dtype:
            out += _DTYPE_TAG
            put_varint(out, self.dtype)
        out += _shape_field(self.shape)
        for tag, value in ((_SHARD_TAG, self.shard_id), (_OFFSET_TAG, self.offset)):
            if value:
                out += tag
                put_varint(out, value)
        if self.size:
            out += _SIZE_TAG
            put_varint(out, self.size)
        out += _CRC_TAG
        out += struct.pack("<I", self.crc32c)
        return bytes(out)


# BundleEntry's field tags (number << 3 | wire type), written once per entry.
_DTYPE_TAG, _SHARD_TAG, _OFFSET_TAG, _SIZE_TAG = (bytes([n << 3 | _VARINT]) for n in (1, 3, 4, 5))
_CRC_TAG = bytes([6 << 3 | _I32])


@functools.lru_cache(maxsize=256)
def _shape_field(shape: tuple[int, ...]) -> bytes:
    """BundleEntry's shape field (a ``TensorShapeProto``), always present, also for a scalar
    (as TensorFlow writes); a checkpoint's tensors share a few shapes."""
    dims = bytearray()
    for dim in shape:
        one = bytearray()
        if dim:
            _put_tag(one, 1, _VARINT)
            put_varint(one, dim)
        _put_len(dims, 2, one)
    out = bytearray()
    _put_len(out, 2, dims)
    return bytes(out)


def _parse_shape(data: bytes) -> tuple[int, ...]:
    dims = []
    for number, wire, value in _fields(data):
        if number == 2 and wire == _LEN:
            size = 0
            for n, w, v in _fields(value):  # type: ignore[arg-type]
                if n == 1 and w == _VARINT:
                    size = _signed64(v)  # type: ignore[arg-type]
            dims.append(size)
        elif number == 3 and wire == _VARINT and value:
            raise ProtoError("a tensor shape of unknown rank")
    return tuple(dims)


@dataclass(frozen=True)
class BundleHeader:
    """A ``BundleHeaderProto``: shard count, byte order, format version."""

    num_shards: int = 1
    big_endian: bool = False
    producer: int = 1
    min_consumer: int = 0
    bad_consumers: tuple[int, ...] = ()

    @staticmethod
    def parse(data: bytes | memoryview) -> BundleHeader:
        values: dict = {}
        bad: list[int] = []
        for number, wire, value in _fields(data):
            if number == 1 and wire == _VARINT:
                values["num_shards"] = _signed64(value)  # type: ignore[arg-type]
            elif number == 2 and wire == _VARINT:
                values["big_endian"] = value == 1
            elif number == 3 and wire == _LEN:
                for n, w, v in _fields(value):  # type: ignore[arg-type]
                    if n == 1 and w == _VARINT:
                        values["producer"] = _signed64(v)  # type: ignore[arg-type]
                    elif n == 2 and w == _VARINT:
                        values["min_consumer"] = _signed64(v)  # type: ignore[arg-type]
                    elif n == 3 and w == _VARINT:
                        bad.append(_signed64(v))  # type: ignore[arg-type]
                    elif n == 3 and w == _LEN:  # packed
                        pos = 0
                        while pos < len(v):  # type: ignore[arg-type]
                            item, pos = read_varint(v, pos)  # type: ignore[arg-type]
                            bad.append(_signed64(item))
        return BundleHeader(**values, bad_consumers=tuple(bad))

    def serialize(self) -> bytes:
        out = bytearray()
        _put_tag(out, 1, _VARINT)
        put_varint(out, self.num_shards)
        if self.big_endian:
            _put_tag(out, 2, _VARINT)
            put_varint(out, 1)
        version = bytearray()
        if self.producer:
            _put_tag(version, 1, _VARINT)
            put_varint(version, self.producer)
        if self.min_consumer:
            _put_tag(version, 2, _VARINT)
            put_varint(version, self.min_consumer)
        _put_len(out, 3, version)
        return bytes(out)
