#!/usr/bin/env bash
# The path a user without the git checkout takes: the sdist, a wheel built from it, a fresh
# virtual environment with that wheel installed, then `python -m torchscope` and the test
# suite run against the installed wheel (the sdist's own torchscope/ folder is removed so that
# nothing imports the sources). Also checks the wheel's size (no debug information: <= 1 MiB).
# .ci/run runs it; by hand: `bash tools/sdist_check.sh` (about 8 minutes on 2 cores).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install -q --upgrade pip
"$py" -m pip install -q torch==2.13.0 "setuptools>=77" build

(cd "$root" && "$py" -m build --sdist --no-isolation --outdir "$work/dist" . >/dev/null)
sdist=$(ls "$work"/dist/torchscope-*.tar.gz)
echo "sdist-check: $(basename "$sdist"): $(tar -tzf "$sdist" | wc -l) files"

MAX_JOBS=${MAX_JOBS:-2} "$py" -m pip wheel -q --no-build-isolation --no-deps -w "$work/dist" "$sdist"
wheel=$(ls "$work"/dist/torchscope-*.whl)
size=$(stat -c %s "$wheel")
echo "sdist-check: $(basename "$wheel"): $size bytes (at most 1048576)"
if [ "$size" -gt 1048576 ]; then
  echo "sdist-check: the wheel is larger than 1 MiB (debug information?)" >&2
  exit 1
fi

"$py" -m pip install -q "${wheel}[test,examples]"
tar -xzf "$sdist" -C "$work"
src=$(ls -d "$work"/torchscope-*/)
rm -rf "$src/torchscope"
cd "$src"
"$py" -m torchscope
"$py" -m pytest -q -x -p no:cacheprovider tests
