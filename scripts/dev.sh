#!/usr/bin/env bash
# The two set-up commands of README.md:
#   scripts/dev.sh run [MODEL_DIR]   install what is needed, build, start moe-workbench (demo model without MODEL_DIR)
#   scripts/dev.sh test              install what is needed, build, run the whole test suite through ctest
# Re-runs are incremental (one build tree in build/, ccache for compiles).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$root/build"
command=${1:-}
shift || true

# Debian 12 packages the project builds and tests with; README.md says why each is there.
packages=(
  build-essential cmake ninja-build ccache pkg-config clang libclang-rt-14-dev
  qt6-base-dev qt6-charts-dev libqt6opengl6-dev libqt6sql6-sqlite libgl-dev
  libsqlite3-dev libpcre2-dev libicu-dev nlohmann-json3-dev zlib1g-dev libcpp-httplib-dev libyaml-cpp-dev
  qt6-pdf-dev libtesseract-dev tesseract-ocr-eng qt6-image-formats-plugins
  fonts-dejavu-core fonts-droid-fallback
)

install_packages() {
  local missing=()
  for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
}

has_gpu() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }

configure_and_build() {
  # The CUDA toolkit is not a Debian package; use it where it is installed.
  if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH="/usr/local/cuda/bin:$PATH"; fi
  # One architecture keeps development and CI builds short: the local GPU's, else Hopper (sm_90) just to prove
  # the kernels compile. Release packages keep the broad default of CMakeLists.txt.
  local cuda_architectures=${MWB_CUDA_ARCHITECTURES:-90}
  has_gpu && cuda_architectures=${MWB_CUDA_ARCHITECTURES:-native}
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache \
    -DCMAKE_CUDA_ARCHITECTURES="$cuda_architectures"
  cmake --build "$build" -j "$(nproc)"
}

# A second compiler over the engine and the CLI, warnings as errors: a missing include or a warning that another
# compiler raises breaks the test command here, not a user's build. The same tree builds the libFuzzer harnesses
# of the parsers of untrusted files, which then run over a fixed number of inputs each (tests/fuzz/run_fuzzers.sh).
portability_build_and_fuzz() {
  cmake -S "$root" -B "$root/build-clang" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_FLAGS=-Werror \
    -DMWB_CUDA=OFF -DMWB_BUILD_GUI=OFF -DMWB_BUILD_TESTS=OFF -DMWB_SANITIZED_PARSER_TESTS=OFF -DMWB_FUZZERS=ON
  cmake --build "$root/build-clang" -j "$(nproc)" --target mwb fuzzers
  "$root/tests/fuzz/run_fuzzers.sh" "$root/build-clang" "${MWB_FUZZ_RUNS:-40000}"
}

case "$command" in
  run)
    install_packages
    configure_and_build
    exec "$build/app/moe-workbench" "$@"
    ;;
  test)
    install_packages
    configure_and_build
    portability_build_and_fuzz
    label_filter=(-LE gpu)
    has_gpu && label_filter=()
    ctest --test-dir "$build" --output-on-failure -j "$(nproc)" "${label_filter[@]}"
    ;;
  *)
    echo "usage: scripts/dev.sh run [MODEL_DIR] | scripts/dev.sh test" >&2
    exit 2
    ;;
esac
