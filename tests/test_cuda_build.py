"""The CUDA sources (csrc/cuda/*.cu) compile with nvcc against the installed torch.

Compile-only: CI has no GPU, so this is what keeps the CUDA kernels building.
The CPU wheel of torch ships the c10/cuda and ATen headers but not the
configure-generated c10/cuda/impl/cuda_cmake_macros.h; the build defines
C10_CUDA_NO_CMAKE_CONFIGURE_FILE to do without it. The kernels include only
c10/cuda headers, which need nothing from the CUDA toolkit but its runtime.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch.utils.cpp_extension as cpp_extension

ROOT = Path(__file__).resolve().parent.parent
CU_SOURCES = sorted((ROOT / "csrc" / "cuda").glob("*.cu"))


def _torch_include_dirs() -> list[str]:
    return cpp_extension.include_paths()


def _missing_headers() -> str | None:
    dirs = [Path(d) for d in _torch_include_dirs()]
    for header in (
        "c10/cuda/CUDAStream.h",
        "c10/cuda/CUDAGuard.h",
        "ATen/Dispatch.h",
        "torch/library.h",
    ):
        if not any((d / header).exists() for d in dirs):
            return f"the installed torch ships no {header}"
    return None


@pytest.mark.parametrize("source", CU_SOURCES, ids=lambda p: p.name)
def test_cuda_source_compiles_with_nvcc(source, tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not found on PATH: cannot compile the CUDA sources")
    missing = _missing_headers()
    if missing is not None:
        pytest.skip(f"CUDA headers missing: {missing}")
    includes = [f"-I{d}" for d in _torch_include_dirs()] + [f"-I{ROOT / 'csrc'}"]
    defines = []
    generated = "c10/cuda/impl/cuda_cmake_macros.h"
    if not any((Path(d) / generated).exists() for d in _torch_include_dirs()):
        defines.append("-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE")
    obj = tmp_path / (source.stem + ".o")
    # The flags torch's CUDAExtension passes to nvcc (setup.py builds with it).
    common = getattr(cpp_extension, "COMMON_NVCC_FLAGS", ["--expt-relaxed-constexpr"])
    cmd = [
        nvcc, "-c", str(source), "-o", str(obj), "-std=c++20", "-O3", "-Xcompiler", "-fPIC",
        "-DTORCH_EXTENSION_NAME=_C", *common, *defines, *includes,
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stderr[-6000:]}"
    assert obj.stat().st_size > 0
    # The kernels are really in the object (device code for the launch stubs).
    symbols = subprocess.run(["nm", "-C", str(obj)], capture_output=True, text=True).stdout
    if symbols:
        assert "bias_relu_kernel" in symbols
        assert "conv2d_bias_relu_backward_cuda" in symbols


def test_there_are_cuda_sources():
    assert CU_SOURCES, "csrc/cuda/*.cu is empty"
