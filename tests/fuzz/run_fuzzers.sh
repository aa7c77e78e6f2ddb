#!/usr/bin/env bash
# Runs each libFuzzer harness of tests/fuzz from its seed corpus (copied, so that the inputs it finds stay out
# of the repository) for a fixed number of inputs with a fixed seed, so that a run is repeatable: the same tree
# finds the same things. A crash, leak, sanitizer report or timeout fails the run and leaves the reproducer in
# BUILD_DIR/fuzz-artifacts. Usage: tests/fuzz/run_fuzzers.sh BUILD_DIR INPUTS_EACH
set -euo pipefail
if [[ $# -ne 2 ]]; then
  echo "usage: $0 BUILD_DIR INPUTS_EACH" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
runs=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts"
status=0
for seeds in "$here"/corpus/*/; do
  name=$(basename "$seeds")
  work=$(mktemp -d)
  cp -r "$seeds". "$work"
  echo "fuzz_$name: $runs inputs"
  if ! "$build/tests/fuzz/fuzz_$name" -runs="$runs" -seed=1 -max_total_time=300 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$name-" "$work" >"$artifacts/$name.log" 2>&1; then
    echo "fuzz_$name FAILED: see $artifacts/$name.log and the $name-* reproducer there"
    tail -20 "$artifacts/$name.log"
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::new_units_added" "$artifacts/$name.log" | tr '\n' ' '
    echo
  fi
  rm -rf "$work"
done
exit $status
