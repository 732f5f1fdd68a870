// cub::DeviceRadixSort::SortPairs for the CPU emulation of CUDA (tests/cuda_emu), written from
// CUB's documentation: a stable sort of (key, value) pairs by the key bits [begin_bit, end_bit),
// with the temporary-storage protocol (a null d_temp_storage asks for the size). Keys and values
// live in (emulated) device memory; the sort runs on the host.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <type_traits>
#include <vector>

#include "cuda_runtime.h"

namespace cub {

struct DeviceRadixSort {
  template <typename Key, typename Value, typename NumItems>
  static cudaError_t SortPairs(void* d_temp_storage, size_t& temp_storage_bytes,
                               const Key* d_keys_in, Key* d_keys_out, const Value* d_values_in,
                               Value* d_values_out, NumItems num_items, int begin_bit = 0,
                               int end_bit = static_cast<int>(sizeof(Key) * 8),
                               cudaStream_t stream = nullptr) {
    (void)stream;
    static_assert(std::is_unsigned<Key>::value,
                  "unsigned keys (CUB flips the sign bit of signed ones)");
    // As much as CUB asks for: a double buffer of keys and values, plus some.
    const size_t needed = static_cast<size_t>(num_items) * (sizeof(Key) + sizeof(Value)) + 256;
    if (d_temp_storage == nullptr) {
      temp_storage_bytes = needed;
      return cudaSuccess;
    }
    if (temp_storage_bytes < needed || begin_bit < 0 ||
        end_bit > static_cast<int>(sizeof(Key) * 8) || begin_bit >= end_bit) {
      return cudaErrorInvalidValue;
    }
    const size_t n = static_cast<size_t>(num_items);
    using Bits = std::conditional_t<sizeof(Key) == 8, uint64_t, uint32_t>;
    const int width = end_bit - begin_bit;
    const Bits mask = width >= static_cast<int>(sizeof(Bits) * 8)
                          ? ~Bits{0}
                          : static_cast<Bits>((Bits{1} << width) - 1);
    std::vector<Bits> bits(n);
    for (size_t i = 0; i < n; ++i) {
      Bits b;
      std::memcpy(&b, &d_keys_in[i], sizeof(Key));
      bits[i] = (b >> begin_bit) & mask;
    }
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return bits[a] < bits[b]; });
    std::vector<Key> keys(n);
    std::vector<Value> values(n);
    for (size_t i = 0; i < n; ++i) {
      keys[i] = d_keys_in[order[i]];
      values[i] = d_values_in[order[i]];
    }
    std::copy(keys.begin(), keys.end(), d_keys_out);
    std::copy(values.begin(), values.end(), d_values_out);
    return cudaSuccess;
  }
};

}  // namespace cub
