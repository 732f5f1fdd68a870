// safetensors files, read and written by our own code: an 8-byte little-endian header length, a
// JSON header {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
// "__metadata__": {string: string}}, then the raw tensor bytes (offsets relative to the end of the
// header). Checked against the Python `safetensors` package.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace gpt {

struct SafeTensor {
  std::string dtype;  // "F32", "BF16", "F64", "I32", ...
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
  int64_t numel() const;
};

struct SafeTensorsFile {
  std::map<std::string, std::string> metadata;
  // Tensors in the order they are written (sorted by name when read back, as the format has no
  // order beyond offsets).
  std::vector<std::pair<std::string, SafeTensor>> tensors;
  const SafeTensor* find(const std::string& name) const;
};

// Writes atomically (engine/files.h: temporary file, fsync, rename). Throws naming the file.
void write_safetensors(const std::string& path, const SafeTensorsFile& file);
// Throws std::runtime_error naming the file and the tensor for a truncated or malformed file.
SafeTensorsFile read_safetensors(const std::string& path);

// Convenience for f32 data.
SafeTensor make_f32_tensor(const std::vector<int64_t>& shape, const float* data);
// F32, BF16, F16 or F64 data as f32; throws naming `what` for another dtype.
std::vector<float> tensor_as_f32(const SafeTensor& t, const std::string& what);

}  // namespace gpt
