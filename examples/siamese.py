"""A siamese network: two towers that share weights through a captured ``VariableScope``.

Ports TensorFlow 1's siamese idiom, ``tf.`` -> ``ts.``: the left tower is built
inside ``with ts.variable_scope("tower") as tower_scope``; the right tower re-opens
the captured object, ``with ts.variable_scope(tower_scope, reuse=True)``, so it runs
the very same ``tower/...`` variables without spelling the name again. The towers
embed 8x8 handwritten digits (scikit-learn's bundled ``load_digits``); a contrastive
loss pulls pairs of the same digit together and pushes different digits at least a
margin apart. The script prints the variables (one set, used by both towers) and two
held-out metrics: how often a pair is judged same/different correctly by thresholding
the distance, and the accuracy of classifying each held-out digit by its nearest
training digit in the embedding.

Run it (a few seconds on a CPU; needs ``pip install scikit-learn``):

    python examples/siamese.py                # 1000 steps; exits 1 below 90% pair accuracy
    python examples/siamese.py --steps 20     # a quick smoke run
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F

import torchscope as ts

MARGIN = 1.0
NUM_CLASSES = 10


def dense(name, inputs, units, activation=None):
    with ts.variable_scope(name):
        weights = ts.get_variable("weights", [inputs.shape[-1], units])
        biases = ts.get_variable("biases", [units], initializer=ts.constant_initializer(0.0))
        outputs = inputs @ weights + biases
        return activation(outputs) if activation is not None else outputs


def tower(images):
    net = dense("fc1", images, 128, activation=ts.nn.relu)
    net = dense("fc2", net, 64, activation=ts.nn.relu)
    return dense("embedding", net, 16)


def siamese(left, right, reuse=False):
    with ts.variable_scope("tower", reuse=reuse) as tower_scope:
        left_embedding = tower(left)
    with ts.variable_scope(tower_scope, reuse=True):
        right_embedding = tower(right)
    return left_embedding, right_embedding


def contrastive_loss(left, right, same):
    """Hadsell et al.: same pairs pulled together, different pairs pushed to the margin."""
    distance = (left - right).pow(2).sum(-1).add(1e-12).sqrt()
    return torch.mean(same * distance**2 + (1 - same) * F.relu(MARGIN - distance) ** 2)


def load_data(seed):
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        sys.exit("siamese.py needs scikit-learn: pip install scikit-learn (or '.[examples]')")
    digits = load_digits()
    images = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    labels = torch.tensor(digits.target)
    train_idx, test_idx = train_test_split(
        range(len(labels)), test_size=0.2, random_state=seed, stratify=digits.target
    )
    return (images[train_idx], labels[train_idx]), (images[test_idx], labels[test_idx])


def make_pairs(labels, num_pairs, generator):
    """Half pairs of the same digit, half of different digits: (left, right, same) indices."""
    left = torch.randint(len(labels), (num_pairs,), generator=generator)
    same = torch.arange(num_pairs) % 2 == 0
    shift = torch.randint(1, NUM_CLASSES, (num_pairs,), generator=generator)
    right_class = torch.where(same, labels[left], (labels[left] + shift) % NUM_CLASSES)
    # A random member of right_class: images sorted by class, then an offset into the class.
    by_class = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels, minlength=NUM_CLASSES)
    starts = torch.cumsum(counts, 0) - counts
    offset = (torch.rand(num_pairs, generator=generator) * counts[right_class]).long()
    right = by_class[starts[right_class] + offset]
    return left, right, same.float()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="training steps (default 1000; when given, the result is not enforced)",
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    steps = 1000 if args.steps is None else args.steps
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)

    (train_x, train_y), (test_x, test_y) = load_data(args.seed)
    # Pairs are drawn from the training images; the held-out pairs only from held-out images.
    test_left, test_right, test_same = make_pairs(test_y, 2000, generator)
    train_pairs = make_pairs(train_y, steps * args.batch_size, generator)

    # Build once (this creates the variables), then every step reuses them.
    siamese(train_x[:1], train_x[:1])
    variables = ts.global_variables()
    names = [ts.name_of(v) for v in variables]
    print(f"both towers use the same {len(variables)} variables (ts.global_variables()):")
    print(ts.summary())
    if len(variables) != 6 or not all(name.startswith("tower/") for name in names):
        print(f"error: expected the 6 variables of one tower, got {names}")
        return 1
    optimizer = torch.optim.Adam(ts.trainable_variables(scope="tower/"), lr=args.lr)

    @torch.no_grad()
    def evaluate():
        left, right = siamese(test_x[test_left], test_x[test_right], reuse=True)
        predicted_same = (left - right).norm(dim=-1) < MARGIN / 2
        pair_accuracy = (predicted_same == test_same.bool()).float().mean().item()
        train_embedding, test_embedding = siamese(train_x, test_x, reuse=True)
        nearest = torch.cdist(test_embedding, train_embedding).argmin(1)
        nn_accuracy = (train_y[nearest] == test_y).float().mean().item()
        return pair_accuracy, nn_accuracy

    before = evaluate()
    for step in range(1, steps + 1):
        batch = slice((step - 1) * args.batch_size, step * args.batch_size)
        left_idx, right_idx, same = (t[batch] for t in train_pairs)
        left, right = siamese(train_x[left_idx], train_x[right_idx], reuse=True)
        loss = contrastive_loss(left, right, same)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 200 == 0 or step == steps:
            print(f"step {step:5d}  contrastive loss {loss.item():.4f}")
    after = evaluate()
    print(
        f"held-out pair accuracy (same digit iff distance < {MARGIN / 2}): "
        f"{before[0]:.2%} -> {after[0]:.2%} ({len(test_same)} pairs)"
    )
    print(
        f"held-out nearest-neighbour digit accuracy in the embedding: "
        f"{before[1]:.2%} -> {after[1]:.2%} ({len(test_y)} images)"
    )
    if args.steps is None and after[0] < 0.9:
        print("error: pair accuracy below 90%")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
