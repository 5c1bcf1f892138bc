#!/usr/bin/env bash
# The GPU check run on a machine with an NVIDIA GPU (the device machine's image:
# torch with CUDA, nvcc, ninja, pytest, hypothesis; no network). Builds the
# extension for the GPU that is there, runs the CUDA tests, the GPU part of
# bench/conv.py, then the whole suite. Each stage has its own time limit, so one
# that hangs cannot starve the rest; logs go to $OUT (or ./gpu_check_out).
set -u
out=${OUT:-gpu_check_out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
stage() {  # stage NAME SECONDS COMMAND...: run with a limit, log to $out/NAME.log
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  echo "== $name: rc=$rc in $((SECONDS - t0)) s"
  tail -n "${TAIL:-25}" "$out/$name.log"
  return $rc
}
nvidia-smi -L
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
arch=$($py -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")
export TORCH_CUDA_ARCH_LIST=$arch MAX_JOBS=${MAX_JOBS:-16}
stage build "${BUILD_LIMIT:-300}" $py -m pip install -v --no-build-isolation --no-deps --no-index -e . || exit 1
stage selfcheck 60 $py -m torchscope
stage cuda_tests "${CUDA_TESTS_LIMIT:-240}" $py -m pytest -q -rs -p no:cacheprovider \
  tests/test_cuda_ops.py tests/test_cuda_build.py tests/test_train_cuda.py tests/test_nonfinite.py \
  tests/test_initializers.py::test_cuda_seeded_matches_cpu_and_unseeded_runs_on_device
TAIL=60 stage bench_conv_cuda "${BENCH_LIMIT:-180}" $py bench/conv.py --device cuda
if [ -n "${FULL_SUITE_LIMIT:-}" ]; then
  stage full_suite "$FULL_SUITE_LIMIT" $py -m pytest -q -rfEs -p no:cacheprovider -n 12 \
    --doctest-modules torchscope tests
fi
exit 0
