"""Name-keyed random draws: values that are a function of (store seed, variable name).

With a store seed (``ts.set_seed``), the package's random initializers draw from CPU
generators seeded by a hash of (seed, full variable name, chunk index), one per chunk of
:data:`CHUNK` elements of the flattened tensor. A variable's values then do not depend on
creation order, other variables, process, thread, device or torch's global generator
(which is not advanced), and any slice of it can be made without the rest (what
``ts.materialize`` does for a shard). A torch CPU generator keeps 32 bits of its seed, so
two chunks of one model share a stream with probability about ``chunks**2 / 2**33``.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch

__all__ = [
    "CHUNK",
    "Key",
    "active",
    "chunk_seed",
    "draw",
    "drawing",
    "fill",
    "truncated",
    "seeded_global_rng",
]

CHUNK = 1 << 20  # elements per chunk of the flattened tensor

Key = tuple[int, str]  # (store seed, full variable name)


class _State(threading.local):
    key: Key | None = None
    generator: torch.Generator | None = None  # one per thread, seeded again for each chunk


_STATE = _State()


def active() -> Key | None:
    """The (seed, name) of the variable being made on this thread, if its store has a seed."""
    return _STATE.key


class drawing:
    """Makes ``key`` the active one on this thread for the block (None: no key)."""

    __slots__ = ("_key", "_previous")

    def __init__(self, key: Key | None) -> None:
        self._key = key

    def __enter__(self) -> None:
        self._previous = _STATE.key
        _STATE.key = self._key

    def __exit__(self, *exc: object) -> None:
        _STATE.key = self._previous


def chunk_seed(key: Key, chunk: int) -> int:
    """The generator seed of chunk ``chunk`` of the variable ``key`` names (stable across
    processes and versions of Python: sha256, not ``hash``)."""
    seed, name = key
    text = f"{seed & 0xFFFF_FFFF_FFFF_FFFF}\0{name}\0{chunk}".encode()
    digest = hashlib.blake2b(text, digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def _generator(key: Key, chunk: int) -> torch.Generator:
    gen = _STATE.generator
    if gen is None:
        gen = _STATE.generator = torch.Generator(device="cpu")
    gen.manual_seed(chunk_seed(key, chunk))
    return gen


def draw(
    fill: Callable[[Any, torch.Generator], torch.Tensor],
    numel: int,
    key: Key,
    start: int,
    stop: int,
    shape: tuple[int, ...] | None = None,
) -> torch.Tensor:
    """Elements ``[start, stop)`` of the flattened ``numel``-element tensor whose chunk
    ``c`` is ``fill(length, generator of chunk c)``, a 1-D CPU tensor: only the chunks that
    hold the slice are made. A whole tensor of one chunk comes in ``shape`` when given."""
    if start == 0 and stop == numel <= CHUNK:  # the common case: one whole chunk
        return fill(numel if shape is None else shape, _generator(key, 0))
    if not 0 <= start <= stop <= numel:
        raise ValueError(f"slice [{start}, {stop}) is outside a tensor of {numel} elements")
    out: torch.Tensor | None = None
    for chunk in range(start // CHUNK, (stop + CHUNK - 1) // CHUNK):
        lo = chunk * CHUNK
        values = fill(min(CHUNK, numel - lo), _generator(key, chunk))
        part = values[max(start - lo, 0) : stop - lo]
        if out is None:  # the result, filled chunk by chunk (no list of parts to join)
            if part.numel() == stop - start:
                return part.clone() if part.numel() < values.numel() else part
            out = torch.empty(stop - start, dtype=values.dtype)
        at = max(lo - start, 0)
        out[at : at + part.numel()].copy_(part)
        del values, part  # the next chunk reuses this memory
    if out is None:
        return fill(0, torch.Generator(device="cpu"))
    return out


def truncated(
    dims: tuple[int, ...],
    mean: float,
    stddev: float,
    dtype: torch.dtype,
    where: torch.device,
    gen: torch.Generator | None,
) -> torch.Tensor:
    """Normal draws with every value beyond 2 standard deviations drawn again (as TF)."""
    work = torch.float64 if dtype == torch.float64 else torch.float32
    x = torch.empty(dims, dtype=work, device=where).normal_(generator=gen)
    if x.device.type == "meta":  # no values to redraw (and bool() of one cannot be read)
        return x.to(dtype=dtype)
    bad = x.abs() > 2.0
    while bool(bad.any()):
        x[bad] = torch.empty(int(bad.sum()), dtype=x.dtype, device=where).normal_(generator=gen)
        bad = x.abs() > 2.0
    return x.mul_(stddev).add_(mean).to(dtype=dtype)


def fill(
    kind: str, a: float, b: float, dtype: torch.dtype
) -> Callable[[Any, torch.Generator], torch.Tensor]:
    """``fill(n, generator)``: the ``n`` values of one keyed chunk, a 1-D CPU tensor."""

    def one_chunk(n: Any, gen: torch.Generator) -> torch.Tensor:
        if kind == "uniform":
            return torch.empty(n, dtype=dtype).uniform_(a, b, generator=gen)
        if kind == "normal":
            return torch.empty(n, dtype=dtype).normal_(a, b, generator=gen)
        if kind == "truncated_normal":
            return truncated(
                n if isinstance(n, tuple) else (n,), a, b, dtype, torch.device("cpu"), gen
            )
        return torch.randint(
            int(a), int(b), n if isinstance(n, tuple) else (n,), generator=gen, dtype=dtype
        )

    return one_chunk


def _devices() -> list[int]:
    return list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []


@contextlib.contextmanager
def seeded_global_rng(key: Key) -> Iterator[None]:
    """For an initializer that draws from torch's global generators (``init_from``, a
    callable of one's own): they are seeded from ``key`` for the block and put back after,
    so the global state is left as it was."""
    with torch.random.fork_rng(devices=_devices()):
        torch.manual_seed(chunk_seed(key, -1))
        yield
