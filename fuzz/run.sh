#!/usr/bin/env bash
# Fuzzes the inbound frame path (fuzz/fuzz_frame.cpp) with libFuzzer under
# ASan+UBSan; fails on any crash, sanitizer report, leak or timeout.
#
#   fuzz/run.sh [SECONDS]       fuzz for SECONDS (default 60); `make test` runs 30,
#                               a long run is `fuzz/run.sh 3600`; 0 runs the seeds once
#   fuzz/run.sh --seed-corpus   regenerate fuzz/corpus/frame from fuzz/seed_corpus.cpp
#
# Configures build-fuzz with clang (BUILD_FUZZ to change it) and builds only
# the fuzz target and the libraries it links. The checked-in corpus is not
# modified: the run works on a copy. Inputs that crash are kept in
# build-fuzz/fuzz-artifacts/; reproduce one with
#   build-fuzz/fuzz/fuzz_frame build-fuzz/fuzz-artifacts/crash-...
# Needs clang and libclang-rt-14-dev (the Makefile's `deps` installs both).
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BUILD_FUZZ:-build-fuzz}
jobs=${JOBS:-$(nproc)}
corpus=fuzz/corpus/frame

usage() {
  echo "usage: fuzz/run.sh [SECONDS] | --seed-corpus" >&2
  exit 2
}

mode=fuzz
seconds=60
case "${1:-}" in
  "") ;;
  --seed-corpus) mode=seed ;;
  -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
  *[!0-9]*) usage ;;
  *) seconds=$1 ;;
esac
[ $# -le 1 ] || usage

for tool in clang++ cmake ninja; do
  command -v "$tool" >/dev/null || {
    echo "fuzz/run.sh: $tool not found; run \`make deps\` (installs clang, libclang-rt-14-dev)" >&2
    exit 1
  }
done

if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGEARMESH_FUZZ=ON \
    -DGEARMESH_BUILD_TESTS=OFF -DGEARMESH_BUILD_BENCH=OFF >/dev/null
fi

if [ "$mode" = seed ]; then
  cmake --build "$build" --target fuzz_seed_corpus -j "$jobs"
  rm -rf "$corpus"
  "$build/fuzz/fuzz_seed_corpus" "$corpus"
  exit 0
fi

cmake --build "$build" --target fuzz_frame -j "$jobs"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$build/fuzz-artifacts"
cp "$corpus"/* "$work/corpus/"

# -max_total_time=0 would mean "forever": 0 runs the seeds once instead.
limit=(-max_total_time="$seconds")
[ "$seconds" -gt 0 ] || limit=(-runs=0)

log=$build/fuzz-frame.log
echo "fuzz/run.sh: fuzz_frame for ${seconds}s over $(ls "$corpus" | wc -l) seeds (log: $log)"
# -error_exitcode: any sanitizer report, leak or failed check fails the run;
# -timeout: one input may take at most 5 s (a hang is a bug too).
rc=0
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  "$build/fuzz/fuzz_frame" "$work/corpus" \
  -max_len=65536 -timeout=5 -rss_limit_mb=2048 "${limit[@]}" \
  -artifact_prefix="$build/fuzz-artifacts/" -print_final_stats=1 -error_exitcode=77 \
  >"$log" 2>&1 || rc=$?
if [ "$rc" -ne 0 ]; then
  # The report without libFuzzer's progress lines ("#1234 NEW ...").
  grep -v '^#[0-9]' "$log" >&2
  echo "fuzz/run.sh: FAILED (exit $rc); the input is in $build/fuzz-artifacts/, see above" >&2
  exit 1
fi
grep -E '^(Done|stat::)' "$log" || true
echo "fuzz/run.sh: no crash in ${seconds}s; $(ls "$work/corpus" | wc -l) inputs in the corpus"
