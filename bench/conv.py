"""Benchmark of torchscope.ops.conv2d_bias_relu against eager PyTorch (CPU, float32).

Shapes (issue 4): (a) batch 8, 32->32, 5x5, 64x64; (b) batch 32, 64->64, 3x3,
56x56; (c) batch 1, 3->32, 3x3, 224x224; and (s) batch 1, 16->16, 3x3, 16x16, a
small layer where per-call costs show; "same" padding, NCHW and channels_last.

Per case, measured interleaved in one process (one call of each variant per
round, medians over the rounds), on 2 threads:
  forward (no_grad): conv alone (no bias, no relu), eager relu(conv2d(x, w, b)),
      the fused op (oneDNN post-op path), the fused op forced onto its generic
      path (at::convolution + the one-pass bias+relu epilogue);
  training step (forward + backward with a dense upstream gradient): conv alone,
      eager, fused;
  bytes saved for backward (saved_tensors_hooks, unique storages): eager, fused
      (eager keeps input, weight and the relu output; the fused op input,
      weight and a 1-bit relu mask).

glibc's malloc makes conv timings depend on the process's history, so the
script pins it before the process starts: without GLIBC_TUNABLES it re-executes
itself with fixed mmap/trim thresholds. Even so, the same build measures
differently from one process to the next (the same ATen convolution 0.1-0.3 ms
faster or slower on (a), the (c) NCHW training ratio anywhere in 0.78-1.12): the
full run measures in 3 fresh processes, one after the other, each interleaved as
above, and reports the median of the processes' ratios, with each process's
training ratio beside it.

    python bench/conv.py                 # full run, 3 processes (about 8 minutes)
    python bench/conv.py --processes 5   # more processes
    python bench/conv.py --quick         # a few rounds in this process, to check that it runs
    python bench/conv.py --device cuda   # the GPU part: the same cases on the current GPU

On CUDA each call is timed from a synchronized start to a synchronized end (what a
caller waits for, launches included), float32 and bfloat16, one process; there is
no generic path to force (the CUDA op is always cuDNN's convolution + the epilogue
kernel), so the generic column reads nan there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import load_average, load_line, malloc_line, median_times, pin_malloc, summary_line

pin_malloc()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import torchscope as ts  # noqa: E402
from torchscope.ops._knobs import cpu_path  # noqa: E402

SHAPES = {
    "a": (8, 32, 32, 5, 64),
    "b": (32, 64, 64, 3, 56),
    "c": (1, 3, 32, 3, 224),
    # Not an issue shape: a small layer (4096 outputs), where per-call costs show.
    "s": (1, 16, 16, 3, 16),
}


def saved_bytes(fn) -> int:
    """Bytes of the distinct storages autograd saves for backward during fn()."""
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(seen.values())


def run_case(
    name: str,
    layout: str,
    rounds_fwd: int,
    rounds_train: int,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> dict:
    n, c_in, c_out, k, hw = SHAPES[name]
    torch.manual_seed(0)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    like = dict(device=device, dtype=dtype)
    x = torch.randn(n, c_in, hw, hw, **like).to(memory_format=fmt)
    w = (torch.randn(c_out, c_in, k, k, **like) * 0.1).to(memory_format=fmt)
    b = torch.randn(c_out, **like) * 0.1
    pad = k // 2
    sync = torch.cuda.synchronize if device == "cuda" else None

    def conv():
        return F.conv2d(x, w, None, 1, pad)

    def eager():
        return F.relu(F.conv2d(x, w, b, 1, pad))

    def fused():
        return ts.ops.conv2d_bias_relu(x, w, b, 1, pad)

    def generic():  # the fused op forced onto its generic CPU path (conv + epilogue pass)
        with cpu_path(onednn=False):
            return fused()

    variants = {"conv": conv, "eager": eager, "fused": fused}
    if device == "cpu":
        variants["generic"] = generic
    with torch.no_grad():
        fwd = median_times(variants, rounds_fwd, warmup=5, sync=sync)
    fwd.setdefault("generic", float("nan"))

    # Training: weights and bias learn; the input needs a gradient except for
    # the first layer of a network (c).
    xg = x.detach().requires_grad_(name != "c")
    wg = w.detach().requires_grad_()
    bg = b.detach().requires_grad_()
    grad = torch.randn(n, c_out, hw, hw, **like).to(memory_format=fmt)

    def step(fn):
        def run():
            out = fn()
            out.backward(grad)
            wg.grad = bg.grad = xg.grad = None

        return run

    train = median_times(
        {
            "conv": step(lambda: F.conv2d(xg, wg, None, 1, pad)),
            "eager": step(lambda: F.relu(F.conv2d(xg, wg, bg, 1, pad))),
            "fused": step(lambda: ts.ops.conv2d_bias_relu(xg, wg, bg, 1, pad)),
        },
        rounds_train,
        warmup=5,
        sync=sync,
    )
    mem = {
        "eager": saved_bytes(lambda: F.relu(F.conv2d(xg, wg, bg, 1, pad))),
        "fused": saved_bytes(lambda: ts.ops.conv2d_bias_relu(xg, wg, bg, 1, pad)),
    }
    return {"fwd": fwd, "train": train, "mem": mem}


RATIOS = {  # name in the SUMMARY lines -> (table, numerator, denominator)
    "fwd fused/conv": ("fwd", "fused", "conv"),
    "fwd fused/eager": ("fwd", "fused", "eager"),
    "fwd generic-path/conv": ("fwd", "generic", "conv"),
    "train fused/eager": ("train", "fused", "eager"),
    "train fused/conv": ("train", "fused", "conv"),
    "saved-bytes fused/eager": ("mem", "fused", "eager"),
}


def measure(cases: str, rounds_fwd: int, rounds_train: int) -> dict[str, dict]:
    """Every case of this process: {"(a) NCHW": run_case's dict, ...}."""
    results = {}
    for name in [n for n in SHAPES if n in cases]:
        for layout in ("NCHW", "channels_last"):
            results[f"({name}) {layout}"] = run_case(name, layout, rounds_fwd, rounds_train)
    return results


def measure_cuda(cases: str, rounds_fwd: int, rounds_train: int) -> dict[str, dict]:
    """The GPU part: every case in float32 and bfloat16, on the current GPU."""
    results = {}
    for dtype, tag in ((torch.float32, "f32"), (torch.bfloat16, "bf16")):
        for name in [n for n in SHAPES if n in cases]:
            for layout in ("NCHW", "channels_last"):
                results[f"({name}) {layout.replace('channels_', 'ch')} {tag}"] = run_case(
                    name, layout, rounds_fwd, rounds_train, "cuda", dtype
                )
    return results


def in_processes(args: argparse.Namespace) -> list[dict[str, dict]]:
    """measure() in args.processes fresh processes, one after the other."""
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--cases", args.cases]
    command += ["--threads", str(args.threads)] + (["--quick"] if args.quick else [])
    runs = []
    for i in range(args.processes):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"bench/conv.py: worker {i} failed:\n{done.stderr[-2000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"  process {i + 1}/{args.processes} done", flush=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few rounds, one process")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cases", default="abcs", help="which shapes to run, e.g. 'c'")
    parser.add_argument(
        "--processes", type=int, default=None, help="fresh processes to measure in (default 3)"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--device", default="cpu", choices=("cpu", "cuda"), help="cuda: the GPU part"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rounds_fwd, rounds_train = (3, 3) if args.quick else (41, 41)
    if not ts.ops.native_available():
        sys.exit("bench/conv.py: the compiled extension is not loaded; build it first")
    if args.worker:
        print(json.dumps(measure(args.cases, rounds_fwd, rounds_train)))
        return
    if args.device == "cuda":
        if not torch.cuda.is_available():
            sys.exit("bench/conv.py: --device cuda, but torch sees no GPU")
        args.processes = 1
        rounds_fwd, rounds_train = (3, 3) if args.quick else (101, 101)
    if args.processes is None:
        args.processes = 1 if args.quick else 3

    load_before = load_average()
    print(malloc_line())
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, "
        f"{rounds_fwd} forward / {rounds_train} training rounds, interleaved, medians; "
        f"{args.processes} process(es)",
        flush=True,
    )
    if args.device == "cuda":
        print(f"device: {torch.cuda.get_device_name()}, float32 and bfloat16", flush=True)
        runs = [measure_cuda(args.cases, rounds_fwd, rounds_train)]
    elif args.processes == 1:
        runs = [measure(args.cases, rounds_fwd, rounds_train)]
    else:
        runs = in_processes(args)

    def median_of(case: str, table: str, variant: str) -> float:
        return statistics.median(run[case][table][variant] for run in runs)

    def ratio_of(case: str, figure: str) -> list[float]:
        table, num, den = RATIOS[figure]
        return [run[case][table][num] / run[case][table][den] for run in runs]

    header = (
        f"{'case':<18}{'conv ms':>9}{'eager ms':>9}{'fused ms':>9}{'generic':>9}"
        f"{'fus/conv':>9}{'fus/eag':>8}{'gen/conv':>9}"
        f"{'|train conv':>12}{'eager':>8}{'fused':>8}{'fus/eag':>8}{'fus/conv':>9}"
        f"{'|saved MB eager':>16}{'fused':>7}"
    )
    print()
    if args.processes > 1:
        print(
            "milliseconds: medians over the processes; ratios: the median of the processes' ratios"
        )
    print(header)
    print("-" * len(header))
    summary = []
    spread = []
    for case in runs[0]:
        r = {figure: statistics.median(ratio_of(case, figure)) for figure in RATIOS}
        ms = {
            (t, v): median_of(case, t, v) * 1e3 for t in ("fwd", "train") for v in runs[0][case][t]
        }
        mb = {v: median_of(case, "mem", v) / 2**20 for v in ("eager", "fused")}
        print(
            f"{case:<18}{ms['fwd', 'conv']:>9.3f}{ms['fwd', 'eager']:>9.3f}"
            f"{ms['fwd', 'fused']:>9.3f}"
            f"{ms['fwd', 'generic']:>9.3f}{r['fwd fused/conv']:>9.3f}"
            f"{r['fwd fused/eager']:>8.3f}{r['fwd generic-path/conv']:>9.3f}"
            f"{ms['train', 'conv']:>12.2f}{ms['train', 'eager']:>8.2f}{ms['train', 'fused']:>8.2f}"
            f"{r['train fused/eager']:>8.3f}{r['train fused/conv']:>9.3f}"
            f"{mb['eager']:>16.2f}{mb['fused']:>7.2f}",
            flush=True,
        )
        where = "cuda " if args.device == "cuda" else ""
        summary += [
            summary_line(f"{where}{figure} {case}", value, digits=3)
            for figure, value in r.items()
            if value == value  # nan: no generic path on CUDA
        ]
        each = " ".join(f"{x:.3f}" for x in ratio_of(case, "train fused/eager"))
        spread.append(f"  {case:<18}{each}")
    if args.processes > 1:
        print()
        print("train fused/eager in each process (the same build varies from process to process):")
        print("\n".join(spread))
    print()
    print(
        load_line(load_before, "above ~0.5 other processes are competing and the ratios are noisy")
    )
    print("\n".join(summary))


if __name__ == "__main__":
    main()
