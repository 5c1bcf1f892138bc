"""``python -m torchscope.train PATH``: what a TensorFlow checkpoint holds, as TensorFlow's
``inspect_checkpoint`` prints it (no TensorFlow needed).

    python -m torchscope.train ckpt/                 # name, dtype, shape, bytes of each tensor
    python -m torchscope.train ckpt/ --tensor mlp/w  # and that tensor's values
    python -m torchscope.train ckpt/ --all-tensors   # every tensor's values
"""

from __future__ import annotations

import argparse
import sys

import torch

from ._bundle import CheckpointError
from ._reader import CheckpointReader


def _dtype_name(dtype: object) -> str:
    return "string" if dtype is bytes else str(dtype).removeprefix("torch.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m torchscope.train",
        description=__doc__.splitlines()[0],  # type: ignore[union-attr]
    )
    parser.add_argument("path", help="a checkpoint folder, prefix, or .index/.data file")
    parser.add_argument("--tensor", action="append", default=[], help="print this tensor too")
    parser.add_argument("--all-tensors", action="store_true", help="print every tensor")
    parser.add_argument("--no-verify", action="store_true", help="do not check CRCs")
    args = parser.parse_args(argv)
    torch.set_printoptions(threshold=1000, edgeitems=4)
    try:
        reader = CheckpointReader(args.path, verify=not args.no_verify)
        keys = reader.keys()
        dtypes = reader.get_variable_to_dtype_map()
        shapes = reader.get_variable_to_shape_map()
        width = max([len(k) for k in keys] + [4])
        print(f"{reader.prefix}: {len(keys)} tensors")
        print(f"{'name':<{width}}  {'dtype':<14}{'shape':<20}{'bytes':>12}")
        total = 0
        for key in keys:
            size = reader.nbytes(key)
            total += size
            shape = str(shapes[key])
            print(f"{key:<{width}}  {_dtype_name(dtypes[key]):<14}{shape:<20}{size:>12,}")
        print(f"{'total':<{width}}  {'':<14}{'':<20}{total:>12,}")
        for key in keys if args.all_tensors else args.tensor:
            print(f"\n{key}:")
            print(reader.get_tensor(key))
    except (CheckpointError, KeyError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
