"""The TensorFlow 1 original of ``examples/dcgan_tf1.py``: a class-based DCGAN in graph mode.

Written as the TF1 DCGAN code that ports start from: ``DCGAN.__init__`` builds the
graph once (placeholders, ``generator``, ``discriminator`` called on the real batch and
again with ``reuse=True`` on the generated one, a ``sampler`` that reuses the
generator's variables in inference mode, the losses, ``d_vars``/``g_vars`` filtered by
``v.name``, two Adam optimizers under ``UPDATE_OPS`` control dependencies), and
``train`` feeds batches to ``sess.run``. It runs under TensorFlow 2.x through
``tf.compat.v1`` with v2 behaviour off; it needs tensorflow (or tensorflow-cpu), tf-keras
(for ``tf.compat.v1.layers``) and numpy, not torch.

    python examples/tf1/dcgan_tf1_original.py --steps 600     # trains on the same kind of data
    python examples/tf1/dcgan_tf1_original.py --check-dir DIR # what check_dcgan_port.py runs

With ``--check-dir`` it reads the initial values (``init.npz``, by variable name) and a
batch (``inputs.npz``) that ``check_dcgan_port.py`` wrote, loads them, runs one training
step (the discriminator's optimizer, fetching both losses, then the generator's) and
writes to ``tf.npz`` the variable names and shapes, the losses, the values and the losses
after the step, and the gradients of the biases that a batch norm follows.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

# tf.compat.v1.layers needs Keras 2 (the tf-keras package) under TensorFlow 2.16 and later.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
import tensorflow as tf

tf1 = tf.compat.v1
SIZE = 16


def make_shapes(count, seed=0):
    """``count`` NHWC images in [-1, 1]: a filled square or disc of random size and place."""
    rng = np.random.default_rng(seed)
    radius = rng.integers(2, 6, (count, 1, 1)).astype(np.float32)
    cy = rng.integers(5, SIZE - 5, (count, 1, 1)) + 0.5
    cx = rng.integers(5, SIZE - 5, (count, 1, 1)) + 0.5
    disc = rng.random((count, 1, 1)) < 0.5
    y = np.arange(SIZE).reshape(1, SIZE, 1) + 0.5
    x = np.arange(SIZE).reshape(1, 1, SIZE) + 0.5
    square = (np.abs(y - cy) <= radius) & (np.abs(x - cx) <= radius)
    circle = (y - cy) ** 2 + (x - cx) ** 2 <= radius**2
    inside = np.where(disc, circle, square)
    return np.where(inside, 1.0, -1.0).astype(np.float32)[..., None]


# -- ops.py --------------------------------------------------------------------------------------


def lrelu(x, leak=0.2):
    return tf.maximum(x, leak * x)


def linear(input_, output_size, scope, stddev=0.02):
    shape = input_.get_shape().as_list()
    with tf1.variable_scope(scope):
        matrix = tf1.get_variable(
            "Matrix",
            [shape[1], output_size],
            tf.float32,
            tf1.random_normal_initializer(stddev=stddev),
        )
        bias = tf1.get_variable("bias", [output_size], initializer=tf1.constant_initializer(0.0))
        return tf.matmul(input_, matrix) + bias


def conv2d(input_, output_dim, name, k=5, stride=2, stddev=0.02):
    with tf1.variable_scope(name):
        w = tf1.get_variable(
            "w",
            [k, k, input_.get_shape()[-1], output_dim],
            initializer=tf1.truncated_normal_initializer(stddev=stddev),
        )
        conv = tf1.nn.conv2d(input_, w, strides=[1, stride, stride, 1], padding="SAME")
        biases = tf1.get_variable("biases", [output_dim], initializer=tf1.constant_initializer(0.0))
        return tf1.nn.bias_add(conv, biases)


def deconv2d(input_, output_shape, name, k=5, stride=2, stddev=0.02):
    with tf1.variable_scope(name):
        w = tf1.get_variable(
            "w",
            [k, k, output_shape[-1], input_.get_shape()[-1]],
            initializer=tf1.random_normal_initializer(stddev=stddev),
        )
        deconv = tf1.nn.conv2d_transpose(
            input_, w, output_shape=tf.stack(output_shape), strides=[1, stride, stride, 1]
        )
        biases = tf1.get_variable(
            "biases", [output_shape[-1]], initializer=tf1.constant_initializer(0.0)
        )
        return tf1.nn.bias_add(deconv, biases)


def batch_norm(x, name, train=True):
    return tf1.layers.batch_normalization(x, momentum=0.9, epsilon=1e-5, training=train, name=name)


# -- model.py ------------------------------------------------------------------------------------


class DCGAN:
    def __init__(self, sess, batch_size=64, z_dim=32, gf_dim=16, df_dim=16, learning_rate=2e-3):
        self.sess = sess
        self.batch_size = batch_size
        self.z_dim = z_dim
        self.gf_dim = gf_dim
        self.df_dim = df_dim
        self.build_model()
        update_ops = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
        with tf.control_dependencies(update_ops):
            self.d_optim = tf1.train.AdamOptimizer(learning_rate, beta1=0.5).minimize(
                self.d_loss, var_list=self.d_vars
            )
            self.g_optim = tf1.train.AdamOptimizer(learning_rate, beta1=0.5).minimize(
                self.g_loss, var_list=self.g_vars
            )

    def build_model(self):
        self.inputs = tf1.placeholder(tf.float32, [None, SIZE, SIZE, 1], name="real_images")
        self.z = tf1.placeholder(tf.float32, [None, self.z_dim], name="z")
        self.G = self.generator(self.z)
        self.D, self.D_logits = self.discriminator(self.inputs, reuse=False)
        self.sampler = self.make_sampler(self.z)
        self.D_, self.D_logits_ = self.discriminator(self.G, reuse=True)

        def loss(logits, label):
            labels = tf.ones_like(logits) * label
            return tf.reduce_mean(
                tf1.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
            )

        self.d_loss = loss(self.D_logits, 1.0) + loss(self.D_logits_, 0.0)
        self.g_loss = loss(self.D_logits_, 1.0)
        self.model_vars = tf1.global_variables()  # before the optimizers add their slots
        t_vars = tf1.trainable_variables()
        self.d_vars = [var for var in t_vars if "d_" in var.name]
        self.g_vars = [var for var in t_vars if "g_" in var.name]

    def noise(self, count, rng):
        return rng.uniform(-1, 1, (count, self.z_dim)).astype(np.float32)

    def generator(self, z):
        with tf1.variable_scope("generator"):
            return self._generator_net(z, train=True)

    def make_sampler(self, z):
        with tf1.variable_scope("generator") as scope:
            scope.reuse_variables()
            return self._generator_net(z, train=False)

    def _generator_net(self, z, train):
        s2, s4 = SIZE // 2, SIZE // 4
        batch = tf.shape(z)[0]
        h0 = tf.reshape(
            linear(z, self.gf_dim * 2 * s4 * s4, "g_h0_lin"), [-1, s4, s4, self.gf_dim * 2]
        )
        h0 = tf.nn.relu(batch_norm(h0, "g_bn0", train))
        h1 = deconv2d(h0, [batch, s2, s2, self.gf_dim], "g_h1")
        h1 = tf.nn.relu(batch_norm(h1, "g_bn1", train))
        h2 = deconv2d(h1, [batch, SIZE, SIZE, 1], "g_h2")
        return tf.nn.tanh(h2)

    def discriminator(self, image, reuse=False):
        with tf1.variable_scope("discriminator") as scope:
            if reuse:
                scope.reuse_variables()
            h0 = lrelu(conv2d(image, self.df_dim, "d_h0_conv"))
            h1 = lrelu(batch_norm(conv2d(h0, self.df_dim * 2, "d_h1_conv"), "d_bn1"))
            h2 = linear(tf.reshape(h1, [-1, (SIZE // 4) ** 2 * self.df_dim * 2]), 1, "d_h2_lin")
            return tf.nn.sigmoid(h2), h2

    def train_step(self, images, z):
        feed = {self.inputs: images, self.z: z}
        _, d_loss, g_loss = self.sess.run([self.d_optim, self.d_loss, self.g_loss], feed)
        self.sess.run(self.g_optim, feed)
        return d_loss, g_loss

    def distance(self, real, z):
        fake = self.sess.run(self.sampler, {self.z: z})
        mean = np.abs(fake.mean(0) - real.mean(0)).mean()
        std = np.abs(fake.std(0, ddof=1) - real.std(0, ddof=1)).mean()
        return float(mean + std)


# Biases of a convolution that a batch norm follows: one value per channel, which the batch
# norm subtracts again with the batch mean, so their gradient is zero in exact arithmetic and
# rounding noise in practice. (g_h0_lin/bias is not one: it has a value per position.)
BEFORE_BATCH_NORM = ("discriminator/d_h1_conv/biases", "generator/g_h1/biases")


def name(var):
    return var.name[: -len(":0")]


def check(folder):
    """One step from the values and batch in ``folder``; writes ``folder/tf.npz``."""
    init = np.load(os.path.join(folder, "init.npz"))
    inputs = np.load(os.path.join(folder, "inputs.npz"))
    with tf1.Session() as sess:
        model = DCGAN(sess, batch_size=len(inputs["images"]))
        sess.run(tf1.global_variables_initializer())
        for var in model.model_vars:
            var.load(init[name(var)], sess)
        feed = {model.inputs: inputs["images"], model.z: inputs["z"]}
        by_name = {name(v): v for v in model.model_vars}
        gradients = {
            n: tf1.gradients(model.d_loss if n.startswith("d") else model.g_loss, by_name[n])[0]
            for n in BEFORE_BATCH_NORM
        }
        gradients = sess.run(gradients, feed)
        d_loss, g_loss = model.train_step(inputs["images"], inputs["z"])
        after = sess.run(model.model_vars)
        losses_after = sess.run([model.d_loss, model.g_loss], feed)
    out = {f"after/{name(v)}": value for v, value in zip(model.model_vars, after, strict=True)}
    out["names"] = np.array([name(v) for v in model.model_vars])
    out["d_vars"] = np.array([name(v) for v in model.d_vars])
    out["g_vars"] = np.array([name(v) for v in model.g_vars])
    out["d_loss"], out["g_loss"] = np.float32(d_loss), np.float32(g_loss)
    out["losses_after"] = np.array(losses_after, np.float32)
    out.update({f"gradient/{n}": g for n, g in gradients.items()})
    np.savez(os.path.join(folder, "tf.npz"), **out)
    print(f"TensorFlow {tf.__version__}: d_loss {d_loss:.7f}  g_loss {g_loss:.7f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check-dir", help="run check_dcgan_port.py's one step in this folder")
    args = parser.parse_args()
    tf1.disable_v2_behavior()
    if args.check_dir:
        check(args.check_dir)
        return 0
    tf1.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    data = make_shapes(2048, seed=args.seed)
    held_real = make_shapes(1024, seed=args.seed + 1)
    with tf1.Session() as sess:
        model = DCGAN(sess, batch_size=args.batch_size)
        sess.run(tf1.global_variables_initializer())
        z_eval = model.noise(1024, np.random.default_rng(args.seed + 2))
        start = end = model.distance(held_real, z_eval)
        print(f"image statistics, samples vs real: distance {start:.3f} before training")
        began = time.perf_counter()
        for step in range(1, args.steps + 1):
            batch = data[rng.integers(len(data), size=args.batch_size)]
            d_loss, g_loss = model.train_step(batch, model.noise(args.batch_size, rng))
            if step % 100 == 0 or step == args.steps:
                end = model.distance(held_real, z_eval)
                print(
                    f"step {step:4d}  d_loss {d_loss:.3f}  g_loss {g_loss:.3f}  distance {end:.3f}"
                )
        print(f"image statistics, samples vs real: distance {start:.3f} -> {end:.3f}")
        print(f"trained {args.steps} steps in {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
