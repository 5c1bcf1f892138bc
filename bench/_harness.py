"""What every script in bench/ shares: a pinned malloc, an interleaved timer, the
load-average line and the ``SUMMARY`` lines.

``bench/`` is not a package: a script puts its own folder on ``sys.path``, imports this
module and calls :func:`pin_malloc` before it imports torch::

    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _harness import load_line, malloc_line, median_times, pin_malloc, summary_line

    pin_malloc()

    import torch

Then, side by side in one process::

    times = median_times({"ours": ours, "theirs": theirs}, rounds=41)
    print(summary_line("ours / theirs", times["ours"] / times["theirs"], note="goal <= 1.0"))

prints ``SUMMARY ours / theirs: 0.97 (goal <= 1.0)``. The README quotes these lines.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence

PINNED_MALLOC = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=17179869184"
"""glibc's tunables the scripts run under: a fixed mmap threshold (32 MiB) and a trim
threshold (16 GiB) that glibc never reaches, so that neither moves with the process's
history of allocations (by default glibc raises the mmap threshold as large blocks are
freed, and the same conv then measures differently depending on what ran before it)."""


def pin_malloc() -> None:
    """Re-executes the running script with :data:`PINNED_MALLOC` unless GLIBC_TUNABLES is set.

    glibc reads its tunables once, when the process starts, so they cannot be set from
    inside: the script starts again (same interpreter, same arguments) with them in its
    environment. Call it first, before importing torch, so that nothing is done twice.
    Processes the script spawns inherit the environment and are not re-executed.
    """
    if "GLIBC_TUNABLES" not in os.environ:
        env = dict(os.environ, GLIBC_TUNABLES=PINNED_MALLOC)
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def malloc_line() -> str:
    """The line that says which malloc tunables the process runs under."""
    return f"malloc: GLIBC_TUNABLES={os.environ['GLIBC_TUNABLES']} (set before the process started)"


def rotated(names: Sequence[str], r: int) -> list[str]:
    """The order of round ``r``: ``names`` rotated by ``r``, so that no variant always runs
    right after the same other one (cache and allocator state)."""
    k = r % len(names)
    return [*names[k:], *names[:k]]


def sample_times(
    fns: Mapping[str, Callable[[], object]],
    rounds: int,
    *,
    calls: int = 1,
    warmup: int = 3,
    between: Callable[[], object] | None = None,
    sync: Callable[[], object] | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each fn, one sample per round, the fns interleaved.

    Each round times ``calls`` calls of every fn in turn, in the order :func:`rotated`
    gives; a sample is the batch's time divided by ``calls``. Before the rounds, ``warmup``
    untimed batches of each fn.

    Args:
        fns: the variants by name, each a function of no arguments.
        rounds: samples per variant.
        calls: calls per sample (cheap calls are timed in batches).
        warmup: untimed batches of each fn before the first round.
        between: called untimed after every batch (warm-up included), e.g. to delete the
            files a write made.
        sync: called before the clock starts and before it stops, e.g.
            ``torch.cuda.synchronize``, so that a sample is what a caller waits for.
    """
    names = list(fns)
    batch = range(calls)
    for _ in range(warmup):
        for fn in fns.values():
            for _ in batch:
                fn()
            if between is not None:
                between()
    clock = time.perf_counter
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in rotated(names, r):
            fn = fns[name]
            if sync is not None:
                sync()
            t0 = clock()
            for _ in batch:
                fn()
            if sync is not None:
                sync()
            samples[name].append((clock() - t0) / calls)
            if between is not None:
                between()
    return samples


def median_times(
    fns: Mapping[str, Callable[[], object]],
    rounds: int,
    *,
    calls: int = 1,
    warmup: int = 3,
    between: Callable[[], object] | None = None,
    sync: Callable[[], object] | None = None,
) -> dict[str, float]:
    """Median seconds per call of each fn over the rounds of :func:`sample_times`."""
    samples = sample_times(fns, rounds, calls=calls, warmup=warmup, between=between, sync=sync)
    return {name: statistics.median(s) for name, s in samples.items()}


def load_average() -> float:
    """The 1-minute load average; read one before the figures for :func:`load_line`."""
    return os.getloadavg()[0]


def load_line(before: float, note: str) -> str:
    """``load average before/after: 0.12 / 0.34 (on 2 CPUs; <note>)``, ``before`` from
    :func:`load_average` at the start, the other now."""
    return (
        f"load average before/after: {before:.2f} / {load_average():.2f} "
        f"(on {os.cpu_count()} CPUs; {note})"
    )


def summary_line(
    figure: str, value: float, *, digits: int = 2, unit: str = "", note: str = ""
) -> str:
    """``SUMMARY <figure>: <value>[ <unit>][ (<note>)]``, the value with ``digits`` decimals.

    >>> summary_line("write / tofile", 0.874, note="goal >= 0.8")
    'SUMMARY write / tofile: 0.87 (goal >= 0.8)'
    >>> summary_line("enter+exit", 805.2, digits=0, unit="ns")
    'SUMMARY enter+exit: 805 ns'
    """
    line = f"SUMMARY {figure}: {value:.{digits}f}"
    if unit:
        line += f" {unit}"
    if note:
        line += f" ({note})"
    return line
