"""The README opens with the two commands, CI runs the second, and the table covers API.md."""

import re
import subprocess
from pathlib import Path

import torchscope as ts

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def commands():
    return re.findall(r"^    \$ (.*)$", README, flags=re.M)


def test_readme_opens_with_the_demo_and_test_commands():
    demo, tests = commands()[:2]
    assert demo.startswith("pip install torch==2.13.0 && pip install --no-build-isolation -e ")
    assert "python examples/" in demo
    assert tests.startswith("pip install torch==2.13.0 && pip install --no-build-isolation -e ")
    assert "python -m pytest" in tests and "--doctest-modules torchscope" in tests
    first_block = README.index("    $ ")
    assert README[:first_block].count("```") == 0  # nothing runnable comes before them


def test_ci_runs_the_readme_test_command():
    extracted = subprocess.run(
        ["sed", "-n", r"s/^    \$ \(.*python -m pytest.*\)$/\1/p", str(ROOT / "README.md")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()[0]
    assert extracted == commands()[1]
    assert "README.md" in (ROOT / ".ci" / "run").read_text()


def test_table_names_every_public_name():
    table = README[README.index("## TensorFlow 1 -> torchscope") :]
    for name in ts.__all__:
        if name in ("nn", "ops"):
            continue
        assert f"ts.{name}" in table, name
    for name in ts.nn.__all__:
        assert f"ts.nn.{name}" in table, name
    for name in ts.train.__all__:
        assert f"ts.train.{name}" in table, name


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    """Each ```python block runs as written (in a scratch folder, on a fresh store)."""
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        ts.reset_default_store()
        exec(compile(block.replace("/tmp/", f"{tmp_path}/"), "README.md", "exec"), {})
