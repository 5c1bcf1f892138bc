"""Benchmark of torchscope's scopes and get_variable against plain PyTorch modules (CPU).

Figures, each a ratio measured side by side in one process (the variants are
timed interleaved round by round, the order rotating, medians over the rounds),
on one thread:

  (1) the reuse path: ``ts.get_variable("w", [64, 64])`` inside a reusing scope
      (and without the shape) vs reading an ``nn.Linear``'s ``.weight``;
      goal <= 1.0.
  (2) creation: per-variable cost of creating 50,000 variables vs 1,000 (three
      levels of nested scopes, one fresh store per build); goal <= 1.2.
  (3) forward of a 4-layer, 64-wide MLP (batch 32, no_grad) written with
      ``variable_scope("mlp", reuse=ts.AUTO_REUSE)`` / ``variable_scope(f"layer{i}")``
      and ``get_variable``, vs the same math as an ``nn.Module`` of ``nn.Linear``;
      goal <= 1.0.
  (4) entering and exiting a ``name_scope`` with the profiler off, in ns.

Figure (2) runs with CPython's cyclic garbage collector as a program would. Freezing the
~285,000 objects that ``import torch`` leaves tracked (``gc.freeze()`` after the warm-up)
was tried and not kept: it does not steady the figure, because no full collection runs
inside the timed builds to begin with. A full collection waits for the long-lived objects
to grow by 25% (about 71,000 over torch's), and the 50,000-variable store leaves about
53,000 (counted with ``gc.callbacks``: none in any timed build). Frozen, one full
collection over the store's own objects runs inside each 50,000-variable build instead
(14-34 ms of 2-4 s). Over ten full runs each way, alternating, the figure read
0.82-1.15 as it is and 1.01-1.55 frozen; both follow the load other work puts on the
machine (the 1,000-variable build lasts about 35 ms, so a few lost time slices move it).

glibc's malloc makes timings depend on the process's history, so the script
pins it before the process starts: without GLIBC_TUNABLES it re-executes itself
with fixed mmap/trim thresholds.

    python bench/scopes.py           # full run
    python bench/scopes.py --quick   # a few rounds, to check that it runs
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import (
    load_average,
    load_line,
    malloc_line,
    median_times,
    pin_malloc,
    summary_line,
)

pin_malloc()

import torch  # noqa: E402
from torch import nn  # noqa: E402

import torchscope as ts  # noqa: E402

# -- (1) the reuse path ----------------------------------------------------------------------------


def reuse_path(rounds: int, calls: int) -> dict:
    store = ts.VariableStore()
    with store.as_default(), ts.variable_scope("layer"):
        ts.get_variable("w", [64, 64])
    linear = nn.Linear(64, 64)
    loop = range(calls)
    get_variable = ts.get_variable

    def with_shape():
        for _ in loop:
            get_variable("w", [64, 64])

    def without_shape():
        for _ in loop:
            get_variable("w")

    def attribute():
        for _ in loop:
            linear.weight  # noqa: B018

    def empty():
        for _ in loop:
            pass

    with store.as_default(), ts.variable_scope("layer", reuse=True):
        assert ts.get_variable("w", [64, 64]) is store["layer/w"]
        times = median_times(
            {
                "with_shape": with_shape,
                "without_shape": without_shape,
                "attribute": attribute,
                "empty": empty,
            },
            rounds,
        )
    return {name: t / calls for name, t in times.items()}


# -- (2) creation ----------------------------------------------------------------------------------


def build(n: int) -> float:
    """Seconds to create ``n`` variables under three levels of scopes in a fresh store."""
    inner = 10
    middle = 10
    outer = n // (inner * middle)
    store = ts.VariableStore()
    gc.collect()
    t0 = time.perf_counter()
    with store.as_default():
        for a in range(outer):
            with ts.variable_scope(f"block{a}"):
                for b in range(middle):
                    with ts.variable_scope(f"layer{b}"):
                        for c in range(inner):
                            ts.get_variable(f"v{c}", [4])
    elapsed = time.perf_counter() - t0
    assert len(store) == n
    del store
    gc.collect()
    return elapsed


def creation(rounds: int, small: int, large: int) -> dict:
    times = {small: [], large: []}
    build(small)  # warm-up
    for r in range(rounds):
        order = (small, large) if r % 2 == 0 else (large, small)
        for n in order:
            times[n].append(build(n) / n)
    return {n: statistics.median(t) for n, t in times.items()}


# -- (3) the MLP -----------------------------------------------------------------------------------

WIDTH, DEPTH, BATCH = 64, 4, 32


def scoped_mlp(x: torch.Tensor) -> torch.Tensor:
    with ts.variable_scope("mlp", reuse=ts.AUTO_REUSE):
        for i in range(DEPTH):
            with ts.variable_scope(f"layer{i}"):
                w = ts.get_variable("w", [WIDTH, WIDTH])
                b = ts.get_variable("b", [WIDTH], initializer=ts.zeros_initializer())
                x = torch.addmm(b, x, w)
                if i < DEPTH - 1:
                    x = torch.relu(x)
    return x


ZEROS = ts.zeros_initializer()


def scoped_mlp_hoisted(x: torch.Tensor) -> torch.Tensor:
    """``scoped_mlp`` with the bias initializer built once, outside the forward."""
    with ts.variable_scope("mlp", reuse=ts.AUTO_REUSE):
        for i in range(DEPTH):
            with ts.variable_scope(f"layer{i}"):
                w = ts.get_variable("w", [WIDTH, WIDTH])
                b = ts.get_variable("b", [WIDTH], initializer=ZEROS)
                x = torch.addmm(b, x, w)
                if i < DEPTH - 1:
                    x = torch.relu(x)
    return x


class ModuleMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(WIDTH, WIDTH) for _ in range(DEPTH))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < DEPTH - 1:
                x = torch.relu(x)
        return x


def mlp(rounds: int, calls: int) -> dict:
    torch.manual_seed(0)
    x = torch.randn(BATCH, WIDTH)
    store = ts.VariableStore()
    module = ModuleMLP()
    with store.as_default():
        scoped_mlp(x)
        with torch.no_grad():  # same weights, so both compute the same numbers
            for i, layer in enumerate(module.layers):
                layer.weight.copy_(store[f"mlp/layer{i}/w"].t())
                layer.bias.copy_(store[f"mlp/layer{i}/b"])
        loop = range(calls)

        def scoped():
            for _ in loop:
                scoped_mlp(x)

        def hoisted():
            for _ in loop:
                scoped_mlp_hoisted(x)

        def plain():
            for _ in loop:
                module(x)

        with torch.no_grad():
            torch.testing.assert_close(scoped_mlp(x), module(x))
            assert len(store) == 2 * DEPTH
            times = median_times(
                {"scoped": scoped, "scoped_hoisted": hoisted, "module": plain}, rounds
            )
    return {name: t / calls for name, t in times.items()}


# -- (4) name_scope --------------------------------------------------------------------------------


def name_scope_cost(rounds: int, calls: int) -> dict:
    """ns per enter+exit. A forward re-enters its variable scope every step, so a
    name_scope inside it is a first use among its siblings: its cost is
    ``scoped_name_scope - variable_scope``. ``sibling_name_scope`` re-opens the same
    name in one persistent scope (``attention``, ``attention_1``, ...)."""
    loop = range(calls)
    name_scope, variable_scope, auto = ts.name_scope, ts.variable_scope, ts.AUTO_REUSE

    def scope_only():
        for _ in loop:
            with variable_scope("encoder", reuse=auto):
                pass

    def scope_and_name_scope():
        for _ in loop:
            with variable_scope("encoder", reuse=auto), name_scope("attention"):
                pass

    def siblings():
        for _ in loop:
            with name_scope("attention"):
                pass

    def empty():
        for _ in loop:
            pass

    store = ts.VariableStore()
    with store.as_default(), ts.variable_scope("model"):
        times = median_times(
            {
                "variable_scope": scope_only,
                "scoped_name_scope": scope_and_name_scope,
                "sibling_name_scope": siblings,
                "empty": empty,
            },
            rounds,
        )
    return {name: t / calls for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few rounds, to check that it runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    quick = args.quick
    load_before = load_average()
    print(malloc_line())
    python = sys.version.split()[0]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, python {python}")

    r = reuse_path(rounds=5 if quick else 41, calls=2_000 if quick else 20_000)
    print(
        "\n(1) reuse path, ns per call (loop overhead included in each, 'empty' is the loop alone)"
    )
    for name, t in r.items():
        print(f"    {name:<20} {t * 1e9:8.1f}")

    large = 5_000 if quick else 50_000
    c = creation(rounds=1 if quick else 5, small=1_000, large=large)
    print(
        f"\n(2) creation, us per variable: 1,000 -> {c[1_000] * 1e6:.2f}, "
        f"{large:,} -> {c[large] * 1e6:.2f}"
    )

    m = mlp(rounds=5 if quick else 41, calls=50 if quick else 500)
    print(
        f"\n(3) MLP forward ({DEPTH}x{WIDTH}, batch {BATCH}, no_grad), us per call: "
        f"scoped {m['scoped'] * 1e6:.2f} (with the bias initializer built once outside: "
        f"{m['scoped_hoisted'] * 1e6:.2f}), nn.Module {m['module'] * 1e6:.2f}"
    )

    n = name_scope_cost(rounds=5 if quick else 41, calls=2_000 if quick else 20_000)
    print("\n(4) scope enter+exit with the profiler off, ns per call (loop included)")
    for name, t in n.items():
        print(f"    {name:<20} {t * 1e9:8.1f}")

    print()
    print(load_line(load_before, "other work on the machine moves the absolute numbers"))
    name_scope_ns = (n["scoped_name_scope"] - n["variable_scope"]) * 1e9
    for line in (
        summary_line(
            "get_variable reuse / nn.Linear.weight",
            r["with_shape"] / r["attribute"],
            note="goal <= 1.0",
        ),
        summary_line(
            "get_variable reuse without shape / nn.Linear.weight",
            r["without_shape"] / r["attribute"],
            note="goal <= 1.0",
        ),
        summary_line(
            f"creation per variable {large:,} / 1,000", c[large] / c[1_000], note="goal <= 1.2"
        ),
        summary_line(
            "scoped MLP forward / nn.Module MLP forward",
            m["scoped"] / m["module"],
            note="goal <= 1.0",
        ),
        summary_line("name_scope enter+exit, profiler off", name_scope_ns, digits=0, unit="ns"),
    ):
        print(line)


if __name__ == "__main__":
    main()
