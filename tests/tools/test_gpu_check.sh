#!/usr/bin/env bash
# tools/gpu_check.sh on a machine without a GPU: the dry run lists every device command within
# the budget, and a real run fails early and loudly with "no usable GPU", leaving one archive.
# Usage: test_gpu_check.sh BUILD_DIR (the folder holding lmtrain)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# 1. The dry run: every step, how libcublasLt is found, a budget under 540 s; runs nothing.
out=$(bash "$ROOT/tools/gpu_check.sh" --dry-run "$WORK/dry" 2>&1) || fail "dry run exited $?: $out"
for expected in "lmtrain doctor" "test_cuda_ops [cuda]" "test_cuda [cuda]" "--tool memcheck" "--tool racecheck" \
    "--tool synccheck" "precision.dtype=bf16" "precision.dtype=fp32" "attention_bench" "nvidia/cu13/lib" \
    "libcublasLt"; do
  grep -qF -- "$expected" <<< "$out" || fail "the dry run does not show '$expected'"
done
budget=$(sed -nE 's/.*step budget: ([0-9]+) s in all.*/\1/p' <<< "$out")
[ -n "$budget" ] && [ "$budget" -lt 540 ] || fail "step budget '$budget' is not under 540 s"
grep -q "passed" <<< "$out" && fail "a dry run must not say passed"

# 2. A real run without a GPU: "no usable GPU", exit 1, before any test step, two files out.
if nvidia-smi > /dev/null 2>&1; then
  echo "SKIPPED: this machine has a GPU; tools/gpu_check.sh would run for real"
  exit 0
fi
mkdir -p "$WORK/bin"
ln -s "$(cd "$BUILD" && pwd)/lmtrain" "$WORK/bin/lmtrain"
out=$(LMTRAIN_GPU_CHECK_BIN="$WORK/bin" bash "$ROOT/tools/gpu_check.sh" "$WORK/out" 2>&1)
rc=$?
[ $rc -eq 1 ] || fail "expected exit 1 without a GPU, got $rc: $out"
grep -q "no usable GPU" <<< "$out" || fail "no 'no usable GPU' in: $out"
grep -qE "passed" <<< "$out" && fail "it says passed without a GPU: $out"
grep -q "op and CLI tests" <<< "$out" && fail "it went on to the tests without a GPU: $out"
files=$(cd "$WORK/out" && ls | sort | tr '\n' ' ')
[ "$files" = "gpu_check_logs.tar.gz summary.txt " ] || fail "OUTDIR holds '$files', not the archive and the summary"
tar -tzf "$WORK/out/gpu_check_logs.tar.gz" | grep -q "doctor.log" || fail "the archive lacks doctor.log"
echo "gpu_check: dry run within ${budget} s; without a GPU: exit 1, 'no usable GPU', 2 files"
