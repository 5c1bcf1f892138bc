"""A hand-written LSTM unrolled over time, TensorFlow 1's ``rnn_cell`` pattern, in a template.

Ports two TF1 idioms, ``tf.`` -> ``ts.``:

* the unrolled recurrent loop: one ``variable_scope("rnn")`` around the loop over time
  steps, with ``ts.get_variable_scope().reuse_variables()`` from the second step on, so
  every step runs the same cell variables (``rnn/lstm_cell/kernel`` and ``.../bias``);
* ``ts.make_template("encoder", ...)``: a function whose first call creates its
  variables under ``encoder/`` and whose later calls reuse them, here an encoder
  shared by two input sequences.

The task: given two sequences ``a`` and ``b`` of 10 numbers each, drawn uniformly from
[-1, 1], predict ``sum(a) - sum(b)``. Each sequence is encoded by the same LSTM; a
linear head (another template) reads the two final states. The script prints the mean
squared error before and after training; predicting 0 always scores about 6.7.

Run it (a few seconds on a CPU):

    python examples/rnn.py                # 1000 steps; exits 1 unless the loss falls 100-fold
    python examples/rnn.py --steps 20     # a quick smoke run
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import torchscope as ts

SEQUENCE_LENGTH = 10


def lstm_cell(inputs, state, num_units):
    """One step of TF1's ``BasicLSTMCell``: gates i, j, f, o from one kernel; forget bias 1."""
    c, h = state
    with ts.variable_scope("lstm_cell"):
        kernel = ts.get_variable("kernel", [inputs.shape[-1] + num_units, 4 * num_units])
        bias = ts.get_variable("bias", [4 * num_units], initializer=ts.zeros_initializer())
    gates = torch.cat([inputs, h], dim=-1) @ kernel + bias
    i, j, f, o = gates.chunk(4, dim=-1)
    new_c = c * torch.sigmoid(f + 1.0) + torch.sigmoid(i) * torch.tanh(j)
    new_h = torch.tanh(new_c) * torch.sigmoid(o)
    return new_h, (new_c, new_h)


def static_rnn(inputs, num_units):
    """Unrolls the cell over ``inputs`` [batch, time, features]; returns the last output."""
    batch = inputs.shape[0]
    state = (inputs.new_zeros(batch, num_units), inputs.new_zeros(batch, num_units))
    with ts.variable_scope("rnn"):
        for t in range(inputs.shape[1]):
            if t > 0:
                ts.get_variable_scope().reuse_variables()
            output, state = lstm_cell(inputs[:, t], state, num_units)
    return output


def encode(sequence, num_units):
    return static_rnn(sequence.unsqueeze(-1), num_units)


def linear(inputs, units):
    weights = ts.get_variable("weights", [inputs.shape[-1], units])
    biases = ts.get_variable("biases", [units], initializer=ts.zeros_initializer())
    return inputs @ weights + biases


def make_batch(batch_size):
    a = torch.rand(batch_size, SEQUENCE_LENGTH) * 2 - 1
    b = torch.rand(batch_size, SEQUENCE_LENGTH) * 2 - 1
    return a, b, a.sum(1) - b.sum(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="training steps (default 1000; when given, the result is not enforced)",
    )
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    steps = 1000 if args.steps is None else args.steps
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest
    torch.manual_seed(args.seed)

    encoder = ts.make_template("encoder", encode, num_units=args.units)
    head = ts.make_template("head", linear, units=1)

    def model(a, b):
        return head(torch.cat([encoder(a), encoder(b)], dim=-1)).squeeze(-1)

    test_a, test_b, test_target = make_batch(1000)

    @torch.no_grad()
    def test_loss():
        return torch.mean((model(test_a, test_b) - test_target) ** 2).item()

    start = test_loss()  # the first call makes the variables; the optimizer comes after it
    names = [ts.name_of(v) for v in encoder.variables]
    print(f"the encoder template, called on both sequences, holds {len(names)} variables: {names}")
    print(ts.summary())
    optimizer = torch.optim.Adam(ts.trainable_variables(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)

    print(f"\ntest mean squared error before training: {start:.4f}")
    began = time.perf_counter()
    for step in range(1, steps + 1):
        a, b, target = make_batch(args.batch_size)
        loss = torch.mean((model(a, b) - target) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 250 == 0 or step == steps:
            print(f"step {step:5d}  train loss {loss.item():.4f}")
    end = test_loss()
    print(
        f"test mean squared error: {start:.4f} -> {end:.4f} "
        f"({steps} steps, {time.perf_counter() - began:.1f} s)"
    )
    if len(ts.global_variables()) != 4:
        print(f"error: expected 4 variables, found {len(ts.global_variables())}")
        return 1
    if args.steps is None and not end < start / 100:
        print("error: the loss did not fall 100-fold")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
