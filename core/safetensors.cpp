#include "core/safetensors.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/dtype.h"
#include "core/error.h"
#include "core/file_io.h"

namespace lmt {
namespace {

size_t dtype_size(const std::string& dtype) {
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL") return 1;
  return 0;
}

}  // namespace

size_t SafeTensor::numel() const {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

std::vector<float> SafeTensor::as_f32() const {
  if (dtype != "F32") throw Error(fmt::format("expected an F32 tensor, got {}", dtype));
  std::vector<float> out(numel());
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));  // empty: data() may be null
  return out;
}

std::vector<float> SafeTensor::to_f32() const {
  if (dtype == "F32") return as_f32();
  std::vector<float> out(numel());
  if (dtype == "F16" || dtype == "BF16") {
    convert_to_f32(out.data(), bytes.data(), dtype == "F16" ? DType::kF16 : DType::kBF16, out.size());
  } else if (dtype == "F64") {
    for (size_t i = 0; i < out.size(); ++i) {
      double value;
      std::memcpy(&value, bytes.data() + i * sizeof(double), sizeof(double));
      out[i] = static_cast<float>(value);
    }
  } else {
    throw Error(fmt::format("expected a floating-point tensor (F32, F16, BF16 or F64), got {}", dtype));
  }
  return out;
}

std::vector<int32_t> SafeTensor::as_i32() const {
  if (dtype != "I32") throw Error(fmt::format("expected an I32 tensor, got {}", dtype));
  std::vector<int32_t> out(numel());
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), out.size() * sizeof(int32_t));
  return out;
}

const SafeTensor& SafeTensorsFile::at(const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) throw Error(fmt::format("{}: no tensor named '{}'", path, name));
  return it->second;
}

namespace {

// The 8-byte length and the JSON header of `tensors`, padded so that the data is 8-byte aligned;
// `data_bytes` receives the size of the data section.
std::string header_bytes(const std::string& path, const std::vector<TensorView>& tensors,
                         const std::map<std::string, std::string>& metadata, size_t& data_bytes) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const TensorView& t : tensors) {
    size_t numel = 1;
    for (int64_t d : t.shape) numel *= static_cast<size_t>(d);
    if (numel * dtype_size(t.dtype) != t.num_bytes)
      throw Error(fmt::format("{}: tensor '{}' has {} bytes, its shape and dtype need {}", path,
                              t.name, t.num_bytes, numel * dtype_size(t.dtype)));
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.num_bytes}}};
    offset += t.num_bytes;
  }
  data_bytes = offset;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((uint64_t{text.size()} >> (8 * i)) & 0xFF);
  return out + text;
}

}  // namespace

SafetensorsWriter::SafetensorsWriter(const std::string& path, const std::vector<TensorView>& tensors,
                                     const std::map<std::string, std::string>& metadata)
    : out_(path) {
  out_.write(header_bytes(path, tensors, metadata, expected_));
}

void SafetensorsWriter::write(const void* data, size_t num_bytes) {
  if (num_bytes > expected_ - written_)
    throw Error(fmt::format("{}: {} more bytes of tensor data than its header describes", out_.path(),
                            written_ + num_bytes - expected_));
  out_.write(data, num_bytes);
  written_ += num_bytes;
}

void SafetensorsWriter::finish() {
  if (written_ != expected_)
    throw Error(fmt::format("{}: {} bytes of tensor data written, its header describes {}", out_.path(), written_,
                            expected_));
  out_.finish();
}

void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  SafetensorsWriter writer(path, tensors, metadata);
  for (const TensorView& t : tensors) writer.write(t.data, t.num_bytes);
  writer.finish();
}

SafeTensorsIndex read_safetensors_index(const std::string& path) {
  check_regular_file(path, "safetensors file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("cannot open safetensors file '{}'", path));
  in.seekg(0, std::ios::end);
  const size_t file_size = static_cast<size_t>(in.tellg());
  in.seekg(0);
  if (file_size < 8) throw Error(fmt::format("{}: too short to be a safetensors file", path));
  unsigned char length[8];
  in.read(reinterpret_cast<char*>(length), 8);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | length[i];
  if (header_len > file_size - 8)
    throw Error(fmt::format("{}: header length {} runs past the end of the file ({} bytes); "
                            "truncated?",
                            path, header_len, file_size));
  if (header_len > kMaxSafetensorsHeader)
    throw Error(fmt::format("{}: header length {} is over the {} bytes a safetensors header may have", path,
                            header_len, kMaxSafetensorsHeader));
  std::string text(header_len, '\0');
  in.read(text.data(), static_cast<std::streamsize>(header_len));
  if (!in) throw Error(fmt::format("{}: cannot read its {}-byte header", path, header_len));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: header is not valid JSON: {}", path, e.what()));
  }
  SafeTensorsIndex out;
  out.path = path;
  out.data_start = 8 + header_len;
  const size_t data_size = file_size - out.data_start;
  if (!header.is_object()) throw Error(fmt::format("{}: header is {}, not a JSON object", path, header.type_name()));
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) throw Error(fmt::format("{}: __metadata__ is not an object of strings", path));
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          throw Error(fmt::format("{}: __metadata__ key '{}' is {}; values must be strings", path, m.key(), m->dump()));
        out.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    SafeTensorsIndex::Entry t;
    try {
      t.dtype = it->at("dtype").get<std::string>();
      t.shape = it->at("shape").get<std::vector<int64_t>>();
      // The element count is bounded by the data size as it is multiplied up, so it cannot
      // overflow and pass the size check below by wrapping around. A zero dimension: empty.
      const bool empty = std::find(t.shape.begin(), t.shape.end(), 0) != t.shape.end();
      size_t elements = 1;
      for (int64_t d : t.shape) {
        if (d < 0 || (!empty && elements > data_size / static_cast<size_t>(d)))
          throw Error(fmt::format("{}: tensor '{}' has shape [{}], larger than the file", path, it.key(),
                                  fmt::join(t.shape, ", ")));
        if (!empty) elements *= static_cast<size_t>(d);
      }
      if (empty) elements = 0;
      auto offsets = it->at("data_offsets").get<std::vector<size_t>>();
      if (offsets.size() != 2 || offsets[0] > offsets[1] || offsets[1] > data_size)
        throw Error(fmt::format("{}: tensor '{}' has data offsets outside the file", path, it.key()));
      size_t elem = dtype_size(t.dtype);
      if (elem == 0) throw Error(fmt::format("{}: tensor '{}' has unknown dtype '{}'", path, it.key(), t.dtype));
      if (offsets[1] - offsets[0] != elements * elem)
        throw Error(fmt::format("{}: tensor '{}' holds {} bytes but its shape needs {}", path,
                                it.key(), offsets[1] - offsets[0], elements * elem));
      t.begin = offsets[0];
      t.end = offsets[1];
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("{}: malformed entry for tensor '{}': {}", path, it.key(), e.what()));
    }
    out.tensors.emplace(it.key(), std::move(t));
  }
  return out;
}

const SafeTensorsIndex::Entry& SafeTensorsIndex::at(const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) throw Error(fmt::format("{}: no tensor named '{}'", path, name));
  return it->second;
}

void read_safetensors_bytes(const SafeTensorsIndex& index, const std::string& name, size_t offset, size_t num_bytes,
                            void* dst) {
  const SafeTensorsIndex::Entry& t = index.at(name);
  LMT_CHECK(offset <= t.end - t.begin && num_bytes <= t.end - t.begin - offset,
            fmt::format("read_safetensors_bytes: [{}, {}) is outside tensor '{}'", offset, offset + num_bytes, name));
  if (num_bytes == 0) return;
  std::ifstream in(index.path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(index.data_start + t.begin + offset));
  in.read(static_cast<char*>(dst), static_cast<std::streamsize>(num_bytes));
  if (!in || static_cast<size_t>(in.gcount()) != num_bytes)
    throw Error(fmt::format("{}: cannot read tensor '{}' (the file changed or was truncated while it was read)",
                            index.path, name));
}

SafeTensorsFile read_safetensors(const std::string& path) {
  const SafeTensorsIndex index = read_safetensors_index(path);
  SafeTensorsFile out;
  out.path = path;
  out.metadata = index.metadata;
  for (const auto& [name, entry] : index.tensors) {
    SafeTensor t;
    t.dtype = entry.dtype;
    t.shape = entry.shape;
    t.bytes.resize(entry.end - entry.begin);
    read_safetensors_bytes(index, name, 0, t.bytes.size(), t.bytes.data());
    out.tensors.emplace(name, std::move(t));
  }
  return out;
}

}  // namespace lmt
