#!/usr/bin/env bash
# Builds the GPU binaries on this machine (sm_90, CUDA runtime linked statically, no NCCL) and
# packs them, with the shared libraries they need that a bare CUDA image lacks (yaml-cpp, fmt,
# OpenBLAS, Gloo, ...), into gpu_bundle.tar.xz at the repository root (git-ignored). On a GPU
# machine that cannot build (no network, no -dev packages), tools/gpu_check.sh uses the bundle.
# Needs: the build dependencies (tools/install-deps.sh) and nvcc. Takes a few minutes on 2 cores.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B="$ROOT/build-gpu-bundle"
cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=Release -DLMTRAIN_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DLMTRAIN_NCCL=OFF > "$B.configure.log" 2>&1 || { cat "$B.configure.log"; exit 1; }
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
  echo "lmtrain $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown), sm_90, built $(date -u +%Y-%m-%d) on $(. /etc/os-release && echo "$PRETTY_NAME")"
  ls "$STAGE/lib"
} > "$STAGE/BUILD_INFO"
tar -cJf "$ROOT/gpu_bundle.tar.xz" -C "$STAGE" .
echo "wrote $ROOT/gpu_bundle.tar.xz ($(du -h "$ROOT/gpu_bundle.tar.xz" | cut -f1)); libraries: $(ls "$STAGE/lib" | tr '\n' ' ')"
