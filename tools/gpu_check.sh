#!/usr/bin/env bash
# Everything one lent GPU can tell us about the CUDA backend, in one command of under 9 minutes:
#   1. unpacks gpu_bundle.tar.xz (tools/gpu_bundle.sh makes it here; the device run must name it in
#      its carry) and finds libcublasLt on the GPU machine (its toolkit, or the nvidia-* wheels
#      PyTorch brought: site-packages/nvidia/cu13/lib for CUDA 13);
#   2. stops at once with "no usable GPU" unless lmtrain sees a device;
#   3. runs the [cuda] tests (every op against the CPU reference, the CLI's exact resume in every
#      precision, NCCL), failing on any skip except the ones one GPU or the bundle explain;
#   4. runs the op tests once under compute-sanitizer memcheck, racecheck and synccheck, at small
#      shapes;
#   5. benchmarks GPT-2 124M at T=1024 (bf16 at B=16/32/64 with the tensor-core attention, bf16
#      at B=32 with the fp32 attention kernels instead, fp32/TF32 at B=16: ms/step, tokens/s, MFU
#      against 989 TFLOP/s) and times the attention kernels alone.
# Each row is printed as its step ends (the device tool returns the output's last 12,000
# characters). OUTDIR receives two files, within the 8 a device run returns: summary.txt (the
# table) and gpu_check_logs.tar.gz (every log).
#
# Usage: tools/gpu_check.sh [--dry-run] OUTDIR
#   --dry-run (or LMTRAIN_GPU_CHECK_DRY_RUN=1): print every command with its timeout, and how
#   libcublasLt would be found, without running anything; exits 0.
# Binaries: the bundle at the repository root; LMTRAIN_GPU_CHECK_BIN=DIR uses the lmtrain,
# test_cuda_ops, test_cuda and attention_bench in DIR instead; LMTRAIN_GPU_CHECK_BUILD=1 builds
# them (a machine with the build dependencies and nvcc).
# Exit status: 0 when every step passed, 1 when one failed, 2 on bad usage.
set -uo pipefail

DRY_RUN=${LMTRAIN_GPU_CHECK_DRY_RUN:-0}
if [ "${1:-}" = "--dry-run" ]; then DRY_RUN=1; shift; fi
if [ $# -ne 1 ]; then
  echo "usage: tools/gpu_check.sh [--dry-run] OUTDIR" >&2
  exit 2
fi
OUTDIR=$(mkdir -p "$1" && cd "$1" && pwd) || { echo "gpu_check: cannot create $1" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOG=$(mktemp -d /tmp/lmtrain-gpu-check.XXXXXX)
SUMMARY="$OUTDIR/summary.txt"
T0=$SECONDS
FAILED=0

# Step timeouts in seconds: their sum (printed by --dry-run) must stay under the 540 s a device
# run is given, leaving room for the machine's start and the transfers.
declare -A BUDGET=(
  [unpack]=20 [probe]=15 [ops]=120 [nccl]=20
  [memcheck]=30 [racecheck]=30 [synccheck]=30
  [bench_bf16_16]=30 [bench_bf16_32]=30 [bench_bf16_64]=30 [bench_bf16cores_32]=30 [bench_fp32_16]=30
  [attention]=60
)
TOTAL_BUDGET=0
for step in "${!BUDGET[@]}"; do TOTAL_BUDGET=$((TOTAL_BUDGET + BUDGET[$step])); done
if [ $TOTAL_BUDGET -ge 540 ]; then
  echo "gpu_check: the step timeouts add up to $TOTAL_BUDGET s, over the 540 s a device run can give them" >&2
  exit 2
fi

: > "$SUMMARY"
row() {
  local line
  line=$(printf '%-34s %s' "$1" "$2")
  echo "$line" | tee -a "$SUMMARY"
}
note() { echo "[gpu_check $((SECONDS - T0))s] $*"; }
# Packs every log into OUTDIR, whatever happened; runs at every exit.
finish() {
  row "total time" "$((SECONDS - T0)) s (step budget ${TOTAL_BUDGET} s)"
  cp "$SUMMARY" "$LOG/" 2>/dev/null
  tar -czf "$OUTDIR/gpu_check_logs.tar.gz" -C "$LOG" . 2>/dev/null
  rm -rf "$LOG"
}
trap finish EXIT

# run_step NAME LOGFILE COMMAND...: the command under its budgeted timeout, output to LOGFILE.
# Sets RC (124: timed out). In a dry run it prints the command instead.
run_step() {
  local name=$1 logfile=$2
  shift 2
  if [ "$DRY_RUN" = 1 ]; then
    printf '[dry-run] timeout %3s %s > %s\n' "${BUDGET[$name]}" "$*" "$(basename "$logfile")"
    RC=0
    return
  fi
  timeout "${BUDGET[$name]}" "$@" > "$logfile" 2>&1
  RC=$?
}

[ "$DRY_RUN" = 1 ] && echo "gpu_check dry run: the commands a device run would execute, with their timeouts"
printf '== lmtrain gpu_check (%s) ==\n' "$(date -u +%Y-%m-%dT%H:%MZ)" | tee -a "$SUMMARY"

# --- 1. binaries and libraries ------------------------------------------------------------------
BIN=""
if [ -n "${LMTRAIN_GPU_CHECK_BIN:-}" ]; then
  BIN=$(cd "$LMTRAIN_GPU_CHECK_BIN" && pwd)
  row "binaries" "LMTRAIN_GPU_CHECK_BIN=$BIN"
elif [ -n "${LMTRAIN_GPU_CHECK_BUILD:-}" ]; then
  B="$ROOT/build-gpu"
  note "building for sm_90"
  BUDGET[build]=400
  run_step build "$LOG/build.log" bash -c "cmake -S '$ROOT' -B '$B' -DCMAKE_BUILD_TYPE=Release -DLMTRAIN_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build '$B' -j$(nproc) --target lmtrain test_cuda_ops test_cuda attention_bench"
  if [ $RC -ne 0 ]; then
    row "binaries" "BUILD FAILED rc=$RC (build.log in the archive)"
    exit 1
  fi
  BIN="$B/gpu-bin"
  mkdir -p "$BIN"
  for f in lmtrain tests/test_cuda_ops tests/test_cuda attention_bench; do ln -sf "$B/$f" "$BIN/"; done
  row "binaries" "built for sm_90"
elif [ -f "$ROOT/gpu_bundle.tar.xz" ]; then
  BUNDLE=/tmp/lmtrain-gpu-bundle
  run_step unpack "$LOG/unpack.log" bash -c "rm -rf '$BUNDLE' && mkdir -p '$BUNDLE' && tar -xJf '$ROOT/gpu_bundle.tar.xz' -C '$BUNDLE'"
  if [ $RC -ne 0 ]; then
    row "binaries" "FAILED to unpack gpu_bundle.tar.xz (rc=$RC)"
    exit 1
  fi
  export LD_LIBRARY_PATH="$BUNDLE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  BIN="$BUNDLE/bin"
  row "binaries" "bundle: $(head -1 "$BUNDLE/BUILD_INFO" 2>/dev/null || echo '(dry run: not unpacked)')"
else
  row "binaries" "MISSING: no gpu_bundle.tar.xz at the repository root"
  echo "gpu_check: make the bundle on the development machine with 'bash tools/gpu_bundle.sh' and name" \
       "gpu_bundle.tar.xz in the device run's carry (carry: [\"gpu_bundle.tar.xz\"]); it is git-ignored," \
       "so it travels only when carried. Or set LMTRAIN_GPU_CHECK_BIN=DIR, or LMTRAIN_GPU_CHECK_BUILD=1 where" \
       "the build dependencies are installed." >&2
  [ "$DRY_RUN" = 1 ] || exit 1
  BIN=/tmp/lmtrain-gpu-bundle/bin  # what a run with the bundle would use
fi
# The bundle leaves out libcublasLt (541 MB, over what a device run carries): take the GPU
# machine's, from its toolkit or from the nvidia-* wheels of its PyTorch (CUDA 13 wheels keep
# every library in site-packages/nvidia/cu13/lib, CUDA 12 ones in nvidia/cublas/lib).
CANDIDATES=(/usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib)
for dir in /usr/local/cuda-*/lib64; do [ -d "$dir" ] && CANDIDATES+=("$dir"); done
SITE_DIRS=$(python3 -c 'import site, sys; print("\n".join(site.getsitepackages() + [site.getusersitepackages()] + sys.path))' 2>/dev/null | sort -u)
for site_dir in $SITE_DIRS; do
  for sub in nvidia/cu13/lib nvidia/cublas/lib nvidia/nccl/lib; do
    [ -d "$site_dir/$sub" ] && CANDIDATES+=("$site_dir/$sub")
  done
done
if [ "$DRY_RUN" = 1 ]; then
  echo "[dry-run] libcublasLt.so.13: the first of these folders that holds it joins LD_LIBRARY_PATH:"
  printf '[dry-run]   %s\n' /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib \
    '/usr/local/cuda-*/lib64' '<site-packages>/nvidia/cu13/lib' '<site-packages>/nvidia/cublas/lib' \
    "  (site-packages: python3 -c 'import site, sys; print(site.getsitepackages(), sys.path)')"
  echo "[dry-run] then: ldd $BIN/lmtrain must report no library 'not found'"
fi
CUBLASLT=""
for dir in "${CANDIDATES[@]}"; do
  if ls "$dir"/libcublasLt.so.* > /dev/null 2>&1; then
    CUBLASLT="$dir"
    break
  fi
done
[ -n "$CUBLASLT" ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$CUBLASLT"
if [ "$DRY_RUN" != 1 ]; then
  missing=$(ldd "$BIN/lmtrain" 2>&1 | awk '/not found/ {print $1}' | tr '\n' ' ')
  if [ -n "$missing" ]; then
    row "libraries" "MISSING: ${missing}(searched: ${CANDIDATES[*]})"
    exit 1
  fi
  row "libcublasLt" "$(ls "$CUBLASLT"/libcublasLt.so.* 2>/dev/null | head -1)"
fi
export LMTRAIN_TEST_BINARY="$BIN/lmtrain"  # the test programs' CLI cases run this lmtrain

# --- 2. is there a GPU lmtrain can use? ------------------------------------------------------------
nvidia-smi > "$LOG/nvidia-smi.txt" 2>&1
GPU=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
run_step probe "$LOG/doctor.log" "$BIN/lmtrain" doctor
if [ "$DRY_RUN" != 1 ]; then
  seen=$(grep -E '^gpus' "$LOG/doctor.log" | sed -E 's/^gpus +//')
  if [ $RC -ne 0 ] || ! grep -qE '^gpus .*sm_[0-9]+' "$LOG/doctor.log"; then
    row "gpu" "FAILED: no usable GPU (nvidia-smi: ${GPU:-none}; lmtrain doctor rc=$RC: ${seen:-$(tail -1 "$LOG/doctor.log")})"
    exit 1
  fi
  row "gpu" "${GPU:-?} | lmtrain sees: $seen"
fi

# --- 3. tests ------------------------------------------------------------------------------------------
# Skips that one GPU or a bundle without NCCL explain; any other skip is a failure.
EXPECTED_SKIPS='needs 2 GPUs|2 CUDA devices needed|built without NCCL'
test_row() {  # test_row LABEL LOGFILE
  local summary skips unexpected
  summary=$(grep -E "^(All tests passed|test cases:)" "$2" | tail -1)
  skips=$(grep -c "SKIPPED:" "$2")
  unexpected=$(grep "SKIPPED:" "$2" | grep -vcE "$EXPECTED_SKIPS")
  if [ $RC -eq 124 ]; then
    FAILED=1
    row "$1" "FAILED: timed out after ${BUDGET[$3]} s ($summary)"
  elif [ $RC -ne 0 ]; then
    FAILED=1
    row "$1" "FAILED rc=$RC: $summary"
  elif [ "$unexpected" -gt 0 ]; then
    FAILED=1
    row "$1" "FAILED: $unexpected unexpected skip(s): $(grep "SKIPPED:" "$2" | grep -vE "$EXPECTED_SKIPS" | sort -u | head -2 | tr '\n' ' ')"
  else
    row "$1" "$summary ($skips expected skip(s))"
  fi
}
note "[cuda] op and CLI tests"
run_step ops "$LOG/test_cuda_ops.log" "$BIN/test_cuda_ops" "[cuda]"
[ "$DRY_RUN" = 1 ] || test_row "test_cuda_ops [cuda]" "$LOG/test_cuda_ops.log" ops
run_step nccl "$LOG/test_cuda.log" "$BIN/test_cuda" "[cuda]"
[ "$DRY_RUN" = 1 ] || test_row "test_cuda (NCCL)" "$LOG/test_cuda.log" nccl

# --- 4. compute-sanitizer at small shapes ------------------------------------------------------------
SANITIZER=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer /usr/local/cuda*/compute-sanitizer/compute-sanitizer 2>/dev/null | head -1)
SMALL='[cuda]~[cli]~[gpt2]~[model]'
for tool in memcheck racecheck synccheck; do
  if [ -z "$SANITIZER" ] && [ "$DRY_RUN" != 1 ]; then
    row "compute-sanitizer $tool" "not run: compute-sanitizer not found"
    continue
  fi
  note "compute-sanitizer --tool $tool"
  run_step "$tool" "$LOG/sanitizer_$tool.log" "${SANITIZER:-compute-sanitizer}" --tool "$tool" --error-exitcode 99 \
    "$BIN/test_cuda_ops" "$SMALL"
  [ "$DRY_RUN" = 1 ] && continue
  errors=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$LOG/sanitizer_$tool.log" | tail -1)
  if [ $RC -eq 124 ]; then
    row "compute-sanitizer $tool" "incomplete: timed out after ${BUDGET[$tool]} s (${errors:-no summary yet})"
  elif [ $RC -ne 0 ]; then
    FAILED=1
    row "compute-sanitizer $tool" "FAILED rc=$RC: ${errors:-$(tail -1 "$LOG/sanitizer_$tool.log")}"
  else
    row "compute-sanitizer $tool" "${errors:-clean}"
  fi
done

# --- 5. speed ------------------------------------------------------------------------------------------
# "bf16cores": bf16 with the fp32-arithmetic attention kernels (precision.tensor_core_attention=false),
# the MFU the tensor-core attention is measured against.
for run in "bf16 16" "bf16 32" "bf16 64" "bf16cores 32" "fp32 16"; do
  set -- $run
  variant=$1 mb=$2
  dtype=${variant%cores} tensor_cores=true
  [ "$variant" = bf16cores ] && tensor_cores=false
  name="bench_${variant}_$mb"
  json="$LOG/$name.json"
  label="gpt2-124m $dtype B=$mb T=1024"
  [ "$variant" = bf16 ] && label="gpt2-124m bf16 B=$mb T=1024 (tensor-core attention)"
  [ "$variant" = bf16cores ] && label="gpt2-124m bf16 B=$mb T=1024 (fp32 attention kernels)"
  [ "$dtype" = fp32 ] && label="gpt2-124m fp32/tf32 B=$mb T=1024"
  note "$label"
  run_step "$name" "$LOG/$name.log" "$BIN/lmtrain" bench "$ROOT/recipes/gpt2-124m.yaml" --device cuda --steps 8 \
    --warmup 2 --set precision.dtype=$dtype --set precision.tf32=true --set data.source=synthetic \
    --set precision.tensor_core_attention=$tensor_cores \
    --set data.synthetic.vocab_size=50257 --set data.synthetic.order=1 --set data.synthetic.branching=8 \
    --set data.synthetic.train_tokens=1000000 --set data.synthetic.val_tokens=0 \
    --set run.micro_batch_size=$mb --set run.global_batch_size=$mb --set log.peak_tflops=989 --json "$json"
  [ "$DRY_RUN" = 1 ] && continue
  if [ $RC -eq 0 ] && [ -f "$json" ]; then
    line=$(python3 - "$json" <<'EOF' 2>/dev/null || grep -E "tokens/s" "$LOG/$name.log" | tail -1
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{r['step']['median_ms']:.1f} ms/step, {r['tokens_per_s']/1e3:.0f}k tok/s, MFU {100*r['mfu']:.1f}%")
EOF
)
    row "$label" "$line"
  else
    FAILED=1
    row "$label" "FAILED rc=$RC: $(tail -1 "$LOG/$name.log")"
  fi
done

note "attention kernels alone"
# fp32, then bf16 (its tensor-core kernels and the fp32-math ones, a line each).
run_step attention "$LOG/attention_bench.log" bash -c "for shape in '8 1024 12 64' '8 1024 8 128' '2 4096 12 64' '2 4096 8 128'; do
  for dtype in fp32 bf16; do set -- \$shape
  '$BIN/attention_bench' --B \$1 --T \$2 --NH \$3 --HS \$4 --iters 10 --dtype \$dtype || exit 1; done; done"
if [ "$DRY_RUN" != 1 ]; then
  if [ $RC -eq 0 ]; then
    # "attention B=8 T=1024 NH=12 HS=64: forward 1.2 ms (50.1 TFLOP/s), backward 3.4 ms (40.2 TFLOP/s)";
    # bf16 lines name the path after HS ("HS=64 bf16 tensor cores:").
    while read -r line; do
      row "attention ours $(echo "$line" | sed -E 's/^attention B=[0-9]+ (T=[0-9]+) NH=[0-9]+ (HS=[0-9]+)([^:]*):.*/\1 \2\3/')" \
          "$(echo "$line" | sed -E 's/.*forward ([0-9.]+) ms \(([0-9.]+) TFLOP\/s\), backward ([0-9.]+) ms \(([0-9.]+) TFLOP\/s\)/fwd \2 TFLOP\/s (\1 ms), bwd \4 TFLOP\/s (\3 ms)/')"
    done < <(grep '^attention B=' "$LOG/attention_bench.log")
  else
    FAILED=1
    row "attention bench" "FAILED rc=$RC: $(tail -1 "$LOG/attention_bench.log")"
  fi
fi

if [ "$DRY_RUN" = 1 ]; then
  echo "[dry-run] step budget: ${TOTAL_BUDGET} s in all (a device command may run 600 s; keep it under 540)"
  exit 0
fi
[ $FAILED -eq 0 ] && row "result" "passed" || row "result" "FAILED (see the rows above; logs in gpu_check_logs.tar.gz)"
exit $FAILED
