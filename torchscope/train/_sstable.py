"""The table file a TensorFlow checkpoint's ``.index`` is: LevelDB's SSTable format.

A table is a sequence of blocks, then a footer. Each block holds sorted key/value
entries, each key stored as the part it does not share with the previous key
(with "restart points", where a key is stored whole, every 16 entries), followed
by a trailer: a compression byte and a masked CRC-32C of the block and that byte.
An index block maps the last key of each data block to the block's place; the
48-byte footer locates the index (and an empty metaindex) and ends with a magic
number. TensorFlow writes the blocks uncompressed; Snappy-compressed blocks, which
it can also read, are decompressed here too.

>>> import io
>>> f = io.BytesIO()
>>> write_table(f, [(b"", b"header"), (b"a", b"1"), (b"b", b"2")])
>>> read_table(f.getvalue(), "x.index")
[(b'', b'header'), (b'a', b'1'), (b'b', b'2')]
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from . import _crc
from ._proto import put_varint, read_varint

__all__ = ["TableError", "read_table", "write_table"]

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
_NO_COMPRESSION, _SNAPPY = 0, 1
_BLOCK_SIZE = 256 * 1024  # TensorFlow's table_options.h default
_RESTART_INTERVAL = 16


class TableError(ValueError):
    """A table file that is not one, or is damaged."""


# -- reading ------------------------------------------------------------------------------------


def read_table(data: bytes, path: str, *, verify: bool = True) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of the table in ``data`` (the whole file), in key order."""
    if len(data) < FOOTER_SIZE:
        raise TableError(f"{path}: {len(data)} bytes is too short for a checkpoint index")
    footer = memoryview(data)[len(data) - FOOTER_SIZE :]
    (magic,) = struct.unpack_from("<Q", footer, FOOTER_SIZE - 8)
    if magic != MAGIC:
        raise TableError(f"{path}: not a TensorFlow checkpoint index (bad magic number)")
    try:
        _, pos = _read_handle(footer, 0)  # the metaindex: nothing TensorFlow needs in it
        index_handle, _ = _read_handle(footer, pos)
    except ValueError as e:
        raise TableError(f"{path}: damaged footer ({e})") from None
    entries = []
    for _, handle_bytes in _block_entries(_read_block(data, index_handle, path, verify), path):
        try:
            handle, _ = _read_handle(handle_bytes, 0)
        except ValueError as e:
            raise TableError(f"{path}: damaged index block ({e})") from None
        entries += _block_entries(_read_block(data, handle, path, verify), path)
    return entries


def _read_handle(data: bytes | memoryview, pos: int) -> tuple[tuple[int, int], int]:
    offset, pos = read_varint(data, pos)
    size, pos = read_varint(data, pos)
    return (offset, size), pos


def _read_block(data: bytes, handle: tuple[int, int], path: str, verify: bool) -> bytes:
    offset, size = handle
    end = offset + size
    if end + 5 > len(data):
        raise TableError(f"{path}: a block runs past the end of the file (truncated?)")
    kind = data[end]
    if verify:
        (stored,) = struct.unpack_from("<I", data, end + 1)
        if _crc.unmask(stored) != _crc.value(memoryview(data)[offset : end + 1]):
            raise TableError(f"{path}: block checksum mismatch at offset {offset} (corrupt file)")
    block = data[offset:end]
    if kind == _SNAPPY:
        return _snappy_decompress(block, path)
    if kind != _NO_COMPRESSION:
        raise TableError(f"{path}: unknown block compression {kind}")
    return block


def _block_entries(block: bytes, path: str) -> list[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise TableError(f"{path}: damaged block (too short)")
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * restarts
    if limit < 0:
        raise TableError(f"{path}: damaged block (restart array)")
    entries = []
    key = b""
    pos = 0
    try:
        while pos < limit:
            shared, pos = read_varint(block, pos)
            unshared, pos = read_varint(block, pos)
            length, pos = read_varint(block, pos)
            if shared > len(key) or pos + unshared + length > limit:
                raise TableError(f"{path}: damaged block entry")
            key = key[:shared] + block[pos : pos + unshared]
            pos += unshared
            entries.append((key, block[pos : pos + length]))
            pos += length
    except ValueError as e:
        if isinstance(e, TableError):
            raise
        raise TableError(f"{path}: damaged block entry ({e})") from None
    return entries


def _snappy_decompress(data: bytes, path: str) -> bytes:
    """Snappy's raw format: a varint length, then literals and back-references."""
    try:
        length, pos = read_varint(data, 0)
        out = bytearray()
        while pos < len(data):
            tag = data[pos]
            pos += 1
            kind = tag & 3
            if kind == 0:  # literal
                size = tag >> 2
                if size >= 60:
                    extra = size - 59
                    size = int.from_bytes(data[pos : pos + extra], "little")
                    pos += extra
                size += 1
                out += data[pos : pos + size]
                pos += size
                continue
            if kind == 1:
                size = 4 + ((tag >> 2) & 7)
                distance = ((tag >> 5) << 8) | data[pos]
                pos += 1
            elif kind == 2:
                size = (tag >> 2) + 1
                distance = int.from_bytes(data[pos : pos + 2], "little")
                pos += 2
            else:
                size = (tag >> 2) + 1
                distance = int.from_bytes(data[pos : pos + 4], "little")
                pos += 4
            if distance == 0 or distance > len(out):
                raise ValueError("bad back-reference")
            for _ in range(size):  # may overlap itself
                out.append(out[-distance])
        if len(out) != length:
            raise ValueError("wrong decompressed length")
        return bytes(out)
    except (ValueError, IndexError) as e:
        raise TableError(f"{path}: damaged compressed block ({e})") from None


# -- writing ------------------------------------------------------------------------------------


class _BlockBuilder:
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.restarts = [0]
        self.count = 0
        self.last = b""

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.count < _RESTART_INTERVAL:
            limit = min(len(key), len(self.last))
            while shared < limit and key[shared] == self.last[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buffer))
            self.count = 0
        put_varint(self.buffer, shared)
        put_varint(self.buffer, len(key) - shared)
        put_varint(self.buffer, len(value))
        self.buffer += key[shared:]
        self.buffer += value
        self.last = key
        self.count += 1

    def finish(self) -> bytes:
        for restart in self.restarts:
            self.buffer += struct.pack("<I", restart)
        self.buffer += struct.pack("<I", len(self.restarts))
        return bytes(self.buffer)

    def size(self) -> int:
        return len(self.buffer) + 4 * len(self.restarts) + 4


def _write_block(f: BinaryIO, offset: int, block: bytes) -> tuple[tuple[int, int], int]:
    trailer = bytes([_NO_COMPRESSION])
    crc = _crc.mask(_crc.extend(_crc.value(block), trailer))
    f.write(block)
    f.write(trailer + struct.pack("<I", crc))
    return (offset, len(block)), offset + len(block) + 5


def _handle(handle: tuple[int, int]) -> bytes:
    out = bytearray()
    put_varint(out, handle[0])
    put_varint(out, handle[1])
    return bytes(out)


def write_table(f: BinaryIO, items: list[tuple[bytes, bytes]]) -> None:
    """Writes ``items`` (sorted by key, keys distinct) as a table to ``f``."""
    offset = 0
    index = _BlockBuilder()
    block = _BlockBuilder()
    for key, value in items:
        block.add(key, value)
        if block.size() >= _BLOCK_SIZE:
            handle, offset = _write_block(f, offset, block.finish())
            index.add(key, _handle(handle))
            block = _BlockBuilder()
    if block.count or not items:
        handle, offset = _write_block(f, offset, block.finish())
        index.add(block.last, _handle(handle))
    meta_handle, offset = _write_block(f, offset, _BlockBuilder().finish())
    index_handle, offset = _write_block(f, offset, index.finish())
    footer = bytearray(_handle(meta_handle) + _handle(index_handle))
    footer += bytes(FOOTER_SIZE - 8 - len(footer))
    footer += struct.pack("<Q", MAGIC)
    f.write(footer)
