"""docs/porting.md: its port blocks run as written, and it is where readers look for it.

Every fenced ```python block of the guide runs, top to bottom in one namespace (the page
builds on its earlier blocks), in a scratch folder, starting from a fresh default store;
a block whose first line is ``# TensorFlow 1 original`` is the original being ported and
is skipped (no test needs TensorFlow).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import torchscope as ts

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "porting.md"
ORIGINAL = "# TensorFlow 1 original"


def blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", GUIDE.read_text(), flags=re.S | re.M)


def test_the_guide_has_originals_and_ports():
    found = blocks()
    originals = [b for b in found if b.startswith(ORIGINAL)]
    ports = [b for b in found if not b.startswith(ORIGINAL)]
    assert len(originals) >= 2 and len(ports) >= 8
    for block in originals:
        assert "ts." not in block, "an original block uses torchscope: is the marker wrong?"


def test_the_port_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ts.reset_default_store()
    namespace: dict[str, object] = {}
    for number, block in enumerate(blocks(), start=1):
        if block.startswith(ORIGINAL):
            continue
        code = compile(block.replace("/tmp/", f"{tmp_path}/"), f"porting.md block {number}", "exec")
        exec(code, namespace)


@pytest.mark.parametrize(
    "path, text",
    [
        ("docs/index.rst", "   porting\n"),
        ("README.md", "docs/porting.md"),
    ],
)
def test_the_guide_is_linked(path, text):
    assert text in (ROOT / path).read_text()
