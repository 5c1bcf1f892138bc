"""Train a scoped conv net on real handwritten digits, checkpoint it by full variable names.

Ports the TensorFlow 1 way of writing a model: layer functions that call
``get_variable`` inside ``variable_scope``s (``conv1/weights``, ``fc1/biases``, ...),
here run by a ``ts.ScopedModule`` so that the variables become an ordinary
``nn.Module``'s parameters for ``torch.optim`` and ``state_dict``. The data set is
scikit-learn's bundled handwritten digits (1797 8x8 grey images, 10 classes; no
network needed), split once into 1437 training and 360 held-out images. The
script trains, prints the held-out accuracy, saves ``model.state_dict()`` (keys are
the full variable names), loads it into a fresh module and checks that the reloaded
model scores the same.

Run it (about half a minute on two CPU cores; needs ``pip install scikit-learn tqdm``,
the ``examples`` extra):

    python examples/train_digits.py                 # full run: exits 1 below 95% accuracy
    python examples/train_digits.py --compile       # the same through torch.compile
    python examples/train_digits.py --steps 20      # a quick smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

import torchscope as ts

try:
    from tqdm import tqdm
except ImportError:  # plain prints instead of a progress bar
    tqdm = None

NUM_CLASSES = 10


# ---------------------------------------------------------------- the model, TensorFlow-1 style


def conv_relu(input, kernel_shape, bias_shape, stride=1):
    weights = ts.get_variable(
        "weights", kernel_shape, initializer=ts.variance_scaling_initializer(scale=2.0)
    )
    biases = ts.get_variable("biases", bias_shape, initializer=ts.constant_initializer(0.0))
    return ts.nn.conv2d_bias_relu(
        input, weights, biases, strides=[1, stride, stride, 1], padding="SAME"
    )


def dense(input, units, activation=None):
    weights = ts.get_variable("weights", [input.shape[-1], units])
    biases = ts.get_variable("biases", [units], initializer=ts.constant_initializer(0.0))
    output = input @ weights + biases
    return activation(output) if activation is not None else output


def convnet(images):
    """NHWC images [batch, 8, 8, 1] -> logits [batch, 10]."""
    with ts.variable_scope("conv1"):
        net = conv_relu(images, [3, 3, 1, 32], [32])  # 8x8x32
    with ts.variable_scope("conv2"):
        net = conv_relu(net, [3, 3, 32, 64], [64], stride=2)  # 4x4x64
    net = net.reshape(net.shape[0], -1)
    with ts.variable_scope("fc1"):
        net = dense(net, 128, activation=ts.nn.relu)
    with ts.variable_scope("logits"):
        return dense(net, NUM_CLASSES)


# ---------------------------------------------------------------- data and training


def load_data(seed: int):
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        sys.exit("train_digits.py needs scikit-learn: pip install scikit-learn (or '.[examples]')")
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(-1) / 16.0  # NHWC
    labels = torch.tensor(digits.target, dtype=torch.long)
    train_idx, test_idx = train_test_split(
        range(len(labels)), test_size=0.2, random_state=seed, stratify=digits.target
    )
    return (images[train_idx], labels[train_idx]), (images[test_idx], labels[test_idx])


@torch.no_grad()
def accuracy(model, images, labels) -> float:
    return (model(images).argmax(-1) == labels).float().mean().item()


def batches(num_examples: int, batch_size: int, generator: torch.Generator):
    """Shuffled full batches of one epoch (no ragged last batch: one shape for torch.compile)."""
    order = torch.randperm(num_examples, generator=generator)
    for start in range(0, num_examples - batch_size + 1, batch_size):
        yield order[start : start + batch_size]


def train(model, train_set, args) -> tuple[int, float]:
    images, labels = train_set
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    ts.check_optimizer(optimizer, model)  # every variable exists now and is being trained
    step_fn = model
    if args.compile:
        print("training through torch.compile(model, fullgraph=True)")
        step_fn = torch.compile(model, fullgraph=True)
    generator = torch.Generator().manual_seed(args.seed)
    steps_per_epoch = len(labels) // args.batch_size
    total = args.steps if args.steps is not None else args.epochs * steps_per_epoch
    bar = tqdm(total=total, desc="training", unit="step") if tqdm is not None else None
    step, loss = 0, float("nan")
    while step < total:
        for index in batches(len(labels), args.batch_size, generator):
            loss_t = F.cross_entropy(step_fn(images[index]), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss_t.backward()
            optimizer.step()
            step += 1
            loss = loss_t.item()
            if bar is not None:
                bar.update()
                bar.set_postfix(loss=f"{loss:.4f}", epoch=(step - 1) // steps_per_epoch + 1)
            elif step % steps_per_epoch == 0 or step == total:
                print(
                    f"step {step}/{total}  epoch {(step - 1) // steps_per_epoch + 1}  "
                    f"loss {loss:.4f}"
                )
            if step == total:
                break
    if bar is not None:
        bar.close()
    return step, loss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="fast mode: stop after this many steps (accuracy is not enforced)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compile", action="store_true", help="train through torch.compile")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads (default 1: the net is small, and on a shared machine "
        "two threads waiting on each other cost more than they gain)",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="where to save the state dict (default: a temporary directory)",
    )
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    train_set, test_set = load_data(args.seed)
    print(f"digits: {len(train_set[1])} training and {len(test_set[1])} held-out 8x8 images")

    model = ts.ScopedModule(convnet, name="convnet")
    model(train_set[0][:1])  # the first call creates the variables (build the optimizer after)
    print(ts.summary(model))

    steps, loss = train(model, train_set, args)
    test_accuracy = accuracy(model, *test_set)
    print(f"trained {steps} steps, final loss {loss:.4f}")
    print(f"held-out accuracy: {test_accuracy:.2%} ({len(test_set[1])} images)")

    # Checkpoint by full variable names; a fresh module is built from it on load.
    with tempfile.TemporaryDirectory() as tmp:
        path = args.checkpoint or os.path.join(tmp, "convnet.pt")
        torch.save(model.state_dict(), path)
        restored = ts.ScopedModule(convnet, name="convnet")
        restored.load_state_dict(torch.load(path))
        reloaded_accuracy = accuracy(restored, *test_set)
    print(f"checkpoint {'saved to ' + path if args.checkpoint else '(temporary)'}, keys:")
    for name, value in restored.state_dict().items():
        print(f"  {name:22s} {tuple(value.shape)}")
    print(
        f"reloaded accuracy: {reloaded_accuracy:.2%}"
        f" ({'identical' if reloaded_accuracy == test_accuracy else 'DIFFERENT'})"
    )
    print(f"wall time: {time.perf_counter() - start:.1f} s")

    if reloaded_accuracy != test_accuracy:
        print("error: the reloaded model does not score what the trained one scored")
        return 1
    if args.steps is None and test_accuracy < 0.95:
        print("error: held-out accuracy below 95%")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
