#!/usr/bin/env bash
# Everything one GPU can tell us about the CUDA backend, in one command, printing a short table
# last:
#   1. builds for sm_90 (or unpacks gpu_bundle.tar.xz, made by tools/gpu_bundle.sh on a machine
#      with the build dependencies, when this one cannot build: no network, no -dev packages);
#   2. runs the [cuda] tests (every op against the CPU reference, a training step, determinism);
#   3. benchmarks GPT-2 124M at T=1024: bf16 at B=16/32/64 and fp32/TF32 at B=16 (ms/step,
#      tokens/s, MFU against 989 TFLOP/s, llm.c's formula: 6N + 6LCT FLOPs per token);
#   4. times the attention kernels alone at T=1024/4096, HS=64/128.
# Usage: tools/gpu_check.sh LOGDIR   (full logs go to LOGDIR; exit 0 only if every step passed)
# Budget: under 8 minutes on one H200 (each step has its own timeout below).
set -uo pipefail
if [ $# -ne 1 ]; then
  echo "usage: tools/gpu_check.sh LOGDIR" >&2
  exit 2
fi
LOG=$(mkdir -p "$1" && cd "$1" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T0=$SECONDS
ROWS=()
FAILED=0
row() { ROWS+=("$(printf '%-34s %s' "$1" "$2")"); }
note() { echo "[gpu_check $((SECONDS - T0))s] $*"; }

# cuBLASLt comes from the machine: its toolkit, or the wheels PyTorch brought.
for dir in /usr/local/cuda/lib64 /usr/local/cuda/lib \
    $(python3 -c 'import nvidia.cublas, os; print(os.path.join(os.path.dirname(nvidia.cublas.__file__), "lib"))' 2>/dev/null); do
  [ -d "$dir" ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$dir"
done
nvidia-smi > "$LOG/nvidia-smi.txt" 2>&1 || true
GPU=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
row "gpu" "${GPU:-nvidia-smi failed}"

# --- 1. binaries --------------------------------------------------------------------------------
BIN=""  # the folder holding lmtrain, test_cuda_ops, test_cuda and attention_bench
if [ -f "$ROOT/gpu_bundle.tar.xz" ] && [ -z "${LMTRAIN_GPU_CHECK_BUILD:-}" ]; then
  BUNDLE=/tmp/lmtrain-gpu-bundle
  rm -rf "$BUNDLE" && mkdir -p "$BUNDLE"
  if tar -xJf "$ROOT/gpu_bundle.tar.xz" -C "$BUNDLE"; then
    export LD_LIBRARY_PATH="$BUNDLE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    BIN="$BUNDLE/bin"
    row "binaries" "bundle: $(head -1 "$BUNDLE/BUILD_INFO" 2>/dev/null)"
  else
    row "binaries" "FAILED to unpack gpu_bundle.tar.xz"
  fi
else
  note "building for sm_90"
  B="$ROOT/build-gpu"
  if timeout 400 cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=Release -DLMTRAIN_CUDA=ON \
       -DCMAKE_CUDA_ARCHITECTURES=90 > "$LOG/build.log" 2>&1 &&
     timeout 400 cmake --build "$B" -j"$(nproc)" --target lmtrain test_cuda_ops test_cuda attention_bench \
       >> "$LOG/build.log" 2>&1; then
    BIN="$B/gpu-bin"
    mkdir -p "$BIN"
    for f in lmtrain tests/test_cuda_ops tests/test_cuda attention_bench; do ln -sf "$B/$f" "$BIN/"; done
    row "binaries" "built for sm_90 in $((SECONDS - T0)) s"
  else
    row "binaries" "BUILD FAILED (see build.log)"
    tail -30 "$LOG/build.log"
  fi
fi
if [ -z "$BIN" ]; then
  printf '%s\n' "${ROWS[@]}"
  exit 1
fi

# --- 2. tests -----------------------------------------------------------------------------------
note "[cuda] tests"
for t in test_cuda_ops test_cuda; do
  [ -x "$BIN/$t" ] || continue
  timeout 240 "$BIN/$t" > "$LOG/$t.log" 2>&1
  rc=$?
  summary=$(grep -E "^(All tests passed|test cases:)" "$LOG/$t.log" | tail -1)
  skipped=$(grep -c "SKIPPED" "$LOG/$t.log")
  if [ $rc -ne 0 ]; then FAILED=1; summary="FAILED rc=$rc: $summary"; fi
  row "$t" "$summary (${skipped} skip notes)"
done

# --- 3. GPT-2 124M --------------------------------------------------------------------------------
for run in "bf16 16" "bf16 32" "bf16 64" "fp32 16"; do
  set -- $run
  dtype=$1 mb=$2
  note "GPT-2 124M $dtype B=$mb"
  name="bench_gpt2_${dtype}_b$mb"
  json="$LOG/$name.json"
  timeout 150 "$BIN/lmtrain" bench "$ROOT/recipes/gpt2-124m.yaml" --device cuda --steps 10 --warmup 2 \
    --set precision.dtype=$dtype --set precision.tf32=true --set data.source=synthetic \
    --set data.synthetic.vocab_size=50257 --set data.synthetic.order=1 --set data.synthetic.branching=8 \
    --set data.synthetic.train_tokens=2000000 \
    --set data.synthetic.val_tokens=0 --set run.micro_batch_size=$mb --set run.global_batch_size=$mb \
    --set log.peak_tflops=989 --json "$json" > "$LOG/$name.log" 2>&1
  rc=$?
  label="gpt2-124m $dtype B=$mb T=1024"
  [ "$dtype" = fp32 ] && label="gpt2-124m fp32/tf32 B=$mb T=1024"
  if [ $rc -eq 0 ] && [ -f "$json" ]; then
    line=$(python3 - "$json" <<'EOF' 2>/dev/null || grep -E "tokens/s" "$LOG/$name.log"
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{r['step']['median_ms']:.1f} ms/step, {r['tokens_per_s']/1e3:.0f}k tok/s, MFU {100*r['mfu']:.1f}%")
EOF
)
    row "$label" "$line"
  else
    FAILED=1
    row "$label" "FAILED rc=$rc: $(tail -1 "$LOG/$name.log")"
  fi
done

# --- 4. attention alone -----------------------------------------------------------------------------
for shape in "8 1024 12 64" "8 1024 8 128" "2 4096 12 64" "2 4096 8 128"; do
  set -- $shape
  note "attention B=$1 T=$2 NH=$3 HS=$4"
  out=$(timeout 60 "$BIN/attention_bench" --B "$1" --T "$2" --NH "$3" --HS "$4" --iters 10 2>&1)
  rc=$?
  echo "$out" >> "$LOG/attention_bench.log"
  if [ $rc -eq 0 ]; then
    row "attention ours T=$2 HS=$4" "$(echo "$out" | sed -E 's/.*forward ([0-9.]+) ms \(([0-9.]+) TFLOP\/s\), backward ([0-9.]+) ms \(([0-9.]+) TFLOP\/s\)/fwd \2 TFLOP\/s (\1 ms), bwd \4 TFLOP\/s (\3 ms)/')"
  else
    FAILED=1
    row "attention ours T=$2 HS=$4" "FAILED rc=$rc: $(echo "$out" | tail -1)"
  fi
done
row "attention cuDNN" "not built (model.attention: cudnn is not implemented yet)"

row "total time" "$((SECONDS - T0)) s"
printf '\n== lmtrain gpu_check (%s) ==\n' "$(date -u +%Y-%m-%dT%H:%MZ)" | tee "$LOG/summary.txt"
printf '%s\n' "${ROWS[@]}" | tee -a "$LOG/summary.txt"
exit $FAILED
