#!/usr/bin/env bash
# Builds the libFuzzer harnesses of fuzz/ with clang (LMTRAIN_FUZZ=ON, only the harness targets)
# and runs each for a bounded time on a copy of its seed corpus (fuzz/corpus/NAME). Exits 1 when
# a harness finds a crash, leak, timeout or sanitizer report, after printing the reproducer (the
# file and its bytes in base64). Without clang it prints "SKIPPED: ..." and exits 0.
# See docs/reliability.md.
#   bash tools/fuzz.sh [--seconds-per-harness N] [--build-dir DIR] [--only NAME,NAME] [--keep-corpus DIR]
#     --seconds-per-harness  fuzzing time of each harness (default 15; 13 harnesses)
#     --build-dir            the clang build folder (default build-fuzz in the source tree)
#     --only                 run these harnesses only (names without fuzz_)
#     --keep-corpus          copy each grown corpus to DIR/NAME (for a long run worth keeping)
# Everything a build step needs is taken under flock $LMTRAIN_BUILD_LOCK when that is set.
set -uo pipefail
source_dir=$(cd "$(dirname "$0")/.." && pwd)
seconds=15
build_dir="$source_dir/build-fuzz"
only=""
keep_corpus=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds-per-harness) seconds=$2; shift 2 ;;
    --build-dir) build_dir=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --keep-corpus) keep_corpus=$2; shift 2 ;;
    *) echo "fuzz.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
case "$seconds" in ''|*[!0-9]*) echo "fuzz.sh: --seconds-per-harness must be a whole number" >&2; exit 2 ;; esac

if ! command -v clang++ >/dev/null || ! command -v clang >/dev/null; then
  echo "SKIPPED: clang++ is not installed (bash tools/install-deps.sh --tests installs it)"
  exit 0
fi
locked() {
  if [ -n "${LMTRAIN_BUILD_LOCK:-}" ]; then flock "$LMTRAIN_BUILD_LOCK" "$@"; else "$@"; fi
}
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > "$probe/p.cpp"
if ! locked clang++ -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" 2>"$probe/err"; then
  echo "SKIPPED: clang++ cannot link libFuzzer with ASan/UBSan (install libclang-rt-dev): $(head -c 300 "$probe/err")"
  exit 0
fi

start=$(date +%s)
echo "fuzz.sh: building the harnesses in $build_dir"
mkdir -p "$build_dir"
# -O1 and line tables only: the build is most of this script's time, and reports still name lines.
if ! locked cmake -S "$source_dir" -B "$build_dir" -DLMTRAIN_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_C_COMPILER=clang -DLMTRAIN_CUDA=OFF -DLMTRAIN_BUILD_TESTS=OFF -DLMTRAIN_SANITIZE_EMULATOR=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only" >"$build_dir/fuzz-configure.log" 2>&1; then
  cat "$build_dir/fuzz-configure.log"
  echo "fuzz.sh: configure failed"
  exit 1
fi
targets=(fuzz_all)
if [ -n "$only" ]; then
  targets=()
  for name in ${only//,/ }; do targets+=("fuzz_$name"); done
fi
if ! locked cmake --build "$build_dir" --parallel "$(nproc)" --target "${targets[@]}"; then
  echo "fuzz.sh: build failed"
  exit 1
fi
echo "fuzz.sh: build took $(( $(date +%s) - start )) s"

work=$(mktemp -d "${TMPDIR:-/tmp}/lmtrain-fuzz.XXXXXX")
trap 'rm -rf "$probe" "$work"' EXIT
failed=()
for harness in "$build_dir"/fuzz/fuzz_*; do
  name=$(basename "$harness"); name=${name#fuzz_}
  if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]]; then continue; fi
  corpus="$work/corpus/$name"
  mkdir -p "$corpus" "$work/artifacts/$name" "$work/tmp"
  if [ -d "$source_dir/fuzz/corpus/$name" ]; then cp -r "$source_dir/fuzz/corpus/$name/." "$corpus/"; fi
  log="$work/$name.log"
  # TMPDIR: the harness's scratch files land in $work and go with it.
  TMPDIR="$work/tmp" "$harness" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -malloc_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/artifacts/$name/" \
    "$corpus" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  echo "fuzz.sh: $name: exit $rc, ${execs:-?} executions in $seconds s, corpus $(ls "$corpus" | wc -l) files ($(du -sk "$corpus" | cut -f1) KiB)"
  if [ -n "$keep_corpus" ]; then mkdir -p "$keep_corpus/$name" && cp -r "$corpus/." "$keep_corpus/$name/"; fi
  artifacts=$(ls "$work/artifacts/$name")
  if [ "$rc" -ne 0 ] || [ -n "$artifacts" ]; then
    failed+=("$name")
    echo "---- $name: libFuzzer's report (last 60 lines) ----"
    tail -n 60 "$log"
    for artifact in $artifacts; do
      file="$work/artifacts/$name/$artifact"
      echo "---- $name: reproducer $artifact ($(stat -c %s "$file") bytes, base64) ----"
      base64 -w 100 "$file"
      echo "---- reproduce: base64 -d > crash <<< '...' && $harness crash ----"
    done
  fi
done
echo "fuzz.sh: total $(( $(date +%s) - start )) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz.sh: every harness ran without a finding"
