"""Writes the TensorFlow-1 optimizer goldens in this folder, for tests that run without TensorFlow.

Run with TensorFlow 2.21 (CPU) in a scratch venv (TensorFlow is not a dependency of the project):

    /tmp/tfvenv/bin/python tests/data/tf_optimizers/make_goldens.py [OUTDIR]

For each optimizer configuration in ``CONFIGS``, TF1 graph mode (``tf.compat.v1``, eager off)
trains a small MLP for ``STEPS`` steps on one constant batch, and ``<config>.npz`` holds (every
array float32, little-endian):

- ``x`` [16, 4], ``y`` [16, 3]: the batch; ``loss`` [STEPS]: the loss before each step;
- ``var/<var>`` [STEPS + 1, ...]: each variable, index 0 the initial value, index t after step t;
- ``grad/<var>`` [STEPS, ...]: the gradient TensorFlow applied at step t + 1;
- ``slot/<key>`` [STEPS + 1, ...]: each optimizer variable by its checkpoint key (``<var>/Adam``,
  ``beta1_power``, ...), index 0 its value right after creation, index t after step t.

``configs.json`` names each file's optimizer and its keyword arguments (TensorFlow's spelling,
which is also ``ts.train``'s). The model: ``h = relu(x @ mlp/hidden/kernel + mlp/hidden/bias)``,
``loss = mean((h @ mlp/out/kernel + mlp/out/bias - y) ** 2)``. The sizes are chosen so that
TensorFlow's CPU kernels take both their vectorised path (32 and 8 elements) and their scalar
one (24 and 3 elements are not multiples of a 16-float packet).
"""

import json
import os
import sys

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1
tf1.disable_eager_execution()

STEPS = 20
CONFIGS = {
    "adam": ("AdamOptimizer", dict(learning_rate=0.02, beta1=0.85, beta2=0.995, epsilon=1e-6)),
    "momentum": ("MomentumOptimizer", dict(learning_rate=0.05, momentum=0.9)),
    "nesterov": ("MomentumOptimizer", dict(learning_rate=0.05, momentum=0.9, use_nesterov=True)),
    "rmsprop": ("RMSPropOptimizer", dict(learning_rate=0.01, decay=0.8)),
    "rmsprop_momentum": ("RMSPropOptimizer", dict(learning_rate=0.005, decay=0.9, momentum=0.5)),
    "rmsprop_centered": (
        "RMSPropOptimizer",
        dict(learning_rate=0.005, decay=0.9, momentum=0.3, epsilon=1e-6, centered=True),
    ),
    "sgd": ("GradientDescentOptimizer", dict(learning_rate=0.1)),
    "adagrad": ("AdagradOptimizer", dict(learning_rate=0.1, initial_accumulator_value=0.2)),
}


def run(optimizer, kwargs):
    g = tf.Graph()
    with g.as_default():
        tf1.set_random_seed(42)
        rng = np.random.RandomState(7)
        x = tf.constant(rng.randn(16, 4).astype(np.float32))
        y = tf.constant(rng.randn(16, 3).astype(np.float32))
        with tf1.variable_scope("mlp"):
            with tf1.variable_scope("hidden"):
                w1 = tf1.get_variable("kernel", [4, 8])
                b1 = tf1.get_variable("bias", [8], initializer=tf1.constant_initializer(0.1))
            with tf1.variable_scope("out"):
                w2 = tf1.get_variable("kernel", [8, 3])
                b2 = tf1.get_variable("bias", [3], initializer=tf1.constant_initializer(-0.05))
        variables = [w1, b1, w2, b2]
        h = tf.nn.relu(tf.matmul(x, w1) + b1)
        loss = tf.reduce_mean(tf.square(tf.matmul(h, w2) + b2 - y))
        opt = getattr(tf1.train, optimizer)(**kwargs)
        grads_and_vars = opt.compute_gradients(loss, var_list=variables)
        train = opt.apply_gradients(grads_and_vars)
        slots = {
            opt.get_slot(v, name).op.name: opt.get_slot(v, name)
            for v in variables
            for name in opt.get_slot_names()
        }
        if optimizer == "AdamOptimizer":
            for power in opt._get_beta_accumulators():
                slots[power.op.name] = power
        names = [v.op.name for v in variables]
        out = {"var": {n: [] for n in names}, "grad": {n: [] for n in names}}
        out["slot"] = {k: [] for k in slots}
        losses = []
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            out["x"], out["y"] = s.run([x, y])

            def record():
                values, slot_values = s.run([variables, slots])
                for n, value in zip(names, values, strict=True):
                    out["var"][n].append(value)
                for k, value in slot_values.items():
                    out["slot"][k].append(value)

            record()
            for _ in range(STEPS):
                value, grads, _ = s.run([loss, [g_ for g_, _ in grads_and_vars], train])
                losses.append(value)
                for n, grad in zip(names, grads, strict=True):
                    out["grad"][n].append(grad)
                record()
    arrays = {"x": out["x"], "y": out["y"], "loss": np.asarray(losses, np.float32)}
    for kind in ("var", "grad", "slot"):
        for key, values in out[kind].items():
            arrays[f"{kind}/{key}"] = np.stack(values).astype("<f4")
    return arrays


def main(out):
    os.makedirs(out, exist_ok=True)
    for name, (optimizer, kwargs) in CONFIGS.items():
        arrays = run(optimizer, kwargs)
        np.savez_compressed(os.path.join(out, f"{name}.npz"), **arrays)
        print(name, optimizer, kwargs, "final loss", arrays["loss"][-1])
    with open(os.path.join(out, "configs.json"), "w") as f:
        json.dump(
            {name: {"optimizer": opt, "kwargs": kw} for name, (opt, kw) in CONFIGS.items()},
            f,
            indent=1,
        )
        f.write("\n")
    print(f"TensorFlow {tf.__version__}, steps {STEPS}, written to {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
