#!/usr/bin/env bash
# Runs the libFuzzer targets under ASan+UBSan; fails on any crash, sanitizer
# report, leak or timeout.
#   fuzz_frame     bytes -> wire::decode -> re-encode (fuzz/fuzz_frame.cpp)
#   fuzz_dispatch  a whole node behind an in-memory transport: frame -> verify
#                  -> decode -> gateway -> role actors -> LMDB (fuzz/fuzz_dispatch.cpp)
#
#   fuzz/run.sh [SECONDS] [TARGET]  fuzz for SECONDS (default 60), split evenly
#                               between the targets unless TARGET names one;
#                               `make test` runs 30 (15 s each), a long run is
#                               `fuzz/run.sh 3600 fuzz_dispatch`; 0 runs the seeds once
#   fuzz/run.sh --seed-corpus   regenerate fuzz/corpus/{frame,dispatch} from fuzz/seed_corpus.cpp
#
# Configures build-fuzz with clang (BUILD_FUZZ to change it) and builds only
# the fuzz targets and the libraries they link. The checked-in corpora are not
# modified: each run works on a copy. Inputs that crash are kept in
# build-fuzz/fuzz-artifacts/; reproduce one with
#   build-fuzz/fuzz/fuzz_frame build-fuzz/fuzz-artifacts/crash-...
# (docs/security.md: fuzz_dispatch crashes may need the inputs before them).
# Needs clang and libclang-rt-14-dev (the Makefile's `deps` installs both).
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BUILD_FUZZ:-build-fuzz}
jobs=${JOBS:-$(nproc)}
all_targets=(fuzz_frame fuzz_dispatch)

usage() {
  echo "usage: fuzz/run.sh [SECONDS] [fuzz_frame|fuzz_dispatch] | --seed-corpus" >&2
  exit 2
}

mode=fuzz
seconds=60
targets=("${all_targets[@]}")
case "${1:-}" in
  "") ;;
  --seed-corpus) mode=seed ;;
  -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
  *[!0-9]*) usage ;;
  *) seconds=$1 ;;
esac
if [ $# -ge 2 ]; then
  [ "$mode" = fuzz ] && [ $# -eq 2 ] || usage
  case "$2" in
    fuzz_frame | fuzz_dispatch) targets=("$2") ;;
    *) usage ;;
  esac
fi
[ $# -le 2 ] || usage

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
  # Generated seeds are rewritten; reproducers of fixed bugs (repro-*) stay.
  find fuzz/corpus/frame fuzz/corpus/dispatch -type f ! -name 'repro-*' -delete 2>/dev/null || true
  "$build/fuzz/fuzz_seed_corpus" fuzz/corpus/frame fuzz/corpus/dispatch
  exit 0
fi

cmake --build "$build" --target "${targets[@]}" -j "$jobs"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$build/fuzz-artifacts"

# Per target: the corpus, the longest input (fuzz_dispatch: identity byte +
# a frame of frame_bytes_max) and the most one input may take (a hang is a
# bug too; fuzz_dispatch's own bound on settling one frame is 3 s).
run_target() {
  local target=$1 secs=$2 corpus max_len timeout
  case "$target" in
    fuzz_frame) corpus=fuzz/corpus/frame max_len=65536 timeout=5 ;;
    fuzz_dispatch) corpus=fuzz/corpus/dispatch max_len=65537 timeout=10 ;;
  esac
  # (set -e does not apply here: the caller tests the result.)
  mkdir -p "$work/$target/corpus" "$work/$target/tmp" || return 1
  cp "$corpus"/* "$work/$target/corpus/" || {
    echo "fuzz/run.sh: no seeds in $corpus; run fuzz/run.sh --seed-corpus" >&2
    return 1
  }

  # -max_total_time=0 would mean "forever": 0 runs the seeds once instead.
  local limit=(-max_total_time="$secs")
  [ "$secs" -gt 0 ] || limit=(-runs=0)

  local log=$build/$target.log
  echo "fuzz/run.sh: $target for ${secs}s over $(ls "$corpus" | wc -l) seeds (log: $log)"
  # -error_exitcode: any sanitizer report, leak or failed check fails the run.
  # fuzz_dispatch keeps its nodes' stores under TMPDIR (removed with $work).
  local rc=0
  TMPDIR="$work/$target/tmp" \
  GEARMESH_FUZZ_SESSION_DIR=${GEARMESH_FUZZ_SESSION_DIR:-$build/fuzz-artifacts/$target-session} \
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    "$build/fuzz/$target" "$work/$target/corpus" \
    -max_len="$max_len" -timeout="$timeout" -rss_limit_mb=2048 "${limit[@]}" \
    -artifact_prefix="$build/fuzz-artifacts/" -print_final_stats=1 -error_exitcode=77 \
    >"$log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    # The report without libFuzzer's progress lines ("#1234 NEW ...").
    grep -v '^#[0-9]' "$log" >&2
    echo "fuzz/run.sh: $target FAILED (exit $rc); the input is in $build/fuzz-artifacts/, see above" >&2
    return 1
  fi
  grep -E '^(Done|stat::)' "$log" || true
  echo "fuzz/run.sh: $target: no crash in ${secs}s; $(ls "$work/$target/corpus" | wc -l) inputs in the corpus"
}

# The time is split evenly; the first targets get the remainder's seconds.
n=${#targets[@]}
failed=0
for i in "${!targets[@]}"; do
  share=$((seconds / n + (i < seconds % n ? 1 : 0)))
  run_target "${targets[$i]}" "$share" || failed=1
done
exit "$failed"
