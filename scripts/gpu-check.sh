#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU (carry .gpu-deps from scripts/gpu-deps.sh where the machine has
# no package registry, as the device tool's does): configure with CUDA for sm_90, build with every core, run the
# gpu-labelled tests, compute-sanitizer memcheck on one short generation, and the benchmarks of issue 6.
# Logs and JSON go to OUTDIR. Usage: scripts/gpu-check.sh OUTDIR
set -uo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${MWB_GPU_BUILD_DIR:-$ROOT/build-gpu}
export PATH=/usr/local/cuda/bin:$PATH
status=0

# No package registry on the GPU machine: unpack the Debian packages carried in .gpu-deps (scripts/gpu-deps.sh)
# into a private prefix and point CMake, pkg-config and the loader at it.
if [[ -d $ROOT/.gpu-deps ]]; then
  PREFIX=${MWB_GPU_DEPS_PREFIX:-/opt/mwb-deps}
  mkdir -p "$PREFIX"
  for deb in "$ROOT"/.gpu-deps/*.deb; do dpkg-deb -x "$deb" "$PREFIX"; done
  export PATH="$PREFIX/usr/bin:$PATH"
  export CMAKE_PREFIX_PATH="$PREFIX/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export PKG_CONFIG_LIBDIR="$PREFIX/usr/lib/x86_64-linux-gnu/pkgconfig:$PREFIX/usr/share/pkgconfig"
  export PKG_CONFIG_SYSROOT_DIR="$PREFIX"
  export LD_LIBRARY_PATH="$PREFIX/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
step() {  # step NAME COMMAND...: runs, logs to OUT/NAME.log, records failure without stopping
  local name=$1
  shift
  echo "== $name"
  if "$@" >"$OUT/$name.log" 2>&1; then
    echo "   ok"
  else
    echo "   FAILED (see $OUT/$name.log)"
    status=1
  fi
}

{
  nvidia-smi || true
  nvcc --version || true
  cmake --version | head -1
} >"$OUT/machine.txt" 2>&1

step configure cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMWB_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DMWB_BUILD_GUI=OFF
step build cmake --build "$BUILD" -j "$(nproc)"
if [[ $status -ne 0 ]]; then
  echo "build failed; see $OUT" >&2
  exit 1
fi

step ctest-gpu ctest --test-dir "$BUILD" -L gpu --output-on-failure --timeout 1800
cp "$BUILD/Testing/Temporary/LastTest.log" "$OUT/ctest-gpu-details.log" 2>/dev/null || true

MWB="$BUILD/app/mwb"
[[ -x $MWB ]] || MWB=$(find "$BUILD" -name mwb -type f -perm -u+x | head -1)
MODEL="$ROOT/tests/data/models/dsv3-tiny"
if command -v compute-sanitizer >/dev/null; then
  step memcheck compute-sanitizer --tool memcheck --error-exitcode 1 --leak-check full \
    "$MWB" generate "$MODEL" --ids 1,2,3,4,5,6,7,8 --max-new 8 --device cuda
else
  echo "compute-sanitizer not found" >"$OUT/memcheck.log"
  status=1
fi

# Benchmarks: the reference shape of DESIGN.md, 8 layers, bf16 random weights (and 27 layers for the bound).
bench() {  # bench NAME ARGS...: JSON on stdout into OUT/NAME.json
  local name=$1
  shift
  echo "== bench $name"
  if "$MWB" bench --shape v3-16b --random-weights --bandwidth 3000 --device cuda "$@" >"$OUT/$name.json" 2>"$OUT/$name.log"; then
    echo "   ok: $(tr -d '\n ' <"$OUT/$name.json" | grep -o '"decode_tokens_per_s":[0-9.e+]*' | head -1)"
  else
    echo "   FAILED (see $OUT/$name.log)"
    status=1
  fi
}
bench layers8-pp512-tg128 --layers 8 --prompt 512 --gen 128
bench layers8-depth4096-tg128 --layers 8 --prompt 4096 --gen 128
if "$MWB" --help 2>&1 | grep -q -- "--batch"; then
  bench layers8-batch4 --layers 8 --prompt 512 --gen 128 --batch 4
  bench layers8-batch16 --layers 8 --prompt 512 --gen 128 --batch 16
fi
bench layers27-pp512-tg128 --layers 27 --prompt 512 --gen 128

echo "results in $OUT"
exit $status
