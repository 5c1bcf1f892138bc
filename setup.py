"""Build script: the package, plus the compiled operator library when a compiler is there.

The extension is built against the *installed* torch, so install with
``pip install --no-build-isolation -e .``. Without a C++ compiler (or with
``TORCHSCOPE_NO_EXTENSION=1``) the package installs without it and
``torchscope.ops`` falls back to pure PyTorch.
"""

from __future__ import annotations

import glob
import os
import shutil

from setuptools import Extension, setup

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


def _extensions():
    if os.environ.get("TORCHSCOPE_NO_EXTENSION") == "1":
        return [], {}
    try:
        import torch
        from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
    except ImportError:
        return [], {}
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        print("torchscope: no C++ compiler found, installing the pure-PyTorch fallback only")
        return [], {}
    here = os.path.dirname(os.path.abspath(__file__))
    sources = sorted(
        glob.glob(os.path.join("csrc", "*.cpp")) + glob.glob(os.path.join("csrc", "cpu", "*.cpp"))
    )
    if not sources:
        return [], {}
    # -fopenmp: at::parallel_for is inlined from ATen's OpenMP headers; without
    # the flag its `#pragma omp parallel` is ignored and the epilogue runs on one thread.
    cxx = ["-O3", "-fopenmp", "-std=c++20", "-DPy_LIMITED_API=0x030A0000"]
    link = ["-fopenmp", *_PRIVATE_STATIC_LIBS]
    use_cuda = (
        torch.version.cuda is not None
        and CUDA_HOME is not None
        and os.environ.get("TORCHSCOPE_NO_CUDA") != "1"
    )
    if use_cuda:
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
        extra_compile_args={"cxx": ["-O3", "-std=c++20"]},
        extra_link_args=_PRIVATE_STATIC_LIBS,
    )
    # CRC-32C for TensorFlow checkpoints (torchscope.train): plain C, no torch.
    crc32c = Extension(
        "torchscope._crc32c",
        [os.path.join("csrc", "crc32c", "crc32c.c")],
        extra_compile_args=["-O3"],
        extra_link_args=_PRIVATE_STATIC_LIBS,
    )
    return [ext, fastpaths, crc32c], {"build_ext": BuildExtension}


ext_modules, cmdclass = _extensions()

# No abi3 wheel tag: torchscope._fastpaths is built for one Python version.
setup(ext_modules=ext_modules, cmdclass=cmdclass)
