"""Checks ``examples/dcgan_tf1.py`` (the port) against ``dcgan_tf1_original.py`` (TensorFlow).

Runs the port here (torch and torchscope) and the original in a Python that has
TensorFlow (``--tf-python``, or the ``TF_PYTHON`` environment variable), exchanging
values through ``.npz`` files in a temporary folder:

1. the port builds its model and writes every variable's initial value, by name
   (``init.npz``), and one batch of images and noise (``inputs.npz``);
2. the original builds its graph, loads those values into its variables, runs one
   training step (the discriminator's Adam, fetching both losses, then the generator's)
   and writes its variable names, shapes, losses and values after the step (``tf.npz``);
3. the port runs the same step; the script compares:

   - the variable names, in creation order, and their shapes: equal;
   - ``d_vars`` and ``g_vars`` (the lists filtered by name): equal;
   - the two losses at the step's start, and again after the step: within
     ``--loss-tolerance`` (1e-6);
   - the trainable variables after the step: within ``--step-tolerance`` (1e-5, absolute;
     Adam's first step moves each weight by about the learning rate, 2e-3, and divides
     each gradient entry by its own size, so where an entry is tiny its rounding, which
     differs between torch's and TensorFlow's kernels, shows in the step). Two biases are
     left out: those of the convolutions that a batch norm follows, whose gradient is zero
     in exact arithmetic, so that each side moves them by +-2e-3 according to the sign of
     its own rounding noise (which changes nothing downstream: the batch norm subtracts them);
   - the batch-norm moving averages after the step: within ``--step-tolerance``, less the
     share of the left-out bias that ``d_bn1/moving_mean`` takes in.

Run it (needs numpy; TensorFlow and tf-keras only in the other Python; about 10 seconds):

    python examples/tf1/check_dcgan_port.py --tf-python /path/to/tf-venv/bin/python

It prints each figure and exits 1 if one is out of tolerance. Measured with TensorFlow
2.21 (tensorflow-cpu, tf-keras) and torch 2.13 on a 2-core CPU:

- 24 variable names and shapes equal, in the same order; d_vars (8) and g_vars (10) equal;
- first losses: d_loss 1.3568230 on both sides, g_loss 0.7425421 / 0.7425422 (6.0e-8);
- after one step: the other 16 trainable variables within 4.7e-6 (the worst entry, in
  generator/g_h0_lin/Matrix, has a gradient of 2.3e-7), the 6 moving averages within
  1.8e-7, and the losses after the step equal (1.2321068 and 0.4427060 on both sides);
  the two left-out biases' gradients are at most 1.2e-6.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # examples/, for dcgan_tf1

import dcgan_tf1  # noqa: E402  (the port)

import torchscope as ts  # noqa: E402

# Biases of a convolution that a batch norm follows (as in the TensorFlow original): their
# gradient is zero in exact arithmetic, rounding noise in practice.
BEFORE_BATCH_NORM = ("discriminator/d_h1_conv/biases", "generator/g_h1/biases")
D_BIAS, D_MOVING_MEAN = "discriminator/d_h1_conv/biases", "discriminator/d_bn1/moving_mean"


def run_tensorflow(tf_python: str, folder: str) -> dict[str, np.ndarray]:
    original = os.path.join(HERE, "dcgan_tf1_original.py")
    result = subprocess.run(
        [tf_python, original, "--check-dir", folder], capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"the TensorFlow original failed:\n{result.stdout}\n{result.stderr[-3000:]}")
    print(result.stdout.strip())
    with np.load(os.path.join(folder, "tf.npz")) as tf_out:
        return dict(tf_out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tf-python", default=os.environ.get("TF_PYTHON"))
    parser.add_argument("--loss-tolerance", type=float, default=1e-6)
    parser.add_argument("--step-tolerance", type=float, default=1e-5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.tf_python:
        parser.error("give --tf-python PATH (a Python with tensorflow) or set TF_PYTHON")
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)

    model = dcgan_tf1.DCGAN()
    variables = ts.global_variables()
    names = [ts.name_of(v) for v in variables]
    images = dcgan_tf1.make_shapes(model.batch_size, seed=args.seed + 5)
    z = model.noise(model.batch_size)
    failures = []

    def report(what: str, ok: bool) -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            failures.append(what)

    with tempfile.TemporaryDirectory() as folder:
        np.savez(
            os.path.join(folder, "init.npz"),
            **{n: v.detach().numpy() for n, v in zip(names, variables, strict=True)},
        )
        np.savez(os.path.join(folder, "inputs.npz"), images=images.numpy(), z=z.numpy())
        tf_out = run_tensorflow(args.tf_python, folder)

    tf_names = list(tf_out["names"])
    report(f"{len(names)} variable names, in creation order: equal", names == tf_names)
    if names != tf_names:
        print(f"  port: {names}\n  TensorFlow: {tf_names}")
        return 1
    shapes_equal = all(
        tuple(v.shape) == tf_out[f"after/{n}"].shape for n, v in zip(names, variables, strict=True)
    )
    report("shapes: equal", shapes_equal)
    d_names = [ts.name_of(v) for v in model.d_vars]
    g_names = [ts.name_of(v) for v in model.g_vars]
    report(
        f"d_vars ({len(d_names)}) and g_vars ({len(g_names)}): equal",
        d_names == list(tf_out["d_vars"]) and g_names == list(tf_out["g_vars"]),
    )

    d_loss, g_loss = model.train_step(images, z)
    for label, ours in (("d_loss", d_loss.item()), ("g_loss", g_loss.item())):
        theirs = float(tf_out[label])
        diff = abs(ours - theirs)
        report(
            f"first {label}: port {ours:.7f}, TensorFlow {theirs:.7f}, difference {diff:.1e}",
            diff <= args.loss_tolerance,
        )

    gradients = {n: float(np.abs(tf_out[f"gradient/{n}"]).max()) for n in BEFORE_BATCH_NORM}
    worst = max(gradients.values())
    print(
        f"     not compared: {' and '.join(BEFORE_BATCH_NORM)}, biases that a batch norm "
        f"follows, whose gradients (at most {worst:.1e} in TensorFlow) are zero in exact "
        "arithmetic: Adam's first step moves each entry by about the learning rate whatever "
        "the gradient's size, so both sides move them by their own rounding noise"
    )
    values = {n: v.detach().numpy() for n, v in zip(names, variables, strict=True)}
    trainable = {ts.name_of(v) for v in ts.trainable_variables()}
    compared = [n for n in names if n in trainable and n not in BEFORE_BATCH_NORM]
    diff, where = max((float(np.abs(values[n] - tf_out[f"after/{n}"]).max()), n) for n in compared)
    report(
        f"after one step, the other {len(compared)} trainable variables: "
        f"max |port - TensorFlow| = {diff:.1e} ({where}), tolerance {args.step_tolerance:.0e}",
        diff <= args.step_tolerance,
    )
    # A moving mean follows its batch means, which carry the bias before the batch norm:
    # d_bn1's moved twice in the step's second run (D on real and on generated images) after
    # the discriminator's step had moved d_h1_conv/biases, so it holds 0.1 + 0.9 * 0.1 = 0.19
    # of that bias's change; that part is taken out before comparing.
    bias_change = values[D_BIAS] - tf_out[f"after/{D_BIAS}"]
    diffs = []
    for n in names:
        if n in trainable:
            continue
        delta = values[n] - tf_out[f"after/{n}"]
        if n == D_MOVING_MEAN:
            delta = delta - 0.19 * bias_change
        diffs.append((float(np.abs(delta).max()), n))
    diff, where = max(diffs)
    report(
        f"after one step, the {len(diffs)} moving averages (d_bn1/moving_mean less 0.19 of "
        f"d_h1_conv/biases' difference): max |port - TensorFlow| = {diff:.1e} ({where}), "
        f"tolerance {args.step_tolerance:.0e}",
        diff <= args.step_tolerance,
    )
    with torch.no_grad():
        after = model.losses(images, z)
    for label, ours, theirs in zip(
        ("d_loss", "g_loss"), after, tf_out["losses_after"], strict=True
    ):
        diff = abs(ours.item() - float(theirs))
        report(
            f"{label} after the step: port {ours.item():.7f}, TensorFlow {float(theirs):.7f}, "
            f"difference {diff:.1e}",
            diff <= args.loss_tolerance,
        )
    print("port matches TensorFlow" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
