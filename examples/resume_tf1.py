"""Resuming a TensorFlow 1 training run in PyTorch: weights, optimizer state, step count.

The checkpoint in tests/data/tf1_checkpoints/adam was written by TensorFlow 2.21
(``tf.compat.v1``) after 3 steps of ``AdamOptimizer(0.01)`` on a two-layer MLP. Here the
model is the TensorFlow 1 code with ``tf.`` -> ``ts.``; ``ts.train.Saver`` restores its
variables, Adam's slots (``<var>/Adam``, ``<var>/Adam_1``, the beta powers) and the
global step without TensorFlow, and ``ts.train.AdamOptimizer`` trains on with
TensorFlow's update rule. The script prints the loss at the restored state beside the
one TensorFlow recorded, how far one more step lands from TensorFlow's own next step,
the loss as training goes on, and saves a checkpoint that TensorFlow can read, then
restores it into a fresh store.

Run it (a second on a CPU; needs numpy, which the examples extra brings):

    python examples/resume_tf1.py              # 200 more steps; exits 1 if it drifts from TF
    python examples/resume_tf1.py --steps 20   # a quick run
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np
import torch

import torchscope as ts

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKPOINT = os.path.normpath(os.path.join(HERE, "..", "tests", "data", "tf1_checkpoints", "adam"))


def dense(x, units, activation=None):
    """The TensorFlow 1 layer, tf. -> ts."""
    kernel = ts.get_variable("kernel", [x.shape[-1], units])
    bias = ts.get_variable("bias", [units], initializer=ts.zeros_initializer())
    out = x @ kernel + bias
    return activation(out) if activation is not None else out


def mlp(x):
    with ts.variable_scope("mlp", reuse=ts.AUTO_REUSE):
        with ts.variable_scope("hidden"):
            h = dense(x, 6, torch.relu)
        with ts.variable_scope("out"):
            return dense(h, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="training steps after resuming")
    parser.add_argument("--checkpoint", default=CHECKPOINT, help="a TF1 checkpoint of the MLP")
    args = parser.parse_args()

    recorded = np.load(os.path.join(args.checkpoint, "train.npz"))
    x, y = torch.from_numpy(recorded["x"]), torch.from_numpy(recorded["y"])

    def loss_fn():
        return torch.mean((mlp(x) - y) ** 2)

    loss_fn()  # builds the variables, as TensorFlow builds the graph
    step = ts.train.get_or_create_global_step()
    opt = ts.train.AdamOptimizer(ts.trainable_variables(), learning_rate=0.01)
    saver = ts.train.Saver(optimizer=opt)
    saver.restore(args.checkpoint)  # a folder: the newest checkpoint its state file names
    print(
        f"restored {len(ts.global_variables())} variables and Adam's slots from "
        f"{ts.train.latest_checkpoint(args.checkpoint)} at global step {int(step)}"
    )
    loss = loss_fn()
    print(f"loss at the restored state: {loss.item():.7f} (TensorFlow: {recorded['loss']:.7f})")

    def train() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        with torch.no_grad():
            step.add_(1)
        return loss

    train()
    store = ts.get_default_store()
    drift = max(
        (store[name].detach() - torch.from_numpy(recorded[f"next/{name}"])).abs().max().item()
        for name in ["mlp/hidden/kernel", "mlp/hidden/bias", "mlp/out/kernel", "mlp/out/bias"]
    )
    print(f"after one more step: max |torchscope - TensorFlow| = {drift:.1e}")
    for i in range(args.steps):
        loss = train()
        if (i + 1) % max(1, args.steps // 4) == 0:
            print(f"step {int(step)}: loss {loss.item():.5f}")

    folder = tempfile.mkdtemp(prefix="resume_tf1_")
    path = saver.save(os.path.join(folder, "model.ckpt"), global_step=step)
    fresh = ts.VariableStore()
    with fresh.as_default():
        loss_fn()
        fresh_step = ts.train.get_or_create_global_step()
        ts.train.Saver(fresh).restore(folder)
    same = all(torch.equal(fresh[name], store[name]) for name in store)
    print(
        f"saved {os.path.basename(path)} ({len(ts.train.list_variables(folder))} tensors, "
        f"optimizer slots included); restored into a fresh store at step {int(fresh_step)}: "
        f"{'identical' if same else 'DIFFERENT'}"
    )
    return 0 if same and drift < 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
