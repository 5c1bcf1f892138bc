"""The TensorFlow-written checkpoints in tests/data/tf1_checkpoints, and what they hold.

``expected(folder)`` reads the folder's ``expected.npz`` (what TensorFlow's own
reader returned for each key) into torch tensors, with a small reader of numpy's
``.npy`` format, so the tests need neither TensorFlow nor numpy.
"""

from __future__ import annotations

import ast
import json
import struct
import zipfile
from pathlib import Path

import torch

DATA = Path(__file__).parent / "data"
CHECKPOINTS = DATA / "tf1_checkpoints"

_DESCR = {
    "f2": torch.float16,
    "f4": torch.float32,
    "f8": torch.float64,
    "i1": torch.int8,
    "i2": torch.int16,
    "i4": torch.int32,
    "i8": torch.int64,
    "u1": torch.uint8,
    "u2": torch.uint16,
    "u4": torch.uint32,
    "u8": torch.uint64,
    "b1": torch.bool,
    "c8": torch.complex64,
    "c16": torch.complex128,
}


def read_npy(data: bytes) -> torch.Tensor:
    """One ``.npy`` file's array (little-endian, C order) as a tensor."""
    if data[:6] != b"\x93NUMPY":
        raise ValueError("not an .npy file")
    major = data[6]
    if major == 1:
        (length,) = struct.unpack("<H", data[8:10])
        start = 10
    else:
        (length,) = struct.unpack("<I", data[8:12])
        start = 12
    header = ast.literal_eval(data[start : start + length].decode("latin1"))
    descr, shape = header["descr"], tuple(header["shape"])
    if header["fortran_order"] or descr[0] == ">":
        raise ValueError(f"unsupported .npy layout {header}")
    dtype = _DESCR[descr[1:]]
    body = bytearray(data[start + length :])
    if not body:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(body, dtype=dtype).reshape(shape).clone()


def read_npz(path: Path) -> dict[str, torch.Tensor]:
    with zipfile.ZipFile(path) as z:
        return {name[: -len(".npy")]: read_npy(z.read(name)) for name in z.namelist()}


def expected(folder: str) -> dict[str, torch.Tensor]:
    """Every numeric tensor of the fixture, by checkpoint key (bfloat16 ones as bfloat16)."""
    values = read_npz(CHECKPOINTS / folder / "expected.npz")
    for key in strings(folder).get("__bfloat16_keys__", []):
        values[key] = values[key].view(torch.bfloat16)
    return values


def strings(folder: str) -> dict[str, list]:
    """``expected_strings.json``: string tensors (UTF-8) and the bfloat16 key list."""
    path = CHECKPOINTS / folder / "expected_strings.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def train_data(folder: str) -> dict[str, torch.Tensor]:
    """An optimizer fixture's ``train.npz``: ``x``, ``y``, ``loss`` and ``next/<var>``."""
    return read_npz(CHECKPOINTS / folder / "train.npz")
