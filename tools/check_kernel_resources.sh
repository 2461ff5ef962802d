#!/usr/bin/env bash
# The kernels' resources as ptxas allocates them, for sm_80 (A100) and sm_90 (H100): registers,
# spills, static shared memory, and the occupancy that follows, held against a budget and against
# what each kernel's comment claims (issue 19). Compiles every .cu of cuda/ that holds a kernel
# (device code only, -cubin) with -Xptxas -v, reads ptxas's report and fails on:
#   - a spill: any spill store or load is over budget (0 bytes), unless the kernel's comment
#     allows some with a line   // spills: at most N bytes
#   - a claim the kernel does not reach. A claim is a comment line above the kernel:
#       // occupancy: at least N blocks of T threads per SM
#       // occupancy: at least N blocks of T threads per SM with S bytes of dynamic shared memory
#       // occupancy <PATTERN>: ...      only for the instantiations whose template arguments
#                                       match the glob PATTERN, e.g. <*, 128> (head size 128)
#     Blocks per SM are the fewest of: 2048 threads, 32 blocks, 65536 registers (256 per warp
#     allocation units, in 4 sub-partitions) and the SM's shared memory (164 KiB on sm_80, 228 KiB
#     on sm_90; per block static + dynamic + 1 KiB reserved, in 128-byte units), as in CUDA's
#     occupancy calculator. A claim also fails when its block needs more registers than a block
#     may have, or static + dynamic shared memory above the opt-in maximum (163 or 227 KiB).
#     A claim that matches no kernel fails too (a typo must not make it vacuous).
# The figures are those of cuda/emu/launch_limits.h, which the emulator's launches meet.
#
# Usage: check_kernel_resources.sh [--out DIR] [--nvcc PATH] [--verbose] [FILE.cu ...]
#   FILE.cu  the sources to check (default: the kernels of cuda/)
#   --out    where ptxas's reports are kept, keyed by a hash of the inputs (default
#            build/kernel_resources): an unchanged source is not compiled again
# Without nvcc it prints "SKIPPED: ..." and exits 0. Concurrent runs on one --out take turns
# (flock); each compiles its files in parallel, one job per core.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT="$ROOT/build/kernel_resources"
NVCC="${NVCC:-}"
VERBOSE=0
FILES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --nvcc) NVCC=$2; shift 2 ;;
    --verbose) VERBOSE=1; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    -*) echo "check_kernel_resources: unknown option $1" >&2; exit 2 ;;
    *) FILES+=("$1"); shift ;;
  esac
done
ARCHS=(80 90)

if [ -z "$NVCC" ]; then
  NVCC=$(command -v nvcc || true)
  for candidate in "${CUDA_HOME:-}/bin/nvcc" /usr/local/cuda/bin/nvcc; do
    [ -z "$NVCC" ] && [ -x "$candidate" ] && NVCC=$candidate
  done
fi
if [ -z "$NVCC" ] || [ ! -x "$NVCC" ]; then
  echo "SKIPPED: no nvcc (on PATH, in \$CUDA_HOME/bin or /usr/local/cuda/bin); the kernels' resources need ptxas"
  exit 0
fi
CXXFILT=$(command -v c++filt || true)
if [ ${#FILES[@]} -eq 0 ]; then
  for f in "$ROOT"/cuda/*.cu; do grep -q "__global__" "$f" && FILES+=("$f"); done
fi

mkdir -p "$OUT"
exec 9> "$OUT/.lock"
flock 9

# One report per (file, arch), named by a hash of everything that goes into it.
nvcc_version=$("$NVCC" --version | tail -1)
headers_hash=$(cat "$ROOT"/cuda/*.cuh "$ROOT"/cuda/*.h "$ROOT"/core/dtype.h 2>/dev/null | sha256sum | cut -c1-16)
jobs=()
reports=()
for file in "${FILES[@]}"; do
  [ -f "$file" ] || { echo "check_kernel_resources: no file $file" >&2; exit 2; }
  stem=$(basename "$file" .cu)
  for arch in "${ARCHS[@]}"; do
    key=$( { echo "$nvcc_version $arch $headers_hash v1"; cat "$file"; } | sha256sum | cut -c1-16)
    report="$OUT/$stem.sm_$arch.$key.log"
    reports+=("$arch $file $report")
    [ -f "$report" ] || jobs+=("$arch $file $report")
  done
done
compile_one() {  # arch file report
  local arch=$1 file=$2 report=$3
  if "$NVCC" -std=c++17 -I"$ROOT" -arch="sm_$arch" -cubin -Xptxas -v -o "$report.cubin" "$file" > "$report.tmp" 2>&1; then
    mv "$report.tmp" "$report"
  else
    echo "check_kernel_resources: nvcc failed on $file for sm_$arch:" >&2
    cat "$report.tmp" >&2
    return 1
  fi
  rm -f "$report.cubin"
}
export -f compile_one
export NVCC ROOT
started=$(date +%s)
if [ ${#jobs[@]} -gt 0 ]; then
  printf '%s\n' "${jobs[@]}" | xargs -P "$(nproc)" -L 1 bash -c 'compile_one "$0" "$1" "$2"'
fi
compile_seconds=$(( $(date +%s) - started ))

# Records: arch, source file, mangled name, registers, spill stores, spill loads, static shared bytes.
records=$(for entry in "${reports[@]}"; do
  read -r arch file report <<< "$entry"
  awk -v arch="$arch" -v file="$file" '
    /Compiling entry function/ { if (name != "") print arch "\t" file "\t" name "\t" regs "\t" st "\t" ld "\t" smem
                                 match($0, /function .[^ ]*. for/); name = substr($0, RSTART + 10, RLENGTH - 15)
                                 regs = 0; st = 0; ld = 0; smem = 0 }
    /bytes spill stores/ { for (i = 1; i <= NF; ++i) { if ($(i+1) == "bytes" && $(i+2) == "spill" && $(i+3) == "stores,") st = $i
                                                      if ($(i+1) == "bytes" && $(i+2) == "spill" && $(i+3) == "loads") ld = $i } }
    /Used [0-9]+ registers/ { for (i = 1; i <= NF; ++i) { if ($i == "Used") regs = $(i+1)
                                                         if ($(i+1) == "bytes" && $(i+2) ~ /^smem/) smem = $i } }
    END { if (name != "") print arch "\t" file "\t" name "\t" regs "\t" st "\t" ld "\t" smem }' "$report"
done)
if [ -z "$records" ]; then
  echo "check_kernel_resources: ptxas reported no kernel in ${FILES[*]}" >&2
  exit 1
fi
mangled=$(cut -f3 <<< "$records")
if [ -n "$CXXFILT" ]; then demangled=$("$CXXFILT" <<< "$mangled"); else demangled=$mangled; fi
records=$(paste <(cut -f1-2 <<< "$records") <(sed 's/(anonymous namespace):://g' <<< "$demangled") <(cut -f4- <<< "$records"))

# Claims: file, kernel, kind (occupancy|spills), pattern, blocks or bytes, threads, dynamic shared.
claims=$(for file in "${FILES[@]}"; do
  awk -v file="$file" '
    function flush_to(kernel,   i) { for (i = 1; i <= n; ++i) print file "\t" kernel "\t" pending[i]; n = 0 }
    /^[ \t]*\/\// {
      line = $0
      if (line ~ /^[ \t]*\/\/[ \t]*occupancy( <[^>]*>)?: at least [0-9]+ blocks? of [0-9]+ threads per SM/) {
        pattern = "*"
        if (match(line, /occupancy <[^>]*>/)) pattern = substr(line, RSTART + 10, RLENGTH - 10)
        match(line, /at least [0-9]+/); blocks = substr(line, RSTART + 9, RLENGTH - 9)
        match(line, /of [0-9]+ threads/); threads = substr(line, RSTART + 3, RLENGTH - 11)
        dynamic = 0
        if (match(line, /with [0-9]+ bytes of dynamic shared memory/)) { dynamic = substr(line, RSTART + 5); sub(/ .*/, "", dynamic) }
        pending[++n] = "occupancy\t" pattern "\t" blocks "\t" threads "\t" dynamic
      } else if (line ~ /^[ \t]*\/\/[ \t]*occupancy/) {
        print "check_kernel_resources: " file ":" FNR ": cannot read the occupancy claim: " line > "/dev/stderr"; bad = 1
      }
      if (line ~ /^[ \t]*\/\/[ \t]*spills: at most [0-9]+ bytes/ && match(line, /spills: at most [0-9]+ bytes/)) {
        bytes = substr(line, RSTART + 16); sub(/ .*/, "", bytes)
        pending[++n] = "spills\t*\t" bytes "\t0\t0"
      }
      next
    }
    # The kernel name: the first identifier followed by "(" after __global__, skipping
    # __launch_bounds__(...); it may be on a following line.
    /__global__/ || naming {
      text = $0; if (!naming) sub(/.*__global__/, "", text); gsub(/__launch_bounds__\([^)]*\)/, "", text)
      if (match(text, /[A-Za-z_][A-Za-z0-9_]*[ \t]*\(/)) {
        kernel = substr(text, RSTART, RLENGTH); sub(/[ \t]*\($/, "", kernel); flush_to(kernel); naming = 0
      } else naming = 1
      next
    }
    /^[ \t]*template[ \t]*</ || /^[ \t]*$/ { next }
    { n = 0 }
    END { exit bad }' "$file"
done)

awk -F'\t' -v verbose="$VERBOSE" -v claims="$claims" -v seconds="$compile_seconds" -v root="$ROOT/" '
  function ceil_to(x, unit) { return int((x + unit - 1) / unit) * unit }
  # `*` matches any text, everything else itself.
  function glob_match(text, glob,   n, piece, i, at, position) {
    n = split(glob, piece, "*")
    if (n == 1) return text == glob
    if (substr(text, 1, length(piece[1])) != piece[1]) return 0
    position = length(piece[1]) + 1
    for (i = 2; i < n; ++i) {
      at = index(substr(text, position), piece[i]); if (at == 0) return 0
      position += at - 1 + length(piece[i])
    }
    return length(text) - position + 1 >= length(piece[n]) && substr(text, length(text) - length(piece[n]) + 1) == piece[n]
  }
  BEGIN {
    shared_sm[80] = 167936; shared_optin[80] = 166912; gpu[80] = "A100"
    shared_sm[90] = 233472; shared_optin[90] = 232448; gpu[90] = "H100"
    num_claims = split(claims, claim_lines, "\n")
    for (i = 1; i <= num_claims; ++i) if (claim_lines[i] != "") { split(claim_lines[i], c, "\t"); ++k
      claim_file[k] = c[1]; claim_kernel[k] = c[2]; claim_kind[k] = c[3]; claim_pattern[k] = c[4]
      claim_value[k] = c[5]; claim_threads[k] = c[6]; claim_dynamic[k] = c[7]; claim_hits[k] = 0 }
    num_claims = k; failures = 0; kernels = 0; checked = 0
  }
  {
    arch = $1; file = $2; signature = $3; regs = $4; spill_st = $5; spill_ld = $6; smem = $7
    name = signature; sub(/\(.*/, "", name); sub(/^[^ ]* /, "", name)  # the return type
    args = ""; if (index(name, "<")) { args = substr(name, index(name, "<")); name = substr(name, 1, index(name, "<") - 1) }
    sub(/.*::/, "", name)
    shown = name args; where = file; if (index(where, root) == 1) where = substr(where, length(root) + 1)
    ++kernels; allowance = 0
    for (k = 1; k <= num_claims; ++k) {
      if (claim_file[k] != file || claim_kernel[k] != name) continue
      if (claim_kind[k] == "spills") { allowance = claim_value[k]; ++claim_hits[k] }
    }
    line = sprintf("sm_%d %-60s %3d registers, %5d bytes static shared, spills %d/%d bytes", arch, shown, regs, smem, spill_st, spill_ld)
    if (spill_st + 0 > allowance || spill_ld + 0 > allowance) {
      printf "FAIL %s: %d bytes of spill stores and %d of spill loads, over the budget of %d (%s)\n", line, spill_st, spill_ld, allowance, where
      ++failures
    } else if (verbose) print "ok   " line
    for (k = 1; k <= num_claims; ++k) {
      if (claim_file[k] != file || claim_kernel[k] != name || claim_kind[k] != "occupancy") continue
      if (!glob_match(args, claim_pattern[k])) continue
      ++claim_hits[k]; ++checked
      threads = claim_threads[k]; dynamic = claim_dynamic[k]; warps = int((threads + 31) / 32)
      by_threads = int(2048 / (warps * 32)); blocks = 32 < by_threads ? 32 : by_threads; limit = "threads"
      if (by_threads >= 32) limit = "blocks"
      per_warp = ceil_to(regs * 32, 256)
      if (regs > 0) { by_regs = int(int(16384 / per_warp) * 4 / warps); if (by_regs < blocks) { blocks = by_regs; limit = "registers" } }
      per_block = ceil_to(smem + dynamic + 1024, 128)
      by_shared = int(shared_sm[arch] / per_block); if (by_shared < blocks) { blocks = by_shared; limit = "shared memory" }
      what = sprintf("sm_%d %s: %d blocks of %d threads per SM (limited by %s; %d registers, %d + %d bytes shared)", arch, shown, blocks, threads, limit, regs, smem, dynamic)
      problem = ""
      if (threads > 1024) problem = "more than 1024 threads per block"
      else if (per_warp * warps > 65536) problem = sprintf("%d registers per block, above 65536", per_warp * warps)
      else if (smem + dynamic > shared_optin[arch]) problem = sprintf("%d bytes of shared memory per block, above the %d an %s allows", smem + dynamic, shared_optin[arch], gpu[arch])
      else if (blocks < claim_value[k]) problem = sprintf("its comment claims at least %d", claim_value[k])
      if (problem != "") { printf "FAIL %s: %s (%s)\n", what, problem, where; ++failures }
      else if (verbose) print "ok   " what ", claimed at least " claim_value[k]
    }
  }
  END {
    for (k = 1; k <= num_claims; ++k) if (claim_hits[k] == 0) {
      printf "FAIL the %s claim of %s in %s (pattern %s) matches no kernel ptxas compiled\n", claim_kind[k], claim_kernel[k], claim_file[k], claim_pattern[k]
      ++failures
    }
    if (failures > 0) { printf "kernel_resources: %d problem(s) in %d kernel instantiations on sm_80 and sm_90\n", failures, kernels; exit 1 }
    printf "kernel_resources: %d kernel instantiations on sm_80 and sm_90 within budget (no spills; %d occupancy claims hold; ptxas %d s)\n", kernels, checked, seconds
  }' <<< "$records"
