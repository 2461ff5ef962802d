#!/usr/bin/env bash
# Builds the GPU binaries on this machine (sm_90, CUDA runtime linked statically, no NCCL) and
# packs them, with the shared libraries they need that a bare CUDA image lacks (yaml-cpp, fmt,
# OpenBLAS, Gloo, ...), into gpu_bundle.tar.xz at the repository root (git-ignored). On a GPU
# machine that cannot build (no network, no -dev packages), tools/gpu_check.sh uses the bundle.
# Needs: the build dependencies (tools/install-deps.sh) and nvcc. Takes a few minutes on 2 cores.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B="$ROOT/build-gpu-bundle"
mkdir -p "$B"
cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=Release -DLMTRAIN_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DLMTRAIN_NCCL=OFF > "$B/configure.log" 2>&1 || { cat "$B/configure.log"; exit 1; }
cmake --build "$B" -j"${JOBS:-2}" --target lmtrain test_cuda_ops test_cuda attention_bench
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/lib"
BINS=("$B/lmtrain" "$B/tests/test_cuda_ops" "$B/tests/test_cuda" "$B/attention_bench")
cp "${BINS[@]}" "$STAGE/bin/"
# Every resolved library except glibc's own and CUDA's (the GPU machine has its driver and toolkit).
for bin in "${BINS[@]}"; do
  ldd "$bin" | awk '/=> \// {print $1, $3}'
done | sort -u | while read -r name path; do
  case "$name" in
    libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libcuda.so*|libcudart*|libcublas*|libnccl*) ;;
    *) cp -L "$path" "$STAGE/lib/$name" ;;
  esac
done
{
  echo "lmtrain $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown), sm_90, no NCCL, built $(date -u +%Y-%m-%d) on $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "needs from the GPU machine: the driver and $(ldd "$B/lmtrain" | awk '/libcublasLt/ {print $1}')"
  ls "$STAGE/lib"
} > "$STAGE/BUILD_INFO"
tar -cJf "$ROOT/gpu_bundle.tar.xz.tmp" -C "$STAGE" . && mv "$ROOT/gpu_bundle.tar.xz.tmp" "$ROOT/gpu_bundle.tar.xz"
bytes=$(stat -c %s "$ROOT/gpu_bundle.tar.xz")
echo "wrote $ROOT/gpu_bundle.tar.xz ($((bytes >> 20)) MiB); libraries: $(ls "$STAGE/lib" | tr '\n' ' ')"
if [ "$bytes" -ge $((60 << 20)) ]; then
  echo "gpu_bundle: at $((bytes >> 20)) MiB it is too large to carry with the working tree (64 MiB in all)" >&2
  exit 1
fi
echo "carry it: the device run's carry must name gpu_bundle.tar.xz (it is git-ignored); then run"
echo "  bash tools/gpu_check.sh \$OUT"
