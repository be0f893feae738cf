#!/usr/bin/env bash
# Builds a Horovod 0.28.1 wheel for the interpreter given (one holding the pinned torch) and
# prints its path; cached under $RTREC_CACHE/wheels, keyed by this script, the sdist and torch.
#
# Horovod 0.28.1 (its latest release, June 2023) does not build against current torch: its CMake
# sets CMAKE_CXX_STANDARD 14 in CMakeLists.txt and horovod/torch/CMakeLists.txt (upstream
# horovod#3996, fixed on main but not released). torch 2.x headers needed C++17; the pinned
# torch 2.15's need C++20 ("#error C++20 or later compatible compiler is required to use
# PyTorch", checked: with 17 the build fails there). The fix here is exactly that: 14 -> 20 on
# those two lines, nothing else. CPU build with gloo (no MPI, TensorFlow or MXNet).
#
# Usage: scripts/build_horovod.sh PYTHON UV
set -euo pipefail
python=$1 uv=$2
version=0.28.1
sdist_sha256=92a43f5a94c43907a56805bad15f19700c62ffc83b7ca483f9e104e229f67ef0
cache=${RTREC_CACHE:-$HOME/.cache/rtrec}
script_dir=$(cd "$(dirname "$0")" && pwd)
say() { printf '[horovod] %s\n' "$*" >&2; }

torch=$("$python" -c 'import torch; print(torch.__version__)')
key=$(cat "$script_dir/build_horovod.sh" <(echo "$version $torch $("$python" -V 2>&1)") | sha256sum | cut -c1-12)
out=$cache/wheels/horovod-$version-$key
if [ -f "$out/.rtrec-complete" ]; then
  ls "$out"/horovod-*.whl
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say "downloading the horovod $version sdist from PyPI"
"$uv" venv -q --python "$python" "$work/pip-env"
"$uv" pip install -q --python "$work/pip-env/bin/python" pip
"$work/pip-env/bin/python" -m pip download -q --no-deps --no-binary :all: "horovod==$version" -d "$work"
echo "$sdist_sha256  $work/horovod-$version.tar.gz" | sha256sum -c --quiet -
tar xzf "$work/horovod-$version.tar.gz" -C "$work"
src=$work/horovod-$version

patch_line() {  # file old new: replace one exact line, failing if it is not there once
  local file=$src/$1
  [ "$(grep -cxF "$2" "$file")" = 1 ] || { say "unexpected $1: '$2' not found once"; exit 1; }
  sed -i "s/^$2\$/$3/" "$file"
}
patch_line CMakeLists.txt "set(CMAKE_CXX_STANDARD 14)" "set(CMAKE_CXX_STANDARD 20)"
patch_line horovod/torch/CMakeLists.txt "    set(CMAKE_CXX_STANDARD 14)" "    set(CMAKE_CXX_STANDARD 20)"

say "building horovod $version against torch $torch (C++20; a few minutes)"
start=$(date +%s)
mkdir -p "$out.tmp"
env HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
  HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 HOROVOD_CPU_OPERATIONS=gloo \
  MAKEFLAGS=-j"$(nproc)" \
  "$uv" build -q --wheel --no-build-isolation --python "$python" -o "$out.tmp" "$src" >&2
say "built in $(( $(date +%s) - start )) s"
touch "$out.tmp/.rtrec-complete"
rm -rf "$out"
mv "$out.tmp" "$out"
ls "$out"/horovod-*.whl
