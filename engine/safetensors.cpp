#include "engine/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "engine/errors.h"
#include "engine/files.h"

namespace gpt {

namespace {

size_t dtype_bytes(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "BF16" || d == "F16" || d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL") return 1;
  return 0;
}

}  // namespace

int64_t SafeTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const SafeTensor* SafeTensorsFile::find(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

void write_safetensors(const std::string& path, const SafeTensorsFile& file) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!file.metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : file.metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  size_t offset = 0;
  for (const auto& [name, t] : file.tensors) {
    const size_t expected = static_cast<size_t>(t.numel()) * dtype_bytes(t.dtype);
    if (dtype_bytes(t.dtype) == 0) fail(path, "tensor '" + name + "': unknown dtype " + t.dtype);
    if (expected != t.data.size())
      fail(path, "tensor '" + name + "': data size does not match shape");
    header[name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + expected}}};
    offset += expected;
  }
  std::string h = header.dump();
  while (h.size() % 8 != 0) h.push_back(' ');  // the format pads the header with spaces
  const uint64_t n = h.size();

  write_file_atomic(path, [&](AtomicFileWriter& out) {
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
    out.write(len, 8);
    out.write(h);
    for (const auto& [name, t] : file.tensors) out.write(t.data.data(), t.data.size());
  });
}

SafeTensorsFile read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) fail(path, "cannot open");
  const uint64_t file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  if (file_size < 8) fail(path, "truncated: shorter than the 8-byte header length");
  uint8_t len[8];
  in.read(reinterpret_cast<char*>(len), 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(len[i]) << (8 * i);
  if (n > file_size - 8 || n > (100u << 20))
    fail(path, "header length " + std::to_string(n) + " exceeds the file");
  std::string h(n, '\0');
  in.read(h.data(), static_cast<std::streamsize>(n));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(h);
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("malformed header JSON: ") + e.what());
  }
  if (!header.is_object()) fail(path, "header is not a JSON object");
  const uint64_t data_bytes = file_size - 8 - n;
  SafeTensorsFile file;
  struct Range {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Range> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) fail(path, "__metadata__ is not an object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string())
          fail(path, "__metadata__ value for '" + m.key() + "' is not a string");
        file.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string& name = it.key();
    const auto& e = it.value();
    try {
      SafeTensor t;
      t.dtype = e.at("dtype").get<std::string>();
      t.shape = e.at("shape").get<std::vector<int64_t>>();
      const auto offs = e.at("data_offsets").get<std::vector<uint64_t>>();
      if (offs.size() != 2 || offs[0] > offs[1] || offs[1] > data_bytes)
        fail(path, "tensor '" + name + "': data_offsets outside the file (truncated?)");
      if (dtype_bytes(t.dtype) == 0) fail(path, "tensor '" + name + "': unknown dtype " + t.dtype);
      uint64_t bytes = dtype_bytes(t.dtype);
      for (int64_t d : t.shape) {
        if (d < 0) fail(path, "tensor '" + name + "': negative dimension");
        if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes))
          fail(path, "tensor '" + name + "': shape's byte size overflows");
      }
      if (offs[1] - offs[0] != bytes)
        fail(path, "tensor '" + name + "': byte size does not match its shape and dtype");
      t.data.resize(offs[1] - offs[0]);
      in.seekg(static_cast<std::streamoff>(8 + n + offs[0]));
      in.read(reinterpret_cast<char*>(t.data.data()), static_cast<std::streamsize>(t.data.size()));
      if (!in) fail(path, "tensor '" + name + "': read failed (truncated?)");
      if (offs[1] > offs[0]) ranges.push_back({offs[0], offs[1], name});
      file.tensors.emplace_back(name, std::move(t));
    } catch (const nlohmann::json::exception& ex) {
      fail(path, "tensor '" + name + "': malformed entry: " + ex.what());
    }
  }
  // No two tensors may share bytes (the format forbids it; a reader would alias them).
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].begin < ranges[i - 1].end)
      fail(path, "tensors '" + ranges[i - 1].name + "' and '" + ranges[i].name + "' overlap");
  return file;
}

SafeTensor make_f32_tensor(const std::vector<int64_t>& shape, const float* data) {
  SafeTensor t;
  t.dtype = "F32";
  t.shape = shape;
  t.data.resize(static_cast<size_t>(t.numel()) * 4);
  if (!t.data.empty()) std::memcpy(t.data.data(), data, t.data.size());
  return t;
}

namespace {

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

std::vector<float> tensor_as_f32(const SafeTensor& t, const std::string& what) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  if (t.dtype == "F32") {
    if (!t.data.empty()) std::memcpy(out.data(), t.data.data(), t.data.size());
  } else if (t.dtype == "BF16") {
    for (size_t i = 0; i < out.size(); ++i) {
      uint32_t bits = static_cast<uint32_t>(t.data[2 * i] | (t.data[2 * i + 1] << 8)) << 16;
      std::memcpy(&out[i], &bits, 4);
    }
  } else if (t.dtype == "F16") {
    for (size_t i = 0; i < out.size(); ++i)
      out[i] = half_to_float(static_cast<uint16_t>(t.data[2 * i] | (t.data[2 * i + 1] << 8)));
  } else if (t.dtype == "F64") {
    for (size_t i = 0; i < out.size(); ++i) {
      double d;
      std::memcpy(&d, t.data.data() + 8 * i, 8);
      out[i] = static_cast<float>(d);
    }
  } else {
    throw std::runtime_error(what + ": cannot convert dtype " + t.dtype + " to f32");
  }
  return out;
}

}  // namespace gpt
