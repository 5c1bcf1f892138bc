"""Benchmark of ts.train's TensorFlow checkpoint reader and writer against numpy's raw file I/O.

A checkpoint of about 1 GiB (six float32 tensors of 160 MiB and 2,000 of 32 KiB),
written by ``ts.train.Saver``, is read and written side by side with numpy doing
the same bytes, interleaved round by round with the order rotating (medians over
the rounds), the page cache warm:

  (1) ``Saver.restore`` into the store's existing Parameters, every CRC verified
      (before anything is written: the reader checksums the files, then fills the
      Parameters) vs ``numpy.fromfile`` of the data file; throughput ratio, goal >= 0.8;
  (2) the same without CRCs (``CheckpointReader(verify=False).read_into``); goal >= 0.95;
  (3) ``Saver.save`` (CRCs computed) vs ``ndarray.tofile`` of the same bytes; goal >= 0.8;
  (4) peak RSS growth of a fresh process while it restores into existing Parameters,
      against the largest tensor + 64 MiB (the checkpoint is never held whole).

glibc's malloc makes timings depend on the process's history, so the script pins
it before the process starts: without GLIBC_TUNABLES it re-executes itself with
fixed mmap/trim thresholds.

    python bench/tf_checkpoint.py           # full run (about a minute)
    python bench/tf_checkpoint.py --quick   # fewer rounds, a smaller checkpoint
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import load_average, load_line, malloc_line, median_times, pin_malloc, summary_line

pin_malloc()

import numpy as np  # noqa: E402
import torch  # noqa: E402

import torchscope as ts  # noqa: E402
from torchscope.train import _crc  # noqa: E402


def build_store(large: int, large_mib: int, small: int, small_kib: int) -> ts.VariableStore:
    store = ts.VariableStore()
    rows = large_mib * 1024 * 1024 // 4 // 1024
    with store.as_default():
        for i in range(large):
            ts.get_variable(f"large/w{i}", [rows, 1024], initializer=ts.zeros_initializer())
        for i in range(small):
            ts.get_variable(
                f"small/b{i // 100}/w{i}", [small_kib * 256], initializer=ts.zeros_initializer()
            )
    torch.manual_seed(0)
    with torch.no_grad():
        for param in store.values():
            param.normal_()
    return store


def rss_worker(prefix: str, large: int, large_mib: int, small: int, small_kib: int) -> None:
    """In a fresh process: the store, then the restore; prints MiB of peak RSS growth."""
    store = build_store(large, large_mib, small, small_kib)
    saver = ts.train.Saver(store)
    # Reset the peak (VmHWM) to the current RSS, so that building the store is not counted.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_kib("VmRSS")
    saver.restore(prefix)
    print((_status_kib("VmHWM") - before) / 1024)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, 1/8 of the size")
    parser.add_argument("--rss-worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.rss_worker:
        prefix, *sizes = args.rss_worker
        rss_worker(prefix, *map(int, sizes))
        return
    large, large_mib, small, small_kib = (6, 20, 250, 32) if args.quick else (6, 160, 2000, 32)
    rounds = 3 if args.quick else 7
    folder = tempfile.mkdtemp(prefix="tf_checkpoint_bench_")
    load_before = load_average()
    try:
        store = build_store(large, large_mib, small, small_kib)
        total = sum(p.numel() * p.element_size() for p in store.values())
        largest = max(p.numel() * p.element_size() for p in store.values())
        saver = ts.train.Saver(store, max_to_keep=1)
        prefix = saver.save(os.path.join(folder, "model.ckpt"))
        data_file = prefix + ".data-00000-of-00001"
        raw_file = os.path.join(folder, "raw.bin")
        flat = np.fromfile(data_file, dtype=np.uint8)
        print(malloc_line())
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads; checkpoint: "
            f"{len(store)} tensors, {total / 2**20:.0f} MiB ({large} x {large_mib} MiB, "
            f"{small} x {small_kib} KiB); compiled CRC: {_crc.NATIVE}; {rounds} rounds, "
            "interleaved, medians"
        )
        unverified = ts.train.CheckpointReader(prefix, verify=False)
        pairs = list(store.items())
        # One warm-up call of each: the page cache, the allocator.
        read = median_times(
            {
                "restore, CRC": lambda: saver.restore(prefix),
                "read_into, no CRC": lambda: unverified.read_into(pairs),
                "numpy.fromfile": lambda: np.fromfile(data_file, dtype=np.uint8),
            },
            rounds,
            warmup=1,
        )
        # Each write goes to a new file, the old one deleted outside the timing (replacing
        # a file makes the kernel free the old one's cached pages: tens of ms per GiB).
        fresh = iter(range(1_000_000))
        writer = ts.train.Saver(store, max_to_keep=None)

        def save() -> None:
            writer.save(os.path.join(folder, "w.ckpt"), global_step=next(fresh))

        def tofile() -> None:
            flat.tofile(f"{raw_file}{next(fresh)}")

        def clean() -> None:
            for name in os.listdir(folder):
                if name.startswith(("w.ckpt-", "raw.bin")):
                    os.remove(os.path.join(folder, name))

        write = median_times(
            {"Saver.save": save, "ndarray.tofile": tofile}, rounds, warmup=1, between=clean
        )
        for name, seconds in [*read.items(), *write.items()]:
            print(f"  {name:<20} {seconds * 1e3:8.1f} ms   {total / seconds / 1e9:6.2f} GB/s")
        sizes = [str(v) for v in (large, large_mib, small, small_kib)]
        child = subprocess.run(
            [sys.executable, __file__, "--rss-worker", prefix, *sizes],
            capture_output=True,
            text=True,
            check=True,
        )
        growth = float(child.stdout.strip().splitlines()[-1])
        bound = largest / 2**20 + 64
        print()
        print(load_line(load_before, "above ~0.5 other processes are competing"))
        crc_ratio = read["numpy.fromfile"] / read["restore, CRC"]
        raw_ratio = read["numpy.fromfile"] / read["read_into, no CRC"]
        write_ratio = write["ndarray.tofile"] / write["Saver.save"]
        summary = [
            ("read into Parameters, CRC verified / numpy.fromfile", crc_ratio, "goal >= 0.8"),
            ("read into Parameters, no CRC / numpy.fromfile", raw_ratio, "goal >= 0.95"),
            ("write, Saver.save / ndarray.tofile", write_ratio, "goal >= 0.8"),
        ]
        for figure, value, goal in summary:
            print(summary_line(figure, value, note=goal))
        print(
            summary_line(
                "peak RSS growth restoring into Parameters",
                growth,
                digits=0,
                unit="MiB",
                note=f"goal <= largest tensor + 64 MiB = {bound:.0f} MiB",
            )
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
