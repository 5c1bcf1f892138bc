"""CRC-32C, the checksum of TensorFlow's checkpoint files, and TensorFlow's masking of it.

The compiled ``torchscope._crc32c`` (plain C, built with the extension) uses the
processor's CRC instruction where there is one. Without it a torch-vectorised
version computes the same values: chunks of the data are checksummed side by side,
a byte position at a time, and the chunk CRCs are joined by shifting each over the
bytes after it (a CRC is linear over GF(2), so shifting by n zero bytes is a
multiplication by x^(8n) modulo the polynomial).

>>> hex(value(b"123456789"))
'0xe3069283'
>>> unmask(mask(0xE3069283)) == 0xE3069283
True
"""

from __future__ import annotations

import importlib
import os
import warnings
from typing import Any

import torch

__all__ = ["NATIVE", "extend", "mask", "unmask", "value"]

_MASK_DELTA = 0xA282EAD8
_POLY = 0x82F63B78


def _load_native() -> Any:
    if os.environ.get("TORCHSCOPE_DISABLE_NATIVE") == "1":
        return None
    try:
        return importlib.import_module("torchscope._crc32c")
    except ImportError:
        return None


_native = _load_native()
NATIVE = _native is not None  # whether the compiled CRC is used


def mask(crc: int) -> int:
    """TensorFlow's masked CRC, as stored in checkpoint files (crc32c::Mask)."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def unmask(masked: int) -> int:
    """The CRC a masked one (crc32c::Unmask) was made from."""
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def value(data: Any) -> int:
    """The CRC-32C of a bytes-like object."""
    return extend(0, data)


def extend(crc: int, data: Any) -> int:
    """The CRC-32C of the bytes ``crc`` was computed over, followed by ``data``."""
    if _native is not None:
        return _native.extend(crc, data)
    return _extend_torch(crc, memoryview(data).cast("B"))


# -- the pure-PyTorch version -----------------------------------------------------------------


def _multmodp(a: int, b: int) -> int:
    """a(x) * b(x) modulo the polynomial (bit-reflected)."""
    m, p = 1 << 31, 0
    while True:
        if a & m:
            p ^= b
            if a & (m - 1) == 0:
                return p
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


def _x8nmodp(n: int) -> int:
    """x^(8n) modulo the polynomial."""
    square, p = 1 << 30, 1 << 31
    for _ in range(3):
        square = _multmodp(square, square)
    while n:
        if n & 1:
            p = _multmodp(square, p)
        n >>= 1
        square = _multmodp(square, square)
    return p


def _byte_table() -> list[int]:
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _byte_table()
_TABLE_T: torch.Tensor | None = None
_CHUNK = 1024  # bytes per side-by-side chunk


def _raw_py(crc: int, data: memoryview) -> int:
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def _extend_torch(crc: int, data: memoryview) -> int:
    global _TABLE_T
    raw = crc ^ 0xFFFFFFFF
    n = len(data)
    chunks = n // _CHUNK
    if chunks < 4:
        return _raw_py(raw, data) ^ 0xFFFFFFFF
    if _TABLE_T is None:
        _TABLE_T = torch.tensor(_TABLE, dtype=torch.int64)
    with warnings.catch_warnings():  # read-only bytes: only read here
        warnings.simplefilter("ignore", UserWarning)
        body = torch.frombuffer(data[: chunks * _CHUNK], dtype=torch.uint8)
    body = body.view(chunks, _CHUNK).to(torch.int64)
    regs = torch.zeros(chunks, dtype=torch.int64)
    for i in range(_CHUNK):  # every chunk's register, a byte position at a time
        regs = _TABLE_T[(regs ^ body[:, i]) & 0xFF] ^ (regs >> 8)
    shift = _x8nmodp(_CHUNK)
    for part in regs.tolist():  # raw(r, AB) = r * x^(8|B|) ^ raw(0, B)
        raw = _multmodp(shift, raw) ^ part
    raw = _raw_py(raw, data[chunks * _CHUNK :])
    return raw ^ 0xFFFFFFFF
