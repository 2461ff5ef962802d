// safetensors files (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then
// raw little-endian tensor data. Used for test fixtures and checkpoints.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/file_io.h"

namespace lmt {

struct SafeTensor {
  std::string dtype;            // "F32", "I32", ...
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;   // raw data
  size_t numel() const;
  std::vector<float> as_f32() const;    // requires dtype F32
  // F32, F16, BF16 or F64 converted to fp32 (F16/BF16 exactly, F64 rounded); lmt::Error
  // naming the dtype otherwise.
  std::vector<float> to_f32() const;
  std::vector<int32_t> as_i32() const;  // requires dtype I32
};

struct SafeTensorsFile {
  std::map<std::string, SafeTensor> tensors;
  std::map<std::string, std::string> metadata;
  const SafeTensor& at(const std::string& name) const;  // lmt::Error naming the file if absent
  std::string path;
};

// One tensor to write: raw little-endian data of `dtype` ("F32", "I32", ...) and `shape`.
struct TensorView {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t num_bytes = 0;
};

// Writes a safetensors file (header sorted by name, data in the given order), synced to disk
// before returning. The file is written in place: callers publish it by renaming its folder.
void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata);

// The same file written in pieces, for tensors too large to hold on the host at once: the header
// of `tensors` (names, dtypes, shapes, sizes; their data pointers are not read) is written by the
// constructor, then write() appends the data of the tensors in their order, then finish() syncs.
// A writer destroyed before finish() removes its file.
class SafetensorsWriter {
 public:
  SafetensorsWriter(const std::string& path, const std::vector<TensorView>& tensors,
                    const std::map<std::string, std::string>& metadata);
  void write(const void* data, size_t num_bytes);
  // lmt::Error unless exactly the tensors' bytes were written.
  void finish();

 private:
  OutputFile out_;
  size_t expected_ = 0, written_ = 0;
};

// Reads and validates (header bounds, offsets inside the file, sizes match shapes and dtypes);
// every problem is an lmt::Error naming the file.
SafeTensorsFile read_safetensors(const std::string& path);

// What a file's header says, validated as read_safetensors does, without reading any tensor's
// data: for files too large to hold on the host, read a piece at a time.
inline constexpr size_t kMaxSafetensorsHeader = size_t{100} << 20;  // bytes, as the safetensors library
struct SafeTensorsIndex {
  struct Entry {
    std::string dtype;
    std::vector<int64_t> shape;
    size_t begin = 0, end = 0;  // byte offsets into the data section
  };
  std::string path;
  size_t data_start = 0;  // file offset of the data section
  std::map<std::string, Entry> tensors;
  std::map<std::string, std::string> metadata;
  const Entry& at(const std::string& name) const;  // lmt::Error naming the file if absent
};
SafeTensorsIndex read_safetensors_index(const std::string& path);
// num_bytes of tensor `name`'s data from byte `offset` of it into dst; lmt::Error naming the file
// when it can no longer be read there.
void read_safetensors_bytes(const SafeTensorsIndex& index, const std::string& name, size_t offset, size_t num_bytes,
                            void* dst);

}  // namespace lmt
