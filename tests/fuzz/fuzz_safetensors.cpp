// safetensors: the 8-byte header length, the JSON header (dtype, shape, data_offsets, metadata) and
// the tensor table. A file that loads must satisfy what its readers rely on (every tensor's bytes
// are its shape times its dtype size, inside the file, no two tensors overlapping) and must survive
// a write and a read back unchanged.
#include <cstdio>
#include <cstdlib>

#include "engine/safetensors.h"
#include "tests/fuzz/fuzz_common.h"

namespace {

void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz_safetensors: FINDING: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  gpt::fuzz::clear_scratch();
  const std::string path = gpt::fuzz::write_scratch(
      "model.safetensors", std::string_view(reinterpret_cast<const char*>(data), size));
  GPT_FUZZ_EXPECT_CLEAN("fuzz_safetensors", path, {
    const gpt::SafeTensorsFile file = gpt::read_safetensors(path);
    size_t total = 0;
    for (const auto& [name, t] : file.tensors) {
      total += t.data.size();
      if (t.dtype == "F32" || t.dtype == "BF16" || t.dtype == "F64")
        require(gpt::tensor_as_f32(t, name).size() == static_cast<size_t>(t.numel()),
                "tensor_as_f32 size differs from numel");
    }
    require(total <= size, "tensors hold more bytes than the file (overlapping tensors)");
    const std::string again = gpt::fuzz::scratch_dir() + "/again.safetensors";
    gpt::write_safetensors(again, file);
    const gpt::SafeTensorsFile back = gpt::read_safetensors(again);
    require(back.tensors.size() == file.tensors.size() && back.metadata == file.metadata,
            "write + read back changed the table");
    for (size_t i = 0; i < file.tensors.size(); ++i) {
      const gpt::SafeTensor* b = back.find(file.tensors[i].first);
      require(b && b->dtype == file.tensors[i].second.dtype &&
                  b->shape == file.tensors[i].second.shape &&
                  b->data == file.tensors[i].second.data,
              "write + read back changed a tensor");
    }
  });
  return 0;
}
