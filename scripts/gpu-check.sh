#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU (carry .gpu-deps from scripts/gpu-deps.sh where the machine has
# no package registry, as the device tool's does): build only the CUDA targets and their gpu suites for sm_90,
# run the gpu suites, compute-sanitizer (memcheck on a generation, memcheck and racecheck on the tests of the
# fused feed-forward and decode-attention kernels), measure the device-to-device copy bandwidth, and run the decode/prefill benchmarks of the issues.
# With BASELINE (a source tarball: `git archive -o .gpu-baseline/source.tar.gz BASE -- . ':!tests/data'`, carried
# with .gpu-baseline), that tree's mwb is
# built alongside and benchmarked in the same run, for before/after numbers. Logs and JSON go to OUTDIR
# (logs.tar.gz holds them all); a table of the numbers is printed last.
# MWB_GPU_BENCHES (names from BENCHES below, space-separated) runs a subset; MWB_GPU_PROFILE=0 skips the profile;
# MWB_GPU_SERVE=0 skips the serving load test; MWB_GPU_TRAIN=0 the training benchmark against peft;
# MWB_GPU_TESTS=0 skips the suites and compute-sanitizer. Everything takes longer than one device call (10 min):
# split the benches over two calls; the second, made while the machine is warm, finds the build in place.
# Usage: scripts/gpu-check.sh OUTDIR [BASELINE]
set -uo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 OUTDIR [BASELINE_SOURCE_TARBALL]" >&2
  exit 2
fi
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
LOGS=$OUT/logs
mkdir -p "$LOGS"
BASELINE=${2:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${MWB_GPU_BUILD_DIR:-$ROOT/build-gpu}
export PATH=/usr/local/cuda/bin:$PATH
status=0
started=$(date +%s)

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
step() {  # step NAME COMMAND...: runs, logs to LOGS/NAME.log, records failure without stopping
  local name=$1
  shift
  echo "== $name ($(($(date +%s) - started)) s)"
  if "$@" >"$LOGS/$name.log" 2>&1; then
    echo "   ok"
  else
    echo "   FAILED (see $name.log)"
    tail -5 "$LOGS/$name.log" | sed 's/^/   | /'
    status=1
  fi
}
finish() {
  tar -czf "$OUT/logs.tar.gz" -C "$LOGS" . && rm -rf "$LOGS"
  exit $status
}

{
  nvidia-smi || true
  nvcc --version || true
  cmake --version | head -1
} >"$LOGS/machine.txt" 2>&1

configure() {  # configure SOURCE BUILD [CMAKE_ARGS...]
  local source=$1 build=$2
  shift 2
  cmake -S "$source" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMWB_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DMWB_BUILD_GUI=OFF -DMWB_DOCUMENTS=OFF -DMWB_SANITIZED_PARSER_TESTS=OFF "$@"
}
GPU_SUITES=(test_cuda_kernels test_cuda_fixtures test_cuda_reference_layer test_cuda_memory test_cuda_serving test_cuda_lora test_cuda_vision
            test_cuda_train_ops test_cuda_training)
build_all() {
  configure "$ROOT" "$BUILD" && cmake --build "$BUILD" -j "$(nproc)" --target mwb "${GPU_SUITES[@]}"
}
BASE_SOURCE=/tmp/mwb-baseline
BASE_BUILD=/tmp/mwb-baseline-build
# Trees before 4857c5d miss <cstdint> includes that the machine's newer GCC wants: force it for the baseline.
build_baseline() {
  rm -rf "$BASE_SOURCE" && mkdir -p "$BASE_SOURCE" && tar -xzf "$BASELINE" -C "$BASE_SOURCE" &&
    configure "$BASE_SOURCE" "$BASE_BUILD" -DMWB_BUILD_TESTS=OFF -DCMAKE_CXX_FLAGS="-include cstdint" && cmake --build "$BASE_BUILD" -j "$(nproc)" --target mwb
}
baseline_pid=
if [[ -n $BASELINE ]]; then
  build_baseline >"$LOGS/build-baseline.log" 2>&1 &
  baseline_pid=$!
fi
step build build_all
if [[ -n $baseline_pid ]]; then
  if wait "$baseline_pid"; then echo "== build-baseline ok"; else echo "== build-baseline FAILED"; BASELINE=; fi
fi
if [[ ! -x $BUILD/app/mwb ]]; then
  echo "build failed" >&2
  tail -30 "$LOGS/build.log"
  finish
fi

# The copy ceiling of this card, bytes read plus bytes written, from a 4 GiB device-to-device copy.
measure_copy_bandwidth() {
  python3 - <<'EOF'
import torch
n = 1 << 31  # bf16 elements: 4 GiB
a = torch.empty(n, dtype=torch.bfloat16, device="cuda").normal_()
b = torch.empty_like(a)
for _ in range(3): b.copy_(a)
start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
times = []
for _ in range(10):
    start.record(); b.copy_(a); end.record(); torch.cuda.synchronize()
    times.append(start.elapsed_time(end) / 1e3)
times.sort()
print(f"{2 * a.numel() * 2 / times[len(times) // 2] / 1e9:.0f}")
EOF
}
bandwidth=$(measure_copy_bandwidth 2>"$LOGS/bandwidth.log" | tail -1)
[[ $bandwidth =~ ^[0-9]+$ ]] || bandwidth=4245
echo "== copy bandwidth: $bandwidth GB/s"

MWB=$BUILD/app/mwb
MODEL=$ROOT/tests/data/models/dsv3-tiny
if [[ ${MWB_GPU_TESTS:-1} == 0 ]]; then
  echo "== suites and compute-sanitizer skipped (MWB_GPU_TESTS=0)"
else
  step ctest-gpu ctest --test-dir "$BUILD" -L gpu --output-on-failure --timeout 900
  cp "$BUILD/Testing/Temporary/LastTest.log" "$LOGS/ctest-gpu-details.log" 2>/dev/null || true
  if command -v compute-sanitizer >/dev/null; then
    step memcheck-generate compute-sanitizer --tool memcheck --error-exitcode 1 --leak-check full \
      "$MWB" generate "$MODEL" --ids 1,2,3,4,5,6,7,8 --max-new 8 --device cuda
    for tool in memcheck racecheck; do
      step $tool-new-kernels compute-sanitizer --tool $tool --error-exitcode 1 "$BUILD/tests/test_cuda_kernels" \
        decode_attention_matches_naive_softmax dispatch_and_fused_feed_forward_match_the_cpu
    done
    step memcheck-lora compute-sanitizer --tool memcheck --error-exitcode 1 "$BUILD/tests/test_cuda_lora" adapter_matches_cpu:dsv3-tiny
    step memcheck-training compute-sanitizer --tool memcheck --error-exitcode 1 "$BUILD/tests/test_cuda_training" \
      gradients_match_the_cpu_trainer:dsv3-tiny
    step memcheck-vision compute-sanitizer --tool memcheck --error-exitcode 1 "$BUILD/tests/test_cuda_vision" \
      image_features_match_the_reference_and_the_cpu_encoder embedding_overrides_match_the_cpu_backend
  else
    echo "compute-sanitizer not found" >"$LOGS/memcheck.log"
    status=1
  fi
fi

# Benchmarks: the reference shape of DESIGN.md, bf16 random weights. Each process builds its random weights on the
# CPU first (about half a minute for 8 layers), so the baseline runs only the first two (the issue has the rest).
BENCHES=(
  "l8-pp512-tg128|--layers 8 --prompt 512 --gen 128"
  "l8-depth4096|--layers 8 --prompt 4096 --gen 128"
  "l8-batch16|--layers 8 --prompt 512 --gen 128 --batch 16"
  "l27-pp512-tg128|--layers 27 --prompt 512 --gen 128"
  "l8-int8|--layers 8 --prompt 512 --gen 128 --int8"
  "l8-int4|--layers 8 --prompt 512 --gen 128 --int4"
)
BASELINE_BENCHES=2
bench() {  # bench BINARY TAG NAME ARGS: JSON into LOGS/TAG-NAME.json
  local binary=$1 tag=$2 name=$3
  shift 3
  # shellcheck disable=SC2086
  "$binary" bench --shape v3-16b --random-weights --bandwidth "$bandwidth" --device cuda $* >"$LOGS/$tag-$name.json" 2>"$LOGS/$tag-$name.log" ||
    { echo "   bench $tag $name FAILED: $(tail -1 "$LOGS/$tag-$name.log")"; status=1; }
}
field() {  # field FILE KEY
  [[ -s $1 ]] && python3 -c "import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2]); print('-' if v is None else (f'{v:.3f}' if v < 10 else f'{v:.0f}'))" "$1" "$2" 2>/dev/null || echo "-"
}
for i in "${!BENCHES[@]}"; do
  entry=${BENCHES[$i]}
  name=${entry%%|*}
  [[ -z ${MWB_GPU_BENCHES:-} || " $MWB_GPU_BENCHES " == *" $name "* ]] || continue
  echo "== bench $name ($(($(date +%s) - started)) s)"
  bench "$MWB" new "$name" "${entry#*|}"
  if [[ -n $BASELINE && $i -lt $BASELINE_BENCHES ]]; then bench "$BASE_BUILD/app/mwb" base "$name" "${entry#*|}"; fi
done

# Serving on CUDA through the scheduler and the HTTP server (dsv3-tiny: the path, not the speed of a real shape):
# every request must complete; aggregate tokens/s and TTFT percentiles at 1, 16 and 64 clients.
if [[ ${MWB_GPU_SERVE:-1} != 0 ]]; then
  for clients in 1 16 64; do
    step serve-cuda-c$clients "$MWB" bench-serve "$MODEL" --tokenizer "$ROOT/tests/data/tokenizer/deepseek-v3" --device cuda \
      --max-batch 64 --clients $clients --requests $((clients * 2)) --prompt 64 --gen 64
  done
fi

# LoRA training on CUDA beside peft + transformers on the same shape (issue 11's target: at least peft's 39,558
# tokens/s at no more than its 20.1 GiB, 8 layers, seq 1024, batch 4, rank 16 on the MLA projections).
if [[ ${MWB_GPU_TRAIN:-1} != 0 ]]; then
  step train-vs-peft python3 "$ROOT/scripts/bench-train-peft.py" --layers 8 --seq 1024 --batch 4 --rank 16 --mwb "$MWB" --device cuda
fi

# Per-kernel device times of a short generation (prefill of 16 tokens, then decode steps), for where time goes.
if [[ ${MWB_GPU_PROFILE:-1} != 0 ]] && command -v ncu >/dev/null; then
  step profile-kernels timeout 120 ncu --clock-control none --metrics gpu__time_duration.sum --csv \
    "$MWB" bench --shape v3-16b --random-weights --layers 8 --prompt 16 --gen 2 --device cuda
fi

echo
echo "copy bandwidth $bandwidth GB/s; decode and prefill in tokens/s (fraction of the batch-1 bound)"
printf '%-18s %10s %10s %8s %12s %12s\n' bench base-decode new-decode new-frac base-prefill new-prefill
for entry in "${BENCHES[@]}"; do
  name=${entry%%|*}
  printf '%-18s %10s %10s %8s %12s %12s\n' "$name" \
    "$(field "$LOGS/base-$name.json" decode_tokens_per_s)" "$(field "$LOGS/new-$name.json" decode_tokens_per_s)" \
    "$(field "$LOGS/new-$name.json" fraction_of_bound)" \
    "$(field "$LOGS/base-$name.json" prefill_tokens_per_s)" "$(field "$LOGS/new-$name.json" prefill_tokens_per_s)"
done
[[ -f $LOGS/ctest-gpu.log ]] && grep -E "tests passed|tests failed|Failed|\*\*\*" "$LOGS/ctest-gpu.log" | tail -8
echo "total $(($(date +%s) - started)) s; status $status"
finish
