"""What installing and importing torchscope costs a program and a test run.

Figures, each the median of fresh processes run interleaved (so that load on the
machine hits both sides alike):

* ``import torchscope`` after ``import torch``: the extra time and the extra modules
  (goal <= 100 ms; none of them from ``torch._dynamo``);
* a pytest run of one test that does not use ``ts_store``, with torchscope's plugin
  (installed through the ``pytest11`` entry point) and with it disabled
  (``-p no:torchscope``): the difference (goal <= 100 ms).

Run: ``python bench/import.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import load_average, load_line, malloc_line, pin_malloc, summary_line

pin_malloc()

MEASURE_IMPORT = textwrap.dedent(
    """
    import sys, time
    import torch
    before = set(sys.modules)
    start = time.perf_counter()
    import torchscope
    elapsed = time.perf_counter() - start
    extra = set(sys.modules) - before
    dynamo = sum(m.startswith("torch._dynamo") for m in extra)
    print(elapsed, len(extra), dynamo)
    """
)

PLAIN_TEST = "def test_plain():\n    assert 1 + 1 == 2\n"


def _import_sample() -> tuple[float, int, int]:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE_IMPORT], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), int(out[1]), int(out[2])


def _pytest_seconds(folder: str, *extra: str) -> float:
    # Wall time of the whole process, interpreter start-up included (what a user waits).
    code = (
        "import time, sys, pytest; t = time.perf_counter(); "
        f"rc = pytest.main(['-q', '-p', 'no:cacheprovider', *{list(extra)!r}, {folder!r}]); "
        "print(time.perf_counter() - t); sys.exit(rc)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=folder, check=True
    )
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="fresh processes per figure")
    args = parser.parse_args()
    load = load_average()
    print(malloc_line())

    imports = [_import_sample() for _ in range(args.runs)]
    seconds = statistics.median(s for s, _, _ in imports)
    modules = statistics.median(m for _, m, _ in imports)
    dynamo = max(d for _, _, d in imports)

    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "test_plain.py"), "w") as f:
            f.write(PLAIN_TEST)
        with_plugin, without = [], []
        for _ in range(args.runs):
            with_plugin.append(_pytest_seconds(folder))
            without.append(_pytest_seconds(folder, "-p", "no:torchscope"))
    plugin_cost = statistics.median(with_plugin) - statistics.median(without)

    print(f"import torchscope after import torch: {seconds * 1e3:.0f} ms, {modules:.0f} modules")
    print(
        f"pytest run without the fixture: {statistics.median(with_plugin) * 1e3:.0f} ms with "
        f"the plugin, {statistics.median(without) * 1e3:.0f} ms without"
    )
    print(load_line(load, f"medians of {args.runs} fresh processes each"))
    print(
        summary_line(
            "import torchscope after torch", seconds * 1e3, digits=0, unit="ms", note="goal <= 100"
        )
    )
    print(
        summary_line(
            "modules added by import torchscope",
            modules,
            digits=0,
            note=f"{dynamo} of torch._dynamo; goal 0",
        )
    )
    print(
        summary_line(
            "pytest run with/without the plugin",
            plugin_cost * 1e3,
            digits=0,
            unit="ms",
            note="difference; goal <= 100",
        )
    )


if __name__ == "__main__":
    main()
