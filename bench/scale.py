"""Benchmark of building models bigger than one machine: meta building, ``ts.materialize``,
FSDP2 shards, name-keyed initialisation (CPU).

Figures:

  (1) meta build of a 10B-parameter transformer written with ``ts.variable_scope`` /
      ``ts.get_variable`` (``with torch.device("meta")``): wall time (goal < 2 s) and RSS
      growth (goal < 100 MiB).
  (2) a ~1 GiB transformer, seeded: meta build + ``ts.materialize`` vs building it eagerly
      (medians over interleaved rounds); goal <= 1.10.
  (3) the same model, meta-built, ``fully_shard``-ed over 2 gloo ranks and materialised:
      each rank's peak RSS growth, against 0.6 x the full model's bytes + 100 MiB.
  (4) name-keyed initialisation: creating 1,000 variables of 64x64 (Glorot-uniform) in a
      store with a seed vs one without, per variable; goal <= 1.10.

glibc's malloc makes timings and RSS depend on the process's history, so the script pins
it before the process starts: without GLIBC_TUNABLES it re-executes itself with fixed
mmap/trim thresholds (the ranks of (3) inherit them).

    python bench/scale.py           # full run
    python bench/scale.py --quick   # fewer rounds, a smaller model for (2) and (3)
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The checkout's torchscope, also where another one is installed.
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _harness import load_average, load_line, malloc_line, median_times, pin_malloc, summary_line

pin_malloc()

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

import torchscope as ts  # noqa: E402

MIB = 1 << 20


def rss() -> int:
    """The process's resident set now, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> None:
    """Starts the peak resident set (VmHWM) afresh (Linux: ``5`` to ``clear_refs``)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss() -> int:
    """The process's peak resident set since :func:`reset_peak_rss`, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def transformer(width: int, layers: int, vocab: int):
    """A decoder-only transformer's variables, TensorFlow-1 style; returns its forward."""

    def build(tokens: torch.Tensor) -> torch.Tensor:
        with ts.variable_scope("transformer"):
            emb = ts.get_variable("embedding", [vocab, width])
            for i in range(layers):
                with ts.variable_scope(f"layer_{i}"):
                    for name in ("q", "k", "v", "o"):
                        with ts.variable_scope(name):
                            ts.get_variable("kernel", [width, width])
                            ts.get_variable("bias", [width], initializer=ts.zeros_initializer())
                    with ts.variable_scope("mlp"):
                        ts.get_variable("w_in", [width, 4 * width])
                        ts.get_variable("b_in", [4 * width], initializer=ts.zeros_initializer())
                        ts.get_variable("w_out", [4 * width, width])
                        ts.get_variable("b_out", [width], initializer=ts.zeros_initializer())
                    for norm in ("ln1", "ln2"):
                        with ts.variable_scope(norm):
                            ts.get_variable("gamma", [width], initializer=ts.ones_initializer())
                            ts.get_variable("beta", [width], initializer=ts.zeros_initializer())
            return emb[tokens]

    return build


def params_of(width: int, layers: int, vocab: int) -> int:
    return vocab * width + layers * (12 * width * width + 13 * width)


# 10B: width 5120, 31 layers, vocab 32000 -> 9.92B + 0.16B
BIG = (5120, 31, 32000)
# ~1 GiB of float32: width 1024, 20 layers, vocab 8192 -> 260M parameters
GIB = (1024, 20, 8192)
QUICK = (512, 8, 4096)
TOKENS = torch.zeros(1, 1, dtype=torch.long)


def meta_build(config) -> ts.ScopedModule:
    net = ts.ScopedModule(transformer(*config))
    net.store.seed = 0
    with torch.device("meta"):
        net(TOKENS)
    return net


def figure_meta(lines: list[str]) -> None:
    meta_build(QUICK)  # warm up
    gc.collect()
    before = rss()
    start = time.perf_counter()
    net = meta_build(BIG)
    wall = time.perf_counter() - start
    growth = (rss() - before) / MIB
    count = sum(p.numel() for p in net.parameters())
    print(f"(1) meta build: {count / 1e9:.2f}B parameters, {len(net.store)} variables")
    print(ts.summary(net).splitlines()[-1])
    lines.append(summary_line("meta build of 10B", wall, unit="s", note=_goal(wall < 2, "< 2 s")))
    lines.append(
        summary_line(
            "meta build RSS growth",
            growth,
            digits=1,
            unit="MiB",
            note=_goal(growth < 100, "< 100 MiB"),
        )
    )


def figure_materialize(lines: list[str], config, rounds: int) -> None:
    def eager():
        net = ts.ScopedModule(transformer(*config))
        net.store.seed = 0
        net(TOKENS)
        return net

    def materialized():
        net = meta_build(config)
        ts.materialize(net)
        return net

    a, b = eager(), materialized()
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    size = sum(p.numel() * p.element_size() for p in a.parameters())
    del a, b
    times = median_times(
        {"eager": eager, "materialize": materialized}, rounds, warmup=1, between=gc.collect
    )
    ratio = times["materialize"] / times["eager"]
    print(
        f"(2) {size / 2**30:.2f} GiB: eager {times['eager']:.2f} s, meta build + "
        f"materialize {times['materialize']:.2f} s (values equal)"
    )
    lines.append(summary_line("materialize / eager", ratio, note=_goal(ratio <= 1.10, "<= 1.10")))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank(rank: int, port: int, config, out: str) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    mesh = init_device_mesh("cpu", (2,))
    gc.collect()
    before = rss()
    reset_peak_rss()
    net = meta_build(config)
    fully_shard(net, mesh=mesh)
    ts.materialize(net)
    dist.barrier()
    local = sum(p.to_local().numel() * p.element_size() for p in net.parameters())
    with open(os.path.join(out, f"rank{rank}"), "w") as f:
        f.write(f"{peak_rss() - before} {local}")
    dist.destroy_process_group()
    os._exit(0)  # FSDP2 on gloo may abort in the interpreter's teardown (see the tests)


def figure_fsdp(lines: list[str], config) -> None:
    full = params_of(*config) * 4
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_rank, args=(_free_port(), config, out), nprocs=2, join=True)
        growths, locals_ = [], []
        for rank in range(2):
            with open(os.path.join(out, f"rank{rank}")) as f:
                growth, local = map(int, f.read().split())
            growths.append(growth)
            locals_.append(local)
    bound = 0.6 * full + 100 * MIB
    worst = max(growths)
    print(
        f"(3) FSDP2, 2 ranks, full model {full / MIB:.0f} MiB: peak RSS growth per rank "
        f"{', '.join(f'{g / MIB:.0f}' for g in growths)} MiB (shards "
        f"{', '.join(f'{x / MIB:.0f}' for x in locals_)} MiB), bound {bound / MIB:.0f} MiB"
    )
    lines.append(
        summary_line(
            "FSDP2 peak RSS growth per rank",
            worst / MIB,
            digits=0,
            unit="MiB",
            note=_goal(
                worst <= bound,
                f"<= 0.6 x {full / MIB:.0f} + 100 = {bound / MIB:.0f} MiB; "
                f"{worst / full:.2f} x the full model",
            ),
        )
    )


def figure_keyed(lines: list[str], rounds: int) -> None:
    count = 1000

    def build(seed):
        def run():
            store = ts.VariableStore(seed=seed)
            with store.as_default():
                for i in range(count):
                    ts.get_variable(f"v{i}", [64, 64])

        return run

    times = median_times({"seeded": build(0), "unseeded": build(None)}, rounds, warmup=2)
    ratio = times["seeded"] / times["unseeded"]
    print(
        f"(4) 1,000 variables of 64x64: seeded {times['seeded'] / count * 1e6:.1f} us, "
        f"unseeded {times['unseeded'] / count * 1e6:.1f} us per variable"
    )
    lines.append(
        summary_line("name-keyed / unseeded init", ratio, note=_goal(ratio <= 1.10, "<= 1.10"))
    )


def _goal(met: bool, goal: str) -> str:
    return f"goal {goal}" + ("" if met else ": MISSED")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(malloc_line())
    load = load_average()
    lines: list[str] = []
    config = QUICK if args.quick else GIB
    figure_meta(lines)
    figure_keyed(lines, 5 if args.quick else 21)
    figure_materialize(lines, config, 2 if args.quick else 5)
    figure_fsdp(lines, config)
    print(load_line(load, "one thread per process"))
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
