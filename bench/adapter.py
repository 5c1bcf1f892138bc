"""Benchmark of the module adapter: a ScopedModule against the same math as a plain nn.Module.

Figures (ratio = ScopedModule time / plain module time, CPU, float32):
  (1) eager forward (no_grad) of the design document's image filter: two
      conv_relu layers, 5x5, 32->32, "SAME", on an NHWC batch 8x64x64x32, both
      through ts.nn.conv2d_bias_relu (the fused op); goal <= 1.0;
  (2) eager forward (no_grad) of a 4-layer, 64-wide MLP on a batch of 32 (the
      plain module uses nn.Linear, the ScopedModule F.linear on get_variable's
      [out, in] weights: the same op); goal <= 1.0;
  (3) the MLP's forward after torch.compile (fullgraph=True) of each; goal 1.00
      within noise;
  (4) the MLP's training step (forward, MSE loss, backward, Adam step); goal <= 1.0.
The plain modules hold nn.Parameters and run the same ops in the same order, so
a ratio measures the adapter alone.

Measured side by side in one process: the variants are called interleaved, one
sample of each per round (a sample times a batch of calls), the order rotating
from round to round; the figures are medians over the rounds. One thread
(torch.set_num_threads(1)): the machine is shared and the small MLP gains
nothing from more. glibc's malloc makes timings depend on the process's
history, so without GLIBC_TUNABLES the script re-executes itself with fixed
mmap/trim thresholds.

After the figures, the training step (4) by phase (forward, loss + zero_grad,
backward, Adam step) for both modules: backward and the step run the same code for
both, so a difference there is what the forward before it left in the caches. Then
the same step for three variants of the ScopedModule, against the plain module: its
function without the variable_scope entries (the scope names moved into
get_variable's names), with an empty Python context manager in their place, and with
a context manager written in C (a lock: no Python frames at all). Then
a breakdown of the adapter's per-call costs (a ScopedModule
call of an empty function against a plain module's, a variable_scope entry, a
get_variable on the reuse path) says where the time goes, and the number of guards
dynamo checks before each compiled call of (3) says what the compiled ScopedModule
pays beyond the plain module (most of its gap there).

    python bench/adapter.py           # full run (a few minutes)
    python bench/adapter.py --quick   # a few rounds, to check that it runs
"""

from __future__ import annotations

import _thread
import argparse
import os
import re
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import (
    load_average,
    load_line,
    malloc_line,
    median_times,
    pin_malloc,
    rotated,
    sample_times,
    summary_line,
)

pin_malloc()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import torchscope as ts  # noqa: E402

# -- the image filter (the design document's conv_relu / my_image_filter) -------------------


def conv_relu(x: torch.Tensor, kernel_shape: list[int], bias_shape: list[int]) -> torch.Tensor:
    weights = ts.get_variable("weights", kernel_shape, initializer=ts.random_normal_initializer())
    biases = ts.get_variable("biases", bias_shape, initializer=ts.constant_initializer(0.0))
    return ts.nn.conv2d_bias_relu(x, weights, biases, strides=[1, 1, 1, 1], padding="SAME")


def my_image_filter(input_images: torch.Tensor) -> torch.Tensor:
    with ts.variable_scope("conv1"):
        relu1 = conv_relu(input_images, [5, 5, 32, 32], [32])
    with ts.variable_scope("conv2"):
        return conv_relu(relu1, [5, 5, 32, 32], [32])


class PlainFilter(nn.Module):
    """The same filter with nn.Parameters, copied from a built ScopedModule."""

    def __init__(self, scoped: ts.ScopedModule) -> None:
        super().__init__()
        store = scoped.store
        self.w1 = nn.Parameter(store["conv1/weights"].detach().clone())
        self.b1 = nn.Parameter(store["conv1/biases"].detach().clone())
        self.w2 = nn.Parameter(store["conv2/weights"].detach().clone())
        self.b2 = nn.Parameter(store["conv2/biases"].detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = ts.nn.conv2d_bias_relu(x, self.w1, self.b1, strides=[1, 1, 1, 1], padding="SAME")
        return ts.nn.conv2d_bias_relu(x, self.w2, self.b2, strides=[1, 1, 1, 1], padding="SAME")


# -- the MLP -----------------------------------------------------------------------------------

WIDTH, DEPTH, BATCH = 64, 4, 32
# Made once, as a plain module's bias initializer is used once: building one inside the
# forward pass would add its constructor's cost (about 0.5 us) to every layer of every call.
ZEROS = ts.zeros_initializer()


def mlp(x: torch.Tensor) -> torch.Tensor:
    for i in range(DEPTH):
        with ts.variable_scope(f"layer{i}"):
            w = ts.get_variable("w", [WIDTH, WIDTH])  # [out, in], as F.linear takes it
            b = ts.get_variable("b", [WIDTH], initializer=ZEROS)
            x = F.linear(x, w, b)
            if i < DEPTH - 1:
                x = F.relu(x)
    return x


class PlainMLP(nn.Module):
    """The same MLP with nn.Linear layers, copied from a built ScopedModule."""

    def __init__(self, scoped: ts.ScopedModule) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(WIDTH, WIDTH) for _ in range(DEPTH))
        with torch.no_grad():
            for i, layer in enumerate(self.layers):
                layer.weight.copy_(scoped.store[f"mlp/layer{i}/w"])
                layer.bias.copy_(scoped.store[f"mlp/layer{i}/b"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < DEPTH - 1:
                x = F.relu(x)
        return x


# -- timing ------------------------------------------------------------------------------------


def check_same(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if not torch.allclose(a, b, rtol=1e-5, atol=1e-5):
        sys.exit(f"bench/adapter.py: {what}: the ScopedModule and the plain module disagree")


# -- the figures -------------------------------------------------------------------------------


def figure_filter(rounds: int) -> dict[str, list[float]]:
    torch.manual_seed(0)
    scoped = ts.ScopedModule(my_image_filter)
    x = torch.randn(8, 64, 64, 32)
    with torch.no_grad():
        scoped(x)
        plain = PlainFilter(scoped)
        check_same(scoped(x), plain(x), "image filter")
        return sample_times({"scoped": lambda: scoped(x), "plain": lambda: plain(x)}, rounds)


def built_mlp() -> tuple[ts.ScopedModule, PlainMLP, torch.Tensor]:
    torch.manual_seed(0)
    scoped = ts.ScopedModule(mlp, name="mlp")
    x = torch.randn(BATCH, WIDTH)
    scoped(x)
    plain = PlainMLP(scoped)
    check_same(scoped(x), plain(x), "MLP")
    return scoped, plain, x


def figure_mlp(rounds: int, calls: int) -> dict[str, list[float]]:
    scoped, plain, x = built_mlp()
    with torch.no_grad():
        return sample_times(
            {"scoped": lambda: scoped(x), "plain": lambda: plain(x)}, rounds, calls=calls
        )


def figure_compiled(rounds: int, calls: int) -> dict[str, list[float]]:
    scoped, plain, x = built_mlp()
    scoped_c = torch.compile(scoped, fullgraph=True)
    plain_c = torch.compile(plain, fullgraph=True)
    with torch.no_grad():
        check_same(scoped_c(x), plain_c(x), "compiled MLP")
        return sample_times(
            {"scoped": lambda: scoped_c(x), "plain": lambda: plain_c(x)}, rounds, calls=calls
        )


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Any:
    """One training step of figure (4) as a function: forward, MSE loss, backward, Adam."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        loss = F.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def figure_train(rounds: int, calls: int) -> dict[str, list[float]]:
    scoped, plain, x = built_mlp()
    y = torch.randn(BATCH, WIDTH)

    steps = {"scoped": train_step(scoped, x, y), "plain": train_step(plain, x, y)}
    return sample_times(steps, rounds, calls=calls)


def guard_counts() -> dict[str, int] | None:
    """How many guards dynamo checks before each call of the compiled MLPs: the guards
    of the tree that TORCH_LOGS=guards prints. None where torch's private API for
    reading them is missing."""
    try:
        from torch._C._dynamo.eval_frame import _debug_get_cache_entry_list
    except ImportError:
        return None
    scoped, plain, x = built_mlp()
    torch._dynamo.reset()
    with torch.no_grad():
        torch.compile(scoped, fullgraph=True, backend="eager")(x)
        torch.compile(plain, fullgraph=True, backend="eager")(x)
    counts = {}
    # The frames dynamo compiles: ScopedModule.__call__ (it inlines nn.Module's call);
    # for the plain module, its forward (nn.Module's own call frames run eagerly).
    for name, code in (("scoped", ts.ScopedModule.__call__.__code__),
                       ("plain", PlainMLP.forward.__code__)):  # fmt: skip
        entries = _debug_get_cache_entry_list(code)
        if len(entries) != 1:
            return None
        counts[name] = len(re.findall(r"\+- [A-Z_]+[:(]", str(entries[0].guard_manager)))
    return counts


def train_phases(rounds: int, calls: int) -> dict[str, list[float]]:
    """Microseconds per phase of the training step of (4), scoped and plain, medians over
    interleaved rounds: forward, loss + zero_grad, backward, optimizer step. Backward and
    the step run the same code for both modules; a phase that differs there pays for what
    the forward before it left in the caches."""
    scoped, plain, x = built_mlp()
    y = torch.randn(BATCH, WIDTH)
    clock = time.perf_counter

    def phases_of(model: nn.Module) -> tuple[Any, list[list[float]]]:
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        samples: list[list[float]] = []

        def run() -> None:
            spent = [0.0] * 4
            for _ in range(calls):
                t0 = clock()
                out = model(x)
                t1 = clock()
                loss = F.mse_loss(out, y)
                opt.zero_grad()
                t2 = clock()
                loss.backward()
                t3 = clock()
                opt.step()
                t4 = clock()
                for i, dt in enumerate((t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    spent[i] += dt
            samples.append([s / calls * 1e6 for s in spent])

        return run, samples

    runs = {"scoped": phases_of(scoped), "plain": phases_of(plain)}
    names = list(runs)
    for _ in range(3):
        for run, samples in runs.values():
            run()
            samples.clear()
    for r in range(rounds):
        for name in rotated(names, r):
            runs[name][0]()
    return {
        name: [statistics.median(s[i] for s in samples) for i in range(4)]
        for name, (_, samples) in runs.items()
    }


def mlp_without_scopes(x: torch.Tensor) -> torch.Tensor:
    """mlp() with the scope names in get_variable's names: the same variables, the same
    get_variable calls, no variable_scope entries."""
    for i in range(DEPTH):
        w = ts.get_variable(f"layer{i}/w", [WIDTH, WIDTH])
        b = ts.get_variable(f"layer{i}/b", [WIDTH], initializer=ZEROS)
        x = F.linear(x, w, b)
        if i < DEPTH - 1:
            x = F.relu(x)
    return x


class EmptyScope:
    """A context manager with variable_scope's signature that does nothing."""

    __slots__ = ("_name", "_reuse", "_saved")

    def __init__(self, name_or_scope, default_name=None, initializer=None, regularizer=None,
                 reuse=None, dtype=None, device=None, custom_getter=None,
                 auxiliary_name_scope=True, *, values=None, constraint=None) -> None:  # fmt: skip
        self._saved = None
        self._name = name_or_scope
        self._reuse = reuse

    def __enter__(self) -> EmptyScope:
        self._saved = (self._name, self._reuse)
        return self

    def __exit__(self, *exc: object) -> None:
        self._saved = None


def mlp_empty_scopes(x: torch.Tensor) -> torch.Tensor:
    """mlp_without_scopes() with an EmptyScope where mlp() enters its variable scopes."""
    for i in range(DEPTH):
        with EmptyScope(f"layer{i}"):
            w = ts.get_variable(f"layer{i}/w", [WIDTH, WIDTH])
            b = ts.get_variable(f"layer{i}/b", [WIDTH], initializer=ZEROS)
            x = F.linear(x, w, b)
            if i < DEPTH - 1:
                x = F.relu(x)
    return x


def mlp_c_scopes(x: torch.Tensor) -> torch.Tensor:
    """mlp_without_scopes() with a context manager written in C where mlp() enters its
    variable scopes: a fresh lock per entry (``_thread.allocate_lock()``), made, entered
    and exited with no Python frame. The floor of any ``with`` entry, however it were
    implemented."""
    for i in range(DEPTH):
        with _thread.allocate_lock():
            w = ts.get_variable(f"layer{i}/w", [WIDTH, WIDTH])
            b = ts.get_variable(f"layer{i}/b", [WIDTH], initializer=ZEROS)
            x = F.linear(x, w, b)
            if i < DEPTH - 1:
                x = F.relu(x)
    return x


def scope_entry_share(rounds: int, calls: int) -> dict[str, float]:
    """The training step of (4), each variant's median over the plain module's: the
    ScopedModule, the same variables and get_variable calls without the four
    variable_scope entries, and with an empty context manager (Python) or a context
    manager written in C in their place. Says how much of the step's gap the scope
    entries make, and what any `with` entry costs however it is implemented."""
    scoped, plain, x = built_mlp()
    y = torch.randn(BATCH, WIDTH)
    variants: dict[str, nn.Module] = {"plain": plain, "scoped": scoped}
    for name, fn in (("no scope entries", mlp_without_scopes),
                     ("empty context managers", mlp_empty_scopes),
                     ("C context managers (no frames)", mlp_c_scopes)):  # fmt: skip
        module = ts.ScopedModule(fn, name="mlp")
        module.load_state_dict(scoped.state_dict())  # made from the checkpoint: the same values
        check_same(module(x), scoped(x), name)
        variants[name] = module

    steps = {name: train_step(m, x, y) for name, m in variants.items()}
    times = median_times(steps, rounds, calls=calls)
    return {name: t / times["plain"] for name, t in times.items() if name != "plain"}


def breakdown(calls: int) -> list[tuple[str, float]]:
    """Microseconds per operation of the adapter's per-call work."""

    class Empty(nn.Module):
        def forward(self, x):
            return x

    empty_scoped = ts.ScopedModule(lambda x: x)
    empty_named = ts.ScopedModule(lambda x: x, name="mlp")
    empty_plain = Empty()
    x = torch.zeros(1)
    empty_scoped(x)
    empty_named(x)
    store = ts.VariableStore()
    with store.as_default(), ts.variable_scope("layer0"):
        ts.get_variable("w", [WIDTH, WIDTH])
    linear = nn.Linear(WIDTH, WIDTH)

    def scope_entry() -> None:
        with ts.variable_scope("layer0"):
            pass

    def reuse_get() -> None:
        ts.get_variable("w", [WIDTH, WIDTH])

    def linear_weight() -> None:
        linear.weight  # noqa: B018 (the attribute read a plain module does)

    items = {
        "ScopedModule call, empty fn": lambda: empty_scoped(x),
        "ScopedModule call, empty fn, name=": lambda: empty_named(x),
        "plain nn.Module call, empty forward": lambda: empty_plain(x),
        "nn.Linear call (64x64, batch 32)": lambda: linear(torch.zeros(BATCH, WIDTH)),
    }
    out = median_times(items, 15, calls=calls)
    with store.as_default():
        out["variable_scope enter+exit"] = median_times({"s": scope_entry}, 15, calls=calls)["s"]
        with ts.variable_scope("layer0", reuse=True):
            out["get_variable, reuse path"] = median_times({"g": reuse_get}, 15, calls=calls)["g"]
    out["nn.Module attribute read (linear.weight)"] = median_times(
        {"a": linear_weight}, 15, calls=calls
    )["a"]
    return [(name, seconds * 1e6) for name, seconds in out.items()]


# -- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few rounds only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.quick:
        rounds, calls, filter_rounds = 5, 20, 3
    else:
        rounds, calls, filter_rounds = 61, 200, 31

    load_before = load_average()
    print(malloc_line())
    print(
        f"torch {torch.__version__}, torch.set_num_threads(1), float32, fused op native: "
        f"{ts.ops.native_available()}; interleaved rounds, medians"
    )
    print(
        f"rounds: filter {filter_rounds} (1 call each), MLP {rounds} ({calls} calls each)",
        flush=True,
    )

    figures = [
        ("(1) eager forward, image filter 8x64x64x32, 2x conv 5x5 32->32", "<= 1.0",
         lambda: figure_filter(filter_rounds)),
        ("(2) eager forward, MLP 4x64, batch 32", "<= 1.0", lambda: figure_mlp(rounds, calls)),
        ("(3) torch.compile forward, MLP 4x64, batch 32", "1.00 within noise",
         lambda: figure_compiled(rounds, calls)),
        ("(4) training step (fwd+bwd+Adam), MLP 4x64, batch 32", "<= 1.0",
         lambda: figure_train(rounds, max(1, calls // 4))),
    ]  # fmt: skip
    print()
    print(f"{'figure':<64}{'scoped us':>11}{'plain us':>10}{'ratio':>8}  {'round ratios IQR':>16}")
    print("-" * 111)
    summary = []
    for title, goal, run in figures:
        samples = run()
        scoped, plain = (statistics.median(samples[k]) for k in ("scoped", "plain"))
        ratio = scoped / plain
        # The spread of the paired per-round ratios: how far noise moves a ratio here.
        paired = [a / b for a, b in zip(samples["scoped"], samples["plain"], strict=True)]
        q1, _, q3 = statistics.quantiles(paired, n=4)
        print(
            f"{title:<64}{scoped * 1e6:>11.1f}{plain * 1e6:>10.1f}{ratio:>8.3f}"
            f"  {q1:>7.3f} - {q3:.3f}",
            flush=True,
        )
        summary.append(summary_line(title.split(" ", 1)[1], ratio, digits=3, note=f"goal {goal}"))

    print()
    print("training step (4) by phase (us per step, medians):")
    phases = train_phases(rounds, max(1, calls // 4))
    print(f"  {'':<8}{'forward':>10}{'loss+zero_grad':>16}{'backward':>10}{'Adam step':>11}")
    for name in ("scoped", "plain"):
        cells = zip(phases[name], (10, 16, 10, 11), strict=True)
        print(f"  {name:<8}" + "".join(f"{v:>{w}.2f}" for v, w in cells))
    diff = [a - b for a, b in zip(phases["scoped"], phases["plain"], strict=True)]
    widths = (10, 16, 10, 11)
    print(f"  {'diff':<8}" + "".join(f"{v:>+{w}.2f}" for v, w in zip(diff, widths, strict=True)))
    print()
    print("training step (4), the scope entries removed or replaced (median / plain module's):")
    for name, ratio in scope_entry_share(rounds, max(1, calls // 4)).items():
        print(f"  {name:<44}{ratio:>8.3f}")
    print()
    print("where the time goes (us per operation, medians):")
    for name, us in breakdown(50 if args.quick else 2000):
        print(f"  {name:<44}{us:>8.2f}")
    guards = guard_counts()
    if guards is not None:
        print(
            f"  guards checked per compiled call (3): scoped {guards['scoped']}, "
            f"plain {guards['plain']}"
        )
    print()
    print(load_line(load_before, "other work on the machine makes the figures noisier"))
    print()
    for line in summary:
        print(line)


if __name__ == "__main__":
    main()
