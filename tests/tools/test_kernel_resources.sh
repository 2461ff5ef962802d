#!/usr/bin/env bash
# tools/check_kernel_resources.sh against planted violations (tests/tools/kernel_resources_planted.cu):
# it must exit 1 and report each one (spills on both architectures, an occupancy claim neither
# reaches, shared memory above sm_80's opt-in maximum only, a claim that matches no kernel) and
# nothing about the kernel within its limits. "SKIPPED" without nvcc.
# Usage: test_kernel_resources.sh OUT_DIR (where ptxas's reports are kept)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$1
fail() { echo "FAIL: $*"; exit 1; }
out=$(bash "$ROOT/tools/check_kernel_resources.sh" --out "$OUT" "$ROOT/tests/tools/kernel_resources_planted.cu" 2>&1)
rc=$?
case "$out" in SKIPPED:*) echo "$out"; exit 0 ;; esac
echo "$out"
[ $rc -eq 1 ] || fail "expected exit 1 on the planted violations, got $rc"
for expected in \
    "FAIL sm_80 spilling_kernel .*bytes of spill stores" \
    "FAIL sm_90 spilling_kernel .*bytes of spill stores" \
    "FAIL sm_80 overclaimed_kernel: 4 blocks of 256 threads per SM (limited by shared memory.*its comment claims at least 8" \
    "FAIL sm_90 overclaimed_kernel: 5 blocks of 256 threads per SM (limited by shared memory.*its comment claims at least 8" \
    "FAIL sm_80 big_shared_kernel: .*200000 bytes of shared memory per block, above the 166912 an A100 allows" \
    "FAIL the occupancy claim of typo_kernel .*matches no kernel" \
    "kernel_resources: 6 problem(s) in 10 kernel instantiations"; do
  grep -q -- "$expected" <<< "$out" || fail "no line matching '$expected'"
done
grep -q "FAIL sm_90 big_shared_kernel" <<< "$out" && fail "200000 bytes fit an H100's opt-in maximum, yet it was reported"
grep -q "FAIL.*fine_kernel" <<< "$out" && fail "fine_kernel is within every limit, yet it was reported"
echo "check_kernel_resources: each planted violation reported"
