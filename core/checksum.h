// CRC-32C (Castagnoli), the checksum recorded in checkpoint manifests: cheap enough to verify
// every byte of a checkpoint before loading it, and catches truncation and bit rot.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace lmt {

// Continues a running CRC: crc32c(b, crc32c(a)) == crc32c(a + b). Start with 0.
uint32_t crc32c(const void* data, size_t num_bytes, uint32_t crc = 0);

// CRC-32C of a whole file, as 8 lowercase hex digits; throws lmt::Error naming the file.
std::string crc32c_file(const std::string& path);

}  // namespace lmt
