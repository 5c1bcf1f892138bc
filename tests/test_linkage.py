"""The compiled libraries keep any statically linked C++ runtime to themselves.

A toolchain that links libstdc++ statically (seen on a GPU machine's image) put
libstdc++'s stream and locale code into torchscope._C and exported it. Python
links extensions with -Wl,-Bsymbolic-functions, so our calls bound to that
copy's functions while its data (facet ids, the global locale) came from the
process's shared libstdc++, of another version: every TORCH_CHECK message that
formats an integer called the wrong facet and crashed the process. setup.py
links with -Wl,--exclude-libs,ALL; these tests read the dynamic symbol tables.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys

import pytest

# Defined by libstdc++ itself (not instantiated from headers into our objects),
# so exported only when a copy of libstdc++ was linked in.
LIBSTDCXX_OWN = {
    "_ZNSt6locale7classicEv": "std::locale::classic()",
    "_ZNSt8ios_base4InitC1Ev": "std::ios_base::Init::Init()",
    "_ZNSo9_M_insertIlEERSoT_": "std::ostream::_M_insert<long>(long)",
    "_ZNKSt6locale2id5_M_idEv": "std::locale::id::_M_id() const",
    "__cxa_throw": "__cxa_throw",
}


def _library(name: str) -> str:
    try:
        module = importlib.import_module(f"torchscope.{name}")
    except ImportError as e:
        pytest.skip(f"torchscope.{name} is not built here ({e})")
    return module.__file__


@pytest.mark.skipif(shutil.which("nm") is None, reason="nm (binutils) not on PATH")
@pytest.mark.parametrize("name", ["_C", "_fastpaths"])
def test_no_libstdcxx_symbols_exported(name):
    path = _library(name)
    listed = subprocess.run(
        ["nm", "-D", "--defined-only", path], capture_output=True, text=True, check=True
    ).stdout
    # "T name" or "T name@@VERSION": the name without its version.
    exported = {line.split()[-1].split("@")[0] for line in listed.splitlines() if line.strip()}
    leaked = sorted(LIBSTDCXX_OWN[s] for s in exported & LIBSTDCXX_OWN.keys())
    assert not leaked, (
        f"{path} exports libstdc++'s own symbols {leaked}: the C++ runtime was linked "
        "statically and is visible; link with -Wl,--exclude-libs,ALL (setup.py)"
    )
    assert exported, f"nm listed no exported symbols in {path}"


def test_argument_errors_from_the_kernel_reach_python():
    """The crash itself: a C++ check that formats integers and shapes, raised in a child."""
    ts = pytest.importorskip("torchscope")
    if not ts.ops.native_available():
        pytest.skip("compiled extension torchscope._C not built")
    code = (
        "import torch, torchscope\n"
        "op = torch.ops.torchscope.conv2d_bias_relu.default\n"
        "try:\n"
        "    op(torch.ones(1, 3, 5, 5), torch.ones(4, 2, 3, 3), None, [1, 1], [0, 0], [1, 1], 1)\n"
        "except RuntimeError as e:\n"
        "    print(str(e).splitlines()[0])\n"
    )

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"the child died ({done.returncode}): {done.stderr[-2000:]}"
    assert "but got 3 channels (input shape [1, 3, 5, 5]" in done.stdout
