"""A class-based TensorFlow 1 DCGAN, ported: the graph built in the class becomes calls.

The TensorFlow 1 original is ``examples/tf1/dcgan_tf1_original.py``, laid out as the
DCGAN code most TF1 ports start from: a ``DCGAN`` class whose ``__init__`` builds the
graph once (placeholders, ``generator``, ``discriminator`` called twice with
``reuse``, a ``sampler`` that reuses the generator's variables in inference mode, the
losses, variable lists filtered by name, two Adam optimizers), and a ``train`` method
that feeds batches to ``sess.run``. Here is the same class with ``tf.`` -> ``ts.``, and
what a port must change:

- the placeholders become arguments, and the graph-building code (``losses``) runs on
  every step instead of once: tensors are not kept on ``self``, only the variable lists
  and the optimizers are;
- ``__init__`` still builds: one call in inference mode creates every variable (the
  batch-norm moving averages stay at their initial values, as TensorFlow's do until
  the first ``sess.run``);
- ``d_vars = [v for v in t_vars if "d_" in v.name]`` is the original's line: ``v.name``
  is TensorFlow's ``"discriminator/d_h0_conv/w:0"``;
- ``optimizer.minimize(loss, var_list=...)`` is ``zero_grad``, ``backward(inputs=...)``
  and ``step``; ``ts.train.AdamOptimizer`` is TensorFlow's Adam (``torch.optim.Adam``
  puts epsilon elsewhere);
- ``ts.layers.batch_normalization`` updates its moving averages in the forward, so
  the ``UPDATE_OPS`` control dependencies of the original go away.

The data are 16x16 synthetic images (a filled square or disc, white on black, of random
size and place), made deterministically by ``make_shapes``. The script prints the
variables, then how far the statistics of 1024 sampled images (the per-pixel mean and
standard deviation, through the sampler, in inference mode) are from those of 1024 real
ones, before and during training. On a 2-core CPU, 600 steps take about 13 seconds and
take that distance from 1.286 to 0.201 (the TensorFlow original, with its own random
numbers: from 1.289 to 0.156).

``examples/tf1/check_dcgan_port.py`` checks this port against the original under
TensorFlow 2.21 (``tf.compat.v1``, graph mode), from the same initial values and inputs:
the same 24 variable names and shapes in the same order, the same ``d_vars`` and
``g_vars``; the same first losses (d_loss 1.3568230 on both sides, g_loss 6.0e-8 apart);
after one step of both optimizers, the trainable variables within 4.7e-6 of TensorFlow's
(tolerance 1e-5; two biases that a batch norm follows, whose gradients are rounding
noise, left out), the moving averages within 1.8e-7 and the losses equal. Run it with
``python examples/tf1/check_dcgan_port.py --tf-python /path/to/tf-venv/bin/python`` (that
Python needs tensorflow, tf-keras and numpy). ``docs/porting.md`` walks through such a port.

Run it:

    python examples/dcgan_tf1.py              # 600 steps; exits 1 if the distance did not halve
    python examples/dcgan_tf1.py --steps 20   # a quick run
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import torchscope as ts

SIZE = 16  # image height and width


def make_shapes(count: int, seed: int = 0) -> torch.Tensor:
    """``count`` NHWC images in [-1, 1]: a filled square or disc of random size and place."""
    generator = torch.Generator().manual_seed(seed)
    radius = torch.randint(2, 6, (count, 1, 1), generator=generator).float()
    cy, cx = (torch.randint(5, SIZE - 5, (2, count, 1, 1), generator=generator) + 0.5).unbind(0)
    disc = torch.rand(count, 1, 1, generator=generator) < 0.5
    y = torch.arange(SIZE).view(1, SIZE, 1) + 0.5
    x = torch.arange(SIZE).view(1, 1, SIZE) + 0.5
    inside_square = ((y - cy).abs() <= radius) & ((x - cx).abs() <= radius)
    inside_disc = (y - cy) ** 2 + (x - cx) ** 2 <= radius**2
    inside = torch.where(disc, inside_disc, inside_square)
    return torch.where(inside, 1.0, -1.0).unsqueeze(-1)


# -- TensorFlow 1's helpers (DCGAN's ops.py), tf. -> ts. ---------------------------------------


def lrelu(x, leak=0.2):
    return torch.maximum(x, leak * x)


def linear(input_, output_size, scope, stddev=0.02):
    with ts.variable_scope(scope):
        matrix = ts.get_variable(
            "Matrix",
            [input_.shape[1], output_size],
            initializer=ts.random_normal_initializer(stddev=stddev),
        )
        bias = ts.get_variable("bias", [output_size], initializer=ts.constant_initializer(0.0))
        return input_ @ matrix + bias


def conv2d(input_, output_dim, name, k=5, stride=2, stddev=0.02):
    with ts.variable_scope(name):
        w = ts.get_variable(
            "w",
            [k, k, input_.shape[-1], output_dim],
            initializer=ts.truncated_normal_initializer(stddev=stddev),
        )
        conv = ts.nn.conv2d(input_, w, strides=[1, stride, stride, 1], padding="SAME")
        biases = ts.get_variable("biases", [output_dim], initializer=ts.constant_initializer(0.0))
        return ts.nn.bias_add(conv, biases)


def deconv2d(input_, output_shape, name, k=5, stride=2, stddev=0.02):
    with ts.variable_scope(name):
        w = ts.get_variable(
            "w",
            [k, k, output_shape[-1], input_.shape[-1]],
            initializer=ts.random_normal_initializer(stddev=stddev),
        )
        deconv = ts.nn.conv2d_transpose(
            input_, w, output_shape=output_shape, strides=[1, stride, stride, 1]
        )
        biases = ts.get_variable(
            "biases", [output_shape[-1]], initializer=ts.constant_initializer(0.0)
        )
        return ts.nn.bias_add(deconv, biases)


def batch_norm(x, name, train=True):
    return ts.layers.batch_normalization(x, momentum=0.9, epsilon=1e-5, training=train, name=name)


# -- the model ---------------------------------------------------------------------------------


class DCGAN:
    """The TF1 ``DCGAN`` class. TF1 built the graph in ``__init__`` and kept its tensors
    (``self.G``, ``self.d_loss``, ...) on ``self``; here ``losses`` runs at every step, and
    only the variable lists and the optimizers live on ``self``."""

    def __init__(self, batch_size=64, z_dim=32, gf_dim=16, df_dim=16, learning_rate=2e-3):
        self.batch_size = batch_size
        self.z_dim = z_dim
        self.gf_dim = gf_dim
        self.df_dim = df_dim
        self.built = False
        self.build_model()
        # d_optim = tf.train.AdamOptimizer(lr, beta1=0.5).minimize(d_loss, var_list=d_vars)
        self.d_optim = ts.train.AdamOptimizer(self.d_vars, learning_rate=learning_rate, beta1=0.5)
        self.g_optim = ts.train.AdamOptimizer(self.g_vars, learning_rate=learning_rate, beta1=0.5)

    def build_model(self):
        # TF1: placeholders, then G, D(real), sampler, D(G) and the losses, once. Here one
        # call in inference mode creates the variables (and leaves the moving averages alone).
        images = torch.zeros(self.batch_size, SIZE, SIZE, 1)
        self.losses(images, self.noise(self.batch_size), train=False)
        self.built = True
        t_vars = ts.trainable_variables()
        self.d_vars = [v for v in t_vars if "d_" in v.name]
        self.g_vars = [v for v in t_vars if "g_" in v.name]

    def noise(self, count, generator=None):
        return torch.rand(count, self.z_dim, generator=generator) * 2 - 1

    def generator(self, z, reuse=False, train=True):
        with ts.variable_scope("generator") as scope:
            if reuse:  # new in the port: TF1 called it once, the port calls it every step
                scope.reuse_variables()
            return self._generator_net(z, train)

    def sampler(self, z):
        with ts.variable_scope("generator") as scope:
            scope.reuse_variables()  # the generator's variables, batch norm in inference mode
            return self._generator_net(z, train=False)

    def _generator_net(self, z, train):
        s2, s4 = SIZE // 2, SIZE // 4
        batch = z.shape[0]  # TF1 used self.batch_size: a placeholder's static shape
        h0 = linear(z, self.gf_dim * 2 * s4 * s4, "g_h0_lin").reshape(batch, s4, s4, -1)
        h0 = torch.relu(batch_norm(h0, "g_bn0", train))
        h1 = deconv2d(h0, [batch, s2, s2, self.gf_dim], "g_h1")
        h1 = torch.relu(batch_norm(h1, "g_bn1", train))
        h2 = deconv2d(h1, [batch, SIZE, SIZE, 1], "g_h2")
        return torch.tanh(h2)

    def discriminator(self, image, reuse=False, train=True):
        with ts.variable_scope("discriminator") as scope:
            if reuse:
                scope.reuse_variables()
            h0 = lrelu(conv2d(image, self.df_dim, "d_h0_conv"))
            h1 = lrelu(batch_norm(conv2d(h0, self.df_dim * 2, "d_h1_conv"), "d_bn1", train))
            h2 = linear(h1.reshape(image.shape[0], -1), 1, "d_h2_lin")
            return torch.sigmoid(h2), h2

    def losses(self, images, z, train=True):
        """TF1's build_model from G on: the graph, run on this batch."""
        # TF1 ran this once, with reuse=False for the first calls; the port runs it every
        # step, so those calls reuse once the variables are built.
        fake = self.generator(z, reuse=self.built, train=train)
        _, d_logits = self.discriminator(images, reuse=self.built, train=train)
        _, d_logits_ = self.discriminator(fake, reuse=True, train=train)

        def loss(logits, label):
            labels = torch.full_like(logits, label)
            return torch.mean(ts.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))

        d_loss = loss(d_logits, 1.0) + loss(d_logits_, 0.0)
        g_loss = loss(d_logits_, 1.0)
        return d_loss, g_loss

    def train_step(self, images, z):
        """``sess.run([d_optim, d_loss, g_loss], feed)`` then ``sess.run(g_optim, feed)``:
        each runs the graph again. Returns the losses at the step's start."""
        d_loss, g_loss = self.losses(images, z)
        self.d_optim.zero_grad()
        d_loss.backward(inputs=self.d_vars)
        self.d_optim.step()
        _, g_loss_after_d = self.losses(images, z)
        self.g_optim.zero_grad()
        g_loss_after_d.backward(inputs=self.g_vars)
        self.g_optim.step()
        return d_loss.detach(), g_loss.detach()


@torch.no_grad()
def distance(model: DCGAN, real: torch.Tensor, z: torch.Tensor) -> float:
    """Mean per-pixel |difference| of the mean and of the standard deviation images."""
    fake = model.sampler(z)
    mean = (fake.mean(0) - real.mean(0)).abs().mean()
    std = (fake.std(0) - real.std(0)).abs().mean()
    return (mean + std).item()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=None, help="training steps (default 600, then enforced)"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    steps = 600 if args.steps is None else args.steps
    torch.set_num_threads(1)  # small tensors: one thread is fastest, and the runs repeat
    torch.manual_seed(args.seed)

    data = make_shapes(2048, seed=args.seed)
    held_real = make_shapes(1024, seed=args.seed + 1)
    model = DCGAN(batch_size=args.batch_size, learning_rate=args.lr)
    print(f"data: {len(data)} {SIZE}x{SIZE} images of squares and discs")
    print(f"{len(model.d_vars)} discriminator and {len(model.g_vars)} generator variables")
    print(ts.summary())

    fixed = torch.Generator().manual_seed(args.seed + 2)
    z_eval = model.noise(1024, generator=fixed)
    start = end = distance(model, held_real, z_eval)
    print(f"\nimage statistics, samples vs real: distance {start:.3f} before training")
    began = time.perf_counter()
    for step in range(1, steps + 1):
        index = torch.randint(len(data), (args.batch_size,))
        d_loss, g_loss = model.train_step(data[index], model.noise(args.batch_size))
        if step % 100 == 0 or step == steps:
            end = distance(model, held_real, z_eval)
            print(
                f"step {step:4d}  d_loss {d_loss.item():.3f}  g_loss {g_loss.item():.3f}  "
                f"distance {end:.3f}"
            )
    seconds = time.perf_counter() - began
    print(f"image statistics, samples vs real: distance {start:.3f} -> {end:.3f}")
    print(f"trained {steps} steps in {seconds:.1f} s")
    if args.steps is None and not end < 0.5 * start:
        print("error: the samples' statistics did not move toward the data's")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
