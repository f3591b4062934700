// A data set read in place, whatever its storage type (a memory-mapped file of uint8 images, say): rows
// are gathered and cast to the network's dtype one batch at a time, optionally standardised on the way,
// so the whole set is never copied.
#pragma once
#include <cstdint>

#include "../core_types.h"

namespace nc {

enum class InputType : int { uint8 = 0, int16 = 1, float16 = 2, float32 = 3, float64 = 4 };

template <typename T>
struct InputSource {
    const void* data = nullptr;   // (rows, cols), C-contiguous, of `type`
    InputType type = InputType::float32;
    index_t cols = 0;
    T scale = T(1);               // x * scale, when shift is nullptr
    const T* shift = nullptr;     // (cols,) or nullptr: (x - shift) / divisor, per feature
    const T* divisor = nullptr;   // (cols,)

    // True when the rows are already the network's T, unscaled: the GEMMs can read them in place.
    bool plain() const;
};

// dst (count, cols) = standardise(T(src rows idx[0..count))); idx == nullptr: rows first, first+1, ...
template <typename T>
void gather_cast_rows(T* dst, const InputSource<T>& src, const std::int64_t* idx, index_t first, index_t count);

extern template struct InputSource<float>;
extern template struct InputSource<double>;

}  // namespace nc
