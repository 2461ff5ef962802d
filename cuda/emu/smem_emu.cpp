// Shared memory in the emulator and its checker (described in cuda_emu.h): the LMT_SHARED
// arrays and the dynamic shared memory are regions; every access through an SmemRef lands in
// smem_access, which keeps a shadow per 2-byte granule of the region:
//   the last write: its barrier interval, its thread and that thread's warp clock;
//   the reads of the current interval: their warp (or "several"), lane mask and latest clock.
// Barrier intervals are numbered for the whole process (a block's start and each __syncthreads
// open a new one), so a shadow never needs clearing: an older interval is ordered by a barrier.
// Within an interval, lanes of one warp are ordered only by a __syncwarp both took part in:
// each thread keeps a vector clock over the 32 lanes of its warp, joined at each __syncwarp.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cuda/emu/cuda_emu.h"
#include "cuda/emu/emu_hooks.h"
#include "cuda/emu/emu_internal.h"

namespace lmt::emu {

bool smem_checks = true;

namespace {

constexpr size_t kGranule = 2;
constexpr uint16_t kSeveralWarps = 0xFFFF;
constexpr size_t kMaxFindings = 1024;

struct Granule {
  uint32_t write_interval = 0, write_clock = 0;
  uint32_t read_interval = 0, read_clock = 0;
  uint32_t read_lanes = 0;  // readers' lanes when they are all in read_warp
  uint16_t writer = 0;
  uint16_t read_warp = 0;
  uint16_t reader = 0, other_reader = 0;  // the last reader, and the last one in another warp than it
};

}  // namespace

struct SmemRegion {
  char* base = nullptr;
  size_t bytes = 0;
  std::string name;
  std::vector<Granule> shadow;
};

namespace {

struct Checker {
  std::vector<std::unique_ptr<SmemRegion>> arrays;  // LMT_SHARED arrays, registered once each
  SmemRegion dynamic;
  uint32_t interval = 0, block_first_interval = 0;
  unsigned char fill_byte = 0xFF;  // the current block's (smem_block_start)
  size_t threads = 0;
  std::vector<uint32_t> clocks;  // [thread][lane of its warp]
  bool collect = false;
  std::vector<std::string> findings;
  size_t dropped = 0;
};

Checker& checker() {
  static Checker c;
  return c;
}

void reset_clocks(Checker& c) {
  std::fill(c.clocks.begin(), c.clocks.end(), 0u);
  for (size_t t = 0; t < c.threads; ++t) c.clocks[t * 32 + t % 32] = 1;
}

std::string thread_name(size_t t) {
  const size_t x = t % block_dim.x, y = t / block_dim.x % block_dim.y, z = t / (size_t{block_dim.x} * block_dim.y);
  char out[96];
  std::snprintf(out, sizeof out, "thread %zu,%zu,%zu (warp %zu lane %zu)", x, y, z, t / 32, t % 32);
  return out;
}

void report(Checker& c, const std::string& what) {
  char block[64];
  std::snprintf(block, sizeof block, "block %u,%u,%u", block_idx.x, block_idx.y, block_idx.z);
  const std::string message = "shared memory, " + std::string(block) + internal::where_suffix() + ": " + what;
  if (!c.collect) {
    std::fprintf(stderr, "cuda emulator: %s\n", message.c_str());
    std::abort();
  }
  if (c.findings.size() < kMaxFindings)
    c.findings.push_back(message);
  else
    ++c.dropped;
}

std::string location(const SmemRegion& region, size_t offset, size_t bytes) {
  return region.name + " at byte " + std::to_string(offset) + " (element " + std::to_string(offset / bytes) + " of " +
         std::to_string(bytes) + " bytes)";
}

// Whether thread t, now, is ordered after an access by thread p at p's clock `clock` of the
// current interval.
bool ordered(const Checker& c, size_t t, size_t p, uint32_t clock) {
  return p == t || (p / 32 == t / 32 && c.clocks[t * 32 + p % 32] >= clock);
}

std::string race(size_t t, const char* verb, const std::string& where, size_t p, const char* other_verb) {
  std::string out = thread_name(t) + " " + verb + " " + where + ", which " + thread_name(p) + " " + other_verb +
                    " in the same barrier interval: no __syncthreads between them";
  if (p / 32 == t / 32) out += ", and no __syncwarp both took part in (a shuffle orders no memory)";
  return out;
}

// Checks one granule; false once a finding was made (one per access).
bool check(Checker& c, Granule& g, size_t t, bool write, const SmemRegion& region, size_t offset, size_t bytes) {
  const uint32_t now = c.interval, clock = c.clocks[t * 32 + t % 32];
  const uint16_t warp = static_cast<uint16_t>(t / 32);
  const uint32_t lane_bit = 1u << (t % 32);
  bool clean = true;
  if (!write) {
    if (g.write_interval < c.block_first_interval) {
      report(c, thread_name(t) + " reads " + location(region, offset, bytes) +
                    ", which no thread of this block has written (shared memory starts undefined in every block)");
      clean = false;
    } else if (g.write_interval == now && !ordered(c, t, g.writer, g.write_clock)) {
      report(c, race(t, "reads", location(region, offset, bytes), g.writer, "wrote"));
      clean = false;
    }
    if (g.read_interval != now) {
      g.read_interval = now;
      g.read_warp = warp;
      g.read_lanes = lane_bit;
      g.read_clock = clock;
      g.reader = g.other_reader = static_cast<uint16_t>(t);
    } else {
      if (g.read_warp != warp) g.read_warp = kSeveralWarps;
      g.read_lanes |= lane_bit;
      g.read_clock = std::max(g.read_clock, clock);
      if (g.reader / 32 != warp) g.other_reader = g.reader;
      g.reader = static_cast<uint16_t>(t);
    }
    return clean;
  }
  if (g.write_interval == now && !ordered(c, t, g.writer, g.write_clock)) {
    report(c, race(t, "writes", location(region, offset, bytes), g.writer, "wrote"));
    clean = false;
  } else if (g.read_interval == now) {
    size_t conflict = t;
    if (g.read_warp != warp) {
      // A reader in another warp: the last reader, or the last one in another warp than it.
      conflict = g.reader / 32 != warp ? g.reader : g.other_reader;
    } else {
      for (size_t lane = 0; lane < 32 && conflict == t; ++lane)
        if ((g.read_lanes >> lane & 1u) && lane != t % 32 && c.clocks[t * 32 + lane] < g.read_clock)
          conflict = t / 32 * 32 + lane;
    }
    if (conflict != t) {
      report(c, race(t, "writes", location(region, offset, bytes), conflict, "read"));
      clean = false;
    }
  }
  g.write_interval = now;
  g.write_clock = clock;
  g.writer = static_cast<uint16_t>(t);
  g.read_interval = 0;
  return clean;
}

void fill(SmemRegion& region, unsigned char byte) {
  if (region.bytes) std::memset(region.base, byte, region.bytes);
}

}  // namespace

void smem_access(SmemRegion* region, const void* address, size_t bytes, bool write) {
  Checker& c = checker();
  if (!internal::in_kernel()) fail("shared memory used outside a kernel");
  if (region == nullptr) fail("a shared-memory pointer that points nowhere (an SmemPtr never assigned)");
  const char* p = static_cast<const char*>(address);
  const size_t t = internal::current_thread();
  if (p < region->base || p + bytes > region->base + region->bytes) {
    // Always fatal: the access happens after this returns.
    const long long offset = static_cast<long long>(p - region->base);
    std::fprintf(stderr,
                 "cuda emulator: shared memory, block %u,%u,%u%s: %s %s %s at byte %lld, outside its %zu bytes\n",
                 block_idx.x, block_idx.y, block_idx.z, internal::where_suffix().c_str(), thread_name(t).c_str(),
                 write ? "writes" : "reads", region->name.c_str(), offset, region->bytes);
    std::abort();
  }
  const size_t offset = static_cast<size_t>(p - region->base);
  for (size_t g = offset / kGranule; g <= (offset + bytes - 1) / kGranule; ++g)
    if (!check(c, region->shadow[g], t, write, *region, offset, bytes)) break;
}

void smem_touch(const void* address, size_t bytes, bool write) {
  if (!smem_checks) return;
  Checker& c = checker();
  const char* p = static_cast<const char*>(address);
  auto inside = [&](const SmemRegion& r) { return p >= r.base && p < r.base + r.bytes; };
  if (inside(c.dynamic)) return smem_access(&c.dynamic, address, bytes, write);
  for (auto& region : c.arrays)
    if (inside(*region)) return smem_access(region.get(), address, bytes, write);
}

SmemRegion* register_smem(void* base, size_t bytes, const char* name, const char* file, int line) {
  Checker& c = checker();
  auto region = std::make_unique<SmemRegion>();
  region->base = static_cast<char*>(base);
  region->bytes = bytes;
  region->name = std::string(name) + " (" + file + ":" + std::to_string(line) + ")";
  region->shadow.resize((bytes + kGranule - 1) / kGranule);
  // Registered by the first thread that reaches the declaration: undefined, as in a new block.
  fill(*region, c.fill_byte);
  c.arrays.push_back(std::move(region));
  return c.arrays.back().get();
}

SmemRegion* dynamic_smem_region(const char* file, int line) {
  SmemRegion& region = checker().dynamic;
  // The name is that of the first declaration seen; kernels have one.
  if (region.name.empty())
    region.name = std::string("dynamic shared memory (") + file + ":" + std::to_string(line) + ")";
  return &region;
}

void set_shared_checks(bool on) {
  current_schedule();  // reads the environment first, so that it does not override this later
  smem_checks = on;
}
bool shared_checks() {
  current_schedule();
  return smem_checks;
}
void collect_shared_findings(bool collect) { checker().collect = collect; }
std::vector<std::string> take_shared_findings() {
  Checker& c = checker();
  std::vector<std::string> out = std::move(c.findings);
  if (c.dropped) out.push_back("... and " + std::to_string(c.dropped) + " more findings");
  c.findings.clear();
  c.dropped = 0;
  return out;
}

namespace internal {

void configure_shared_checks() {
  if (const char* env = std::getenv("LMTRAIN_EMU_SHARED_CHECKS"); env && *env) smem_checks = std::strcmp(env, "0") != 0;
}

void smem_launch(size_t threads, char* base, size_t bytes) {
  Checker& c = checker();
  c.threads = threads;
  c.clocks.assign(threads * 32, 0);
  c.dynamic.base = base;
  c.dynamic.bytes = bytes;
  c.dynamic.name.clear();  // named by the kernel's LMT_DYNAMIC_SHARED
  c.dynamic.shadow.assign((bytes + kGranule - 1) / kGranule, Granule{});
}

void smem_block_start(unsigned char byte) {
  Checker& c = checker();
  // Interval numbers run for the whole process; before they could wrap, every shadow restarts.
  if (c.interval > 0xFFFF0000u) {
    c.interval = 0;
    for (auto& region : c.arrays) std::fill(region->shadow.begin(), region->shadow.end(), Granule{});
    std::fill(c.dynamic.shadow.begin(), c.dynamic.shadow.end(), Granule{});
  }
  c.block_first_interval = ++c.interval;
  c.fill_byte = byte;
  fill(c.dynamic, byte);
  for (auto& region : c.arrays) fill(*region, byte);
  if (smem_checks) reset_clocks(c);
}

void smem_syncthreads() {
  Checker& c = checker();
  ++c.interval;
  if (smem_checks) reset_clocks(c);
}

void smem_syncwarp(size_t warp, unsigned mask) {
  Checker& c = checker();
  if (!smem_checks) return;
  uint32_t join[32] = {};
  for (size_t lane = 0; lane < 32; ++lane) {
    if (!(mask >> lane & 1u)) continue;
    const uint32_t* clock = &c.clocks[(warp * 32 + lane) * 32];
    for (size_t k = 0; k < 32; ++k) join[k] = std::max(join[k], clock[k]);
  }
  for (size_t lane = 0; lane < 32; ++lane) {
    if (!(mask >> lane & 1u)) continue;
    uint32_t* clock = &c.clocks[(warp * 32 + lane) * 32];
    std::memcpy(clock, join, sizeof join);
    ++clock[lane];
  }
}

}  // namespace internal

}  // namespace lmt::emu
