"""Every example runs, in its quick mode and its full mode, and prints what the README quotes.

Each example is run as a user runs it (``python examples/X.py``), in a subprocess with
this checkout first on ``PYTHONPATH``. The full-mode runs also check the numbers each
example enforces (digits accuracy >= 95%, the GAN's samples moving to the target, the
RNN's loss falling, the siamese pair accuracy); each takes a few seconds.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run(script: str, *args: str, prelude: str | None = None) -> str:
    """Runs ``examples/<script>`` with ``args``; returns stdout, failing on a non-zero exit."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    path = str(EXAMPLES / script)
    if prelude is None:
        command = [sys.executable, path, *args]
    else:  # run a few statements first, then the script as __main__
        code = f"{prelude}\nimport runpy, sys\nsys.argv = {[path, *args]!r}\n"
        code += f"runpy.run_path({path!r}, run_name='__main__')"
        command = [sys.executable, "-c", code]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (
        f"{script} {' '.join(args)} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr[-4000:]}"
    )
    return result.stdout


def number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in output:\n{text}"
    return float(match.group(1))


def test_every_example_has_a_docstring_argparse_and_ts():
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert {"image_filter.py", "train_digits.py", "gan.py", "rnn.py", "siamese.py"} <= set(scripts)
    assert {"resume_tf1.py", "dcgan_tf1.py"} <= set(scripts)
    for name in scripts:
        source = (EXAMPLES / name).read_text()
        assert source.startswith('"""'), f"{name} must open with a docstring"
        assert f"python examples/{name}" in source, f"{name}'s docstring must say how to run it"
        assert "import torchscope as ts" in source
        assert "argparse.ArgumentParser" in source


# ---------------------------------------------------------------- image_filter


def test_image_filter():
    out = run("image_filter.py")
    assert "Variable conv1/weights already exists, disallowed" in out
    assert "Both images went through the same 4 variables" in out
    for line in ("image_filters/", "  conv1/", "    weights     (5, 5, 32, 32)", "  conv2/"):
        assert line in out
    assert "total: 4 variables, 51,264 parameters (51,264 trainable, 0 non-trainable)" in out
    assert number(r"max relative difference (\S+)", out) < 1e-5
    assert out.rstrip().endswith("OK")


# ---------------------------------------------------------------- train_digits

NAMES = [
    f"convnet/{layer}/{kind}"
    for layer in ("conv1", "conv2", "fc1", "logits")
    for kind in ("weights", "biases")
]


def test_train_digits_quick_saves_a_checkpoint_by_full_names(tmp_path):
    pytest.importorskip("sklearn")
    checkpoint = tmp_path / "digits.pt"
    out = run("train_digits.py", "--steps", "20", "--checkpoint", str(checkpoint))
    assert "digits: 1437 training and 360 held-out 8x8 images" in out
    assert "total: 8 variables, 151,306 parameters" in out
    assert "trained 20 steps" in out
    assert re.search(r"held-out accuracy: \d+\.\d\d% \(360 images\)", out)
    assert "(identical)" in out
    for name in NAMES:
        assert f"  {name}" in out
    state = torch.load(checkpoint)
    assert list(state) == NAMES
    assert state["convnet/conv1/weights"].shape == (3, 3, 1, 32)


def test_train_digits_full_reaches_95_percent():
    pytest.importorskip("sklearn")
    out = run("train_digits.py")
    accuracy = number(r"held-out accuracy: ([\d.]+)%", out)
    assert accuracy >= 95.0
    assert number(r"reloaded accuracy: ([\d.]+)%", out) == accuracy


def test_train_digits_compile():
    pytest.importorskip("sklearn")
    out = run("train_digits.py", "--steps", "30", "--compile")
    assert "training through torch.compile(model, fullgraph=True)" in out
    assert "trained 30 steps" in out and "(identical)" in out


def test_train_digits_without_tqdm_prints_progress():
    pytest.importorskip("sklearn")
    out = run("train_digits.py", "--steps", "50", prelude="import sys; sys.modules['tqdm'] = None")
    assert "step 44/50  epoch 1  loss" in out
    assert "step 50/50  epoch 2  loss" in out


# ---------------------------------------------------------------- gan, rnn, siamese


def test_gan_quick(tmp_path):
    out = run("gan.py", "--steps", "20", "--plot", str(tmp_path / "gan.png"))
    assert "6 discriminator and 6 generator variables" in out
    assert "discriminator/\n  hidden1/" in out and "generator/\n  hidden1/" in out
    assert "distance of the generated mean to the target mean:" in out


def test_gan_full_moves_the_samples_to_the_target(tmp_path):
    out = run("gan.py", "--plot", str(tmp_path / "gan.png"))
    match = re.search(r"target mean: ([\d.]+) -> ([\d.]+)", out)
    assert match, out
    start, end = map(float, match.groups())
    assert end < 0.25 * start
    assert (tmp_path / "gan.png").exists() == _has("matplotlib")


def test_rnn_quick():
    out = run("rnn.py", "--steps", "20")
    assert "['encoder/rnn/lstm_cell/kernel', 'encoder/rnn/lstm_cell/bias']" in out
    assert "total: 4 variables" in out
    assert "test mean squared error:" in out


def test_rnn_full_learns():
    out = run("rnn.py")
    match = re.search(r"test mean squared error: ([\d.]+) -> ([\d.]+)", out)
    assert match, out
    start, end = map(float, match.groups())
    assert end < start / 100


def test_siamese_quick():
    pytest.importorskip("sklearn")
    out = run("siamese.py", "--steps", "20")
    assert "both towers use the same 6 variables" in out
    assert "tower/\n  fc1/" in out
    assert "held-out pair accuracy" in out


def test_siamese_full():
    pytest.importorskip("sklearn")
    out = run("siamese.py")
    assert number(r"pair accuracy .*-> ([\d.]+)%", out) >= 90.0


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def test_python_dash_m_torchscope_self_check():
    """`python -m torchscope`, the README's first thing to run when something looks wrong."""
    result = subprocess.run(
        [sys.executable, "-m", "torchscope"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("torchscope ") and f"torch {torch.__version__}" in lines[0]
    assert lines[-1] == "self-check: OK"
    assert "scope demo: created 'demo/w', reused the same object: True" in lines
    import torchscope as ts

    native = "compiled and loaded" if ts.ops.native_available() else "missing"
    assert any(line.startswith("native operator library: " + native) for line in lines)


# ---------------------------------------------------------------- resume_tf1


def test_resume_tf1_continues_tensorflows_run():
    pytest.importorskip("numpy")
    out = run("resume_tf1.py")
    assert "restored 5 variables and Adam's slots from" in out and "at global step 3" in out
    ours = number(r"loss at the restored state: ([\d.]+)", out)
    assert ours == number(r"\(TensorFlow: ([\d.]+)\)", out)
    assert number(r"max \|torchscope - TensorFlow\| = (\S+)", out) < 1e-6
    assert number(r"step 204: loss ([\d.]+)", out) < 0.01
    assert "saved model.ckpt-204 (15 tensors, optimizer slots included)" in out
    assert out.rstrip().endswith("at step 204: identical")


def test_resume_tf1_quick():
    pytest.importorskip("numpy")
    out = run("resume_tf1.py", "--steps", "4")
    assert "step 8: loss" in out and "identical" in out


# ---------------------------------------------------------------- dcgan_tf1


def test_dcgan_tf1_learns_the_shapes():
    """The class-based TF1 port: its variables by TF1's names, and 120 steps that halve the
    distance between the samples' image statistics and the data's (about 5 s)."""
    out = run("dcgan_tf1.py", "--steps", "120")
    assert "8 discriminator and 10 generator variables" in out
    for line in ("generator/\n  g_h0_lin/\n    Matrix", "  d_bn1/\n    gamma", "moving_variance"):
        assert line in out
    assert "total: 24 variables, 44,194 parameters (44,034 trainable" in out
    match = re.search(r"distance ([\d.]+) -> ([\d.]+)", out)
    assert match, out
    start, end = map(float, match.groups())
    assert end < 0.5 * start
