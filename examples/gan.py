"""A GAN with TensorFlow 1's scope sharing: one discriminator, called on real and fake data.

Ports the classic TF1 GAN layout, ``tf.`` -> ``ts.``: ``generator`` builds its
variables under ``variable_scope("generator")``; ``discriminator(x, reuse)`` under
``variable_scope("discriminator", reuse=reuse)``, called first on the real batch
and again on the generated one with ``reuse=True``, so both calls score with the
same weights. Each optimizer gets the variables filtered by scope name,
``ts.trainable_variables(scope="discriminator")`` / ``(scope="generator")``, and
updates only those (``backward(inputs=...)`` plays the part of TF's
``minimize(loss, var_list=...)``). The data is a 2-D Gaussian at (2, -1) with standard
deviation 0.2; the script prints how far the mean of the generated samples is from
it before and after training, and saves a scatter plot if matplotlib is installed.

Run it (a few seconds on a CPU):

    python examples/gan.py                # 600 steps; exits 1 if the samples did not move
    python examples/gan.py --steps 20     # a quick smoke run
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F

import torchscope as ts

TARGET_MEAN = torch.tensor([2.0, -1.0])
TARGET_STD = 0.2
NOISE_DIM = 4


def dense(name, input, units, activation=None):
    with ts.variable_scope(name):
        weights = ts.get_variable("weights", [input.shape[-1], units])
        biases = ts.get_variable("biases", [units], initializer=ts.constant_initializer(0.0))
        output = input @ weights + biases
        return activation(output) if activation is not None else output


def generator(z, reuse=False):
    with ts.variable_scope("generator", reuse=reuse):
        h = dense("hidden1", z, 32, activation=F.leaky_relu)
        h = dense("hidden2", h, 32, activation=F.leaky_relu)
        return dense("output", h, 2)


def discriminator(x, reuse=False):
    with ts.variable_scope("discriminator", reuse=reuse):
        h = dense("hidden1", x, 32, activation=F.leaky_relu)
        h = dense("hidden2", h, 32, activation=F.leaky_relu)
        return dense("logits", h, 1)  # real vs fake, as a logit


def real_batch(batch_size):
    return TARGET_MEAN + TARGET_STD * torch.randn(batch_size, 2)


def noise(batch_size):
    return torch.randn(batch_size, NOISE_DIM)


def gan_losses(real, z, reuse):
    """The TF1 graph: G(z), D(real), D(G(z)) with D's variables shared."""
    fake = generator(z, reuse=reuse)
    d_real = discriminator(real, reuse=reuse)
    d_fake = discriminator(fake, reuse=True)  # the same variables as d_real
    real_loss = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
    fake_loss = F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    d_loss = real_loss + fake_loss
    g_loss = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
    return d_loss, g_loss


@torch.no_grad()
def distance_to_target(num_samples=2000):
    samples = generator(noise(num_samples), reuse=True)
    return (samples.mean(0) - TARGET_MEAN).norm().item(), samples


def save_plot(path, samples):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return  # no matplotlib: no plot
    real = real_batch(len(samples))
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(real[:, 0], real[:, 1], s=3, alpha=0.4, label="real")
    ax.scatter(samples[:, 0], samples[:, 1], s=3, alpha=0.4, label="generated")
    ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"plot saved to {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="training steps (default 600; when given, the result is not enforced)",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default="gan.png", help="PNG path (saved if matplotlib is there)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest
    torch.manual_seed(args.seed)
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    steps = 600 if args.steps is None else args.steps

    # Build the graph once: this call creates the variables of both networks.
    gan_losses(real_batch(args.batch_size), noise(args.batch_size), reuse=False)
    d_vars = ts.trainable_variables(scope="discriminator")
    g_vars = ts.trainable_variables(scope="generator")
    print(f"{len(d_vars)} discriminator and {len(g_vars)} generator variables:")
    print(ts.summary())
    d_optimizer = torch.optim.Adam(d_vars, lr=args.lr, betas=(0.5, 0.999))
    g_optimizer = torch.optim.Adam(g_vars, lr=args.lr, betas=(0.5, 0.999))
    # The learning rates fall linearly to zero, which damps the GAN's circling of the target.
    schedules = [
        torch.optim.lr_scheduler.LambdaLR(opt, lambda done: 1.0 - done / steps)
        for opt in (d_optimizer, g_optimizer)
    ]

    start, samples = distance_to_target()
    end = start
    print(
        f"\ndistance of the generated mean to the target mean {TARGET_MEAN.tolist()}: "
        f"{start:.3f} before training"
    )
    for step in range(1, steps + 1):
        # Discriminator step: d_optimizer.minimize(d_loss, var_list=d_vars).
        d_loss, _ = gan_losses(real_batch(args.batch_size), noise(args.batch_size), reuse=True)
        d_optimizer.zero_grad()
        d_loss.backward(inputs=d_vars)
        d_optimizer.step()
        # Generator step: g_optimizer.minimize(g_loss, var_list=g_vars).
        _, g_loss = gan_losses(real_batch(args.batch_size), noise(args.batch_size), reuse=True)
        g_optimizer.zero_grad()
        g_loss.backward(inputs=g_vars)
        g_optimizer.step()
        for schedule in schedules:
            schedule.step()
        if step % 100 == 0 or step == steps:
            end, samples = distance_to_target()
            print(
                f"step {step:4d}  d_loss {d_loss.item():.3f}  g_loss {g_loss.item():.3f}  "
                f"distance {end:.3f}"
            )

    print(f"distance of the generated mean to the target mean: {start:.3f} -> {end:.3f}")
    print(f"generated std {[round(s, 3) for s in samples.std(0).tolist()]} (target {TARGET_STD})")
    save_plot(args.plot, samples)
    if args.steps is None and not end < 0.25 * start:
        print("error: the generated samples did not move toward the target")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
