"""Build script: the package, plus the compiled operator library when a compiler is there.

The extension is built against the *installed* torch, so install with
``pip install --no-build-isolation -e .``. Without a working C++ compiler (or with
``TORCHSCOPE_NO_EXTENSION=1``) the package installs without it and
``torchscope.ops`` falls back to pure PyTorch (warned once at run time).

What cannot go right is refused or downgraded here, with a message, not left to fail
later: a build that cannot see torch (pip's build isolation: torch is not a build
requirement, since pip would fetch another torch, possibly a multi-GB CUDA build, and
the extension would not load in the user's) stops at the start and says what to
type; a compiler that exists but cannot compile counts as none; CUDA kernels are
built only with a GPU architecture to build for (a visible GPU or
``TORCH_CUDA_ARCH_LIST``) and an nvcc of torch's CUDA major version, else CPU-only.
The torch version the extension was built against is written next to it
(``_build_info.json``); ``torchscope._native`` compares it with the running torch.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from setuptools import Extension, setup

# Commands that only describe or package the sources: they need neither torch nor a compiler.
_SOURCE_ONLY = {"sdist", "egg_info", "--name", "--version", "check"}
NO_TORCH_MESSAGE = (
    "torchscope: this build cannot import torch. torchscope's extension is built against "
    "the torch you run, so install torch first and build without pip's build isolation: "
    "`pip install --no-build-isolation .` (or `-e .`). For the pure-PyTorch package "
    "without the extension, set TORCHSCOPE_NO_EXTENSION=1."
)

# Whatever a toolchain links in statically stays private to our libraries. Some
# link the C++ standard library statically (a GPU machine's image did: its g++
# put libstdc++'s stream and locale code into _C.abi3.so). Exported, and with
# Python's -Wl,-Bsymbolic-functions, our calls bound to that copy's functions but
# its data (facet ids, the global locale) to the process's shared libstdc++, of
# another version: formatting an integer into a TORCH_CHECK message called the
# wrong facet and every argument error crashed the process. Hidden, the copy is
# self-consistent. Where libstdc++ is linked dynamically (the usual case) this
# changes nothing. tests/test_linkage.py checks the exported symbols.
_PRIVATE_STATIC_LIBS = ["-Wl,--exclude-libs,ALL"]


def _compiler_works(cxx: str) -> bool:
    """Whether ``cxx`` exists and compiles a C++20 translation unit."""
    if shutil.which(cxx) is None:
        return False
    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "probe.cpp")
        with open(source, "w") as f:
            f.write("#include <vector>\nint main() { std::vector<int> v{1}; return v[0] - 1; }\n")
        try:
            result = subprocess.run(
                [cxx, "-std=c++20", "-c", source, "-o", os.path.join(folder, "probe.o")],
                capture_output=True,
                timeout=120,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return result.returncode == 0


def _cuda_build(torch, cuda_home) -> bool:
    """Whether to build the CUDA kernels; says why not when torch has CUDA but they are not."""
    if torch.version.cuda is None or os.environ.get("TORCHSCOPE_NO_CUDA") == "1":
        return False
    if cuda_home is None:
        print("torchscope: torch has CUDA but no CUDA toolkit (nvcc) was found: CPU-only build")
        return False
    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and torch.cuda.device_count() == 0:
        print(
            "torchscope: no GPU visible and TORCH_CUDA_ARCH_LIST unset, so no architecture to "
            'build the CUDA kernels for: CPU-only build (set e.g. TORCH_CUDA_ARCH_LIST="9.0")'
        )
        return False
    nvcc = os.path.join(cuda_home, "bin", "nvcc")
    try:
        banner = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
    except OSError:
        banner = ""
    found = re.search(r"release (\d+)\.", banner)
    if found is None or found.group(1) != torch.version.cuda.split(".")[0]:
        print(
            f"torchscope: nvcc at {nvcc} is CUDA {found.group(1) if found else 'unknown'}, torch "
            f"was built with CUDA {torch.version.cuda}: CPU-only build"
        )
        return False
    return True


def _extensions():
    if os.environ.get("TORCHSCOPE_NO_EXTENSION") == "1":
        return [], {}
    try:
        import torch
        from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
    except ImportError:
        if _SOURCE_ONLY.issuperset(a for a in sys.argv[1:] if not a.startswith("-")):
            return [], {}
        sys.exit(NO_TORCH_MESSAGE)
    if _SOURCE_ONLY.issuperset(a for a in sys.argv[1:] if not a.startswith("-")):
        return [], {}
    cxx_compiler = os.environ.get("CXX", "c++")
    if not _compiler_works(cxx_compiler):
        print(
            f"torchscope: the C++ compiler {cxx_compiler!r} is missing or cannot compile C++20: "
            "installing without the extension (torchscope.ops falls back to pure PyTorch)"
        )
        return [], {}
    here = os.path.dirname(os.path.abspath(__file__))
    sources = sorted(
        glob.glob(os.path.join("csrc", "*.cpp")) + glob.glob(os.path.join("csrc", "cpu", "*.cpp"))
    )
    if not sources:
        return [], {}
    # -fopenmp: at::parallel_for is inlined from ATen's OpenMP headers; without
    # the flag its `#pragma omp parallel` is ignored and the epilogue runs on one thread.
    # -g0 and -s: no debug information in what is installed (13.8 MB of _C without).
    cxx = ["-O3", "-g0", "-fopenmp", "-std=c++20", "-DPy_LIMITED_API=0x030A0000"]
    link = ["-fopenmp", "-s", *_PRIVATE_STATIC_LIBS]
    if _cuda_build(torch, CUDA_HOME):
        sources += sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu")))
        ext = CUDAExtension(
            "torchscope._C",
            sources,
            include_dirs=[os.path.join(here, "csrc")],
            extra_compile_args={"cxx": cxx, "nvcc": ["-O3"]},
            extra_link_args=link,
            py_limited_api=True,
        )
    else:
        ext = CppExtension(
            "torchscope._C",
            sources,
            include_dirs=[os.path.join(here, "csrc")],
            extra_compile_args={"cxx": cxx},
            extra_link_args=link,
            py_limited_api=True,
        )
    # Two checks of the per-call paths in C (csrc/python): they read tensors through
    # torch's Python bindings, so they are built for this Python (not the limited API)
    # and linked with torch_python.
    fastpaths = CppExtension(
        "torchscope._fastpaths",
        [os.path.join("csrc", "python", "fastpaths.cpp")],
        include_dirs=[os.path.join(here, "csrc")],  # op_handles.h
        extra_compile_args={"cxx": ["-O3", "-g0", "-std=c++20"]},
        extra_link_args=["-s", *_PRIVATE_STATIC_LIBS],
    )
    # CRC-32C for TensorFlow checkpoints (torchscope.train): plain C, no torch.
    crc32c = Extension(
        "torchscope._crc32c",
        [os.path.join("csrc", "crc32c", "crc32c.c")],
        extra_compile_args=["-O3", "-g0"],
        extra_link_args=["-s", *_PRIVATE_STATIC_LIBS],
    )

    class BuildWithInfo(BuildExtension):
        """torch's BuildExtension, then ``_build_info.json`` next to the built libraries."""

        def run(self) -> None:
            super().run()
            folder = os.path.dirname(self.get_ext_fullpath("torchscope._C"))
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, "_build_info.json"), "w") as f:
                json.dump({"torch": torch.__version__, "cuda": torch.version.cuda}, f)

    return [ext, fastpaths, crc32c], {"build_ext": BuildWithInfo}


def _check_setuptools() -> None:
    """pyproject.toml's SPDX license needs setuptools 77; older ones fail on it with a
    schema error that does not say so. Without build isolation the user's own is used."""
    import setuptools

    major = int(re.match(r"\d+", setuptools.__version__).group())
    if major < 77:
        sys.exit(
            f"torchscope: building needs setuptools>=77, this is {setuptools.__version__}: "
            "`pip install -U 'setuptools>=77'`, then install torchscope again"
        )


if __name__ == "__main__":  # setuptools runs this file as __main__; tests import it
    _check_setuptools()
    ext_modules, cmdclass = _extensions()
    # No abi3 wheel tag: torchscope._fastpaths is built for one Python version.
    # Editable installs in "compat" mode: a plain path entry in a .pth file, which type
    # checkers (pyright, mypy) and IDEs follow; the default mode's import hook they cannot.
    setup(
        ext_modules=ext_modules,
        cmdclass=cmdclass,
        options={"editable_wheel": {"mode": "compat"}},
    )
