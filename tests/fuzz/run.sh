#!/bin/bash
# Short run of every fuzz target with its seed corpus (CI smoke fuzzing):
#   tests/fuzz/run.sh BUILD_DIR SECONDS
# New inputs go to a scratch corpus, so the tree's seeds stay small.
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR SECONDS}
secs=${2:-20}
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
for bin in "$build"/tests/fuzz/fuzz_*; do
    [ -f "$bin" ] && [ -x "$bin" ] || continue
    name=$(basename "$bin")
    corpus="$here/corpus/${name#fuzz_}"
    mkdir -p "$scratch/$name" "$here/artifacts"
    echo "== $name (${secs}s)"
    if ! "$bin" -max_total_time="$secs" -timeout=30 -print_final_stats=1 -artifact_prefix="$here/artifacts/$name-" \
        "$scratch/$name" "$corpus" 2>"$scratch/$name.log"; then
        tail -50 "$scratch/$name.log"
        status=1
    else
        grep -E "stat::number_of_executed_units|cov:" "$scratch/$name.log" | tail -2 || true
    fi
done
exit $status
