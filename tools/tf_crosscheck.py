"""Checks, with TensorFlow, that TensorFlow restores and trains on what ts.train.Saver writes.

Not a test (it needs TensorFlow, which is no dependency of torchscope): run it by hand, in
two environments, when the writer or the optimizers change.

    python tools/tf_crosscheck.py torch OUT             # torchscope: train 3 steps, save, step
    /path/to/tf-venv/bin/python tools/tf_crosscheck.py tf OUT   # TensorFlow 2.x, tf.compat.v1

The torch half trains the MLP of tests/data/tf1_checkpoints (mlp/hidden, mlp/out) for 3
steps with each of ts.train's Adam, Momentum and RMSProp on the fixtures' batch, saves
each run with ts.train.Saver (variables, slots, global_step) and records the values after
one more step. The TensorFlow half builds the same graph with tf.compat.v1.train's
optimizer, restores each checkpoint with tf.compat.v1.train.Saver, checks every variable
and slot against tf.train.load_checkpoint, runs one training step and prints how far its
values are from torchscope's next step.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "tests", "data", "tf1_checkpoints", "adam", "train.npz")
RUNS = {
    "adam": ("AdamOptimizer", {"learning_rate": 0.01}),
    "momentum": ("MomentumOptimizer", {"learning_rate": 0.05, "momentum": 0.9}),
    "rmsprop": ("RMSPropOptimizer", {"learning_rate": 0.01, "momentum": 0.5}),
}
NAMES = ["mlp/hidden/kernel", "mlp/hidden/bias", "mlp/out/kernel", "mlp/out/bias"]


def torch_half(out: str) -> None:
    import numpy as np
    import torch

    import torchscope as ts

    data = np.load(FIXTURE)
    x, y = torch.from_numpy(data["x"]), torch.from_numpy(data["y"])
    for run, (cls, kwargs) in RUNS.items():
        store = ts.VariableStore()
        torch.manual_seed(0)
        with store.as_default():
            with ts.variable_scope("mlp"):
                with ts.variable_scope("hidden"):
                    ts.get_variable("kernel", [5, 6])
                    ts.get_variable("bias", [6], initializer=ts.constant_initializer(0.1))
                with ts.variable_scope("out"):
                    ts.get_variable("kernel", [6, 2])
                    ts.get_variable("bias", [2], initializer=ts.zeros_initializer())
            step = ts.train.get_or_create_global_step()
        opt = getattr(ts.train, cls)(store.parameters(), **kwargs)

        for _ in range(3):
            _train(opt, store, step, x, y)
        path = ts.train.Saver(store, optimizer=opt).save(os.path.join(out, run, "model.ckpt"), step)
        _train(opt, store, step, x, y)
        values = {n: store[n].detach().numpy() for n in NAMES}
        np.savez(os.path.join(out, run, "next.npz"), **values)
        print(run, "saved", path)


def _train(opt, store, step, x, y) -> None:
    import torch

    opt.zero_grad()
    h = torch.relu(x @ store["mlp/hidden/kernel"] + store["mlp/hidden/bias"])
    torch.mean((h @ store["mlp/out/kernel"] + store["mlp/out/bias"] - y) ** 2).backward()
    opt.step()
    with torch.no_grad():
        step.add_(1)


def tf_half(out: str) -> None:
    import numpy as np
    import tensorflow as tf

    tf1 = tf.compat.v1
    tf1.disable_eager_execution()
    data = np.load(FIXTURE)
    report = {}
    for run, (cls, kwargs) in RUNS.items():
        prefix = tf.train.latest_checkpoint(os.path.join(out, run))
        saved = tf.train.load_checkpoint(prefix)
        graph = tf.Graph()
        with graph.as_default():
            x, y = tf.constant(data["x"]), tf.constant(data["y"])
            with tf1.variable_scope("mlp"):
                with tf1.variable_scope("hidden"):
                    w1 = tf1.get_variable("kernel", [5, 6])
                    b1 = tf1.get_variable("bias", [6])
                with tf1.variable_scope("out"):
                    w2 = tf1.get_variable("kernel", [6, 2])
                    b2 = tf1.get_variable("bias", [2])
            h = tf.nn.relu(tf.matmul(x, w1) + b1)
            loss = tf.reduce_mean(tf.square(tf.matmul(h, w2) + b2 - y))
            step = tf1.train.get_or_create_global_step()
            train = getattr(tf1.train, cls)(**kwargs).minimize(loss, global_step=step)
            saver = tf1.train.Saver()
            with tf1.Session() as s:
                saver.restore(s, prefix)  # every variable of the graph, slots included
                restored = 0
                for v in tf1.global_variables():
                    value = s.run(v)
                    assert np.array_equal(value, saved.get_tensor(v.op.name)), v.op.name
                    restored += 1
                s.run(train)
                mine = np.load(os.path.join(out, run, "next.npz"))
                diff = max(
                    float(np.abs(s.run(v) - mine[v.op.name]).max()) for v in (w1, b1, w2, b2)
                )
                report[run] = {"restored": restored, "step": int(s.run(step)), "max_diff": diff}
                print(
                    f"{run}: TensorFlow restored {restored} variables from {prefix}; after one "
                    f"more step, max |TF - torchscope| = {diff:.2e}"
                )
    print(json.dumps(report))


if __name__ == "__main__":
    {"torch": torch_half, "tf": tf_half}[sys.argv[1]](sys.argv[2])
