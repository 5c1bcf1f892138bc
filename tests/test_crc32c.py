"""CRC-32C: the compiled version (the processor's CRC instruction where there is one) and
the pure-PyTorch one agree with each other and with known values."""

from __future__ import annotations

import os
import random

import pytest

from torchscope.train import _crc

KNOWN = [
    (b"", 0),
    (b"a", 0xC1D04330),
    (b"123456789", 0xE3069283),
    (bytes(32), 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
]


@pytest.mark.parametrize(("data", "crc"), KNOWN, ids=[str(i) for i in range(len(KNOWN))])
def test_known_values(data, crc):
    assert _crc.value(data) == crc
    assert _crc._extend_torch(0, memoryview(data)) == crc


@pytest.mark.parametrize(
    "size", [0, 1, 7, 8, 255, 4095, 4096, 24575, 24576, 24577, 100_003, 1 << 20]
)
@pytest.mark.parametrize("offset", [0, 1, 3])
def test_native_and_fallback_agree_at_every_size_and_alignment(size, offset):
    rng = random.Random(size * 7 + offset)
    data = memoryview(rng.randbytes(size + offset))[offset:]
    crc = _crc.extend(0x1234, data)
    assert _crc._extend_torch(0x1234, data) == crc
    # extending piece by piece gives the same CRC
    cut = size // 3
    assert _crc.extend(_crc.extend(0x1234, data[:cut]), data[cut:]) == crc


@pytest.mark.skipif(not _crc.NATIVE, reason="torchscope._crc32c not built (no C compiler)")
def test_native_takes_any_buffer_and_checks_its_arguments():
    native = _crc._native
    data = os.urandom(100_000)
    assert (
        native.extend(0, bytearray(data)) == native.extend(0, memoryview(data)) == _crc.value(data)
    )
    with pytest.raises(ValueError, match="32-bit"):
        native.extend(1 << 32, b"")
    with pytest.raises(TypeError):
        native.extend(0, "text")
    assert isinstance(native.hardware(), bool)


def test_mask_round_trips():
    for crc in [0, 1, 0xFFFFFFFF, 0xE3069283]:
        assert _crc.unmask(_crc.mask(crc)) == crc
